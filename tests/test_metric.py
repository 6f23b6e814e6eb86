"""The F-beta metric: hand-built counts, competition edge cases, and random cases against a
plain brute-force implementation (tests/plain_metric.py)."""

from __future__ import annotations

import numpy as np
import pytest
from plain_metric import DISTANCE, plain_counts, plain_score, random_case

from czii_cli.catalog import DEFAULT_CATALOG, Catalog, ParticleClass
from czii_cli.errors import DataError, UsageError
from czii_cli.picks import Picks
from czii_cli.score import count_matches, fbeta_score, match_counts, score_picks


def picks(rows) -> Picks:
    """Picks from (experiment, class, x, y, z) rows."""
    if not rows:
        return Picks.empty()
    return Picks([r[0] for r in rows], [r[1] for r in rows], [r[2:5] for r in rows])


def test_hand_built_counts_and_score():
    gt = picks(
        [
            ("TS_1", "ribosome", 0, 0, 0),
            ("TS_1", "ribosome", 1000, 0, 0),
            ("TS_1", "apo-ferritin", 0, 500, 0),
            ("TS_2", "ribosome", 0, 0, 0),
        ]
    )
    pred = picks(
        [
            ("TS_1", "ribosome", 10, 0, 0),
            ("TS_1", "ribosome", 0, 20, 0),  # two near one reference
            ("TS_1", "ribosome", 3000, 0, 0),  # far from everything
            ("TS_1", "apo-ferritin", 0, 530, 0),  # exactly at 30 Å
            ("TS_2", "ribosome", 0, 0, 76),  # just beyond 75 Å
            ("TS_9", "ribosome", 0, 0, 0),  # experiment without references: ignored
        ]
    )
    report = score_picks(pred, gt, DEFAULT_CATALOG)
    ribosome = report.per_class["ribosome"]
    assert (ribosome.tp, ribosome.fp, ribosome.fn) == (1, 3, 2)
    assert ribosome.precision == 0.25 and ribosome.recall == pytest.approx(1 / 3)
    assert ribosome.fbeta == pytest.approx(17 * (0.25 / 3) / (16 * 0.25 + 1 / 3))
    apo = report.per_class["apo-ferritin"]
    assert (apo.tp, apo.fp, apo.fn, apo.fbeta) == (1, 0, 0, 1.0)
    for absent in ("beta-amylase", "beta-galactosidase", "thyroglobulin", "virus-like-particle"):
        part = report.per_class[absent]
        assert (part.tp, part.fp, part.fn, part.fbeta) == (0, 0, 0, 0.0)
    assert report.score == pytest.approx((1.0 * apo.fbeta + 1.0 * ribosome.fbeta) / 7)
    assert list(report.per_experiment) == ["TS_1", "TS_2"]
    ts2 = report.per_experiment["TS_2"].per_class["ribosome"]
    assert (ts2.tp, ts2.fp, ts2.fn) == (0, 1, 1)


def test_candidate_near_two_references_counts_twice_and_fp_goes_negative():
    # the competition's code: TP = matched references, FP = candidates - TP
    gt = picks([("TS_1", "apo-ferritin", 0, 0, 0), ("TS_1", "apo-ferritin", 40, 0, 0)])
    pred = picks([("TS_1", "apo-ferritin", 20, 0, 0)])
    part = score_picks(pred, gt, DEFAULT_CATALOG).per_class["apo-ferritin"]
    assert (part.tp, part.fp, part.fn) == (2, -1, 0)
    assert part.precision == 2.0 and part.recall == 1.0
    assert part.fbeta == pytest.approx(17 * 2.0 / (16 * 2.0 + 1.0))
    strict = score_picks(pred, gt, DEFAULT_CATALOG, matching="one-to-one").per_class["apo-ferritin"]
    assert (strict.tp, strict.fp, strict.fn) == (1, 0, 1)


@pytest.mark.parametrize("name", sorted(DISTANCE))
def test_pick_exactly_at_the_match_distance_matches(name):
    distance = DISTANCE[name]
    ref = np.array([[1000.0, 2000.0, 300.0]])
    for axis in range(3):
        at, beyond = ref.copy(), ref.copy()
        at[0, axis] += distance
        beyond[0, axis] = np.nextafter(beyond[0, axis] + distance, np.inf)
        assert count_matches(at, ref, distance=distance) == 1
        assert count_matches(at, ref, distance=distance, matching="one-to-one") == 1
        assert count_matches(beyond, ref, distance=distance) == 0


def test_one_to_one_needs_the_optimal_assignment():
    # greedy nearest-first would pair c0 with r1 and leave r0 unmatched
    refs = np.array([[0.0, 0, 0], [50.0, 0, 0]])
    cands = np.array([[26.0, 0, 0], [79.0, 0, 0]])
    assert count_matches(cands, refs, distance=30.0, matching="one-to-one") == 2
    assert count_matches(np.empty((0, 3)), refs, distance=30.0, matching="one-to-one") == 0


