"""Threshold tuning against brute force over every cutoff, cross-validation, thresholds files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from plain_metric import plain_counts, plain_fbeta, random_case

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.errors import DataError, OutputExistsError, UsageError
from czii_cli.io.thresholds import read_thresholds, write_thresholds
from czii_cli.picks import Picks, concat
from czii_cli.score import score_picks
from czii_cli.tune import apply_thresholds, best_cutoff, cross_validate, group_events, tune_thresholds


def scored_case(seed: int) -> tuple[Picks, Picks]:
    """A random case whose scores repeat (ties) and favour candidates near references."""
    pred, gt = random_case(seed)
    rng = np.random.default_rng(seed + 1000)
    return pred.with_score(rng.integers(0, 12, size=len(pred)) / 12), gt


def brute_force_class(pred: Picks, gt: Picks, name: str, matching: str) -> tuple[float, float]:
    """(best F-beta, highest distinct score reaching it) by scoring every cutoff plainly."""
    mine = pred.particle_type == name
    best, best_cut = -1.0, None
    for cut in sorted(set(pred.score[mine & np.isin(pred.experiment, gt.experiments)].tolist()), reverse=True):
        kept = pred.subset(~mine | (pred.score >= cut))
        counts = plain_counts(kept, gt, DEFAULT_CATALOG, matching=matching)
        tp, fp, fn = (sum(counts[e][name][k] for e in counts) for k in range(3))
        fbeta = plain_fbeta(tp, fp, fn, 4.0)
        if fbeta > best + 1e-12:
            best, best_cut = fbeta, cut
    return best, best_cut


@pytest.mark.parametrize("matching", ["any", "one-to-one"])
def test_tuning_matches_brute_force_over_every_cutoff(matching):
    for seed in range(12):
        pred, gt = scored_case(seed)
        result = tune_thresholds(pred, gt, DEFAULT_CATALOG, matching=matching, rule="best")
        for name in DEFAULT_CATALOG.names:
            relevant = (pred.particle_type == name) & np.isin(pred.experiment, gt.experiments)
            if not relevant.any():
                assert name not in result.thresholds
                continue
            best, best_cut = brute_force_class(pred, gt, name, matching)
            cutoff = result.thresholds[name]
            scores = pred.score[relevant]
            # the cutoff keeps exactly the picks of the highest best cutoff
            np.testing.assert_array_equal(scores >= cutoff, scores >= best_cut)
            assert result.after.per_class[name].fbeta == pytest.approx(best, abs=1e-12), (seed, name)
        assert result.after.score >= result.before.score - 1e-12


def test_one_to_one_tuning_in_crowded_clusters():
    # overlapping reach everywhere, so growing the matching needs long augmenting paths
    for seed in range(30):
        rng = np.random.default_rng(seed)
        gt = Picks.from_points("E", "apo-ferritin", rng.integers(0, 60, size=(6, 3)).astype(float))
        pred = Picks.from_points(
            "E", "apo-ferritin", rng.integers(0, 60, size=(10, 3)).astype(float), score=rng.integers(0, 5, size=10) / 5
        )
        result = tune_thresholds(pred, gt, DEFAULT_CATALOG, matching="one-to-one", rule="best")
        best, best_cut = brute_force_class(pred, gt, "apo-ferritin", "one-to-one")
        np.testing.assert_array_equal(pred.score >= result.thresholds["apo-ferritin"], pred.score >= best_cut)
        assert result.after.per_class["apo-ferritin"].fbeta == pytest.approx(best, abs=1e-12)


def test_best_cutoff_rules():
    def best(*args):
        return best_cutoff(*args, beta=4.0, rule="best")

    # ties go to the highest cutoff; the cutoff sits inside the gap below it
    assert best(np.array([0.9, 0.9, 0.5]), np.array([0.9]), 1) == 0.7
    # a single distinct score is its own cutoff
    assert best(np.array([0.3, 0.3]), np.array([0.3]), 1) == 0.3
    # no reference is ever found: only the top-scoring picks are kept
    assert best(np.array([0.2, 0.8]), np.array([]), 3) == 0.5
    # adjacent floats leave no room for a midpoint
    low = 0.5
    high = float(np.nextafter(low, 1.0))
    assert best(np.array([high, low]), np.array([high]), 1) == high
    # rounding keeps the cutoff within the middle half of the gap
    assert best(np.array([0.40004, 0.4]), np.array([0.40004]), 1) == 0.40002


def plain_robust_cutoff(scores: list[float], matches: list[float], n_references: int) -> float | None:
    """The robust rule spelled out: F4 at every distinct score, one particle's tolerance, lowest wins."""
    cuts = sorted(set(scores), reverse=True)
    table = []
    for cut in cuts:
        tp = sum(m >= cut for m in matches)
        table.append((cut, tp, sum(s >= cut for s in scores) - tp))
    fbetas = [plain_fbeta(tp, fp, n_references - tp, 4.0) for _, tp, fp in table]
    top = max(fbetas)
    if n_references == 0 or top == 0:
        return None
    _, tp, fp = table[fbetas.index(top)]
    tolerance = top - plain_fbeta(tp - 1, fp, n_references - tp + 1, 4.0)
    chosen = max(i for i, f in enumerate(fbetas) if f >= top - tolerance - 1e-12)
    return None if chosen == len(cuts) - 1 else (cuts[chosen], cuts[chosen + 1])


