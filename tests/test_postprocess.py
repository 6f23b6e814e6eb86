"""Post-processing methods on maps built from known centres."""

from __future__ import annotations

import numpy as np
import pytest

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.commands.options import threshold_option
from czii_cli.errors import DataError, UsageError
from czii_cli.io.picks import format_picks_csv
from czii_cli.postprocess import METHODS, extract_picks
from czii_cli.postprocess.common import min_component_size
from czii_cli.postprocess.dbscan import dbscan_picks
from czii_cli.postprocess.klfit import kl_fit_picks
from czii_cli.postprocess.peaks import peak_picks
from czii_cli.postprocess.watershed import priority_flood

RADIUS = 10.0  # particle radius in voxels: blobs of radius 5 (the default 0.5 scale)
BLOB = 5.0
CENTRES = np.array([[8.3, 9.6, 10.2], [20.0, 25.4, 30.7], [22.0, 10.4, 33.6]])


def blob_map(shape, centres, *, kind: str, radius: float = BLOB, height: float = 0.75) -> np.ndarray:
    """Spheres of ``radius`` voxels, or Gaussians whose 0.15 contour is about that sphere."""
    z, y, x = np.indices(shape, dtype=np.float64)
    prob = np.zeros(shape, np.float32)
    for c in centres:
        r2 = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2
        if kind == "sphere":
            blob = np.where(r2 <= radius**2, height, 0.0)
        else:
            blob = height * np.exp(-r2 / (2 * (radius / 2) ** 2))
        np.maximum(prob, blob.astype(np.float32), out=prob)
    return prob


