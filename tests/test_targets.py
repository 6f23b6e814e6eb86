"""Targets painted from picks (spheres, heatmaps, points) and `czii make-labels`."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from czii_cli.catalog import Catalog, ParticleClass
from czii_cli.commands.options import radius_scale_option
from czii_cli.errors import DataError, UsageError
from czii_cli.io.artifacts import read_artifact
from czii_cli.io.picks import write_picks_csv
from czii_cli.io.volumes import write_mrc
from czii_cli.make_labels import (
    TargetSpec,
    make_target,
    picks_from_label_metadata,
)
from czii_cli.picks import Picks, concat

# Radii of 20 and 30 Å: at 10 Å voxels and scale 1, balls of 2 and 3 voxels.
CATALOG = Catalog((ParticleClass("small", 20.0, 1.0, 1), ParticleClass("large", 30.0, 2.0, 2)))


def picks_at(particle: str, *zyx_voxels, run: str = "r1") -> Picks:
    """Picks at voxel positions (z, y, x) on a 10 Å grid, as Å in x, y, z order."""
    xyz = np.array([[x * 10.0, y * 10.0, z * 10.0] for z, y, x in zyx_voxels])
    return Picks.from_points(run, particle, xyz)


def lattice_count(radius: float) -> int:
    r = int(np.floor(radius))
    return sum(1 for p in itertools.product(range(-r, r + 1), repeat=3) if sum(v * v for v in p) <= radius**2)


@pytest.mark.parametrize("scale, expected", [(1.0, 33), (0.5, 7), (1.5, lattice_count(3.0))])
def test_sphere_holds_exactly_the_lattice_points_within_the_radius(scale, expected):
    labels = make_target(
        (9, 9, 9),
        picks_at("small", (4, 4, 4)),
        catalog=CATALOG,
        spec=TargetSpec("spheres", radius_scale=scale),
        voxel_size=10.0,
    )
    assert labels.dtype == np.uint8
    assert int((labels == 1).sum()) == expected
    assert labels[4, 4, 4] == 1 and set(np.unique(labels)) == {0, 1}


def test_per_class_scale_and_label_values():
    picks = concat([picks_at("small", (4, 4, 4)), picks_at("large", (4, 4, 14))])
    spec = TargetSpec("spheres", radius_scale=1.0, class_scales={"large": 1 / 3})  # large: 1 voxel
    labels = make_target((9, 9, 20), picks, catalog=CATALOG, spec=spec, voxel_size=10.0)
    assert int((labels == 1).sum()) == 33
    assert int((labels == 2).sum()) == 7
    assert labels[4, 4, 14] == 2


def test_overlapping_spheres_take_the_nearest_centre():
    picks = concat([picks_at("small", (5, 5, 4)), picks_at("large", (5, 5, 7))])
    labels = make_target(
        (11, 11, 12), picks, catalog=CATALOG, spec=TargetSpec("spheres", radius_scale=1.0), voxel_size=10.0
    )
    centres = {1: np.array([5, 5, 4]), 2: np.array([5, 5, 7])}
    radii = {1: 2.0, 2: 3.0}
    for index in np.ndindex(labels.shape):
        d = {k: np.linalg.norm(np.array(index) - c) for k, c in centres.items()}
        covering = [k for k in d if d[k] <= radii[k]]
        expected = min(covering, key=lambda k: (d[k], k)) if covering else 0
        assert labels[index] == expected, index
    assert labels[5, 5, 5] == 1  # 1 voxel from small, 2 from large: inside both balls
    assert labels[5, 5, 6] == 2


def test_exact_ties_go_to_the_first_pick():
    a, b = picks_at("small", (3, 3, 2)), picks_at("large", (3, 3, 4))
    spec = TargetSpec("spheres", radius_scale=1.0)
    first = make_target((7, 7, 7), concat([a, b]), catalog=CATALOG, spec=spec, voxel_size=10.0)
    second = make_target((7, 7, 7), concat([b, a]), catalog=CATALOG, spec=spec, voxel_size=10.0)
    assert first[3, 3, 3] == 1 and second[3, 3, 3] == 2
    ties = np.zeros(first.shape, bool)
    ties[:, :, 3] = True
    assert np.array_equal(first[~ties], second[~ties])


def test_spheres_cut_at_the_border_and_origin_shifts_them():
    labels = make_target(
        (5, 5, 5),
        picks_at("small", (0, 0, 0)),
        catalog=CATALOG,
        spec=TargetSpec("spheres", radius_scale=1.0),
        voxel_size=10.0,
    )
    assert int((labels == 1).sum()) == sum(
        1 for p in itertools.product(range(3), repeat=3) if sum(v * v for v in p) <= 4
    )
    shifted = make_target(
        (5, 5, 5),
        picks_at("small", (2, 2, 2)),
        catalog=CATALOG,
        spec=TargetSpec("spheres", radius_scale=1.0),
        voxel_size=10.0,
        origin_zyx=(20.0, 20.0, 20.0),
    )
    assert np.array_equal(shifted, labels)


def test_heatmap_peak_sigma_rule_and_overlap_maximum():
    picks = concat([picks_at("large", (4, 5, 6)), picks_at("large", (4, 5, 9))])
    spec = TargetSpec("heatmap", radius_scale=0.5)  # sigma = 0.5 * 3 / 2 = 0.75 voxels
    heat = make_target((9, 10, 16), picks, catalog=CATALOG, spec=spec, voxel_size=10.0)
    assert heat.dtype == np.float16 and heat.shape == (2, 9, 10, 16)
    assert not heat[0].any()
    assert heat[1, 4, 5, 6] == 1.0 and heat[1, 4, 5, 9] == 1.0
    np.testing.assert_allclose(float(heat[1, 4, 5, 7]), np.exp(-1 / (2 * 0.75**2)), rtol=1e-3)
    sigma = 0.75
    expected = max(np.exp(-1 / (2 * sigma**2)), np.exp(-4 / (2 * sigma**2)))  # max, not sum, of the two
    np.testing.assert_allclose(float(heat[1, 4, 5, 8]), expected, rtol=1e-3)
    assert heat[1, 4, 5, 6 - 3] == 0  # beyond 3 sigma


def test_heatmap_fixed_sigma_and_off_grid_peak():
    picks = Picks.from_points("r1", "small", [[62.0, 38.0, 21.0]])  # voxel (2.1, 3.8, 6.2)
    heat = make_target((6, 8, 10), picks, catalog=CATALOG, spec=TargetSpec("heatmap", sigma=2.0), voxel_size=10.0)
    assert np.argwhere(heat[0] == heat[0].max()).tolist() == [[2, 4, 6]]
    np.testing.assert_allclose(float(heat[0, 2, 4, 6]), np.exp(-(0.1**2 + 0.2**2 + 0.2**2) / 8), rtol=1e-3)


def test_points_and_dilation():
    picks = concat([picks_at("small", (2, 2, 2)), picks_at("large", (2, 2, 4)), picks_at("large", (40, 0, 0))])
    points = make_target((5, 5, 7), picks, catalog=CATALOG, spec=TargetSpec("points"), voxel_size=10.0)
    assert np.argwhere(points).tolist() == [[2, 2, 2], [2, 2, 4]]
    assert points[2, 2, 2] == 1 and points[2, 2, 4] == 2
    dilated = make_target((5, 5, 7), picks, catalog=CATALOG, spec=TargetSpec("points", dilate=1), voxel_size=10.0)
    assert int((dilated == 1).sum()) == 27 and int((dilated == 2).sum()) == 18  # x = 3 is a tie: first wins
    assert (dilated[1:4, 1:4, 3] == 1).all()


def test_empty_picks_give_background():
    labels = make_target((3, 4, 5), Picks.empty(), catalog=CATALOG, spec=TargetSpec(), voxel_size=10.0)
    assert labels.shape == (3, 4, 5) and not labels.any()


def test_unknown_class_and_bad_settings_are_errors():
    with pytest.raises(DataError, match="unknown particle class 'ribosome'"):
        make_target((3, 3, 3), picks_at("ribosome", (1, 1, 1)), catalog=CATALOG, spec=TargetSpec(), voxel_size=10.0)
    with pytest.raises(UsageError, match="unknown class 'nope'"):
        radius_scale_option("nope=0.3", catalog=CATALOG)
    with pytest.raises(UsageError, match="not NUMBER or CLASS=NUMBER"):
        radius_scale_option("small=x", catalog=CATALOG)
    with pytest.raises(UsageError, match="unknown target"):
        TargetSpec("boxes")
    with pytest.raises(UsageError, match="must be positive"):
        TargetSpec(radius_scale=0)


def test_spec_json_round_trip():
    spec = TargetSpec("heatmap", radius_scale=0.4, class_scales={"large": 0.33}, sigma=2.5)
    assert TargetSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


# ----------------------------------------------------------------------------- command


@pytest.fixture
def labelled_inputs(tmp_path):
    write_mrc(tmp_path / "r1.mrc", np.zeros((9, 10, 12), np.float32), voxel_size=10.0)
    (tmp_path / "classes.json").write_text(json.dumps({"classes": CATALOG.to_json()}))
    picks = concat([picks_at("small", (4, 4, 4)), picks_at("large", (4, 5, 8)), picks_at("small", (1, 1, 1), run="r2")])
    write_picks_csv(tmp_path / "picks.csv", picks)
    return tmp_path


def test_make_labels_spheres(cli, labelled_inputs):
    d = labelled_inputs
    result = cli(
        "make-labels",
        d / "picks.csv",
        "--like",
        d / "r1.mrc",
        "--classes",
        d / "classes.json",
        "--radius-scale",
        "1,large=0.34",
        "-o",
        d / "r1.labels.zarr",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    volume = read_artifact(d / "r1.labels.zarr")
    labels = volume.load()
    assert labels.dtype == np.uint8 and labels.shape == (9, 10, 12)
    assert int((labels == 1).sum()) == 33 and int((labels == 2).sum()) == 7  # run r2's pick is ignored
    meta = volume.meta
    assert (meta.kind, meta.axes, meta.run, meta.voxel_size, list(meta.classes)) == (
        "labels",
        "zyx",
        "r1",
        10.0,
        ["small", "large"],
    )
    assert meta.extra["target"] == "spheres"
    assert meta.extra["radius_scale"] == {"default": 1.0, "large": 0.34}
    assert meta.provenance[-1]["command"] == "make-labels"
    recorded = picks_from_label_metadata(meta.extra, run="r1")
    assert sorted(recorded.particle_type.tolist()) == ["large", "small"]


def test_make_labels_heatmap_and_points(cli, labelled_inputs):
    d = labelled_inputs
    result = cli(
        "make-labels",
        d / "picks.csv",
        "--like",
        d / "r1.mrc",
        "--classes",
        d / "classes.json",
        "--target",
        "heatmap",
        "--sigma",
        "1.5",
        "-o",
        d / "h.zarr",
    )
    assert result.exit_code == 0, result.stderr
    heat = read_artifact(d / "h.zarr")
    assert (heat.meta.kind, heat.meta.axes, heat.shape) == ("heatmap", "czyx", (2, 9, 10, 12))
    assert heat.data.dtype == np.float16 and float(heat.data[0, 4, 4, 4]) == 1.0
    result = cli(
        "make-labels",
        d / "picks.csv",
        "--like",
        d / "r1.mrc",
        "--classes",
        d / "classes.json",
        "--target",
        "points",
        "--dilate",
        "1",
        "-o",
        d / "p.npy",
    )
    assert result.exit_code == 0, result.stderr
    assert int((read_artifact(d / "p.npy").load() > 0).sum()) == 54


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--radius-scale", "huge=1"], 2, "radius_scale: unknown class 'huge'"),
        (["--target", "cubes"], 2, "unknown target 'cubes'"),
        (["--run", "r3"], 1, "no picks of run 'r3' (runs: r1, r2)"),
    ],
)
def test_make_labels_errors(cli, labelled_inputs, args, code, message):
    d = labelled_inputs
    result = cli(
        "make-labels",
        d / "picks.csv",
        "--like",
        d / "r1.mrc",
        "--classes",
        d / "classes.json",
        "-o",
        d / "x.zarr",
        *args,
    )
    assert result.exit_code == code
    assert message in result.stderr
    assert not (d / "x.zarr").exists()


def test_make_labels_unknown_class_in_picks(cli, labelled_inputs):
    d = labelled_inputs
    result = cli("make-labels", d / "picks.csv", "--like", d / "r1.mrc", "-o", d / "x.zarr")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"czii: error: {d / 'picks.csv'}: unknown particle class 'large' (known: apo-ferritin, beta-amylase, "
        "beta-galactosidase, ribosome, thyroglobulin, virus-like-particle)"
    )


def test_make_labels_refuses_to_overwrite(cli, labelled_inputs):
    d = labelled_inputs
    args = ["make-labels", d / "picks.csv", "--like", d / "r1.mrc", "--classes", d / "classes.json", "-o", d / "l.zarr"]
    assert cli(*args).exit_code == 0
    assert cli(*args).exit_code == 2
    assert cli(*args, "-f").exit_code == 0


def test_make_labels_takes_the_classes_of_a_copick_project(cli, tmp_path):
    from czii_cli.io.copick import config_document
    from czii_cli.io.picks import write_copick_picks
    from czii_cli.io.volumes import write_ome_zarr

    root = tmp_path / "project"
    write_ome_zarr(
        root / "static" / "ExperimentRuns" / "r1" / "VoxelSpacing10.000" / "denoised.zarr",
        np.zeros((9, 9, 9), np.float32),
        voxel_size=10.0,
        levels=1,
    )
    write_copick_picks(root / "overlay", picks_at("large", (4, 4, 4)))
    (root / "copick_config.json").write_text(json.dumps(config_document("t", CATALOG.to_json(), root)))
    result = cli("make-labels", root, "--like", root, "--run", "r1", "--radius-scale", "1", "-o", tmp_path / "l.zarr")
    assert result.exit_code == 0, result.stderr
    volume = read_artifact(tmp_path / "l.zarr")
    assert list(volume.meta.classes) == ["small", "large"]
    assert int((volume.load() == 2).sum()) == lattice_count(3.0)