def test_robust_rule_matches_its_plain_definition():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        scores = (rng.integers(1, 40, size=n) / 40).tolist()
        matches = [s for s in scores if rng.random() < 0.4]
        refs = len(matches) + int(rng.integers(0, 4))
        expected = plain_robust_cutoff(scores, matches, refs)
        got = best_cutoff(np.array(scores), np.array(matches), refs, beta=4.0)
        if expected is None:
            assert got is None
        else:
            high, low = expected
            assert low < got <= high  # keeps exactly the picks scored >= high


def test_robust_rule_ignores_a_single_high_scoring_particle():
    # one particle at 0.97 with no false pick above it; the other four sit among false picks
    scores = np.array([0.97, 0.9, 0.85, 0.8, 0.6, 0.55, 0.5, 0.45, 0.3])
    matches = np.array([0.97, 0.6, 0.5, 0.45, 0.3])
    assert best_cutoff(scores, matches[:1], 1, beta=4.0, rule="best") == 0.94
    assert best_cutoff(scores, matches[:1], 1, beta=4.0) is None  # kept whole
    # with the other four found too, neither rule stops above them
    assert best_cutoff(scores, matches, 5, beta=4.0, rule="best") == 0.3
    assert best_cutoff(scores, matches, 5, beta=4.0) is None


def test_robust_rule_on_ties_and_empty_classes():
    # equal scores are one cutoff: a tie of a true and a false pick is kept or dropped together
    assert best_cutoff(np.array([0.8, 0.8, 0.2, 0.2, 0.2]), np.array([0.8, 0.2]), 2, beta=4.0) is None
    # many references make the tolerance narrow: the exact cutoff stands
    scores = np.concatenate([np.full(60, 0.9), np.full(200, 0.1)])
    assert best_cutoff(scores, np.full(60, 0.9), 60, beta=4.0) == 0.5
    # no reference, or references never reached: no cutoff
    assert best_cutoff(np.array([0.9, 0.5]), np.array([]), 0, beta=4.0) is None
    assert best_cutoff(np.array([0.9, 0.5]), np.array([]), 3, beta=4.0) is None
    # a class without candidates gets no entry at all
    gt = Picks.from_points("E", "ribosome", [[0, 0, 0]])
    pred = Picks.from_points("E", "ribosome", [[5, 0, 0]], score=[0.5])
    assert tune_thresholds(pred, gt, DEFAULT_CATALOG).thresholds == {}
    with pytest.raises(UsageError, match="threshold rule"):
        tune_thresholds(pred, gt, DEFAULT_CATALOG, rule="greedy")


def test_one_to_one_events_follow_augmenting_paths():
    # c0 (best score) sits between both references; c1 reaches only r0.  Adding c1 re-routes c0.
    gt = Picks.from_points("E", "apo-ferritin", [[0, 0, 0], [50, 0, 0]])
    pred = Picks.from_points("E", "apo-ferritin", [[25, 0, 0], [-20, 0, 0]], score=[0.9, 0.1])
    events = group_events(pred, gt, DEFAULT_CATALOG, matching="one-to-one")["E", "apo-ferritin"]
    assert sorted(events.match_scores.tolist()) == [0.1, 0.9]
    assert events.counts_at(0.5) == (1, 0, 1)
    assert events.counts_at(0.1) == (2, 0, 0)
    any_events = group_events(pred, gt, DEFAULT_CATALOG)["E", "apo-ferritin"]
    assert sorted(any_events.match_scores.tolist()) == [0.9, 0.9]


