"""Output stride 2: half-resolution maps from light nets, their geometry, picks in Å, refusals."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import MODEL_CLASSES, make_model
from torch import nn

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact
from czii_cli.io.picks import read_picks
from czii_cli.io.volumes import write_mrc
from czii_cli.normalize import normalization_method, normalize
from czii_cli.picks import Picks
from czii_cli.predict_probs import Member, predict_into, predict_volume
from czii_cli.predict_probs.stride import recorded_output_stride, resolve_output_stride
from czii_cli.resample import bin_volume, binned_shape
from czii_cli.training.checkpoint import ModelFile, load_model_file, save_model
from czii_cli.training.dataset import TrainingVolume
from czii_cli.training.light import LightUNet
from czii_cli.training.registry import build_network, patch_multiple
from czii_cli.training.validation import validate_round, validation_picks

torch.set_num_threads(1)


def tiny_light(*, stem_stride: int = 2, seed: int = 0) -> LightUNet:
    """A tiny light net (channels 4, 8; size multiple 4 at stem stride 2) with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    network = LightUNet(1, 3, channels=(4, 8), stem_stride=stem_stride)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return network.eval()


def whole_pass(network: LightUNet, volume: np.ndarray, *, multiple: int, flips: str = "") -> np.ndarray:
    """One pass of ``network`` at output stride 2 over the volume zero-padded to ``multiple``,
    its input flipped along ``flips`` (axis letters) and its output flipped back, cropped to the binned shape."""
    padded_shape = [-(-side // multiple) * multiple for side in volume.shape]
    padded = np.zeros(padded_shape, dtype=np.float32)
    padded[tuple(slice(0, side) for side in volume.shape)] = volume
    dims = [2 + "zyx".index(axis) for axis in flips]
    batch = torch.from_numpy(padded)[None, None]
    network.set_output_stride(2)
    try:
        with torch.no_grad():
            logits = network(torch.flip(batch, dims) if dims else batch)
    finally:
        network.set_output_stride(1)
    logits = torch.flip(logits, dims) if dims else logits
    z, y, x = binned_shape(volume.shape, factor=2)
    return logits[0, :, :z, :y, :x].numpy()


def halo_tiles(network: nn.Module, volume: np.ndarray, *, tta: str = "none", budget: float = 6e6) -> tuple:
    """The map of ``network`` at output stride 2 with halo tiles in float32 (a small budget: several tiles)."""
    arrays = []

    def allocate(channels: int) -> np.ndarray:
        arrays.append(np.full((channels, *binned_shape(volume.shape, factor=2)), np.nan, dtype=np.float32))
        return arrays[0]

    report = predict_into(
        [Member(network)],
        volume,
        allocate,
        patch_size=(8, 8, 8),
        tta=tta,
        activation="logits",
        precision="float32",
        tiling="halo",
        multiple=4,
        memory_budget=budget,
        output_stride=2,
    )
    return arrays[0], report


class BlockMean(nn.Module):
    """2x2x2 block means (stride 2), or the same means repeated over each block (stride 1)."""

    output_strides = (1, 2)

    def __init__(self) -> None:
        super().__init__()
        self.output_stride = 1

    def set_output_stride(self, stride: int) -> None:
        self.output_stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = nn.functional.avg_pool3d(x, 2)
        if self.output_stride == 1:
            means = means.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
        return torch.cat([means, -means], dim=1)


def light_model_file(path, *, stem_stride: int, arch: str = "light"):
    """A model file of a tiny light net with ``stem_stride`` (random weights), or of a tiny MONAI UNet."""
    params = {"channels": [4, 8], "stem_stride": stem_stride} if arch == "light" else {"channels": [4, 8]}
    if arch == "unet":
        params = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    torch.manual_seed(0)
    network = build_network(arch, in_channels=1, out_channels=len(MODEL_CLASSES), params=params)
    save_model(
        path,
        ModelFile(
            arch=arch,
            arch_params=params,
            classes=list(MODEL_CLASSES),
            catalog=DEFAULT_CATALOG.to_json(),
            target="spheres",
            activation="softmax",
            normalization=normalization_method("zscore"),
            patch_size=[8, 8, 8],
            voxel_size=10.0,
            state_dict=network.state_dict(),
        ),
    )
    return path


@pytest.fixture
def tomogram(tmp_path, rng):
    data = (rng.normal(size=(15, 30, 33)) * 4 + 20).astype(np.float32)
    write_mrc(tmp_path / "TS_1.mrc", data, voxel_size=10.0)
    return tmp_path / "TS_1.mrc", data


def one_error_line(result) -> str:
    """The single ``czii: error:`` line of a failed command (no traceback)."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("czii: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- the network


def test_a_light_net_gives_its_half_resolution_logits_and_trains_at_full_resolution():
    network = tiny_light()
    batch = torch.randn(1, 1, 16, 24, 8)
    assert network.output_strides == (1, 2)
    with torch.no_grad():
        full = network(batch)
        network.set_output_stride(2)
        half = network(batch)
        network.set_output_stride(1)
        again = network(batch)
    assert tuple(full.shape) == (1, 3, 16, 24, 8) and tuple(half.shape) == (1, 3, 8, 12, 4)
    torch.testing.assert_close(again, full, rtol=0, atol=0)
    # the full-resolution logits are the half-resolution ones up-sampled (what training scores)
    upsampled = nn.functional.interpolate(half, size=(16, 24, 8), mode="trilinear", align_corners=False)
    torch.testing.assert_close(full, upsampled, rtol=0, atol=0)
    assert "output_stride" not in "".join(network.state_dict())  # model files are unchanged
    with pytest.raises(ValueError, match="output stride must be one of"):
        tiny_light(stem_stride=1).set_output_stride(2)


# ----------------------------------------------------------------------------- tiles


def test_stitched_halo_tiles_at_stride_two_equal_one_pass_over_the_whole_volume(rng):
    network = tiny_light()
    volume = rng.normal(size=(22, 150, 118)).astype(np.float32)  # padded to 24x152x120
    stitched, report = halo_tiles(network, volume)
    assert report["windows"] > 1 and report["output_stride"] == 2
    assert stitched.shape == (3, 11, 75, 59)
    np.testing.assert_allclose(stitched, whole_pass(network, volume, multiple=4), rtol=0, atol=1e-5)
    assert network.output_stride == 1  # restored after the prediction


def test_flips_at_stride_two_average_whole_volume_passes_of_the_flipped_volume(rng):
    network = tiny_light(seed=1)
    volume = rng.normal(size=(22, 150, 118)).astype(np.float32)
    stitched, report = halo_tiles(network, volume, tta="flips")
    assert report["windows"] > 1
    passes = [whole_pass(network, volume, multiple=4, flips=axes) for axes in ("", "z", "y", "x")]
    np.testing.assert_allclose(stitched, np.mean(passes, axis=0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("tta", ["none", "flips", "all"])
def test_a_block_mean_network_at_stride_two_gives_the_binned_volume_under_every_tta(rng, tta):
    """Flipping an even tile flips its blocks with it: the inverted half-resolution output lies on
    the same binned grid (no shift), so an exactly flip-equivariant map stays exact under TTA."""
    volume = rng.normal(size=(12, 16, 20)).astype(np.float32)
    stitched = predict_volume(
        BlockMean(), volume, patch_size=(4, 4, 4), tta=tta, activation="logits", tiling="halo", multiple=2,
        output_stride=2, precision="float32",
    )  # fmt: skip
    np.testing.assert_allclose(stitched[0], bin_volume(volume, factor=2), rtol=0, atol=1e-6)
    np.testing.assert_allclose(stitched[1], -bin_volume(volume, factor=2), rtol=0, atol=1e-6)


def test_sliding_windows_refuse_stride_two(rng):
    volume = rng.normal(size=(8, 8, 8)).astype(np.float32)
    with pytest.raises(Exception, match="output stride 2 needs halo tiles"):
        predict_volume(tiny_light(), volume, patch_size=(8, 8, 8), tiling="sliding", output_stride=2)


# ----------------------------------------------------------------------------- the command


def test_predict_probs_at_stride_two_writes_the_map_on_the_grid_binned_by_two(cli, tomogram, tmp_path):
    path, data = tomogram
    model_path = make_model(tmp_path / "m.pt")
    out = tmp_path / "p.zarr"
    result = cli("predict-probs", path, "-m", model_path, "--output-stride", "2", "-o", out, "--precision", "float32")
    assert result.exit_code == 0, result.stderr
    assert "at output stride 2" in result.stderr
    volume = read_artifact(out)
    assert volume.shape == (7, 8, 15, 17) == (7, *binned_shape(data.shape, factor=2))
    assert volume.meta.voxel_size == 20.0 and tuple(volume.meta.origin) == (5.0, 5.0, 5.0)
    assert volume.meta.extra["output_stride"] == {"stride": 2, "voxel_size": 10.0, "shape": [15, 30, 33]}
    assert volume.meta.provenance[-1]["args"]["output_stride"] == 2
    model = load_model_file(model_path)
    normalized = normalize(data, method=model.normalization["method"], clip=model.normalization["clip"])
    expected = predict_volume(
        model.build(), normalized, patch_size=(8, 8, 8), tiling="halo", precision="float32",
        multiple=patch_multiple(model.arch, model.arch_params), output_stride=2,
    )  # fmt: skip
    np.testing.assert_allclose(volume.load().astype(np.float32), expected, atol=2e-3)


def test_picks_from_a_stride_two_map_are_in_the_tomograms_angstrom(cli, tmp_path):
    """A map predicted at stride 2 from a 10 Å tomogram (origin 0): 20 Å voxels, origin 5 Å.
    Map voxel (z, y, x) = (3, 5, 6) is the block of tomogram voxels (6-7, 10-11, 12-13), centred at
    (65, 105, 125) Å."""
    probs = np.zeros((2, 8, 12, 12), dtype=np.float32)
    probs[1, 1:6, 3:8, 4:9] = 0.9  # a 5^3 cube (125 voxels) centred on (3, 5, 6)
    probs[0] = 1.0 - probs[1]
    meta = ArtifactMeta(
        kind="probs", axes="czyx", voxel_size=20.0, origin=(5.0, 5.0, 5.0), run="TS_1",
        classes=("background", "ribosome"), extra={"activation": "softmax"},
    )  # fmt: skip
    write_artifact(tmp_path / "p.zarr", probs.astype(np.float16), meta)
    result = cli("postprocess", tmp_path / "p.zarr", "--threshold", "0.5", "-o", tmp_path / "picks.csv")
    assert result.exit_code == 0, result.stderr
    picks = read_picks(tmp_path / "picks.csv")
    assert list(picks.particle_type) == ["ribosome"]
    np.testing.assert_allclose(picks.xyz, [[125.0, 105.0, 65.0]], atol=1e-6)


def test_a_model_that_cannot_give_stride_two_is_one_error_line_naming_its_file(cli, tomogram, tmp_path):
    path, _ = tomogram
    able = make_model(tmp_path / "able.pt")
    stem1 = light_model_file(tmp_path / "stem1.pt", stem_stride=1)
    for unable in (stem1, light_model_file(tmp_path / "unet.pt", stem_stride=1, arch="unet")):
        result = cli("predict-probs", path, "-m", able, "-m", unable, "--output-stride", "2", "-o", tmp_path / "p.zarr")
        assert result.exit_code == 2
        line = one_error_line(result)
        assert str(unable) in line and "output stride 2" in line, line
        assert not (tmp_path / "p.zarr").exists()
    # auto: the ensemble falls back to the tomogram's grid
    result = cli("predict-probs", path, "-m", able, "-m", stem1, "-o", tmp_path / "p.zarr")
    assert result.exit_code == 0, result.stderr
    assert read_artifact(tmp_path / "p.zarr").shape == (7, 15, 30, 33)


def test_sliding_windows_and_bad_values_are_refused_in_one_line(cli, tomogram, tmp_path):
    path, _ = tomogram
    model_path = make_model(tmp_path / "m.pt")
    for extra, message in (
        (["--tiling", "sliding"], "needs halo tiles"),
        (["--window", "8", "8", "8"], "needs halo tiles"),
        (["--output-stride", "3", "--tiling", "halo"], "--output-stride must be auto, 1 or 2"),
    ):
        options = extra if "--output-stride" in extra else ["--output-stride", "2", *extra]
        result = cli("predict-probs", path, "-m", model_path, *options, "-o", tmp_path / "p.zarr")
        assert result.exit_code == 2, extra
        assert message in one_error_line(result), extra
        assert not (tmp_path / "p.zarr").exists()


def trained_for(model: ModelFile, stride: int) -> ModelFile:
    """``model`` as if its training settings had chosen ``output_stride``."""
    return replace(model, train={"config": {"output_stride": stride}})


def test_auto_means_the_stride_the_models_were_trained_for_when_all_can_give_it(tmp_path):
    able = load_model_file(make_model(tmp_path / "able.pt"))
    unable = load_model_file(light_model_file(tmp_path / "stem1.pt", stem_stride=1))
    at_two = trained_for(able, 2)
    assert recorded_output_stride(able) == 1  # no training summary: a model from before the setting
    assert recorded_output_stride(at_two) == 2
    assert resolve_output_stride("auto", [able], ["able.pt"]) == 1
    assert resolve_output_stride("auto", [at_two], ["able.pt"]) == 2
    assert resolve_output_stride("auto", [at_two, trained_for(able, 2)], ["a.pt", "b.pt"]) == 2
    assert resolve_output_stride("auto", [at_two, able], ["a.pt", "b.pt"]) == 1  # they disagree
    assert resolve_output_stride("auto", [at_two, trained_for(unable, 2)], ["a.pt", "stem1.pt"]) == 1
    assert resolve_output_stride("auto", [at_two], ["able.pt"], tiling="sliding") == 1
    assert resolve_output_stride(2, [able], ["able.pt"], tiling="halo") == 2
    assert resolve_output_stride(1, [at_two], ["able.pt"]) == 1
    assert resolve_output_stride(1, [unable], ["stem1.pt"]) == 1
    with pytest.raises(Exception, match="stem1.pt: its network"):
        resolve_output_stride(2, [able, unable], ["able.pt", "stem1.pt"])


def test_copick_segmentations_at_stride_two_are_named_and_scaled_at_twice_the_voxel_size(cli, tmp_path):
    from czii_cli.io import copick
    from czii_cli.io.copick_segmentations import list_segmentations, read_segmentation
    from czii_cli.io.volumes import write_ome_zarr

    root = tmp_path / "p"
    tomogram = np.random.default_rng(3).normal(size=(8, 12, 10)).astype(np.float32)
    write_ome_zarr(
        root / "static/ExperimentRuns/TS_a/VoxelSpacing10.000/denoised.zarr", tomogram, voxel_size=10.0, levels=1
    )
    config = root / "copick_config.json"
    config.write_text(json.dumps(copick.config_document("t", DEFAULT_CATALOG.to_json(), root)))
    model = make_model(tmp_path / "m.pt", classes=("background", "apo-ferritin", "ribosome"))
    options = ("-m", model, "--output-stride", "2", "-o", f"copick:{config}", "--keep-maps", tmp_path / "kept")
    result = cli("predict-probs", config, *options)
    assert result.exit_code == 0, result.stderr
    project = copick.open_project(config)
    found = list_segmentations(project, "TS_a")
    assert [s.store_name() for s in found] == ["20.000_czii_0_apo-ferritin.zarr", "20.000_czii_0_ribosome.zarr"]
    kept = read_artifact(tmp_path / "kept" / "TS_a.zarr")
    assert kept.shape == (3, 4, 6, 5) and kept.meta.voxel_size == 20.0
    volume = read_segmentation(project, "TS_a", found[1])
    assert volume.meta.voxel_size == 20.0
    np.testing.assert_array_equal(volume.load(), kept.load()[2])
    skipped = cli("predict-probs", config, *options[:-2], "--skip-existing")  # the stride-2 names are found
    assert skipped.exit_code == 0 and "skipped TS_a" in skipped.stderr


class RecordingBlockMean(BlockMean):
    """A :class:`BlockMean` that records the output stride of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.strides_seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.strides_seen.append(self.output_stride)
        return super().forward(x)


@pytest.mark.parametrize("stride", [1, 2])
def test_validation_picks_the_maps_of_its_output_stride_in_the_tomograms_angstrom(stride):
    """A dark 6^3 cube at tomogram voxels z 4-9, y 8-13, x 10-15 (centre 65, 105, 125 Å): at stride 2
    it is the 3^3 blocks z 2-4, y 4-6, x 5-7 of a 20 Å grid with origin 5 Å, so the pick is the same."""
    image = np.full((16, 24, 24), 2.0, dtype=np.float32)
    image[4:10, 8:14, 10:16] = -2.0  # block means -2: apo-ferritin probability sigmoid(4), elsewhere sigmoid(-4)
    truth = Picks.from_points("r", "apo-ferritin", [[125.0, 105.0, 65.0]])
    volume = TrainingVolume(
        run="r", image=image, target=np.zeros(image.shape, dtype=np.uint8), picks=truth, voxel_size=10.0,
        origin=(0.0, 0.0, 0.0), normalization={"method": "zscore", "clip": None}, source="r.zarr",
    )  # fmt: skip
    network = RecordingBlockMean()
    options = {
        "classes": ["background", "apo-ferritin"],
        "catalog": DEFAULT_CATALOG,
        "activation": "softmax",
        "patch_size": (16, 24, 24),
        "multiple": 4,
        "minimum": (8, 8, 8),
        "overlap": 0.25,
        "device": torch.device("cpu"),
        "output_stride": stride,
    }
    scores = validate_round(network, [volume], threshold=0.15, candidate_thresholds=(), **options)
    assert set(network.strides_seen) == {stride} and network.output_stride == 1
    fixed = scores.fixed.per_class["apo-ferritin"]
    assert (fixed.tp, fixed.fp, fixed.fn) == (1, 0, 0)
    (picks,) = validation_picks(network, [volume], thresholds=[0.15], **options)
    np.testing.assert_allclose(picks.xyz, [[125.0, 105.0, 65.0]], atol=1e-4)
