"""Sliding-window inference: tiling, Gaussian blending, TTA inversion, precision, streaming output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from torch import nn

from czii_cli.errors import DataError, UsageError
from czii_cli.predict_probs import (
    Member,
    Tiling,
    predict_into,
    predict_volume,
    resolve_precision,
    tta_transforms,
    window_starts,
)
from czii_cli.predict_probs import runner as runner_module
from czii_cli.predict_probs.runner import NetworkRunner
from czii_cli.training.registry import build_network

torch.set_num_threads(1)


class Repeat(nn.Module):
    """The identity map, its input channel repeated ``channels`` times."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        return x.repeat(1, self.channels, 1, 1, 1)


class Constant(nn.Module):
    """Outputs ``values[c]`` everywhere, whatever the input."""

    def __init__(self, values):
        super().__init__()
        self.register_buffer("values", torch.tensor(values, dtype=torch.float32))

    def forward(self, x):
        shape = (x.shape[0], len(self.values), *x.shape[2:])
        return self.values[None, :, None, None, None].expand(shape).clone()


class RampX(nn.Module):
    """Not equivariant: outputs the window's x coordinate, whatever the input."""

    def forward(self, x):
        ramp = torch.arange(x.shape[-1], dtype=torch.float32)
        return ramp.expand(x.shape).clone()