def test_cross_validation_equals_tuning_on_the_other_experiments():
    for seed in range(6):
        pred, gt = scored_case(seed)
        if len(gt.experiments) < 2:
            continue
        events = group_events(pred, gt, DEFAULT_CATALOG)
        report = cross_validate(events, DEFAULT_CATALOG, beta=4.0, distance_multiplier=0.5, matching="any")
        totals = {name: [0, 0, 0] for name in DEFAULT_CATALOG.names}
        for held_out in gt.experiments:
            train = np.isin(pred.experiment, [e for e in gt.experiments if e != held_out])
            training_gt = gt.subset(gt.experiment != held_out)
            thresholds = tune_thresholds(pred.subset(train), training_gt, DEFAULT_CATALOG).thresholds
            test = apply_thresholds(pred.where(experiment=held_out), thresholds)
            counts = plain_counts(test, gt.where(experiment=held_out), DEFAULT_CATALOG)[held_out]
            for name in totals:
                totals[name] = [a + b for a, b in zip(totals[name], counts[name])]
        for name, (tp, fp, fn) in totals.items():
            part = report.per_class[name]
            assert (part.tp, part.fp, part.fn) == (tp, fp, fn), (seed, name)
        assert list(report.per_experiment) == gt.experiments


def test_cross_validation_needs_two_experiments():
    pred, gt = scored_case(0)
    one = gt.where(experiment=gt.experiments[0])
    with pytest.raises(DataError, match="at least two experiments"):
        tune_thresholds(pred, one, DEFAULT_CATALOG, cross_validation=True)


def test_tuning_needs_scores():
    pred, gt = random_case(1)
    with pytest.raises(DataError, match="no score column"):
        tune_thresholds(pred, gt, DEFAULT_CATALOG)
    with pytest.raises(DataError, match="non-finite"):
        tune_thresholds(pred.with_score(np.full(len(pred), np.nan)), gt, DEFAULT_CATALOG)


def test_apply_thresholds_keeps_classes_without_a_cutoff():
    scored = concat(
        [
            Picks.from_points("E", "ribosome", np.zeros((3, 3)), score=[0.1, 0.5, 0.9]),
            Picks.from_points("E", "apo-ferritin", np.zeros((2, 3)), score=[0.0, 0.2]),
        ]
    )
    kept = apply_thresholds(scored, {"ribosome": 0.5})
    assert kept.particle_type.tolist() == ["ribosome", "ribosome", "apo-ferritin", "apo-ferritin"]
    assert kept.score.tolist() == [0.5, 0.9, 0.0, 0.2]


def test_after_score_is_the_score_of_the_filtered_picks():
    pred, gt = scored_case(5)
    result = tune_thresholds(pred, gt, DEFAULT_CATALOG, cross_validation=True)
    filtered = apply_thresholds(pred, result.thresholds)
    assert result.after.score == score_picks(filtered, gt, DEFAULT_CATALOG).score
    assert result.before.score == score_picks(pred, gt, DEFAULT_CATALOG).score
    assert result.cv is not None and 0.0 <= result.cv.score <= 1.0


def test_thresholds_file_round_trip(tmp_path):
    path = tmp_path / "t.json"
    write_thresholds(path, {"ribosome": 0.25, "apo-ferritin": 0.125}, extra={"score_after": 0.5})
    assert read_thresholds(path) == {"ribosome": 0.25, "apo-ferritin": 0.125}
    assert json.loads(path.read_text())["score_after"] == 0.5
    with pytest.raises(OutputExistsError, match="output exists; not replaced unless overwrite is set$"):
        write_thresholds(path, {"ribosome": 0.5})
    write_thresholds(path, {"ribosome": 0.5}, overwrite=True)
    assert read_thresholds(path) == {"ribosome": 0.5}
    with pytest.raises(DataError, match="not a finite number"):
        write_thresholds(tmp_path / "u.json", {"ribosome": float("nan")})
    assert not (tmp_path / "u.json").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable JSON"),
        ('{"cutoffs": {}}', 'a "thresholds" object'),
        ("[1, 2]", 'a "thresholds" object'),
        ('{"thresholds": {"ribosome": "high"}}', "'ribosome' is not a finite number"),
        ('{"thresholds": {"ribosome": NaN}}', "'ribosome' is not a finite number"),
        ('{"thresholds": {"ribosome": true}}', "'ribosome' is not a finite number"),
    ],
)
def test_read_thresholds_errors(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_thresholds(path)
    assert str(path) in str(caught.value)


def test_read_thresholds_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such thresholds file"):
        read_thresholds(tmp_path / "absent.json")
