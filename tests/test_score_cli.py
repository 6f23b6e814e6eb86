"""`czii score` and `czii tune` through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from plain_metric import random_case

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io import copick
from czii_cli.io.picks import write_annotation_csv, write_copick_picks, write_picks_csv
from czii_cli.io.thresholds import read_thresholds
from czii_cli.score import score_picks


@pytest.fixture
def case(tmp_path):
    """Scored candidates in a CSV and the same references in four formats."""
    pred, gt = random_case(7)
    pred = pred.with_score(np.random.default_rng(7).integers(0, 10, size=len(pred)) / 10)
    write_picks_csv(tmp_path / "pred.csv", pred)
    write_picks_csv(tmp_path / "solution.csv", gt)
    (tmp_path / "annotations").mkdir()
    for run in gt.experiments:
        write_annotation_csv(tmp_path / "annotations" / f"{run}.csv", gt.where(experiment=run))
    project = tmp_path / "project"
    project.mkdir()
    config = copick.config_document("test", DEFAULT_CATALOG.to_json(), project)
    (project / "copick_config.json").write_text(json.dumps(config))
    write_copick_picks(project / "overlay", gt)
    return tmp_path, pred, gt


def test_score_is_the_same_for_every_reference_format(cli, case):
    tmp_path, pred, gt = case
    expected = f"{score_picks(pred, gt, DEFAULT_CATALOG).score:.6f}"
    for reference in (
        "solution.csv",
        "annotations",
        "project",
        "project/copick_config.json",
        "project/overlay/ExperimentRuns",
    ):
        result = cli("score", tmp_path / "pred.csv", tmp_path / reference)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == expected + "\n", reference


def test_score_reads_predictions_from_a_copick_overlay(cli, case, tmp_path):
    _, pred, gt = case
    write_copick_picks(tmp_path / "pred_overlay", pred)
    result = cli("score", tmp_path / "pred_overlay", tmp_path / "solution.csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"{score_picks(pred, gt, DEFAULT_CATALOG).score:.6f}"


def test_score_table_and_options(cli, case):
    tmp_path, pred, gt = case
    result = cli(
        "score",
        tmp_path / "pred.csv",
        tmp_path / "solution.csv",
        "--format",
        "table",
        "--matching",
        "one-to-one",
        "--beta",
        "2",
        "--distance-multiplier",
        "0.8",
        "--per-experiment",
    )
    assert result.exit_code == 0, result.stderr
    report = score_picks(pred, gt, DEFAULT_CATALOG, beta=2.0, distance_multiplier=0.8, matching="one-to-one")
    assert result.stdout.splitlines()[-1] == f"{report.score:.6f}"
    assert "virus-like-particle" in result.stderr and "F2" in result.stderr
    for run in gt.experiments:
        assert f"experiment {run}" in result.stderr


def test_score_json(cli, case):
    tmp_path, pred, gt = case
    result = cli("score", tmp_path / "pred.csv", tmp_path / "solution.csv", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    report = score_picks(pred, gt, DEFAULT_CATALOG)
    assert document["score"] == report.score
    assert document["classes"]["ribosome"]["tp"] == report.per_class["ribosome"].tp
    assert "per_experiment" not in document
    result = cli("score", tmp_path / "pred.csv", tmp_path / "solution.csv", "--format", "json", "--per-experiment")
    assert set(json.loads(result.stdout)["per_experiment"]) == set(gt.experiments)


def test_score_with_another_catalog(cli, tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"classes": [{"name": "dot", "radius": 20, "weight": 2}]}))
    (tmp_path / "gt.csv").write_text("experiment,particle_type,x,y,z\nE,dot,0,0,0\nE,dot,100,0,0\n")
    (tmp_path / "pred.csv").write_text("experiment,particle_type,x,y,z\nE,dot,10,0,0\n")
    result = cli("score", tmp_path / "pred.csv", tmp_path / "gt.csv", "--classes", tmp_path / "classes.json")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{17 * 0.5 / (16 + 0.5):.6f}\n"  # P = 1, R = 0.5


def test_score_errors(cli, case):
    tmp_path, _, _ = case
    (tmp_path / "typo.csv").write_text("experiment,particle_type,x,y,z\nTS_0,ribosme,0,0,0\n")
    result = cli("score", tmp_path / "typo.csv", tmp_path / "solution.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith("czii: error: ") and "typo.csv" in result.stderr and "'ribosme'" in result.stderr
    result = cli("score", tmp_path / "absent.csv", tmp_path / "solution.csv")
    assert result.exit_code == 1 and "absent.csv: no such file" in result.stderr
    result = cli("score", tmp_path / "pred.csv", tmp_path / "solution.csv", "--matching", "greedy")
    assert result.exit_code == 2 and "unknown matching" in result.stderr
    result = cli("score", tmp_path / "pred.csv", tmp_path / "solution.csv", "--format", "plain", "--per-experiment")
    assert result.exit_code == 2
    assert result.stdout == ""


def test_tune_writes_thresholds_that_read_back(cli, case):
    tmp_path, pred, gt = case
    out = tmp_path / "thresholds.json"
    result = cli("tune", tmp_path / "pred.csv", tmp_path / "project", "-o", out, "--cv", "--rule", "best")
    assert result.exit_code == 0, result.stderr
    thresholds = read_thresholds(out)
    document = json.loads(out.read_text())
    assert set(thresholds) <= set(DEFAULT_CATALOG.names) and thresholds
    assert document["metric"] == {"beta": 4.0, "distance_multiplier": 0.5, "matching": "any"}
    assert document["rule"] == "best"
    assert document["provenance"][0]["command"] == "tune"
    assert result.stdout.splitlines()[-1] == f"{document['score_after']:.6f}"
    kept = pred.subset(pred.score >= np.array([thresholds.get(t, -np.inf) for t in pred.particle_type]))
    assert score_picks(kept, gt, DEFAULT_CATALOG).score == pytest.approx(document["score_after"])
    assert document["score_after"] >= document["score_before"]
    assert 0.0 <= document["cv_score"] <= 1.0
    assert "before" in result.stderr and "cv" in result.stderr
    # the default rule: the same picks and metric, cutoffs no higher than the exact optimum's
    robust = cli("tune", tmp_path / "pred.csv", tmp_path / "project", "-o", tmp_path / "robust.json", "--cv")
    assert robust.exit_code == 0, robust.stderr
    document = json.loads((tmp_path / "robust.json").read_text())
    assert document["rule"] == "robust" and 0.0 <= document["cv_score"] <= 1.0
    assert all(value <= thresholds[name] for name, value in read_thresholds(tmp_path / "robust.json").items())
    result = cli("tune", tmp_path / "pred.csv", tmp_path / "project", "-o", tmp_path / "x.json", "--rule", "greedy")
    assert result.exit_code == 2 and "--rule must be one of robust, best, got 'greedy'" in result.stderr


def test_tune_refuses_to_overwrite_without_f(cli, case):
    tmp_path, _, _ = case
    out = tmp_path / "thresholds.json"
    out.write_text("keep me")
    result = cli("tune", tmp_path / "pred.csv", tmp_path / "solution.csv", "-o", out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert out.read_text() == "keep me"
    result = cli("tune", tmp_path / "pred.csv", tmp_path / "solution.csv", "-o", out, "-f")
    assert result.exit_code == 0, result.stderr
    assert "thresholds" in json.loads(out.read_text())


def test_tune_to_stdout_prints_only_the_document(cli, case):
    tmp_path, _, _ = case
    result = cli("tune", tmp_path / "pred.csv", tmp_path / "solution.csv", "-o", "-", "-q")
    assert result.exit_code == 0, result.stderr
    assert "thresholds" in json.loads(result.stdout)
    assert result.stderr == ""


def test_tune_errors(cli, case):
    tmp_path, _, gt = case
    write_picks_csv(tmp_path / "unscored.csv", gt)
    result = cli("tune", tmp_path / "unscored.csv", tmp_path / "solution.csv", "-o", tmp_path / "t.json")
    assert result.exit_code == 1 and "unscored.csv: no score column" in result.stderr
    assert not (tmp_path / "t.json").exists()
    result = cli("tune", tmp_path / "pred.csv", tmp_path / "solution.csv")
    assert result.exit_code == 2 and "-o" in result.stderr
    write_picks_csv(tmp_path / "one.csv", gt.where(experiment=gt.experiments[0]))
    result = cli("tune", tmp_path / "pred.csv", tmp_path / "one.csv", "--cv", "-o", tmp_path / "t.json")
    assert result.exit_code == 2 and "--cv needs" in result.stderr
