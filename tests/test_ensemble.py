"""`czii ensemble`: map modes, rank matching, checks, and pick fusion."""

from __future__ import annotations

import numpy as np
import pytest

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.ensemble import MapKind, combine_block, ensemble_maps, fuse_picks
from czii_cli.ensemble.rank import float16_keys, rank_lookup, value_histogram
from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact
from czii_cli.io.picks import read_picks, write_picks_csv
from czii_cli.picks import Picks

CLASSES = ("background", "ribosome", "thyroglobulin")


def softmax(logits):
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def probs_meta(**changes):
    fields = dict(
        kind="probs",
        axes="czyx",
        voxel_size=10.0,
        run="TS_1",
        classes=CLASSES,
        extra={"activation": "softmax", "catalog": DEFAULT_CATALOG.to_json()},
    )
    fields.update(changes)
    return ArtifactMeta(**fields)


@pytest.fixture
def maps(rng):
    """Two softmax maps of shape (3, 5, 70, 9): more than one 64-row block along y."""
    return [softmax(rng.normal(size=(3, 5, 70, 9))).astype(np.float16) for _ in range(2)]


def write_map(path, data, **changes):
    write_artifact(path, data, probs_meta(**changes))
    return path


def reference_rank_match(a, b):
    """B's values replaced by A's sorted values at the same rank; ties share their block's mean."""
    a_sorted = np.sort(a.astype(np.float64).ravel())
    flat = b.astype(np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    out = np.empty_like(flat)
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and flat[order[stop]] == flat[order[start]]:
            stop += 1
        out[order[start:stop]] = a_sorted[start:stop].mean()
        start = stop
    return out.reshape(b.shape)


def test_rank_matching_without_ties_is_argsort_replacement(rng):
    a = rng.permutation(np.linspace(0, 1, 500)).astype(np.float16)
    b = rng.permutation(np.linspace(-3, 5, 500)).astype(np.float16)
    assert len(np.unique(a)) == 500 and len(np.unique(b)) == 500
    table = rank_lookup(value_histogram(a), value_histogram(b))
    expected = np.empty(500)
    expected[np.argsort(b)] = np.sort(a.astype(np.float64))
    np.testing.assert_allclose(table[float16_keys(b)], expected, rtol=1e-6)


def test_rank_matching_with_ties_matches_the_reference(rng):
    a = rng.random(2000).astype(np.float16)
    b = np.round(rng.random(2000), 2).astype(np.float16)  # about a hundred distinct values
    table = rank_lookup(value_histogram(a), value_histogram(b))
    np.testing.assert_allclose(table[float16_keys(b)], reference_rank_match(a, b), rtol=1e-5)


def test_float16_keys_order_every_finite_value():
    values = np.array([-np.inf, -65504, -1.0, -1e-7, -0.0, 0.0, 1e-7, 0.5, 65504, np.inf], dtype=np.float16)
    assert np.all(np.diff(float16_keys(values).astype(int)) > 0)


@pytest.mark.parametrize("mode", ["mean", "logit", "max", "rank"])
def test_identical_inputs_give_that_input(maps, mode):
    a = maps[0]
    out = np.zeros(a.shape, dtype=np.float32)
    kinds = [MapKind("softmax")] * 3
    ensemble_maps([a, a, a], out, mode=mode, kinds=kinds, block=16)
    # logit mode goes through log and softmax, and clips at 1e-6
    atol, rtol = (2e-5, 1e-3) if mode == "logit" else (0, 1e-6)
    np.testing.assert_allclose(out, a.astype(np.float32), atol=atol, rtol=rtol)


def test_rank_mode_matches_the_reference_per_class(maps):
    a, b = maps
    out = np.zeros(a.shape, dtype=np.float32)
    ensemble_maps([a, b], out, mode="rank", weights=[0.6, 0.4], kinds=[MapKind("softmax")] * 2, block=16)
    for channel in range(a.shape[0]):
        expected = 0.6 * a[channel].astype(np.float64) + 0.4 * reference_rank_match(a[channel], b[channel])
        np.testing.assert_allclose(out[channel], expected, rtol=1e-5, atol=1e-7)


def test_mean_max_and_logit_values():
    p = np.array([[0.2, 0.9]], dtype=np.float32)
    q = np.array([[0.6, 0.5]], dtype=np.float32)
    sig = [MapKind("sigmoid")] * 2
    w = np.array([0.75, 0.25])
    np.testing.assert_allclose(combine_block([p, q], mode="mean", weights=w, kinds=sig), [[0.3, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(combine_block([p, q], mode="max", weights=w, kinds=sig), [[0.6, 0.9]])
    logit = lambda v: np.log(v / (1 - v))  # noqa: E731
    expected = 1 / (1 + np.exp(-(0.75 * logit(p) + 0.25 * logit(q))))
    np.testing.assert_allclose(combine_block([p, q], mode="logit", weights=w, kinds=sig), expected, rtol=1e-5)


def test_logit_mode_on_softmax_maps_and_logit_maps():
    rng = np.random.default_rng(0)
    la, lb = rng.normal(size=(2, 3, 4, 4, 4))
    expected = softmax((la + lb) / 2)
    w = np.array([0.5, 0.5])
    from_probs = combine_block([softmax(la), softmax(lb)], mode="logit", weights=w, kinds=[MapKind("softmax")] * 2)
    np.testing.assert_allclose(from_probs, expected, rtol=1e-4)
    mixed = combine_block(
        [la, softmax(lb)], mode="logit", weights=w, kinds=[MapKind("logits", "softmax"), MapKind("softmax")]
    )
    np.testing.assert_allclose(mixed, expected, rtol=1e-4)


def test_cli_mean_and_rank_write_float16_artifacts(cli, maps, tmp_path):
    a = write_map(tmp_path / "a.zarr", maps[0])
    b = write_map(tmp_path / "b.zarr", maps[1])
    result = cli("ensemble", a, b, "--weights", "3,1", "-o", tmp_path / "e.zarr")
    assert result.exit_code == 0, result.stderr
    volume = read_artifact(tmp_path / "e.zarr")
    assert volume.data.dtype == np.float16 and volume.meta.classes == CLASSES and volume.meta.run == "TS_1"
    assert volume.meta.extra["activation"] == "softmax"
    assert volume.meta.extra["ensemble"] == {"mode": "mean", "weights": [3.0, 1.0], "inputs": [str(a), str(b)]}
    assert volume.meta.provenance[-1]["command"] == "ensemble"
    expected = 0.75 * maps[0].astype(np.float32) + 0.25 * maps[1].astype(np.float32)
    np.testing.assert_allclose(volume.load().astype(np.float32), expected, atol=1e-3)
    result = cli("ensemble", a, b, "--mode", "rank", "-o", "-")
    assert result.exit_code == 0, result.stderr
    (tmp_path / "r.zarr").write_bytes(result.stdout_bytes)
    ranked = read_artifact(tmp_path / "r.zarr").load().astype(np.float32)
    expected = 0.5 * maps[0][1].astype(np.float64) + 0.5 * reference_rank_match(maps[0][1], maps[1][1])
    np.testing.assert_allclose(ranked[1], expected, atol=1e-3)


@pytest.mark.parametrize(
    "changes, shape, message",
    [
        ({"classes": ("background", "ribosome", "apo-ferritin")}, None, "classes"),
        ({"run": "TS_2"}, None, "run 'TS_2' differs"),
        ({"voxel_size": 12.0}, None, "voxel size 12.0"),
        ({}, (3, 5, 70, 8), "shape (3, 5, 70, 8) does not match"),
    ],
)
def test_mismatched_maps_fail_cleanly(cli, maps, tmp_path, changes, shape, message):
    a = write_map(tmp_path / "a.zarr", maps[0])
    other = maps[1] if shape is None else maps[1][..., : shape[-1]]
    b = write_map(tmp_path / "b.zarr", np.ascontiguousarray(other), **changes)
    result = cli("ensemble", a, b, "-o", tmp_path / "e.zarr")
    assert result.exit_code == 1
    assert message in result.stderr and str(b) in result.stderr
    assert not (tmp_path / "e.zarr").exists()


def test_a_tomogram_is_not_a_map_to_ensemble(cli, maps, tmp_path):
    a = write_map(tmp_path / "a.zarr", maps[0])
    tomogram = tmp_path / "t.zarr"
    write_artifact(tomogram, maps[1][0], ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0, run="TS_1"))
    result = cli("ensemble", a, tomogram, "-o", tmp_path / "e.zarr")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("czii: error:")]
    assert errors == [f"czii: error: {tomogram}: expected a czyx probability map, found axes 'zyx'"]
    assert not (tmp_path / "e.zarr").exists()


def test_maps_of_different_kinds_need_logit_or_rank(cli, maps, tmp_path):
    a = write_map(tmp_path / "a.zarr", maps[0])
    b = write_map(tmp_path / "b.zarr", maps[1], extra={"activation": "logits", "logits_of": "softmax"})
    result = cli("ensemble", a, b, "-o", tmp_path / "e.zarr")
    assert result.exit_code == 1 and "different kinds" in result.stderr
    result = cli("ensemble", a, b, "--mode", "logit", "-o", tmp_path / "e.zarr")
    assert result.exit_code == 0, result.stderr
    assert read_artifact(tmp_path / "e.zarr").meta.extra["activation"] == "softmax"


def test_bad_weights_and_modes_are_usage_errors(cli, maps, tmp_path):
    a = write_map(tmp_path / "a.zarr", maps[0])
    for args, message in [
        (["--weights", "1"], "1 weights for 2 inputs"),
        (["--weights", "x,1"], "comma-separated"),
        (["--weights", "1,1", "--mode", "max"], "do not apply"),
        (["--mode", "median"], "unknown mode"),
    ]:
        result = cli("ensemble", a, a, *args, "-o", tmp_path / "e.zarr")
        assert result.exit_code == 2, args
        assert message in result.stderr
    write_picks_csv(tmp_path / "p.csv", Picks.empty())
    result = cli("ensemble", tmp_path / "p.csv", tmp_path / "p.csv", "-o", tmp_path / "e.zarr")
    assert result.exit_code == 2 and "--mode cluster" in result.stderr


def test_fuse_picks_clusters_around_the_best_pick_and_scores_the_vote():
    ribo = 150.0 * 0.5
    a = Picks.from_points("TS", "ribosome", [[0, 0, 0], [1000, 0, 0]], np.array([0.9, 0.5]))
    b = Picks.from_points("TS", "ribosome", [[30, 0, 0], [30 + ribo + 1, 0, 0]], np.array([0.3, 0.8]))
    fused = fuse_picks([a, b], catalog=DEFAULT_CATALOG, weights=[1.0, 1.0])
    # Seed (0,0,0) 0.9 takes (30,0,0) 0.3; (106,0,0) is beyond 75 Å of the seed: not chained.
    np.testing.assert_allclose(fused.xyz[:, 0], [(0.9 * 0 + 0.3 * 30) / 1.2, 106.0, 1000.0])
    np.testing.assert_allclose(fused.score, [0.6, 0.4, 0.25])


def test_fuse_picks_with_weights_and_without_scores():
    a = Picks.from_points("TS", "apo-ferritin", [[0, 0, 0]])
    b = Picks.from_points("TS", "apo-ferritin", [[20, 0, 0]])
    c = Picks.from_points("TS", "apo-ferritin", [[500, 0, 0]])
    fused = fuse_picks([a, b, c], catalog=DEFAULT_CATALOG, weights=[2.0, 1.0, 1.0])
    np.testing.assert_allclose(fused.xyz[:, 0], [20 / 3, 500.0])
    np.testing.assert_allclose(fused.score, [0.75, 0.25])


def test_cli_cluster_mode_fuses_csv_files(cli, tmp_path):
    a = Picks.from_points("TS_1", "ribosome", [[100, 100, 100]], np.array([0.8]))
    b = Picks.from_points("TS_1", "ribosome", [[110, 100, 100]], np.array([0.4]))
    write_picks_csv(tmp_path / "a.csv", a)
    write_picks_csv(tmp_path / "b.csv", b)
    result = cli("ensemble", tmp_path / "a.csv", tmp_path / "b.csv", "--mode", "cluster", "-o", tmp_path / "c.csv")
    assert result.exit_code == 0, result.stderr
    fused = read_picks(tmp_path / "c.csv")
    assert len(fused) == 1 and fused.experiment[0] == "TS_1"
    np.testing.assert_allclose(fused.xyz[0], [(0.8 * 100 + 0.4 * 110) / 1.2, 100, 100], atol=1e-3)
    assert fused.score[0] == pytest.approx(0.6)
    result = cli("ensemble", tmp_path / "a.csv", tmp_path / "a.csv", "--mode", "cluster")
    assert result.exit_code == 0 and result.stdout.startswith("id,experiment,particle_type,x,y,z,score")