def test_fbeta_zero_rules():
    precision, recall, fbeta = fbeta_score([0, 0, 5, 2], [0, 3, 0, 0], [0, 0, 0, 2], beta=4.0)
    np.testing.assert_array_equal(precision, [0, 0, 1, 1])
    np.testing.assert_array_equal(recall, [0, 0, 1, 0.5])
    np.testing.assert_allclose(fbeta, [0, 0, 1, 17 * 0.5 / (16 + 0.5)])


def test_weights_divide_by_the_whole_catalog_even_for_absent_classes():
    gt = picks([("TS_1", "thyroglobulin", 0, 0, 0)])
    pred = picks([("TS_1", "thyroglobulin", 0, 0, 0)])
    assert score_picks(pred, gt, DEFAULT_CATALOG).score == pytest.approx(2 / 7)
    catalog = Catalog((ParticleClass("a", 10.0, 3.0, 1), ParticleClass("b", 10.0, 1.0, 2)))
    gt = picks([("E", "a", 0, 0, 0)])
    assert score_picks(picks([("E", "a", 5, 0, 0)]), gt, catalog).score == pytest.approx(0.75)


def test_empty_inputs():
    gt = picks([("TS_1", "ribosome", 0, 0, 0)])
    report = score_picks(Picks.empty(), gt, DEFAULT_CATALOG)
    assert report.score == 0.0 and report.per_class["ribosome"].fn == 1
    report = score_picks(gt, Picks.empty(), DEFAULT_CATALOG)
    assert report.score == 0.0 and report.per_experiment == {}


def test_unknown_class_is_a_data_error():
    gt = picks([("TS_1", "ribosome", 0, 0, 0)])
    with pytest.raises(DataError, match="unknown particle class 'ribosme'"):
        score_picks(picks([("TS_1", "ribosme", 0, 0, 0)]), gt, DEFAULT_CATALOG)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"matching": "greedy"}, "unknown matching"),
        ({"beta": 0.0}, "^beta must be positive, got 0.0$"),
        ({"distance_multiplier": -1.0}, "^distance multiplier must be positive, got -1.0$"),
    ],
)
def test_bad_options_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        score_picks(Picks.empty(), Picks.empty(), DEFAULT_CATALOG, **options)


@pytest.mark.parametrize("matching", ["any", "one-to-one"])
def test_random_cases_match_the_plain_implementation(matching):
    for seed in range(40):
        pred, gt = random_case(seed)
        expected_score, expected = plain_score(pred, gt, DEFAULT_CATALOG, matching=matching)
        report = score_picks(pred, gt, DEFAULT_CATALOG, matching=matching)
        for name, (tp, fp, fn, fbeta) in expected.items():
            part = report.per_class[name]
            assert (part.tp, part.fp, part.fn) == (tp, fp, fn), (seed, name)
            assert part.fbeta == pytest.approx(fbeta, abs=1e-12)
        assert report.score == pytest.approx(expected_score, abs=1e-12), seed


def test_random_cases_per_experiment_counts():
    for seed in range(10):
        pred, gt = random_case(seed)
        counts = match_counts(pred, gt, DEFAULT_CATALOG)
        expected = plain_counts(pred, gt, DEFAULT_CATALOG)
        assert list(counts.experiments) == sorted(expected)
        for row, experiment in enumerate(counts.experiments):
            for column, name in enumerate(counts.classes):
                got = [counts.tp[row, column], counts.fp[row, column], counts.fn[row, column]]
                assert got == expected[experiment][name], (seed, experiment, name)


def test_random_cases_with_other_beta_and_distance():
    for seed in range(40, 50):
        pred, gt = random_case(seed)
        expected_score, _ = plain_score(pred, gt, DEFAULT_CATALOG, beta=1.0, multiplier=0.8)
        report = score_picks(pred, gt, DEFAULT_CATALOG, beta=1.0, distance_multiplier=0.8)
        assert report.score == pytest.approx(expected_score, abs=1e-12)


def test_report_json_is_complete():
    pred, gt = random_case(3)
    document = score_picks(pred, gt, DEFAULT_CATALOG).to_json()
    assert document["metric"] == {"beta": 4.0, "distance_multiplier": 0.5, "matching": "any"}
    assert list(document["classes"]) == DEFAULT_CATALOG.names
    assert set(document["classes"]["ribosome"]) == {"tp", "fp", "fn", "precision", "recall", "fbeta", "weight"}
    assert set(document["per_experiment"]) == set(gt.experiments)