class Probe(nn.Module):
    """A 1x1x1 convolution that records the autocast dtype of each call (None: no autocast)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)
        self.autocast = []

    def forward(self, x):
        enabled = torch.is_autocast_enabled("cpu")
        self.autocast.append(torch.get_autocast_dtype("cpu") if enabled else None)
        return self.conv(x)


@pytest.fixture
def volume(rng):
    return rng.normal(size=(21, 13, 17)).astype(np.float32)


def test_window_starts_use_the_fewest_windows_and_span_the_axis():
    assert window_starts(630, 96, overlap=0.25) == [0, 67, 134, 200, 267, 334, 400, 467, 534]
    assert window_starts(96, 96, overlap=0.5) == [0]
    assert window_starts(10, 4, overlap=0.0) == [0, 3, 6]
    for size, window, overlap in [(630, 96, 0.25), (184, 96, 0.25), (101, 32, 0.5), (33, 32, 0.9)]:
        starts = window_starts(size, window, overlap=overlap)
        assert starts[0] == 0 and starts[-1] == size - window
        assert max(np.diff(starts)) <= window * (1 - overlap) + 0.5
        fewer = len(starts) - 1
        assert fewer == 1 or (size - window) / (fewer - 1) > window * (1 - overlap)


def test_window_starts_refuse_a_bad_overlap():
    with pytest.raises(UsageError, match="overlap"):
        window_starts(10, 4, overlap=1.0)


def test_weight_sums_normalize_the_blend():
    tiling = Tiling.plan((21, 13, 17), (8, 6, 10), overlap=0.4)
    weights = tiling.importance_map().astype(np.float64)
    total = np.zeros(tiling.padded_shape)
    for z in tiling.starts[0]:
        for y in tiling.starts[1]:
            for x in tiling.starts[2]:
                total[z : z + 8, y : y + 6, x : x + 10] += weights
    iz, iy, ix = tiling.inverse_weight_sums()
    np.testing.assert_allclose(total * iz[:, None, None] * iy[None, :, None] * ix[None, None, :], 1.0, rtol=1e-5)


@pytest.mark.parametrize("tta", ["none", "flips", "rot90", "all"])
@pytest.mark.parametrize("window", [(8, 8, 8), (8, 6, 10)])
def test_identity_network_returns_its_input_under_every_tta(volume, tta, window):
    out = predict_volume(Repeat(3), volume, patch_size=window, overlap=0.25, tta=tta, activation="logits", batch_size=3)
    assert out.shape == (3, *volume.shape) and out.dtype == np.float32
    for channel in out:
        np.testing.assert_allclose(channel, volume, rtol=1e-5, atol=1e-6)


def test_tta_averages_each_inverted_pass():
    # One window covers the volume, so the output is the mean of the inverted passes.
    volume = np.zeros((4, 4, 4), dtype=np.float32)
    ramp = np.arange(4, dtype=np.float32)
    out = predict_volume(RampX(), volume, patch_size=(4, 4, 4), tta="flips", activation="logits")
    np.testing.assert_allclose(out[0], np.broadcast_to((3 * ramp + ramp[::-1]) / 4, (4, 4, 4)), rtol=1e-6)
    out = predict_volume(RampX(), volume, patch_size=(4, 4, 4), tta="rot90", activation="logits")
    ramp3d = np.broadcast_to(ramp, (4, 4, 4))
    expected = sum(np.rot90(ramp3d, -k, axes=(1, 2)) for k in range(4)) / 4
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    assert not np.allclose(expected, ramp3d)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.6])
def test_constant_output_gives_a_constant_map_up_to_the_borders(volume, overlap):
    out = predict_volume(
        Constant([0.3, -2.0]), volume, patch_size=(8, 6, 10), overlap=overlap, activation="logits", batch_size=2
    )
    np.testing.assert_allclose(out[0], 0.3, rtol=1e-5)
    np.testing.assert_allclose(out[1], -2.0, rtol=1e-5)


def test_softmax_and_sigmoid_are_applied_per_window():
    volume = np.zeros((6, 6, 6), dtype=np.float32)
    logits = [0.0, np.log(3.0)]
    soft = predict_volume(Constant(logits), volume, patch_size=(4, 4, 4), activation="softmax")
    np.testing.assert_allclose(soft[:, 2, 3, 4], [0.25, 0.75], rtol=1e-5)
    sig = predict_volume(Constant(logits), volume, patch_size=(4, 4, 4), activation="sigmoid")
    np.testing.assert_allclose(sig[:, 0, 0, 0], [0.5, 0.75], rtol=1e-5)


def test_volume_smaller_than_the_window_is_padded_then_cropped(rng):
    small = rng.normal(size=(5, 6, 7)).astype(np.float32)
    out = predict_volume(Repeat(2), small, patch_size=(8, 8, 8), activation="logits", tta="all")
    assert out.shape == (2, 5, 6, 7)
    np.testing.assert_allclose(out[1], small, rtol=1e-6)


def test_a_real_network_on_one_window_matches_its_forward(rng):
    torch.manual_seed(0)
    network = build_network("light", in_channels=1, out_channels=3, params={"channels": [4, 8]}).eval()
    volume = rng.normal(size=(8, 8, 8)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(network(torch.from_numpy(volume)[None, None]), dim=1)[0].numpy()
    # "all" runs seven passes, enough to finish the layout trial and use the chosen layout.
    out = predict_volume(network, volume, patch_size=(8, 8, 8), tta="all", precision="float32")
    np.testing.assert_allclose(out.sum(axis=0), 1.0, rtol=1e-5)
    assert np.abs(out - expected).max() < 0.05  # flips change an untrained net's output a little
    plain = predict_volume(network, volume, patch_size=(8, 8, 8), precision="float32")
    np.testing.assert_allclose(plain, expected, rtol=1e-4, atol=1e-6)


def test_bfloat16_stays_within_its_rounding_of_float32_the_same_run_to_run(rng):
    torch.manual_seed(0)
    network = build_network("light", in_channels=1, out_channels=3, params={"channels": [4, 8]}).eval()
    volume = rng.normal(size=(12, 20, 20)).astype(np.float32)
    exact = predict_volume(network, volume, patch_size=(8, 8, 8), tta="flips", precision="float32")
    bf16 = predict_volume(network, volume, patch_size=(8, 8, 8), tta="flips", precision="bfloat16")
    assert 0 < np.abs(bf16 - exact).max() < 5e-3  # bfloat16 logits (8-bit mantissa), blended in float32
    np.testing.assert_allclose(bf16.sum(axis=0), 1.0, rtol=1e-5)
    again = predict_volume(network, volume, patch_size=(8, 8, 8), tta="flips", precision="bfloat16")
    np.testing.assert_array_equal(again, bf16)


def test_float32_runs_the_network_as_it_is_and_bfloat16_under_autocast(volume):
    probe = Probe()
    logits = predict_volume(probe, volume, patch_size=(8, 8, 8), activation="logits", precision="float32")
    assert set(probe.autocast) == {None}
    with torch.inference_mode():
        expected = probe.conv(torch.from_numpy(volume)[None, None])[0].numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    probe.autocast.clear()
    predict_volume(probe, volume, patch_size=(8, 8, 8), activation="logits", precision="bfloat16")
    assert set(probe.autocast) == {torch.bfloat16}


def test_auto_precision_follows_the_hardware_and_is_reported(volume, monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("auto", torch.device("cuda")) == "float16"
    assert resolve_precision("float32", torch.device("cuda")) == "float32"
    monkeypatch.setattr(runner_module, "native_bfloat16", lambda: True)
    assert resolve_precision("auto", cpu) == "bfloat16"
    monkeypatch.setattr(runner_module, "native_bfloat16", lambda: False)
    assert resolve_precision("auto", cpu) == "float32"
    probe = Probe()
    report = predict_into(
        [Member(probe)],
        volume,
        lambda c: np.zeros((c, *volume.shape), np.float32),
        patch_size=(8, 8, 8),
        activation="logits",
    )
    assert report["precision"] == "float32" and set(probe.autocast) == {None}


def test_network_state_is_restored_after_prediction(volume):
    network = build_network("light", in_channels=1, out_channels=2, params={"channels": [4, 8]})
    network.train()
    with NetworkRunner(network, device=torch.device("cpu")) as runner:
        for _ in range(5):
            runner(torch.zeros(1, 1, 8, 8, 8))
        assert not network.training
        assert runner.layout in ("channels_last_3d", "contiguous")
    assert network.training
    assert all(p.is_contiguous() for p in network.parameters())


def test_bfloat16_on_a_cpu_fixes_the_layout_by_the_network_layers():
    cpu = torch.device("cpu")
    batch_norm = build_network("light", in_channels=1, out_channels=2, params={"channels": [4, 8]})
    instance_norm = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.InstanceNorm3d(2))
    with NetworkRunner(batch_norm, device=cpu, precision="bfloat16") as runner:
        assert runner.layout == "channels_last_3d"  # before any call: nothing is timed
        runner(torch.zeros(1, 1, 8, 8, 8))
    with NetworkRunner(instance_norm, device=cpu, precision="bfloat16") as runner:
        assert runner.layout == "contiguous"
    assert NetworkRunner(batch_norm, device=cpu, precision="float32").layout == "contiguous"  # until timed


def test_an_ensemble_averages_its_members(volume):
    members = [Member(Constant([0.2])), Member(Constant([0.6]))]
    arrays = []
    predict_into(
        members,
        volume,
        lambda c: arrays.append(np.zeros((c, *volume.shape), np.float32)) or arrays[0],
        patch_size=(8, 8, 8),
        activation="logits",
    )
    np.testing.assert_allclose(arrays[0], 0.4, rtol=1e-5)


def test_members_prepare_their_own_input(volume):
    members = [Member(Repeat(1), prepare=lambda b: b * 2.0), Member(Repeat(1), prepare=lambda b: b + 1.0)]
    arrays = []
    predict_into(
        members,
        volume,
        lambda c: arrays.append(np.zeros((c, *volume.shape), np.float32)) or arrays[0],
        patch_size=(8, 8, 8),
        activation="logits",
    )
    np.testing.assert_allclose(arrays[0][0], (3 * volume + 1) / 2, rtol=1e-5, atol=1e-6)


def test_streaming_into_zarr_matches_memory_and_reports_progress(volume, tmp_path):
    network = Repeat(2)
    expected = predict_volume(network, volume, patch_size=(8, 8, 8), activation="logits", tta="flips")
    store = zarr.open_array(
        tmp_path / "p.zarr", mode="w", shape=(2, *volume.shape), dtype="float16", chunks=(1, 4, 8, 8)
    )
    seen = []
    report = predict_into(
        [Member(network)],
        volume,
        lambda c: store,
        patch_size=(8, 8, 8),
        activation="logits",
        tta="flips",
        batch_size=4,
        on_windows=seen.append,
    )
    assert sum(seen) == report["windows"] == Tiling.plan(volume.shape, (8, 8, 8), overlap=0.25).count
    np.testing.assert_allclose(store[...].astype(np.float32), expected, rtol=2e-3, atol=2e-3)


def test_a_network_changing_the_shape_is_refused(volume):
    class Half(nn.Module):
        def forward(self, x):
            return x[:, :, ::2]

    with pytest.raises(DataError, match="maps windows of"):
        predict_volume(Half(), volume, patch_size=(8, 8, 8), activation="logits")


def test_bad_options_are_usage_errors(volume):
    with pytest.raises(UsageError, match="TTA"):
        predict_volume(Repeat(), volume, patch_size=(8, 8, 8), tta="spin")
    with pytest.raises(UsageError, match="activation"):
        predict_volume(Repeat(), volume, patch_size=(8, 8, 8), activation="relu")
    with pytest.raises(UsageError, match="batch size"):
        predict_volume(Repeat(), volume, patch_size=(8, 8, 8), batch_size=0)
    with pytest.raises(UsageError, match="unknown precision 'half'"):
        predict_volume(Repeat(), volume, patch_size=(8, 8, 8), precision="half")


def test_tta_sets_are_defined_as_documented():
    assert [t.name for t in tta_transforms("all")] == [
        "identity",
        "rot90x1",
        "rot90x2",
        "rot90x3",
        "flip-z",
        "flip-y",
        "flip-x",
    ]
    assert len(tta_transforms("none")) == 1 and len(tta_transforms("rot90")) == 4


def test_streaming_writes_each_zarr_chunk_once(volume, tmp_path, monkeypatch):
    """Finished ranges that end inside a chunk are held back until the chunk is complete."""
    store = zarr.open_array(
        tmp_path / "p.zarr", mode="w", shape=(1, *volume.shape), dtype="float32", chunks=(1, 8, 13, 17)
    )
    writes = []

    class Recording:
        shape, dtype, chunks = store.shape, store.dtype, store.chunks

        def __setitem__(self, index, value):
            writes.append((index[0], index[1].start, index[1].stop))
            store[index] = value

    predict_into(
        [Member(Repeat(1))], volume, lambda c: Recording(), patch_size=(6, 6, 6), overlap=0.25, activation="logits"
    )
    assert Tiling.plan(volume.shape, (6, 6, 6), overlap=0.25).starts[0] == [0, 4, 8, 11, 15]
    assert writes == [(0, 0, 8), (0, 8, 21)]  # 4 and 11 end inside a chunk: held back
    np.testing.assert_allclose(store[0], volume, rtol=1e-5, atol=1e-6)


def test_halo_prediction_reports_seconds_per_stage():
    network = nn.Conv3d(1, 2, 3, padding=1)
    volume = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)
    out = np.zeros((2, *volume.shape), np.float32)
    common = {"patch_size": (8, 16, 16), "multiple": 1, "precision": "float32", "activation": "softmax"}
    halo = predict_into([Member(network)], volume, lambda channels: out, tiling="halo", **common)
    assert set(halo["seconds"]) == {"plan", "input", "forward", "activation", "write"}
    assert all(value >= 0.0 for value in halo["seconds"].values())
    assert predict_into([Member(network)], volume, lambda channels: out, tiling="sliding", **common)["seconds"] == {}


def test_maps_are_written_with_lz4_on_bit_shuffled_chunks_and_read_back_exactly(tmp_path):
    from zarr.codecs import BloscCodec

    from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact

    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, classes=("background", "ribosome"))
    data = np.random.default_rng(0).random((2, 6, 70, 9)).astype(np.float16)
    write_artifact(tmp_path / "p.zarr", data, meta, preview=True)
    group = zarr.open_group(tmp_path / "p.zarr", mode="r")
    for name in ("data", "data_2x"):
        (codec,) = group[name].compressors
        assert isinstance(codec, BloscCodec)
        assert (codec.cname.value, codec.shuffle.value, codec.typesize) == ("lz4", "bitshuffle", 2)
    np.testing.assert_array_equal(read_artifact(tmp_path / "p.zarr").load(), data)


def test_zscore_statistics_over_slabs_equal_numpy_over_the_whole_volume():
    from czii_cli.normalize import normalization_stats

    volume = np.random.default_rng(0).normal(size=(37, 20, 30)) * 3.0 + 1.0  # 9 slabs of 4 planes and 1 of 1
    stats = normalization_stats(volume.astype(np.float32), slab=4)
    expected = volume.astype(np.float32).astype(np.float64)
    assert stats["mean"] == pytest.approx(expected.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(expected.std(), rel=1e-12)
    counts = normalization_stats(np.arange(24, dtype=np.uint16).reshape(3, 2, 4), slab=2)
    assert counts["mean"] == pytest.approx(11.5, rel=1e-15) and counts["std"] == pytest.approx(np.std(np.arange(24)))
