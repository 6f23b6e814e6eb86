"""Halo tiling: receptive field, tile plans, stitched prediction against one pass and the sliding window."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.errors import UsageError
from czii_cli.io.artifacts import read_artifact
from czii_cli.io.picks import read_picks
from czii_cli.postprocess import extract_picks
from czii_cli.predict_probs import predict_volume
from czii_cli.predict_probs.geometry import (
    axis_tiles,
    plan_halo_tiling,
    receptive_radius,
    working_bytes_per_voxel,
)
from czii_cli.predict_probs.runner import NetworkRunner
from czii_cli.predict_probs.stitch import predict_tiles_into
from czii_cli.predict_probs.tta import tta_transforms
from czii_cli.score import score_picks
from czii_cli.training.checkpoint import load_model_file
from czii_cli.training.registry import build_network, patch_multiple

torch.set_num_threads(1)

TINY = ["--arch", "light", "--arch-param", "channels=[4,8]", "--patch", "16", "32", "32", "--batch-size", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny light net trained for a few seconds on one simulated run, and a second run to predict."""
    from typer.testing import CliRunner

    from czii_cli.main import app

    root = tmp_path_factory.mktemp("geometry")
    runner = CliRunner()

    def cli(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.stderr
        return result

    cli(
        "simulate",
        root / "sim",
        "--runs",
        2,
        "--shape",
        40,
        96,
        96,
        "--density",
        4,
        "--seed",
        3,
        "--layout",
        "both",
        "-q",
    )
    (root / "data").mkdir()
    for run in ("TS_sim_0", "TS_sim_1"):
        cli("normalize", root / "sim" / "train_images" / f"{run}.mrc", "-o", root / "data" / f"{run}.zarr", "-q")
    cli(
        "make-labels",
        root / "sim" / "train_annotations" / "TS_sim_0.csv",
        "--like",
        root / "data" / "TS_sim_0.zarr",
        "-o",
        root / "data" / "TS_sim_0.labels.zarr",
        "-q",
    )
    (root / "train").mkdir()
    for name in ("TS_sim_0.zarr", "TS_sim_0.labels.zarr"):
        (root / "train" / name).symlink_to(root / "data" / name)
    # the milder augmentation of earlier defaults, so that 60 steps learn enough to compare picks
    (root / "mild.json").write_text(
        '{"augment": {"noise": 0.7, "noise_p": 0.3, "blur": 1.0, "blur_p": 0.2, "lowpass_p": 0, "particle_gain_p": 0}}'
    )
    cli(
        "train",
        root / "train",
        "-o",
        root / "model.pt",
        *TINY,
        "--max-steps",
        60,
        "--seed",
        0,
        "--config",
        root / "mild.json",
        "-q",
    )
    model = load_model_file(root / "model.pt")
    volume = read_artifact(root / "data" / "TS_sim_1.zarr").load()
    return {
        "root": root,
        "model": model,
        "volume": volume,
        "truth": root / "sim" / "train_annotations" / "TS_sim_1.csv",
    }


def whole_volume_pass(network: nn.Module, volume: np.ndarray, multiple: int) -> np.ndarray:
    """Softmax of one forward over the whole volume zero-padded at its far end to the multiple."""
    padded_shape = [-(-s // multiple) * multiple for s in volume.shape]
    padded = np.zeros(padded_shape, np.float32)
    padded[: volume.shape[0], : volume.shape[1], : volume.shape[2]] = volume
    with torch.inference_mode():
        logits = network.eval()(torch.from_numpy(padded)[None, None])
    probs = torch.softmax(logits.float(), dim=1)[0].numpy()
    return probs[:, : volume.shape[0], : volume.shape[1], : volume.shape[2]]


def stitched(network: nn.Module, volume: np.ndarray, tiling, prepare=None) -> np.ndarray:
    out = {}

    def allocate(channels):
        out["a"] = np.zeros((channels, *volume.shape), np.float32)
        return out["a"]

    runner = NetworkRunner(network, device=torch.device("cpu"), precision="float32")
    with torch.inference_mode(), runner:
        predict_tiles_into(
            tiling,
            volume,
            allocate,
            prepares=[prepare],
            runners=[runner],
            transforms=tta_transforms("none"),
            activation="softmax",
            device=torch.device("cpu"),
        )
    return out["a"]


# ----------------------------------------------------------------------------- receptive field


def test_receptive_radius_of_known_convolutions():
    net = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv3d(2, 2, (3, 5, 7), padding=(1, 2, 3)))
    assert receptive_radius(net, multiple=1, length=40) == (2, 3, 4)
    pooled = nn.Sequential(nn.MaxPool3d(2), nn.Conv3d(1, 1, 3, padding=1), nn.Upsample(scale_factor=2))
    # max pooling: perturbing non-maximal voxels is still noticed (gradients would miss them)
    assert receptive_radius(pooled, multiple=2, length=40) == (2, 2, 2)


def test_a_radius_beyond_the_first_probe_is_found_by_the_longer_one():
    # the 128-voxel probe tests distances up to 62: this radius needs the 256-voxel probe,
    # which tests only the distances beyond 62
    net = nn.Conv3d(1, 1, (1, 1, 141), padding=(0, 0, 70))
    assert receptive_radius(net, multiple=1) == (0, 0, 70)


def test_window_wide_normalization_has_no_bounded_receptive_field():
    net = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.InstanceNorm3d(2))
    assert receptive_radius(net, multiple=1, length=40) is None


def test_working_memory_scales_with_the_network():
    small = build_network("light", in_channels=1, out_channels=7, params={"channels": [4, 8]})
    large = build_network("light", in_channels=1, out_channels=7, params={"channels": [16, 32]})
    small_bytes, channels = working_bytes_per_voxel(small, multiple=2, side=16)
    large_bytes, _ = working_bytes_per_voxel(large, multiple=2, side=16)
    assert channels == 7
    assert 7 * 4 < small_bytes < large_bytes  # at least the float32 output; more channels, more memory


class CatTwice(nn.Module):
    """Two channels by a functional concatenation (no module), then doubled."""

    def forward(self, x):
        return torch.cat([x, x], dim=1) * 2


def test_working_memory_counts_functional_operations_exactly():
    # float32: the concatenation (8 bytes per voxel) is alive while its double (8 more) is made
    assert working_bytes_per_voxel(CatTwice(), multiple=1, side=16) == (16.0, 2)


def test_a_light_net_holds_one_decoder_level_at_a_time_and_computes_what_its_modules_do():
    from czii_cli.training.light import LightUNet

    torch.manual_seed(0)
    network = LightUNet(1, 2, channels=(4, 8), stem_stride=2)
    # float32 per input voxel, the U-Net on an eighth of them: the peak is the finest
    # decoder's concatenation, 4 skip + 8 up-sampled + 12 concatenated channels (the
    # skip kept as well for the whole decoder, and the decoder's convolutions on top,
    # gave 16.5)
    for stride in (1, 2):
        network.set_output_stride(stride)
        assert working_bytes_per_voxel(network, multiple=4, side=32) == ((4 + 8 + 12) * 4 / 8, 2)
    network.set_output_stride(1)
    inputs = torch.randn(2, 1, 16, 16, 16)
    layered = network(inputs)  # training mode: batch statistics, as in training
    by_modules = network.encoders[0](network.stem(network.input_norm(inputs)))
    deep = network.encoders[1](network.pool(by_modules))
    up = nn.functional.interpolate(deep, size=by_modules.shape[2:], mode="trilinear", align_corners=False)
    logits = network.head(network.decoders[0](torch.cat([up, by_modules], dim=1)))
    expected = nn.functional.interpolate(logits, size=(16, 16, 16), mode="trilinear", align_corners=False)
    assert torch.equal(layered, expected)


def test_probing_a_network_does_not_import_the_compiler():
    """Importing torch._dynamo costs seconds; the memory probe must not pull it in (a dispatch mode does)."""
    code = (
        "import sys\n"
        "from torch import nn\n"
        "from czii_cli.predict_probs.geometry import probe_network\n"
        "net = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.BatchNorm3d(2), nn.ReLU())\n"
        "found = probe_network(net, multiple=1, length=32)\n"
        "print(found.radius, found.bytes_per_voxel > 0, 'torch._dynamo' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["(1,", "1,", "1)", "True", "False"]


# ----------------------------------------------------------------------------- plans


def test_axis_tiles_start_on_the_multiple_and_cut_on_chunks():
    assert axis_tiles(632, 368, halo=48, multiple=8, align=64) == ((0, 264), (0, 320, 632))
    starts, cuts = axis_tiles(200, 64, halo=16, multiple=8)
    assert all(s % 8 == 0 for s in starts) and starts[0] == 0 and starts[-1] == 200 - 64
    for index, start in enumerate(starts):  # every core keeps its halo, except at the ends
        low = 0 if index == 0 else start + 16
        high = 200 if index == len(starts) - 1 else start + 64 - 16
        assert low <= cuts[index] < cuts[index + 1] <= high
    assert axis_tiles(48, 64, halo=16, multiple=8) == ((0,), (0, 48))


def test_plan_fits_the_budget_and_its_cores_partition_the_volume():
    shape = (37, 90, 70)
    plan = plan_halo_tiling(shape, halo=(8, 8, 8), multiple=4, max_window_voxels=40 * 48 * 48)
    assert np.prod(plan.window) <= 40 * 48 * 48
    assert plan.padded_shape == (40, 92, 72)
    cover = np.zeros(shape, np.int32)
    for _, core in plan.tiles():
        cover[core] += 1
    assert (cover == 1).all()
    whole = plan_halo_tiling(shape, halo=(8, 8, 8), multiple=4, max_window_voxels=10**9)
    assert whole.count == 1 and whole.window == (40, 92, 72)


def test_at_output_stride_two_cuts_fall_on_even_voxels_and_cores_partition_the_binned_grid():
    # the middle of the overlap (11, 19 without a stride) is rounded down to the stride
    assert axis_tiles(30, 14, halo=2, multiple=2, align=1000) == ((0, 8, 16), (0, 11, 19, 30))
    assert axis_tiles(30, 14, halo=2, multiple=2, align=1000, step=2) == ((0, 8, 16), (0, 10, 18, 30))
    with pytest.raises(UsageError, match="output stride of 4"):
        axis_tiles(30, 14, halo=2, multiple=2, step=4)
    shape = (37, 90, 70)
    plan = plan_halo_tiling(
        shape, halo=(8, 8, 8), multiple=4, max_window_voxels=40 * 48 * 48, align=(1, 16, 16), stride=2
    )
    assert plan.stride == 2 and plan.output_shape == (19, 45, 35)
    assert len(plan.cuts[1]) > 2  # several tiles along y
    assert all(cut % 2 == 0 for cuts in plan.cuts for cut in cuts)
    cover = np.zeros(plan.output_shape, np.int32)
    for start, core in plan.tiles():
        cover[core] += 1
        for axis in range(3):  # a core lies inside its tile's output grid, start / 2 on
            first = start[axis] // 2
            assert first <= core[axis].start and core[axis].stop <= first + plan.window[axis] // 2
    assert (cover == 1).all()


def test_a_budget_below_the_smallest_tile_is_a_usage_error():
    with pytest.raises(UsageError, match="memory budget"):
        plan_halo_tiling((64, 64, 64), halo=(16, 16, 16), multiple=8, max_window_voxels=1000)


# ----------------------------------------------------------------------------- stitching


def test_stitched_tiles_equal_one_pass_and_a_short_halo_does_not(trained):
    network = trained["model"].build().eval()
    multiple = patch_multiple(trained["model"].arch, trained["model"].arch_params)
    volume = trained["volume"]
    radius = receptive_radius(network, multiple=multiple)
    assert radius is not None and min(radius) > multiple
    reference = whole_volume_pass(network, volume, multiple)
    small_tiles = 40 * 64 * 64  # several tiles along y and x of the 40x96x96 volume
    covered = plan_halo_tiling(volume.shape, halo=radius, multiple=multiple, max_window_voxels=small_tiles)
    assert len(covered.starts[1]) > 1 and len(covered.starts[2]) > 1
    np.testing.assert_allclose(stitched(network, volume, covered), reference, atol=1e-5)
    short = tuple(r - multiple for r in radius)
    too_small = plan_halo_tiling(volume.shape, halo=short, multiple=multiple, max_window_voxels=small_tiles)
    assert np.abs(stitched(network, volume, too_small) - reference).max() > 1e-5


def test_tiles_past_the_volume_end_are_prepared_then_zero_padded():
    """Tiles reuse one input buffer: a tile padded along x after one that filled it must see zeros there."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv3d(1, 3, 5, padding=2), nn.ReLU(), nn.Conv3d(3, 2, 3, padding=1)).eval()
    volume = np.random.default_rng(0).normal(size=(13, 30, 22)).astype(np.float32)

    def prepare(block):
        return block * 2.0 + 1.0  # padding with zeros after preparation differs from preparing zeros

    tiling = plan_halo_tiling(volume.shape, halo=(3, 3, 3), multiple=4, max_window_voxels=16 * 20 * 16)
    assert tiling.padded_shape == (16, 32, 24) and len(tiling.starts[1]) > 1 and len(tiling.starts[2]) > 1
    reference = whole_volume_pass(network, prepare(volume), 4)
    np.testing.assert_allclose(stitched(network, volume, tiling, prepare=prepare), reference, atol=1e-5)


def test_halo_geometry_matches_the_sliding_window_within_tolerance_and_keeps_the_picks(trained):
    """The stated tolerance: within 0.1 everywhere and 1e-3 on average of sliding windows (overlap 0.25,
    Gaussian) at least as large as the receptive field (here 32x64x64 for a radius of 24); the same F4
    within 0.005.  (Windows smaller than the field, such as this net's 16x32x32 training patch, differ by
    up to about 0.4 near their borders: there the halo tiles are the ones that equal a whole-volume pass.)"""
    model, volume = trained["model"], trained["volume"]
    multiple = patch_multiple(model.arch, model.arch_params)
    assert max(receptive_radius(model.build(), multiple=multiple)) <= 32
    common = {"activation": "softmax", "precision": "float32"}
    old = predict_volume(model.build(), volume, patch_size=(32, 64, 64), tiling="sliding", overlap=0.25, **common)
    new = predict_volume(model.build(), volume, patch_size=model.patch_size, tiling="halo", multiple=multiple, **common)
    difference = np.abs(new - old)
    assert difference.max() < 0.1 and difference.mean() < 1e-3
    truth = read_picks(trained["truth"], catalog=DEFAULT_CATALOG)
    scores = []
    for probs in (old, new):
        picks = extract_picks(
            probs, classes=model.classes, catalog=DEFAULT_CATALOG, voxel_size=10.0, run="TS_sim_1", thresholds=0.15
        )
        assert len(picks) > 0
        scores.append(score_picks(picks, truth, DEFAULT_CATALOG).score)
    assert scores[0] > 0.05  # the net has learnt something, so the comparison means something
    assert abs(scores[1] - scores[0]) <= 0.005


def test_auto_falls_back_to_sliding_windows_for_window_wide_normalization(volume_and_unet):
    volume, network = volume_and_unet
    out = predict_volume(network, volume, patch_size=(8, 8, 8), tiling="auto", multiple=4, activation="logits")
    reference = predict_volume(network, volume, patch_size=(8, 8, 8), tiling="sliding", activation="logits")
    np.testing.assert_array_equal(out, reference)
    with pytest.raises(UsageError, match="bounded receptive field"):
        predict_volume(network, volume, patch_size=(8, 8, 8), tiling="halo", multiple=4)


@pytest.fixture
def volume_and_unet(rng):
    torch.manual_seed(0)
    network = build_network(
        "unet", in_channels=1, out_channels=3, params={"channels": [4, 8], "strides": [2], "num_res_units": 0}
    )
    return rng.normal(size=(8, 12, 12)).astype(np.float32), network


def test_predict_probs_reports_the_tiling_and_refuses_halo_for_unbounded_nets(cli, trained, tmp_path):
    from czii_cli.training.checkpoint import save_model

    root = trained["root"]
    result = cli(
        "predict-probs",
        root / "data" / "TS_sim_1.zarr",
        "-m",
        root / "model.pt",
        "-o",
        tmp_path / "p.zarr",
        "--tiling",
        "halo",
        "--memory",
        "0.05",
    )
    assert result.exit_code == 0, result.stderr
    step = read_artifact(tmp_path / "p.zarr").meta.provenance[-1]
    assert step["args"]["tiling"] == "halo"
    assert "tiles (halo" in result.stderr or "tile (halo" in result.stderr
    torch.manual_seed(0)
    params = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    network = build_network("unet", in_channels=1, out_channels=len(trained["model"].classes), params=params)
    from dataclasses import replace

    unet = replace(
        trained["model"], arch="unet", arch_params=params, state_dict=network.state_dict(), patch_size=[16, 32, 32]
    )
    save_model(tmp_path / "unet.pt", unet)
    refused = cli(
        "predict-probs",
        root / "data" / "TS_sim_1.zarr",
        "-m",
        tmp_path / "unet.pt",
        "-o",
        tmp_path / "u.zarr",
        "--tiling",
        "halo",
    )
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("czii: error:") and "Traceback" not in refused.stderr
    assert not (tmp_path / "u.zarr").exists()
    bad = cli(
        "predict-probs",
        root / "data" / "TS_sim_1.zarr",
        "-m",
        root / "model.pt",
        "--tiling",
        "big",
        "-o",
        tmp_path / "b.zarr",
    )
    assert bad.exit_code == 2 and bad.stderr.count("czii: error:") == 1
