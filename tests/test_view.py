"""`czii view` and its helpers: slice choice, marks, matching, overlay, the PNG itself."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from matplotlib.image import imread

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io.artifacts import ArtifactMeta, write_artifact
from czii_cli.io.picks import write_picks_csv
from czii_cli.io.volumes import write_mrc
from czii_cli.picks import Picks, concat
from czii_cli.view import (
    Mark,
    choose_slices,
    class_colors,
    display_range,
    figure_layout,
    match_flags,
    probability_overlay,
    slab_mean,
    slice_marks,
    slice_occupancy,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
APO_FERRITIN_RGB = class_colors(DEFAULT_CATALOG.names)["apo-ferritin"]


@pytest.fixture
def gray_mrc(tmp_path):
    """A uniform tomogram (30 x 32 x 40 voxels of 10 Å) named TS_1."""
    path = tmp_path / "TS_1.mrc"
    write_mrc(path, np.full((30, 32, 40), 5.0, dtype=np.float32), voxel_size=10.0)
    return path


def write_csv(path, picks):
    write_picks_csv(path, picks)
    return path


# ----------------------------------------------------------------------------- marks


def test_slice_marks_positions_and_cross_section_radius():
    picks = Picks.from_points("r", "ribosome", [[120.0, 200.0, 100.0], [300.0, 50.0, 190.0], [0.0, 0.0, 300.0]])
    marks = slice_marks(picks, None, z_index=10, voxel_size=10.0, catalog=DEFAULT_CATALOG)
    assert marks == [
        Mark(12.0, 20.0, 15.0, "ribosome", "pick"),
        Mark(30.0, 5.0, math.sqrt(150.0**2 - 90.0**2) / 10.0, "ribosome", "pick"),
    ]  # the third, 200 Å away with radius 150 Å, misses the slice


def test_slice_marks_apply_the_origin():
    truth = Picks.from_points("r", "apo-ferritin", [[1120.0, 1200.0, 1030.0]])
    (mark,) = slice_marks(
        None, truth, z_index=3, voxel_size=10.0, catalog=DEFAULT_CATALOG, origin_zyx=(1000.0, 1000.0, 1000.0)
    )
    assert (mark.x_px, mark.y_px, mark.radius_px, mark.status) == (12.0, 20.0, 6.0, "truth")


def test_one_tp_one_fp_one_fn():
    truth = Picks.from_points("r", "ribosome", [[100.0, 100.0, 100.0], [400.0, 100.0, 100.0]])
    picks = Picks.from_points("r", "ribosome", [[160.0, 100.0, 100.0], [250.0, 300.0, 100.0]])
    marks = slice_marks(picks, truth, z_index=10, voxel_size=10.0, catalog=DEFAULT_CATALOG)
    assert [(m.x_px, m.y_px, m.status) for m in marks] == [(16.0, 10.0, "tp"), (25.0, 30.0, "fp"), (40.0, 10.0, "fn")]


def test_match_flags_follow_the_metric():
    truth = concat(
        [
            Picks.from_points("r", "ribosome", [[0.0, 0.0, 0.0]]),
            Picks.from_points("r", "apo-ferritin", [[1000.0, 0.0, 0.0]]),
            Picks.from_points("s", "ribosome", [[2000.0, 0.0, 0.0]]),
        ]
    )
    picks = concat(
        [
            Picks.from_points("r", "ribosome", [[75.0, 0.0, 0.0], [10.0, 0.0, 0.0], [76.0, 0.0, 0.0]]),
            Picks.from_points("r", "ribosome", [[1000.0, 0.0, 0.0]]),  # right place, wrong class
            Picks.from_points("r", "apo-ferritin", [[2000.0, 0.0, 0.0]]),  # right place, wrong run
        ]
    )
    pick_is_tp, truth_is_found = match_flags(picks, truth, catalog=DEFAULT_CATALOG)
    # 75 Å = 0.5 x 150 Å is inside the match distance, 76 Å outside; the nearer pick claims
    # the particle, the other near one is a duplicate (FP), as in the score
    assert pick_is_tp.tolist() == [False, True, False, False, False]
    assert truth_is_found.tolist() == [True, False, False]


def test_match_flags_agree_with_the_metric_counts():
    from czii_cli.score import match_counts

    rng = np.random.default_rng(5)
    truth = Picks(np.full(60, "r"), rng.choice(DEFAULT_CATALOG.names, size=60), rng.uniform(0, 3000, size=(60, 3)))
    near = truth.subset(rng.random(60) < 0.7)
    picks = concat(
        [
            Picks(near.experiment, near.particle_type, near.xyz + rng.normal(scale=20.0, size=near.xyz.shape)),
            Picks(np.full(20, "r"), rng.choice(DEFAULT_CATALOG.names, size=20), rng.uniform(0, 3000, size=(20, 3))),
        ]
    )
    pick_is_tp, truth_is_found = match_flags(picks, truth, catalog=DEFAULT_CATALOG)
    counts = match_counts(picks, truth, DEFAULT_CATALOG)
    assert (~truth_is_found).sum() == counts.fn.sum()
    assert pick_is_tp.sum() == counts.tp.sum() and (~pick_is_tp).sum() == counts.fp.sum()
    assert 0 < pick_is_tp.sum() < len(picks)


def test_empty_picks_against_truth_are_all_missed():
    truth = Picks.from_points("r", "ribosome", [[100.0, 100.0, 100.0]])
    marks = slice_marks(Picks.empty(), truth, z_index=10, voxel_size=10.0, catalog=DEFAULT_CATALOG)
    assert [m.status for m in marks] == ["fn"]


# ----------------------------------------------------------------------------- slices


def test_slice_occupancy_agrees_with_marks():
    rng = np.random.default_rng(3)
    names = rng.choice(DEFAULT_CATALOG.names, size=30)
    picks = Picks(np.full(30, "r"), names, rng.uniform(0, 400, size=(30, 3)))
    picks = concat([picks, Picks.from_points("r", "ribosome", [[0.0, 0.0, 150.0]])])  # cuts z = 1 to 30 only
    counts, area = slice_occupancy(picks, depth=40, voxel_size=10.0, catalog=DEFAULT_CATALOG, origin_z=-5.0)
    for z in range(40):
        marks = slice_marks(
            picks, None, z_index=z, voxel_size=10.0, catalog=DEFAULT_CATALOG, origin_zyx=(-5.0, 0.0, 0.0)
        )
        assert counts[z] == len(marks)
        assert area[z] == pytest.approx(sum(np.pi * m.radius_px**2 for m in marks))


def test_choose_slices():
    counts = np.array([0, 4, 0, 0, 2, 9, 8, 0, 0, 0, 0, 0])
    assert choose_slices(counts) == [5]
    assert choose_slices(counts, count=2) == [1, 5]  # 6 is too close to 5
    assert choose_slices(counts, area=np.arange(12.0)) == [5]  # count comes first
    assert choose_slices(np.array([2, 2, 2, 1]), area=np.array([1.0, 5.0, 4.0, 9.0])) == [1]
    assert choose_slices(np.zeros(10, dtype=int)) == [4]  # middle, ties to the nearer plane
    assert choose_slices(np.zeros(12, dtype=int), count=3) == [3, 5, 7]
    with pytest.raises(ValueError):
        choose_slices(np.zeros(2, dtype=int), count=3)


def test_slab_mean_and_display_range():
    volume = np.arange(5.0).reshape(5, 1, 1) * np.ones((5, 2, 2))
    assert slab_mean(volume, z_index=2, planes=3).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert slab_mean(volume, z_index=4, planes=5).tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert display_range([np.arange(51.0), np.arange(51.0, 101.0)]) == (1.0, 99.0)
    assert display_range([np.zeros((3, 3))]) == (-0.5, 0.5)


def test_probability_overlay_skips_background_and_colours_by_argmax():
    probs = np.zeros((3, 1, 3), dtype=np.float32)
    probs[0] = [[1.0, 0.2, 0.1]]  # background
    probs[1] = [[0.0, 0.5, 0.3]]
    probs[2] = [[0.0, 0.3, 0.6]]
    colors = {"a": (1.0, 0.0, 0.0), "b": (0.0, 0.0, 1.0)}
    overlay = probability_overlay(probs, channel_names=["background", "a", "b"], colors=colors, max_alpha=0.5)
    np.testing.assert_allclose(
        overlay[0], [[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.25], [0.0, 0.0, 1.0, 0.3]], atol=1e-7
    )


def test_figure_layout_maps_voxels_to_pixels():
    layout = figure_layout((32, 40), panels=1)
    assert (layout.width_px, layout.height_px) == (64 + 400 + 230, 64 + 320 + 52)
    assert layout.to_pixel(0, 12.0, 20.0) == (64 + 12.5 * 10, 64 + 20.5 * 10)
    big = figure_layout((630, 630), panels=3)
    assert (big.panel_width_px, big.panel_lefts_px) == (630, (64, 64 + 686, 64 + 2 * 686))
    assert figure_layout((100, 2000), panels=1).panel_width_px == 1000
    flat = figure_layout((10, 500), panels=1)
    assert (flat.panel_height_px, flat.height_px) == (10, 64 + 280 + 52)  # room for the legend


# ----------------------------------------------------------------------------- the command


def test_view_draws_the_pick_where_it_is(cli, gray_mrc, tmp_path):
    picks = write_csv(tmp_path / "pred.csv", Picks.from_points("TS_1", "apo-ferritin", [[120.0, 160.0, 100.0]]))
    out = tmp_path / "view.png"
    result = cli("view", gray_mrc, "--picks", picks, "--z", "10", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert out.read_bytes().startswith(PNG_MAGIC)
    image = imread(out)
    layout = figure_layout((32, 40), panels=1)
    assert image.shape[:2] == (layout.height_px, layout.width_px)
    column, row = layout.to_pixel(0, 12.0, 16.0)  # x = 120 Å -> voxel 12
    scale = layout.panel_width_px / 40
    gray = image[int(row), int(column), :3]
    assert np.allclose(gray, gray[0], atol=0.02) and 0.3 < gray[0] < 0.7  # centre: plain mid-gray
    for angle in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        x = column + 6.0 * scale * np.cos(angle)  # radius 60 Å = 6 voxels
        y = row + 6.0 * scale * np.sin(angle)
        window = image[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2, :3].reshape(-1, 3)
        assert np.abs(window - APO_FERRITIN_RGB).sum(axis=1).min() < 0.1
        inside = image[int(row + 3.0 * scale * np.sin(angle)), int(column + 3.0 * scale * np.cos(angle)), :3]
        assert np.allclose(inside, gray, atol=0.02)


def test_view_auto_z_and_several_panels(cli, gray_mrc, tmp_path):
    truth = concat(
        [
            Picks.from_points(
                "TS_1", "apo-ferritin", [[100.0, 100.0, 70.0], [250.0, 100.0, 70.0], [100.0, 250.0, 230.0]]
            ),
            Picks.from_points("TS_2", "apo-ferritin", [[100.0, 100.0, 150.0]] * 5),  # another run: ignored
        ]
    )
    gt = write_csv(tmp_path / "gt.csv", truth)
    result = cli("view", gray_mrc, "--gt", gt, "-o", tmp_path / "one.png")
    assert result.exit_code == 0, result.stderr
    assert "drew z = 7 " in result.stderr
    result = cli("view", gray_mrc, "--gt", gt, "--slices", "2", "-o", tmp_path / "two.png")
    assert result.exit_code == 0, result.stderr
    assert "drew z = 7, 23 " in result.stderr
    assert imread(tmp_path / "two.png").shape[:2] == (436, 64 + 2 * 400 + 56 + 230)


def test_view_with_probs_is_reproducible(cli, gray_mrc, tmp_path, rng):
    probs = rng.random((7, 30, 32, 40)).astype(np.float16)
    meta = ArtifactMeta(
        kind="probs", axes="czyx", voxel_size=10.0, run="TS_1", classes=("background", *DEFAULT_CATALOG.names)
    )
    write_artifact(tmp_path / "p.zarr", probs, meta)
    picks = write_csv(tmp_path / "pred.csv", Picks.from_points("TS_1", "ribosome", [[120.0, 200.0, 100.0]]))
    gt = write_csv(tmp_path / "gt.csv", Picks.from_points("TS_1", "ribosome", [[150.0, 200.0, 100.0]]))
    args = ["view", gray_mrc, "--probs", tmp_path / "p.zarr", "--picks", picks, "--gt", gt, "--slab", "3"]
    first = cli(*args, "-o", tmp_path / "a.png")
    second = cli(*args, "-o", tmp_path / "b.png")
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_view_streams_png_to_stdout(cli, gray_mrc, tmp_path):
    result = cli("view", gray_mrc, "-o", "-")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(PNG_MAGIC)
    assert imread(io.BytesIO(result.stdout_bytes)).shape[:2] == (436, 64 + 400 + 230)


def test_view_missing_tomogram(cli, tmp_path):
    result = cli("view", tmp_path / "nope.mrc", "-o", tmp_path / "v.png")
    assert result.exit_code == 1
    assert "nope.mrc: no such file" in result.stderr
    assert not (tmp_path / "v.png").exists()


def test_view_probs_of_another_shape(cli, gray_mrc, tmp_path):
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run="TS_1", classes=("background", "ribosome"))
    write_artifact(tmp_path / "p.zarr", np.zeros((2, 30, 32, 41), dtype=np.float16), meta)
    result = cli("view", gray_mrc, "--probs", tmp_path / "p.zarr", "-o", tmp_path / "v.png")
    assert result.exit_code == 1
    assert "p.zarr: shape (30, 32, 41) does not match" in result.stderr and "TS_1.mrc" in result.stderr
    assert sorted(tmp_path.iterdir()) == sorted([gray_mrc, tmp_path / "p.zarr"])


def test_view_refuses_to_overwrite(cli, gray_mrc, tmp_path):
    out = tmp_path / "v.png"
    out.write_bytes(b"old")
    result = cli("view", gray_mrc, "-o", out)
    assert result.exit_code == 2
    assert "--overwrite" in result.stderr
    assert out.read_bytes() == b"old"
    result = cli("view", gray_mrc, "-o", out, "-f")
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--z", "30"], "--z 30: outside"),
        (["--z", "mid"], "expected 'auto'"),
        (["--z", "3,9", "--slices", "3"], "does not match the 2 slices"),
        (["--slab", "4"], "--slab must be odd"),
        (["--slices", "31"], "only 30 z-planes"),
    ],
)
def test_view_usage_errors(cli, gray_mrc, tmp_path, extra, message):
    result = cli("view", gray_mrc, *extra, "-o", tmp_path / "v.png")
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "v.png").exists()


def test_view_unknown_class_in_picks(cli, gray_mrc, tmp_path):
    picks = write_csv(tmp_path / "pred.csv", Picks.from_points("TS_1", "spliceosome", [[1.0, 1.0, 1.0]]))
    result = cli("view", gray_mrc, "--picks", picks, "-o", tmp_path / "v.png")
    assert result.exit_code == 1
    assert "unknown particle class 'spliceosome'" in result.stderr
    assert not (tmp_path / "v.png").exists()


def test_view_warns_when_picks_are_of_another_run(cli, gray_mrc, tmp_path):
    picks = write_csv(tmp_path / "pred.csv", Picks.from_points("TS_9", "ribosome", [[100.0, 100.0, 100.0]]))
    result = cli("view", gray_mrc, "--picks", picks, "-o", tmp_path / "v.png")
    assert result.exit_code == 0, result.stderr
    assert "no picks for run 'TS_1'" in result.stderr and "TS_9" in result.stderr
