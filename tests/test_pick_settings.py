"""Tuned thresholds flow model file -> probability map metadata -> postprocess, and info shows them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.errors import DataError
from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact
from czii_cli.io.volumes import write_mrc
from czii_cli.normalize import normalization_method
from czii_cli.pick_settings import KEY, PickSettings, common_settings, from_training_summary
from czii_cli.training.checkpoint import ModelFile, save_model
from czii_cli.training.registry import build_network

CLASSES = ("background", "apo-ferritin", "ribosome")
HEADER = "id,experiment,particle_type,x,y,z,score"
TUNED = {
    "method": "cc",
    "thresholds": {"ribosome": 0.6},
    "pick_thresholds": {"apo-ferritin": 0.05, "ribosome": 0.3},
    "score": 0.9,
    "per_class": {},
}
SUMMARY = {
    "best_tuned": TUNED,
    "config": {"val_threshold": 0.15, "threshold_rule": "robust"},
    "val_runs": ["TS_v"],
    "best_step": 40,
}


def two_blobs() -> np.ndarray:
    """A weak apo-ferritin ball (0.125) at voxel (8, 10, 6); a ribosome ball (0.5) at (8, 12, 22)."""
    z, y, x = np.indices((16, 24, 32))
    probs = np.zeros((3, 16, 24, 32), np.float16)
    probs[1][(z - 8) ** 2 + (y - 10) ** 2 + (x - 6) ** 2 <= 9] = 0.125
    probs[2][(z - 8) ** 2 + (y - 12) ** 2 + (x - 22) ** 2 <= 36] = 0.5
    return probs


def save_map(path, *, settings: dict | None, run: str = "TS_a"):
    extra = {} if settings is None else {KEY: settings}
    write_artifact(
        path,
        two_blobs(),
        ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run=run, classes=CLASSES, extra=extra),
    )
    return path


def recorded() -> dict:
    return from_training_summary(SUMMARY, model="m.pt").to_json()


def test_a_model_summary_becomes_settings_and_back():
    settings = from_training_summary(SUMMARY, model="m.pt")
    assert settings == PickSettings(
        "cc",
        0.15,
        {"apo-ferritin": 0.05, "ribosome": 0.3},
        {"ribosome": 0.6},
        "m.pt: tuned (robust rule) on validation run TS_v, step 40",
    )
    assert PickSettings.from_json(settings.to_json(), source="x") == settings
    assert from_training_summary({"best_tuned": {"pick_thresholds": {}}}, model="m.pt") is None
    assert from_training_summary({}, model="m.pt") is None
    with pytest.raises(DataError, match=r"x: pick settings: cutoffs\['ribosome'\] must be a finite number"):
        PickSettings.from_json({**settings.to_json(), "cutoffs": {"ribosome": float("nan")}}, source="x")
    assert common_settings([settings, None]) is None


def test_postprocess_applies_the_maps_thresholds_without_options(cli, tmp_path):
    path = save_map(tmp_path / "p.zarr", settings=recorded())
    # default 0.15 would miss the weak apo-ferritin; the recorded 0.05 finds it, and the
    # ribosome's score 0.5 is under its recorded cutoff 0.6
    result = cli("postprocess", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{HEADER}\n0,TS_a,apo-ferritin,60,100,80,0.125\n"
    assert "thresholds recorded in the map: cc at 0.15; apo-ferritin: threshold 0.05" in result.stderr
    # any threshold option replaces the recorded settings as a whole
    assert cli("postprocess", path, "--threshold", "0.15").stdout == f"{HEADER}\n0,TS_a,ribosome,220,120,80,0.5\n"
    # another method: the defaults, said so
    other = cli("postprocess", path, "--method", "peaks")
    assert other.stdout == f"{HEADER}\n0,TS_a,ribosome,220,120,80,0.5\n"
    assert "tuned for --method cc; --method peaks uses the defaults" in other.stderr
    # a folder output applies each map's own settings
    plain = save_map(tmp_path / "q.zarr", settings=None, run="TS_b")
    assert cli("postprocess", path, plain, "-o", f"{tmp_path}/out/").exit_code == 0
    assert (tmp_path / "out" / "TS_a.csv").read_text() == f"{HEADER}\n0,TS_a,apo-ferritin,60,100,80,0.125\n"
    assert (tmp_path / "out" / "TS_b.csv").read_text() == f"{HEADER}\n0,TS_b,ribosome,220,120,80,0.5\n"


def test_malformed_recorded_settings_are_one_error_line(cli, tmp_path):
    path = save_map(tmp_path / "p.zarr", settings={"method": "cc", "default_threshold": "high"})
    result = cli("postprocess", path)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"czii: error: {path}: pick settings: default_threshold must be a finite number, got 'high'"
    ]


def tuned_model(path, summary):
    torch.manual_seed(0)
    params = {"channels": [4, 8]}
    network = build_network("light", in_channels=1, out_channels=len(CLASSES), params=params)
    catalog = [c for c in DEFAULT_CATALOG.to_json() if c["name"] in CLASSES]
    save_model(
        path,
        ModelFile(
            arch="light",
            arch_params=params,
            classes=list(CLASSES),
            catalog=catalog,
            target="spheres",
            activation="softmax",
            normalization=normalization_method("zscore"),
            patch_size=[8, 8, 8],
            voxel_size=10.0,
            train=summary,
            state_dict=network.state_dict(),
        ),
    )
    return path


def test_predict_probs_carries_the_models_thresholds_and_info_shows_them(cli, tmp_path, rng):
    write_mrc(tmp_path / "TS_1.mrc", rng.normal(size=(8, 8, 8)).astype(np.float32), voxel_size=10.0)
    model = tuned_model(tmp_path / "m.pt", SUMMARY)
    result = cli("predict-probs", tmp_path / "TS_1.mrc", "-m", model, "-o", tmp_path / "p.zarr")
    assert result.exit_code == 0, result.stderr
    written = read_artifact(tmp_path / "p.zarr").meta.extra[KEY]
    assert written == from_training_summary(SUMMARY, model=str(model)).to_json()
    shown = json.loads(cli("info", tmp_path / "p.zarr", "--json").stdout)["thresholds"]
    assert shown.startswith("applied by postprocess unless given thresholds: cc at 0.15; apo-ferritin: threshold 0.05")
    assert json.loads(cli("info", model, "--json").stdout)["thresholds"] == shown
    # two models that tuned differently: the averaged map records none, and info says so
    other = tuned_model(tmp_path / "n.pt", {**SUMMARY, "best_tuned": {**TUNED, "thresholds": {}}})
    assert (
        cli("predict-probs", tmp_path / "TS_1.mrc", "-m", model, "-m", other, "-o", tmp_path / "e.zarr").exit_code == 0
    )
    assert KEY not in read_artifact(tmp_path / "e.zarr").meta.extra
    assert json.loads(cli("info", tmp_path / "e.zarr", "--json").stdout)["thresholds"].startswith(
        "postprocess defaults (threshold 0.15 for every class)"
    )


def test_a_mean_ensemble_of_maps_keeps_shared_thresholds_only(cli, tmp_path):
    a = save_map(tmp_path / "a.zarr", settings=recorded())
    b = save_map(tmp_path / "b.zarr", settings=recorded())
    c = save_map(tmp_path / "c.zarr", settings=None)
    assert cli("ensemble", a, b, "-o", tmp_path / "ab.zarr").exit_code == 0
    assert read_artifact(tmp_path / "ab.zarr").meta.extra[KEY]["pick_thresholds"] == TUNED["pick_thresholds"]
    assert cli("ensemble", a, c, "-o", tmp_path / "ac.zarr").exit_code == 0
    assert KEY not in read_artifact(tmp_path / "ac.zarr").meta.extra
    assert cli("ensemble", a, b, "--mode", "rank", "-o", tmp_path / "rank.zarr").exit_code == 0
    assert KEY not in read_artifact(tmp_path / "rank.zarr").meta.extra


def test_a_model_tuned_at_output_stride_two_predicts_there_by_default_with_its_thresholds(cli, tmp_path, rng):
    write_mrc(tmp_path / "TS_1.mrc", rng.normal(size=(8, 12, 16)).astype(np.float32), voxel_size=10.0)
    summary = {**SUMMARY, "config": {**SUMMARY["config"], "output_stride": 2}}
    model = tuned_model(tmp_path / "m.pt", summary)
    assert cli("predict-probs", tmp_path / "TS_1.mrc", "-m", model, "-o", tmp_path / "p.zarr").exit_code == 0
    artifact = read_artifact(tmp_path / "p.zarr")
    assert artifact.data.shape == (3, 4, 6, 8) and artifact.meta.voxel_size == 20.0
    settings = artifact.meta.extra[KEY]
    assert settings == from_training_summary(summary, model=str(model)).to_json()
    assert settings["origin"] == f"{model}: tuned (robust rule) on validation run TS_v at output stride 2, step 40"
    asked = cli("predict-probs", tmp_path / "TS_1.mrc", "-m", model, "--output-stride", "1", "-o", tmp_path / "q.zarr")
    assert asked.exit_code == 0, asked.stderr
    assert read_artifact(tmp_path / "q.zarr").data.shape == (3, 8, 12, 16)
