"""`czii predict-probs`: inputs, outputs, normalization, ensembles and refusals."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from helpers import MODEL_CLASSES, make_model

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io.artifacts import read_artifact
from czii_cli.io.copick import config_document
from czii_cli.io.volumes import write_mrc, write_ome_zarr
from czii_cli.normalize import normalize
from czii_cli.predict_probs import predict_volume, resolve_precision
from czii_cli.training.checkpoint import load_model_file
from czii_cli.training.registry import patch_multiple

torch.set_num_threads(1)

CLASSES = MODEL_CLASSES


def expected_probs(model_path, data, **options):
    """What the library gives for a raw volume normalized as the model says (the command's default tiling)."""
    model = load_model_file(model_path)
    normalized = normalize(data, method=model.normalization["method"], clip=model.normalization["clip"])
    options = {"tiling": "auto", "multiple": patch_multiple(model.arch, model.arch_params), **options}
    return predict_volume(
        model.build(), normalized, patch_size=model.patch_size, activation=model.activation, **options
    )


@pytest.fixture
def tomogram(tmp_path, rng):
    data = (rng.normal(size=(10, 12, 14)) * 4 + 20).astype(np.float32)
    write_mrc(tmp_path / "TS_1.mrc", data, voxel_size=10.0)
    return tmp_path / "TS_1.mrc", data


@pytest.fixture
def model_path(tmp_path):
    return make_model(tmp_path / "m.pt")


def test_predicts_an_mrc_into_a_float16_probs_artifact(cli, tomogram, model_path, tmp_path):
    path, data = tomogram
    result = cli("predict-probs", path, "-m", model_path, "-o", tmp_path / "p.zarr", "--tta", "flips")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    volume = read_artifact(tmp_path / "p.zarr")
    meta = volume.meta
    assert (meta.kind, meta.axes, meta.run, meta.voxel_size) == ("probs", "czyx", "TS_1", 10.0)
    assert list(meta.classes) == CLASSES
    assert meta.extra["activation"] == "softmax" and meta.extra["tta"] == "flips"
    assert meta.extra["catalog"] == DEFAULT_CATALOG.to_json()
    assert meta.extra["models"] == [{"path": str(model_path), "arch": "light", "target": "spheres"}]
    step = meta.provenance[-1]
    assert step["command"] == "predict-probs" and step["inputs"] == [str(path), str(model_path)]
    assert step["args"]["normalization"][0]["method"] == "zscore"
    probs = volume.load()
    assert probs.dtype == np.float16 and probs.shape == (7, *data.shape)
    np.testing.assert_allclose(probs.astype(np.float32), expected_probs(model_path, data, tta="flips"), atol=2e-3)
    np.testing.assert_allclose(probs.astype(np.float32).sum(axis=0), 1.0, atol=5e-3)


def test_a_normalized_artifact_is_used_as_is(cli, tomogram, model_path, tmp_path):
    path, _ = tomogram
    assert cli("normalize", path, "-o", tmp_path / "n.zarr").exit_code == 0
    assert (
        cli("predict-probs", path, "-m", model_path, "-o", tmp_path / "raw.zarr", "--dtype", "float32").exit_code == 0
    )
    result = cli(
        "predict-probs", tmp_path / "n.zarr", "-m", model_path, "-o", tmp_path / "n_p.zarr", "--dtype", "float32"
    )
    assert result.exit_code == 0, result.stderr
    from_raw = read_artifact(tmp_path / "raw.zarr").load()
    from_normalized = read_artifact(tmp_path / "n_p.zarr")
    assert from_raw.dtype == np.float32
    np.testing.assert_allclose(from_normalized.load(), from_raw, atol=1e-5)
    assert from_normalized.meta.provenance[-1]["args"]["normalization"] == ["as-is"]
    assert [p["command"] for p in from_normalized.meta.provenance] == ["normalize", "predict-probs"]


def test_streams_a_zip_to_stdout(cli, tomogram, model_path, tmp_path):
    path, data = tomogram
    result = cli("predict-probs", path, "-m", model_path, "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes[:4] == b"PK\x03\x04"
    (tmp_path / "p.zarr").write_bytes(result.stdout_bytes)
    volume = read_artifact(tmp_path / "p.zarr")
    assert volume.shape == (7, *data.shape) and volume.meta.kind == "probs"
    np.testing.assert_allclose(volume.load().astype(np.float32), expected_probs(model_path, data), atol=2e-3)


def test_several_tomograms_give_one_artifact_each(cli, tomogram, model_path, tmp_path, rng):
    path, data = tomogram
    write_mrc(tmp_path / "TS_2.mrc", data[::-1].copy(), voxel_size=10.0)
    result = cli("predict-probs", path, tmp_path / "TS_2.mrc", "-m", model_path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["TS_1.zarr", "TS_2.zarr"]
    second = read_artifact(tmp_path / "out" / "TS_2.zarr")
    assert second.meta.run == "TS_2"
    np.testing.assert_allclose(
        second.load().astype(np.float32), expected_probs(model_path, data[::-1].copy()), atol=2e-3
    )
    again = cli("predict-probs", path, tmp_path / "TS_2.mrc", "-m", model_path, "-o", tmp_path / "out")
    assert again.exit_code == 2 and "output exists" in again.stderr


def test_one_tomogram_goes_into_a_folder_named_with_a_trailing_slash(cli, tomogram, model_path, tmp_path):
    path, _ = tomogram
    result = cli("predict-probs", path, "-m", model_path, "-o", f"{tmp_path}/out/")
    assert result.exit_code == 0, result.stderr
    assert read_artifact(tmp_path / "out" / "TS_1.zarr").meta.run == "TS_1"
    skipped = cli("predict-probs", path, "-m", model_path, "-o", f"{tmp_path}/out/", "--skip-existing")
    assert skipped.exit_code == 0 and "skipped TS_1: output exists" in skipped.stderr


def test_several_tomograms_need_an_output_folder(cli, tomogram, model_path, tmp_path):
    path, _ = tomogram
    result = cli("predict-probs", path, path, "-m", model_path, "-o", "-")
    assert result.exit_code == 2
    assert "tomograms give one artifact each; the output must be a folder (DIR/)" in result.stderr


def test_predicts_every_run_of_a_copick_project(cli, model_path, tmp_path, rng):
    root = tmp_path / "project"
    volumes = {}
    for run in ("TS_a", "TS_b"):
        volumes[run] = (rng.normal(size=(8, 12, 10)) * 2 + 5).astype(np.float32)
        write_ome_zarr(
            root / "static" / "ExperimentRuns" / run / "VoxelSpacing10.000" / "denoised.zarr",
            volumes[run],
            voxel_size=10.0,
            levels=1,
        )
    (root / "copick_config.json").write_text(json.dumps(config_document("p", DEFAULT_CATALOG.to_json(), root)))
    result = cli("predict-probs", root, "-m", model_path, "--tomo-type", "denoised", "-o", tmp_path / "probs")
    assert result.exit_code == 0, result.stderr
    for run, data in volumes.items():
        volume = read_artifact(tmp_path / "probs" / f"{run}.zarr")
        assert volume.meta.run == run
        np.testing.assert_allclose(volume.load().astype(np.float32), expected_probs(model_path, data), atol=2e-3)
    single = cli(
        "predict-probs", root / "copick_config.json", "-m", model_path, "--run", "TS_b", "-o", tmp_path / "b.zarr"
    )
    assert single.exit_code == 0, single.stderr
    assert read_artifact(tmp_path / "b.zarr").meta.run == "TS_b"


def test_models_are_averaged_and_logits_kept_on_request(cli, tomogram, model_path, tmp_path):
    path, data = tomogram
    other = make_model(tmp_path / "other.pt", seed=1)
    result = cli("predict-probs", path, "-m", model_path, "-m", other, "-o", tmp_path / "e.zarr", "--dtype", "float32")
    assert result.exit_code == 0, result.stderr
    mean = (expected_probs(model_path, data) + expected_probs(other, data)) / 2
    np.testing.assert_allclose(read_artifact(tmp_path / "e.zarr").load(), mean, atol=1e-5)
    result = cli("predict-probs", path, "-m", model_path, "-o", tmp_path / "l.zarr", "--logits", "--dtype", "float32")
    assert result.exit_code == 0, result.stderr
    logits = read_artifact(tmp_path / "l.zarr")
    assert logits.meta.extra["activation"] == "logits" and logits.meta.extra["logits_of"] == "softmax"
    softmax = torch.softmax(torch.from_numpy(logits.load()), dim=0).numpy()
    np.testing.assert_allclose(softmax, expected_probs(model_path, data), atol=0.02)


def test_models_with_different_classes_are_refused(cli, tomogram, model_path, tmp_path):
    path, _ = tomogram
    other = make_model(tmp_path / "other.pt", classes=["background", "ribosome"])
    result = cli("predict-probs", path, "-m", model_path, "-m", other, "-o", tmp_path / "e.zarr")
    assert result.exit_code == 2
    assert (
        "models disagree on classes" in result.stderr
        and str(other) in result.stderr
        and str(model_path) in result.stderr
    )
    assert not (tmp_path / "e.zarr").exists()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_model_file_that_would_run_code_is_refused_and_nothing_runs(cli, tomogram, tmp_path):
    path, _ = tomogram
    marker = tmp_path / "marker"
    torch.save({"format": "czii-model", "payload": _RunsCode(marker)}, tmp_path / "evil.pt", pickle_protocol=2)
    assert not marker.exists()
    result = cli("predict-probs", path, "-m", tmp_path / "evil.pt", "-o", tmp_path / "p.zarr")
    assert result.exit_code == 1
    assert "refused" in result.stderr and "evil.pt" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "p.zarr").exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "evil.pt", weights_only=True)


def test_a_window_the_network_cannot_take_is_a_usage_error(cli, tomogram, model_path, tmp_path):
    path, _ = tomogram
    result = cli("predict-probs", path, "-m", model_path, "--window", "8", "9", "8", "-o", tmp_path / "p.zarr")
    assert result.exit_code == 2
    assert "window 8x9x8 is not a multiple of" in result.stderr and "light network" in result.stderr


def test_precision_is_recorded_resolved_and_a_bad_one_is_a_usage_error(cli, tomogram, model_path, tmp_path):
    path, data = tomogram
    assert cli("predict-probs", path, "-m", model_path, "-o", tmp_path / "auto.zarr").exit_code == 0
    auto = read_artifact(tmp_path / "auto.zarr").meta.provenance[-1]["args"]["precision"]
    assert auto == resolve_precision("auto", torch.device("cpu"))
    result = cli(
        "predict-probs",
        path,
        "-m",
        model_path,
        "-o",
        tmp_path / "p.zarr",
        "--precision",
        "float32",
        "--dtype",
        "float32",
    )
    assert result.exit_code == 0, result.stderr
    volume = read_artifact(tmp_path / "p.zarr")
    assert volume.meta.provenance[-1]["args"]["precision"] == "float32"
    np.testing.assert_allclose(volume.load(), expected_probs(model_path, data, precision="float32"), atol=1e-6)
    result = cli("predict-probs", path, "-m", model_path, "-o", tmp_path / "q.zarr", "--precision", "half")
    assert result.exit_code == 2
    assert "unknown precision 'half'" in result.stderr
    assert not (tmp_path / "q.zarr").exists()


def test_bad_options_are_usage_errors(cli, tomogram, model_path, tmp_path):
    path, _ = tomogram
    for flag, value, message in [
        ("--tta", "spin", "unknown TTA set"),
        ("--dtype", "int8", "--dtype"),
        ("--device", "tpu", "unknown device"),
    ]:
        result = cli("predict-probs", path, "-m", model_path, flag, value, "-o", tmp_path / "p.zarr")
        assert result.exit_code == 2, flag
        assert message in result.stderr
