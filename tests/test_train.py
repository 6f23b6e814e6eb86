"""`czii train`: data sources, every architecture, determinism, resume, Ctrl-C, validation, selection."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from helpers import CATALOG, RUNS, SHAPE, TINY, simulate_run, train

from czii_cli.io.copick import config_document
from czii_cli.io.picks import write_copick_picks
from czii_cli.io.thresholds import read_thresholds
from czii_cli.io.volumes import write_ome_zarr
from czii_cli.picks import Picks, concat
from czii_cli.predict_probs import predict_volume
from czii_cli.score import ClassScore, ScoreReport, score_picks
from czii_cli.training import session
from czii_cli.training.checkpoint import load_model_file
from czii_cli.training.training import Trainer
from czii_cli.training.validation import RoundScores, score_round
from czii_cli.tune import apply_thresholds

torch.set_num_threads(1)

CLASSES = ("small", "large")


def weights(path) -> dict[str, torch.Tensor]:
    return load_model_file(path).state_dict


def metrics(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_train_writes_a_safe_self_describing_model(cli, mrc_dataset, tmp_path):
    out = tmp_path / "m.pt"
    result = train(cli, mrc_dataset, out, "--max-steps", "2", "--steps-per-epoch", "2", "--val-runs", "r3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    document = torch.load(out, weights_only=True)
    assert document["format"] == "czii-model" and document["arch"] == "light"
    model = load_model_file(out)
    assert model.classes == ["background", "small", "large"]
    assert (model.target, model.activation, model.voxel_size) == ("spheres", "softmax", 10.0)
    assert model.patch_size == [16, 16, 16]
    assert model.normalization == {"method": "zscore", "clip": None}
    assert model.train["train_runs"] == ["r1", "r2"] and model.train["val_runs"] == ["r3"]
    assert model.train["steps"] == 2 and model.train["best_step"] == 2
    assert set(model.train["best_per_class"]) == {"small", "large"}
    assert "resume" not in model.train
    assert "resume" in torch.load(tmp_path / "m.last.pt", weights_only=True)["train"]
    rows = metrics(tmp_path / "m.metrics.csv")
    assert [r["step"] for r in rows] == ["2"]
    assert {"train_loss", "val_score", "f4_small", "f4_large"} <= set(rows[0])
    row = rows[0]
    tuned_columns = [
        "tuned_score",
        *(f"{column}_{c}" for column in ("tuned_f4", "pick_threshold", "cutoff") for c in CLASSES),
    ]
    assert set(tuned_columns) <= set(row)
    assert all(0 <= float(row[column]) <= 1 for column in tuned_columns if row[column])
    assert row["tuned_score"] and row["tuned_f4_small"] and row["tuned_f4_large"]
    fixed, tuned = model.train["best_fixed"], model.train["best_tuned"]
    assert model.train["best_score"] == tuned["score"] == float(row["tuned_score"])
    assert fixed == {
        "score": float(row["val_score"]),
        "per_class": {c: float(row[f"f4_{c}"]) for c in CLASSES},
        "method": "cc",
        "threshold": 0.15,
    }
    assert tuned["per_class"] == model.train["best_per_class"] == {c: float(row[f"tuned_f4_{c}"]) for c in CLASSES}
    assert tuned["thresholds"] == {c: float(row[f"cutoff_{c}"]) for c in CLASSES if row[f"cutoff_{c}"]}
    assert tuned["pick_thresholds"] == {
        c: float(row[f"pick_threshold_{c}"]) for c in CLASSES if row[f"pick_threshold_{c}"]
    }
    assert set(tuned["pick_thresholds"].values()) <= {0.02, 0.05, 0.15}
    assert torch.load(out, weights_only=True)["train"]["best_tuned"] == tuned
    described = json.loads(cli("info", out, "--json").stdout)
    assert described["train"]["best_tuned"] == tuned
    (tmp_path / "cutoffs.json").write_text(json.dumps(tuned))
    assert read_thresholds(tmp_path / "cutoffs.json") == tuned["thresholds"]  # a thresholds file for postprocess
    assert (tmp_path / "m.curves.png").read_bytes()[:4] == b"\x89PNG"
    with torch.no_grad():
        probs = torch.softmax(model.build()(torch.zeros(1, 1, 16, 16, 16)), dim=1)
    assert probs.shape == (1, 3, 16, 16, 16)


@pytest.mark.parametrize(
    "arch, params, patch",
    [
        ("light", ["channels=[4,8,8]", "stem_stride=1"], 16),
        ("unet", ["channels=[4,8,8]", "strides=[2,1]"], 16),
        ("segresnet", ["init_filters=8", "blocks_down=[1,1]", "blocks_up=[1]"], 16),
        ("dynunet", ["filters=[4,8,8]", "kernel_size=[3,3,3]", "strides=[1,2,2]"], 16),
        ("flexunet", ["backbone=resnet10", "decoder_channels=[8,8,8,8,8]"], 32),
    ],
)
def test_every_architecture_trains_two_steps_and_predicts(cli, mrc_dataset, tmp_path, arch, params, patch):
    out = tmp_path / f"{arch}.pt"
    args = ["--arch", arch, "--max-steps", "2", "--patch", str(patch), str(patch), str(patch)]
    for p in params:
        args += ["--arch-param", p]
    result = cli("train", mrc_dataset, "-o", out, "--classes", mrc_dataset / "classes.json", "--batch-size", "2", *args)
    assert result.exit_code == 0, result.stderr
    assert torch.load(out, weights_only=True)["arch"] == arch
    model = load_model_file(out)
    volume = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    probs = predict_volume(model.build(), volume, patch_size=model.patch_size, activation=model.activation)
    assert probs.shape == (3, *SHAPE)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-4)


def test_same_seed_same_weights_other_seed_other_weights(cli, mrc_dataset, tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        result = train(cli, mrc_dataset, tmp_path / f"{name}.pt", "--max-steps", "3", "--seed", seed)
        assert result.exit_code == 0, result.stderr
    a, b, c = (weights(tmp_path / f"{n}.pt") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_ctrl_c_saves_and_resume_continues_exactly(cli, mrc_dataset, tmp_path, monkeypatch):
    common = ["--max-steps", "4", "--steps-per-epoch", "2", "--val-runs", "r3"]
    result = train(cli, mrc_dataset, tmp_path / "straight.pt", *common)
    assert result.exit_code == 0, result.stderr

    original = Trainer.train_step

    def interrupted(self, images, targets, **options):
        if self.step == 3:
            raise KeyboardInterrupt
        return original(self, images, targets, **options)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    result = train(cli, mrc_dataset, tmp_path / "cut.pt", *common)
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    last = tmp_path / "cut.last.pt"
    assert torch.load(last, weights_only=True)["train"]["resume"]["step"] == 3
    monkeypatch.setattr(Trainer, "train_step", original)

    result = cli("train", mrc_dataset, "-o", tmp_path / "cut.pt", "--resume", last)
    assert result.exit_code == 0, result.stderr
    resumed = load_model_file(last)
    assert resumed.train["steps"] == 4
    assert [row["step"] for row in resumed.train["resume"]["record"]["history"]] == [2, 4]
    straight = load_model_file(tmp_path / "straight.last.pt")
    assert all(torch.equal(straight.state_dict[k], resumed.state_dict[k]) for k in straight.state_dict)
    assert straight.train["best_score"] == resumed.train["best_score"]


def test_resume_extends_the_run_with_more_steps(cli, mrc_dataset, tmp_path):
    assert train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "2").exit_code == 0
    result = cli("train", mrc_dataset, "-o", tmp_path / "m.pt", "--resume", tmp_path / "m.last.pt", "--max-steps", "3")
    assert result.exit_code == 0, result.stderr
    assert load_model_file(tmp_path / "m.last.pt").train["steps"] == 3
    result = cli("train", mrc_dataset, "-o", tmp_path / "m.pt", "--resume", tmp_path / "m.last.pt", "--lr", "1")
    assert result.exit_code == 2
    assert "resuming keeps the run's settings; only epochs, max_steps and max_time may change (got lr)" in result.stderr
    result = cli("train", mrc_dataset, "-o", tmp_path / "m.pt", "--resume", tmp_path / "m.pt")
    assert result.exit_code == 2
    assert "has no resume state" in result.stderr


def test_artifact_pairs_from_normalize_and_make_labels(cli, mrc_dataset, tmp_path):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for run in RUNS:
        mrc = mrc_dataset / "train_images" / f"{run}.mrc"
        assert cli("normalize", mrc, "-o", pairs / f"{run}.zarr").exit_code == 0
        result = cli(
            "make-labels",
            mrc_dataset / "train_annotations" / f"{run}.csv",
            "--like",
            pairs / f"{run}.zarr",
            "--classes",
            mrc_dataset / "classes.json",
            "--target",
            "points",
            "--dilate",
            "1",
            "-o",
            pairs / f"{run}.labels.zarr",
        )
        assert result.exit_code == 0, result.stderr
    (pairs / "notes.txt").write_text("ignored")
    result = cli("train", pairs, "-o", tmp_path / "p.pt", *TINY, "--max-steps", "2", "--fold", "0/3")
    assert result.exit_code == 0, result.stderr
    model = load_model_file(tmp_path / "p.pt")
    assert model.target == "points" and model.classes == ["background", "small", "large"]
    assert model.train["val_runs"] == ["r1"] and model.train["config"]["loss"] == "ce:1"
    result = cli("train", pairs, "-o", tmp_path / "q.pt", *TINY, "--max-steps", "1", "--target", "spheres")
    assert result.exit_code == 1
    assert "a points target, but training uses spheres" in result.stderr


def test_copick_project_with_heatmap_target(cli, mrc_dataset, tmp_path):
    root = tmp_path / "project"
    rng = np.random.default_rng(3)
    picks = []
    for run in RUNS[:2]:
        data, run_picks = simulate_run(run, rng)
        write_ome_zarr(
            root / "static" / "ExperimentRuns" / run / "VoxelSpacing10.000" / "denoised.zarr",
            data,
            voxel_size=10.0,
            levels=1,
        )
        picks.append(run_picks)
    write_copick_picks(root / "overlay", concat(picks))
    (root / "copick_config.json").write_text(json.dumps(config_document("t", CATALOG.to_json(), root)))
    result = cli(
        "train",
        root,
        "-o",
        tmp_path / "h.pt",
        *TINY,
        "--max-steps",
        "2",
        "--target",
        "heatmap",
        "--loss",
        "bce:1,mse:1,tversky:0.5",
        "--val-runs",
        "r2",
    )
    assert result.exit_code == 0, result.stderr
    model = load_model_file(tmp_path / "h.pt")
    assert (model.target, model.activation, model.classes) == ("heatmap", "sigmoid", ["small", "large"])
    assert model.train["best_step"] == 2


def test_init_fine_tunes_and_reports_a_different_head(cli, mrc_dataset, tmp_path):
    assert train(cli, mrc_dataset, tmp_path / "base.pt", "--max-steps", "1").exit_code == 0
    result = train(
        cli,
        mrc_dataset,
        tmp_path / "tuned.pt",
        "--max-steps",
        "1",
        "--init",
        tmp_path / "base.pt",
        "--target",
        "heatmap",
        "--loss",
        "mse",
    )
    assert result.exit_code == 0, result.stderr
    assert "--init: shape differs, kept the new initialisation: head.bias, head.weight" in result.stderr
    base, tuned = weights(tmp_path / "base.pt"), weights(tmp_path / "tuned.pt")
    assert tuned["head.weight"].shape[0] == 2 and base["head.weight"].shape[0] == 3
    result = train(
        cli,
        mrc_dataset,
        tmp_path / "other.pt",
        "--max-steps",
        "1",
        "--init",
        tmp_path / "base.pt",
        "--arch",
        "unet",
        "--arch-param",
        "strides=[2]",
    )
    assert result.exit_code == 2
    assert "a light model cannot initialise a unet network" in result.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--val-runs", "r9"], 2, "validation runs: unknown run 'r9' (runs: r1, r2, r3)"),
        (["--fold", "3/3"], 2, "fold '3/3': need N >= 2 and 0 <= K < N"),
        (["--patch", "16", "16", "18"], 2, "patch 16 16 18: sides must be multiples of 4 for light"),
        (["--loss", "mse"], 2, "loss 'mse' does not apply to label-map (spheres, points) targets"),
        (["--loss", "ce:x"], 2, "loss: weight of 'ce' is not a number"),
        (["--arch-param", "depth=3"], 2, "light has no parameter 'depth'"),
        (["--arch-param", "channels=oops"], 2, "cannot build light"),
        (["--class-weights", "huge=3"], 2, "class weights: unknown class 'huge'"),
        (["--select", "best"], 2, "training setting 'select' must be one of tuned, fixed, got 'best'"),
    ],
)
def test_train_usage_errors(cli, mrc_dataset, tmp_path, args, code, message):
    result = train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "1", *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_train_data_errors(cli, mrc_dataset, tmp_path):
    result = cli("train", tmp_path / "missing", "-o", tmp_path / "m.pt")
    assert result.exit_code == 1 and f"{tmp_path / 'missing'}: no such file or directory" in result.stderr
    (tmp_path / "empty").mkdir()
    result = cli("train", tmp_path / "empty", "-o", tmp_path / "m.pt")
    assert result.exit_code == 1 and "no training runs found" in result.stderr
    result = cli("train", mrc_dataset, "-o", tmp_path / "m.pt", "--max-steps", "1")  # default catalog
    assert result.exit_code == 1 and "unknown particle class 'large'" in result.stderr
    (tmp_path / "m.pt").write_text("x")
    result = train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "1")
    assert result.exit_code == 2 and "output exists; pass --overwrite" in result.stderr


def test_torchrun_with_one_process_trains_the_same_weights(cli, mrc_dataset, tmp_path, monkeypatch):
    assert train(cli, mrc_dataset, tmp_path / "plain.pt", "--max-steps", "2").exit_code == 0
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    result = train(cli, mrc_dataset, tmp_path / "torchrun.pt", "--max-steps", "2")
    assert result.exit_code == 0, result.stderr
    assert "global batch" not in result.stderr
    plain, torchrun = weights(tmp_path / "plain.pt"), weights(tmp_path / "torchrun.pt")
    assert plain.keys() == torchrun.keys()
    assert all(torch.equal(plain[k], torchrun[k]) for k in plain)


def random_round(rng: np.random.Generator) -> tuple[Picks, dict[float, Picks]]:
    """References in two experiments, and scored picks near them (some far off, some doubled) at two thresholds."""
    references, picks = [], {0.15: [], 0.05: []}
    for run in ("r1", "r2"):
        for cls in CATALOG:
            centres = rng.uniform(0, 600, size=(12, 3))
            references.append(Picks.from_points(run, cls.name, centres))
            for level in picks:
                near = centres[rng.random(12) < 0.7] + rng.normal(scale=cls.radius / 3, size=(1, 3))
                far = rng.uniform(0, 600, size=(int(rng.integers(0, 10)), 3))
                points = np.concatenate([near, near[:2], far])
                scores = rng.uniform(level, 1, size=len(points))
                picks[level].append(Picks.from_points(run, cls.name, points, score=scores))
    return concat(references), {level: concat(parts) for level, parts in picks.items()}


@pytest.mark.parametrize("seed", range(5))
def test_tuned_scores_beat_every_candidate_set_at_any_cutoff(seed):
    references, picks = random_round(np.random.default_rng(seed))
    result = score_round(picks, references, CATALOG, threshold=0.15, rule="best")
    assert result.fixed == score_picks(picks[0.15], references, CATALOG)
    assert set(result.cutoffs) == set(result.pick_thresholds) == set(CLASSES)
    assert set(result.pick_thresholds.values()) <= {0.15, 0.05}
    for candidates in picks.values():
        for cutoff in (0.0, 0.15, 0.3, 0.5, 0.8):
            single = score_picks(apply_thresholds(candidates, {c: cutoff for c in CLASSES}), references, CATALOG)
            assert result.tuned.score >= single.score - 1e-12
            assert all(result.tuned.per_class[c].fbeta >= single.per_class[c].fbeta - 1e-12 for c in CLASSES)
    for name in CLASSES:  # the tuned score is that of real picks: the chosen threshold's, cut
        chosen = picks[result.pick_thresholds[name]].where(particle_type=name)
        part = score_picks(apply_thresholds(chosen, result.cutoffs), references, CATALOG).per_class[name]
        assert part == result.tuned.per_class[name]


def test_a_class_keeps_the_fixed_threshold_where_low_threshold_candidates_merge_particles():
    references = Picks.from_points("r1", "small", [[100.0, 100, 100], [140.0, 100, 100]])
    picks = {
        0.15: Picks.from_points("r1", "small", [[100.0, 100, 100], [140.0, 100, 100]], score=[0.6, 0.5]),
        0.05: Picks.from_points("r1", "small", [[120.0, 100, 100]], score=[0.6]),  # one blob between both
    }
    result = score_round(picks, references, CATALOG, threshold=0.15, rule="best")
    assert result.pick_thresholds == {"small": 0.15} and result.cutoffs == {"small": 0.5}
    robust = score_round(picks, references, CATALOG, threshold=0.15)  # two particles: no cutoff, keep both
    assert robust.pick_thresholds == {"small": 0.15} and robust.cutoffs == {"small": None}
    assert robust.tuned.per_class["small"].fbeta == 1.0
    assert result.fixed.per_class["small"].fbeta == result.tuned.per_class["small"].fbeta == 1.0
    assert score_round({0.05: picks[0.05]}, references, CATALOG, threshold=0.05).tuned.score == 0.0
    empty = score_round({0.15: Picks.empty(with_score=True)}, references, CATALOG, threshold=0.15)
    assert empty.cutoffs == empty.pick_thresholds == {} and empty.tuned.score == empty.fixed.score == 0.0


@pytest.mark.parametrize("candidates, levels", [(None, {0.02, 0.05, 0.15}), ([], {0.15})])
def test_tuned_score_is_never_below_the_fixed_score(cli, mrc_dataset, tmp_path, candidates, levels):
    config = tmp_path / "config.json"
    settings = {"threshold_rule": "best"} | ({} if candidates is None else {"val_candidate_thresholds": candidates})
    config.write_text(json.dumps(settings))
    result = train(
        cli,
        mrc_dataset,
        tmp_path / "m.pt",
        "--max-steps",
        "4",
        "--steps-per-epoch",
        "2",
        "--val-runs",
        "r3",
        "--config",
        config,
    )
    assert result.exit_code == 0, result.stderr
    rows = metrics(tmp_path / "m.metrics.csv")
    assert len(rows) == 2
    for row in rows:
        assert float(row["tuned_score"]) >= float(row["val_score"])
        assert all(float(row[f"tuned_f4_{c}"]) >= float(row[f"f4_{c}"]) for c in CLASSES)
        assert {float(row[f"pick_threshold_{c}"]) for c in CLASSES if row[f"pick_threshold_{c}"]} <= levels
    assert (
        f"step 4: loss {float(rows[1]['train_loss']):.4f} val F4 fixed {float(rows[1]['val_score']):.4f}, "
        f"tuned {float(rows[1]['tuned_score']):.4f} (fixed/tuned: small " in result.stderr
    )


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"val_candidate_thresholds": [0.0]}, "validation pick thresholds must lie in (0, 1]"),
        ({"val_candidate_thresholds": 0.05}, "val_candidate_thresholds must be a list of numbers"),
    ],
)
def test_validation_settings_errors(cli, mrc_dataset, tmp_path, settings, message):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(settings))
    result = train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "1", "--config", config)
    assert result.exit_code == 2
    assert message in result.stderr


def scripted_rounds(scores: list[tuple[float, float]]):
    """A stand-in for ``validate_round`` returning (fixed, tuned) scores in turn, cutoff 0.1 x round."""
    calls = iter(range(len(scores)))

    def report(score: float) -> ScoreReport:
        parts = {c: ClassScore(0, 0, 0, 0.0, 0.0, score, 1.0) for c in CLASSES}
        return ScoreReport(score, parts, 4.0, 0.5, "any")

    def fake(network, volumes, **options):
        index = next(calls)
        fixed, tuned = scores[index]
        return RoundScores(report(fixed), report(tuned), {"small": 0.05}, {"small": 0.1 * (index + 1)})

    return fake


@pytest.mark.parametrize("select, kept, score", [("fixed", 2, 0.5), (None, 4, 0.6)])
def test_select_keeps_the_best_checkpoint_by_the_chosen_score(
    cli, mrc_dataset, tmp_path, monkeypatch, select, kept, score
):
    """``--select fixed`` keeps the round with the best fixed-threshold score, as before ``tuned`` existed."""
    monkeypatch.setattr(session, "validate_round", scripted_rounds([(0.5, 0.2), (0.3, 0.6), (0.4, 0.4)]))
    out = tmp_path / "m.pt"
    args = ["--max-steps", "6", "--steps-per-epoch", "2", "--val-runs", "r3"]
    result = train(cli, mrc_dataset, out, *args, *(["--select", select] if select else []))
    assert result.exit_code == 0, result.stderr
    assert f"kept step {kept}" in result.stderr
    summary = load_model_file(out).train
    assert summary["config"]["select"] == (select or "tuned")
    assert summary["best_step"] == summary["steps"] == kept
    assert load_model_file(tmp_path / "m.last.pt").train["best_step"] == kept
    assert summary["best_score"] == score
    assert summary["best_tuned"]["thresholds"] == {"small": pytest.approx(0.1 * kept / 2)}
    assert summary["best_tuned"]["pick_thresholds"] == {"small": 0.05}
    rows = metrics(tmp_path / "m.metrics.csv")
    assert [(float(r["val_score"]), float(r["tuned_score"])) for r in rows] == [(0.5, 0.2), (0.3, 0.6), (0.4, 0.4)]