def nearest_errors(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance from each true centre to the nearest pick."""
    return np.linalg.norm(truth[:, None, :] - found[None, :, :], axis=2).min(axis=1)


@pytest.mark.parametrize("kind", ["sphere", "gaussian"])
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_recovers_isolated_blobs_within_one_voxel(method, kind):
    prob = blob_map((30, 36, 44), CENTRES, kind=kind)
    found = METHODS[method](prob, threshold=0.15, radius=RADIUS)
    assert len(found.centres) == 3
    assert nearest_errors(found.centres, CENTRES).max() < 1.0
    assert found.scores.shape == (3,) and np.all(found.scores > 0.15)


@pytest.mark.parametrize("direction", [(0, 0, 1), (1, 2, 2), (3, -1, 2)])
def test_touching_pair_is_split_by_watershed_and_kl_fit_but_not_cc(direction):
    first = np.array([15.2, 15.6, 14.9])
    truth = np.array([first, first + 1.2 * BLOB * np.array(direction) / np.linalg.norm(direction)])
    prob = blob_map((32, 32, 32), truth, kind="sphere")
    assert len(METHODS["cc"](prob, threshold=0.5, radius=RADIUS).centres) == 1
    for method in ("watershed", "kl-fit"):
        found = METHODS[method](prob, threshold=0.5, radius=RADIUS)
        assert len(found.centres) == 2, method
        assert nearest_errors(found.centres, truth).max() < 1.0, method


@pytest.mark.parametrize("method", list(METHODS))
def test_empty_map_gives_no_picks(method):
    found = METHODS[method](np.zeros((8, 9, 10), np.float32), threshold=0.15, radius=RADIUS)
    assert found.centres.shape == (0, 3) and found.scores.shape == (0,)


def test_empty_map_gives_a_csv_with_a_header_and_no_rows():
    probs = np.zeros((2, 6, 6, 6), np.float16)
    picks = extract_picks(probs, classes=["background", "ribosome"], catalog=DEFAULT_CATALOG, voxel_size=10.0, run="a")
    assert format_picks_csv(picks) == "id,experiment,particle_type,x,y,z,score\n"


@pytest.mark.parametrize("method", ["cc", "peaks", "watershed", "dbscan"])
def test_peak_probability_scores(method):
    prob = blob_map((30, 36, 44), CENTRES, kind="sphere", height=0.625)
    assert METHODS[method](prob, threshold=0.15, radius=RADIUS).scores.tolist() == [0.625] * 3


def _two_class_map() -> np.ndarray:
    probs = np.zeros((3, 24, 24, 40), np.float32)
    probs[1] = blob_map((24, 24, 40), [[12, 12, 10]], kind="sphere", radius=4, height=0.3)
    probs[2] = blob_map((24, 24, 40), [[12, 12, 28]], kind="sphere", radius=8, height=0.3)
    return probs


def test_per_class_thresholds_are_honoured():
    common = {"classes": ["background", "apo-ferritin", "ribosome"], "catalog": DEFAULT_CATALOG, "run": "TS_1"}
    both = extract_picks(_two_class_map(), thresholds=0.25, voxel_size=10.0, **common)
    assert both.particle_type.tolist() == ["apo-ferritin", "ribosome"]
    only = extract_picks(_two_class_map(), thresholds={"apo-ferritin": 0.2, "ribosome": 0.5}, voxel_size=10.0, **common)
    assert only.particle_type.tolist() == ["apo-ferritin"]
    unlisted = extract_picks(_two_class_map(), thresholds={"apo-ferritin": 0.5}, voxel_size=10.0, **common)
    assert unlisted.particle_type.tolist() == ["ribosome"]  # unlisted: 0.15


def test_picks_are_in_angstrom_with_origin_run_and_score():
    picks = extract_picks(
        _two_class_map(),
        classes=["background", "apo-ferritin", "ribosome"],
        catalog=DEFAULT_CATALOG,
        thresholds=0.2,
        voxel_size=10.0,
        origin_zyx=(5.0, 0.0, -3.0),
        run="TS_1",
    )
    np.testing.assert_allclose(picks.xyz, [[97.0, 120.0, 125.0], [277.0, 120.0, 125.0]])
    assert picks.experiment.tolist() == ["TS_1", "TS_1"]
    np.testing.assert_allclose(picks.score, [0.3, 0.3], rtol=1e-6)


def test_extract_picks_refuses_bad_calls():
    probs = _two_class_map()
    common = {"catalog": DEFAULT_CATALOG, "voxel_size": 10.0, "run": "a"}
    with pytest.raises(DataError, match="unknown particle class 'nope'"):
        extract_picks(probs, classes=["background", "nope", "ribosome"], **common)
    with pytest.raises(DataError, match="2 class names for 3 channels"):
        extract_picks(probs, classes=["background", "ribosome"], **common)
    classes = ["background", "apo-ferritin", "ribosome"]
    with pytest.raises(UsageError, match="unknown method 'best'"):
        extract_picks(probs, classes=classes, method="best", **common)
    with pytest.raises(UsageError, match="method 'cc' takes no option 'sigma'"):
        extract_picks(probs, classes=classes, sigma=1.0, **common)
    with pytest.raises(UsageError, match="footprint must be one of cube, ball"):
        extract_picks(probs, classes=classes, method="peaks", footprint="star", **common)
    with pytest.raises(UsageError, match="connectivity must be 6, 18 or 26"):
        extract_picks(probs, classes=classes, connectivity=8, **common)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("0.2", (0.2, {})),
        ("ribosome=0.2,apo-ferritin=0.1", (None, {"ribosome": 0.2, "apo-ferritin": 0.1})),
        ("0.1, ribosome = 0.25", (0.1, {"ribosome": 0.25})),
    ],
)
def test_threshold_specs(spec, expected):
    assert threshold_option(spec) == (0.15 if expected[0] is None else expected[0], expected[1])


@pytest.mark.parametrize("spec", ["abc", "ribosome=x", "=0.2", "0.1,0.2", "ribosome=0.1,ribosome=0.2", "nan", "0.1,"])
def test_bad_threshold_specs_are_usage_errors(spec):
    with pytest.raises(UsageError, match="--threshold"):
        threshold_option(spec)


def test_min_size_absolute_wins_and_fraction_scales():
    assert min_component_size(12.0, min_size=5) == 5
    assert min_component_size(12.0, min_size_fraction=1.0) == 904  # 4/3 pi 6^3
    assert min_component_size(12.0, radius_scale=0.25, min_size_fraction=1.0) == 113
    with pytest.raises(UsageError):
        min_component_size(12.0, min_size=-1)


def test_cc_drops_components_below_the_minimum_size():
    prob = blob_map((30, 36, 44), CENTRES[:2], kind="sphere")
    prob[25, 5, 5] = 0.9  # one voxel
    assert len(METHODS["cc"](prob, threshold=0.15, radius=RADIUS).centres) == 2
    assert len(METHODS["cc"](prob, threshold=0.15, radius=RADIUS, min_size=1).centres) == 3


def test_peaks_cube_suppresses_diagonal_neighbour_that_a_ball_keeps():
    prob = np.zeros((12, 12, 12), np.float32)
    prob[4, 4, 4], prob[7, 7, 4] = 0.9, 0.5  # 4.24 voxels apart, kernel half-width 3
    assert len(peak_picks(prob, threshold=0.3, radius=6.0).centres) == 1
    assert len(peak_picks(prob, threshold=0.3, radius=6.0, footprint="ball").centres) == 2


def test_peaks_distance_nms_keeps_the_strongest():
    prob = np.zeros((5, 5, 20), np.float32)
    prob[2, 2, 3], prob[2, 2, 8], prob[2, 2, 16] = 0.5, 0.9, 0.7
    found = peak_picks(prob, threshold=0.3, radius=4.0)
    assert len(found.centres) == 3
    found = peak_picks(prob, threshold=0.3, radius=4.0, nms_distance=1.5)  # 6 voxels
    assert found.centres[:, 2].tolist() == [8.0, 16.0]


def test_peaks_blur_merges_a_rough_top():
    prob = blob_map((20, 20, 20), [[10, 10, 10]], kind="sphere", radius=4)
    prob[8:13:2, 8:13:2, 8:13:2] = 0.8  # spikes: several local maxima
    assert len(peak_picks(prob, threshold=0.3, radius=4.0).centres) > 1
    blurred = peak_picks(prob, threshold=0.3, radius=4.0, sigma=1.5)
    np.testing.assert_allclose(blurred.centres, [[10.0, 10.0, 10.0]])


def test_dbscan_centroids_merges_fragments_of_one_particle():
    prob = np.zeros((8, 8, 16), np.float32)
    prob[2:5, 2:5, 2:5] = 0.5
    prob[2:5, 2:5, 7:10] = 1.0  # 5 voxels further along x
    options = {"threshold": 0.3, "radius": 10.0, "points": "centroids", "min_size": 1}
    assert len(dbscan_picks(prob, eps_scale=0.2, **options).centres) == 2
    merged = dbscan_picks(prob, **options)
    np.testing.assert_allclose(merged.centres, [[3.0, 3.0, 3.0 + 5.0 * 2 / 3]])
    assert merged.scores.tolist() == [1.0]


def test_kl_fit_is_deterministic_under_its_seed_and_takes_a_gaussian_template():
    truth = np.array([[15.2, 15.6, 14.9], [15.2, 19.6, 19.4]])
    prob = blob_map((32, 32, 32), truth, kind="sphere")
    a = kl_fit_picks(prob, threshold=0.5, radius=RADIUS, seed=3)
    b = kl_fit_picks(prob, threshold=0.5, radius=RADIUS, seed=3)
    np.testing.assert_array_equal(a.centres, b.centres)
    gaussian = kl_fit_picks(prob, threshold=0.5, radius=RADIUS, template="gaussian")
    assert len(gaussian.centres) == 2 and nearest_errors(gaussian.centres, truth).max() < 1.0


def test_priority_flood_leaves_unreached_voxels_unlabelled():
    region = np.array([[[True, True, False, True]]])
    seeds = np.array([[[1, 0, 0, 0]]])
    assert priority_flood(np.zeros(region.shape), seeds, region).tolist() == [[[1, 1, 0, 0]]]


def _cc_as_before(prob32: np.ndarray, *, threshold: float, radius: float):
    """The cc method as it ran on float32 channels before float16 maps were taken as they are."""
    from czii_cli.postprocess.common import component_stats, label_components

    smallest = min_component_size(radius)
    labels, count = label_components(prob32 >= threshold)
    if count == 0:
        return np.empty((0, 3)), np.empty(0)
    stats = component_stats(labels, count, prob32)
    keep = np.flatnonzero(stats.size >= smallest)
    keep = keep[keep > 0]
    return stats.centroid[keep], stats.peak[keep]


def _float16_map(rng) -> np.ndarray:
    """Seven channels of blobs in noise, float16, with values on the float16 grid around 0.15."""
    shape = (24, 40, 40)
    grid = np.indices(shape).reshape(3, -1).T
    probs = rng.uniform(0.0, 0.16, (7, *shape)).astype(np.float32)
    for channel in range(1, 7):
        for centre in rng.uniform([3, 3, 3], np.array(shape) - 3, size=(5, 3)):
            distance = np.linalg.norm(grid - centre, axis=1).reshape(shape)
            probs[channel] = np.maximum(probs[channel], rng.uniform(0.3, 0.9) * np.exp(-((distance / 2.5) ** 2)))
    return probs.astype(np.float16)


@pytest.mark.parametrize("threshold", [0.15, 0.14996, 0.1500244140625, 0.3])
def test_cc_on_float16_gives_exactly_the_picks_of_its_float32_copy(rng, threshold):
    from czii_cli.postprocess.cc import cc_picks

    probs = _float16_map(rng)
    for channel in range(1, 7):
        centres, scores = cc_picks(probs[channel], threshold=threshold, radius=3.0)
        expected_centres, expected_scores = _cc_as_before(
            probs[channel].astype(np.float32), threshold=threshold, radius=3.0
        )
        assert len(centres) > 0
        np.testing.assert_array_equal(centres, expected_centres)
        np.testing.assert_array_equal(scores, expected_scores)


def test_extract_picks_from_float16_in_parallel_matches_float32_serially(rng):
    probs = _float16_map(rng)
    options = {
        "classes": ["background", *DEFAULT_CATALOG.names],
        "catalog": DEFAULT_CATALOG,
        "voxel_size": 10.0,
        "run": "TS_1",
        "thresholds": 0.14996,
    }
    serial = extract_picks(probs.astype(np.float32), workers=1, **options)
    parallel = extract_picks(probs, workers=4, **options)
    assert len(serial) > 10
    assert format_picks_csv(parallel) == format_picks_csv(serial)
    with pytest.raises(UsageError, match="workers"):
        extract_picks(probs, workers=0, **options)


def test_shared_core_gives_exact_sizes_masses_centroids_and_peaks_of_two_blobs():
    from czii_cli.postprocess.common import component_centroids, component_crops, threshold_components

    prob = np.zeros((4, 5, 9), np.float32)
    prob[0:2, 0:2, 0:2] = 0.5  # a 2x2x2 cube, one corner brighter
    prob[1, 1, 1] = 1.0
    prob[3, 4, 5:8] = [0.25, 0.5, 0.25]  # a line of three voxels
    prob[3, 0, 8] = 0.2  # below the threshold
    table = component_centroids(prob, threshold=0.25)
    assert table.size.tolist() == [8, 3]
    assert table.mass.tolist() == [4.5, 1.0]
    # cube: sum of w * z is 3 * 0.5 + 1.0 = 2.5 on each axis, over a mass of 4.5
    assert table.centroid[0].tolist() == pytest.approx([5 / 9] * 3, rel=1e-12)
    assert table.centroid[1].tolist() == [3.0, 4.0, 6.0]
    assert table.peak.tolist() == [1.0, 0.5]
    assert component_centroids(prob, threshold=0.25, min_size=4).size.tolist() == [8]
    assert component_centroids(prob, threshold=0.3).size.tolist() == [8, 1]

    found = threshold_components(prob, threshold=0.25)
    crops = list(component_crops(found, shape=prob.shape, pad=1))
    assert [(c.label, c.size, c.offset.tolist()) for c in crops] == [(1, 8, [0, 0, 0]), (2, 3, [2, 3, 4])]
    assert crops[1].box == (slice(2, 4), slice(3, 5), slice(4, 9))
    assert int(crops[1].region.sum()) == 3 and crops[1].region[1, 1, 1:4].all()
    assert [c.label for c in component_crops(found, shape=prob.shape, pad=0, min_size=4)] == [1]


def pinned_map() -> np.ndarray:
    """A touching pair of unequal balls and an isolated one, each brightest at its centre."""
    z, y, x = np.indices((16, 20, 26), dtype=np.float64)
    prob = np.zeros((16, 20, 26), np.float32)
    for (cz, cy, cx), r, height in [((6, 6, 6), 4.0, 0.8), ((6, 6, 12), 4.0, 0.6), ((11, 14, 19), 3.0, 0.9)]:
        r2 = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2
        np.maximum(prob, np.where(r2 <= r * r, height * (1 - r2 / (2 * r * r)), 0).astype(np.float32), out=prob)
    return prob


PINNED = {
    "cc": ([[6.0, 6.0, 8.556298], [11.0, 14.0, 19.0]], [0.8, 0.9]),
    "peaks": ([[6.0, 6.0, 6.0], [11.0, 14.0, 19.0]], [0.8, 0.9]),
    "watershed": ([[6.0, 6.0, 5.989003], [6.0, 6.0, 12.242183], [11.0, 14.0, 19.0]], [0.8, 0.6, 0.9]),
    "dbscan": ([[6.0, 6.0, 8.556298], [11.0, 14.0, 19.0]], [0.8, 0.9]),
    "kl-fit": (
        [[5.945083, 5.997358, 6.01804], [5.98117, 5.987789, 12.044879], [11.043361, 14.016185, 18.961849]],
        [0.568191, 0.437427, 0.292996],
    ),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_keeps_its_picks_on_a_pinned_map(method):
    """The picks of each method, to 1e-6 voxel: any change of a method's output fails here."""
    assert set(PINNED) == set(METHODS)
    found = METHODS[method](pinned_map(), threshold=0.2, radius=8.0)
    centres, scores = PINNED[method]
    assert found.centres.shape == (len(centres), 3)
    np.testing.assert_allclose(found.centres, centres, rtol=0, atol=1e-6)
    np.testing.assert_allclose(found.scores, scores, rtol=0, atol=1e-6)
