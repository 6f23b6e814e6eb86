"""The whole chain through the real CLI on a tiny simulated dataset, with a tiny model.

simulate -> normalize -> make-labels -> train -> predict-probs (streamed to stdout) ->
postprocess -> tune -> score, plus ensemble and view, as a user would chain them.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io.picks import read_picks, write_picks_csv
from czii_cli.io.volumes import VolumeRequest, read_volume
from czii_cli.picks import Picks, concat
from czii_cli.score import score_picks
from czii_cli.tune import tune_thresholds

RUNS = ("TS_sim_0", "TS_sim_1")
TINY_NET = ["--arch", "light", "--arch-param", "channels=[4,8]", "--patch", "16", "32", "32", "--batch-size", "1"]


def ok(result):
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two simulated runs, normalized and labelled by the commands themselves."""
    from typer.testing import CliRunner

    from czii_cli.main import app

    root = tmp_path_factory.mktemp("pipeline")
    runner = CliRunner()

    def cli(*args):
        return ok(runner.invoke(app, [str(a) for a in args]))

    cli("simulate", root / "sim", "--runs", 2, "--shape", 48, 96, 96, "--density", 4, "--layout", "both", "-q")
    (root / "data").mkdir()
    for run in RUNS:
        cli("normalize", root / "sim" / "train_images" / f"{run}.mrc", "-o", root / "data" / f"{run}.zarr", "-q")
        cli(
            "make-labels",
            root / "sim" / "train_annotations" / f"{run}.csv",
            "--like",
            root / "data" / f"{run}.zarr",
            "-o",
            root / "data" / f"{run}.labels.zarr",
            "-q",
        )
    return root


def test_true_heatmaps_postprocess_back_to_a_perfect_score(cli, project, tmp_path):
    # labels -> postprocess -> score closes the loop on coordinates: Å -> voxels -> Å.
    truth = project / "sim" / "train_annotations" / "TS_sim_0.csv"
    heat = tmp_path / "TS_sim_0.heat.zarr"
    ok(cli("make-labels", truth, "--like", project / "data" / "TS_sim_0.zarr", "--target", "heatmap", "-o", heat))
    ok(cli("postprocess", heat, "--threshold", "0.5", "-o", tmp_path / "picks.csv"))
    report = json.loads(ok(cli("score", tmp_path / "picks.csv", truth, "--format", "json")).stdout)
    reference = read_picks(truth, catalog=DEFAULT_CATALOG)
    for name, part in report["classes"].items():
        present = int(np.sum(reference.particle_type == name))
        assert (part["tp"], part["fp"], part["fn"]) == (present, 0, 0), name
    # Classes without references score 0 but keep their weight, as in the competition.
    present_weight = sum(c.weight for c in DEFAULT_CATALOG if c.name in set(reference.particle_type))
    assert report["score"] == pytest.approx(present_weight / sum(c.weight for c in DEFAULT_CATALOG))


def test_train_predict_postprocess_tune_score_ensemble_view(cli, project, tmp_path):
    model = tmp_path / "tiny.pt"
    ok(
        cli(
            "train",
            project / "data",
            "-o",
            model,
            *TINY_NET,
            "--val-runs",
            "TS_sim_1",
            "--max-steps",
            2,
            "--steps-per-epoch",
            2,
            "--seed",
            0,
            "-q",
        )
    )
    assert model.exists() and (tmp_path / "tiny.metrics.csv").exists()

    # czii predict-probs a.zarr -m tiny.pt > p.zarr; czii postprocess p.zarr --method kl-fit > pred.csv
    streamed = ok(cli("predict-probs", project / "data" / "TS_sim_1.zarr", "-m", model, "--tta", "flips", "-q"))
    probs = tmp_path / "p.zarr"
    probs.write_bytes(streamed.stdout_bytes)
    volume = read_volume(probs, VolumeRequest())
    assert volume.meta.kind == "probs" and volume.meta.run == "TS_sim_1"
    # the plan trained the light net for output stride 2: the map is on the grid binned by 2
    assert volume.shape == (7, 24, 48, 48) and volume.meta.voxel_size == 20.0
    assert np.allclose(np.asarray(volume.data[:], dtype=np.float32).sum(axis=0), 1.0, atol=5e-3)

    # At threshold 0 each class is one component, the whole volume: one pick per class.
    pred = tmp_path / "pred.csv"
    pred.write_text(ok(cli("postprocess", probs, "--method", "cc", "--threshold", "0.0", "-q")).stdout)
    with pred.open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["particle_type"] for row in rows) == sorted(DEFAULT_CATALOG.names)
    assert {row["experiment"] for row in rows} == {"TS_sim_1"}

    truth = project / "sim" / "train_annotations" / "TS_sim_1.csv"
    thresholds = tmp_path / "thresholds.json"
    references = read_picks(truth, catalog=DEFAULT_CATALOG)
    ok(cli("tune", pred, truth, "-o", thresholds, "-q"))
    written = json.loads(thresholds.read_text())["thresholds"]
    assert written == tune_thresholds(read_picks(pred, catalog=DEFAULT_CATALOG), references, DEFAULT_CATALOG).thresholds
    # Every reference found at score 0.8, and a false pick 3000 Å away from each at 0.3:
    # under the exact-optimum rule each class present gets a cutoff that keeps exactly the true picks.
    scored = tmp_path / "scored.csv"
    far = np.array([3000.0, 0.0, 0.0])
    write_picks_csv(
        scored,
        concat(
            [
                Picks(references.experiment, references.particle_type, references.xyz, np.full(len(references), 0.8)),
                Picks(
                    references.experiment, references.particle_type, references.xyz + far, np.full(len(references), 0.3)
                ),
            ]
        ),
    )
    ok(cli("tune", scored, truth, "--rule", "best", "-o", tmp_path / "scored.json", "-q"))
    written = json.loads((tmp_path / "scored.json").read_text())["thresholds"]
    assert (
        written
        == tune_thresholds(
            read_picks(scored, catalog=DEFAULT_CATALOG), references, DEFAULT_CATALOG, rule="best"
        ).thresholds
    )
    assert len(references.particle_types) >= 2
    assert written == {name: 0.6 for name in references.particle_types}  # 0.55 rounded within the gap

    printed = float(ok(cli("score", pred, truth)).stdout.strip().splitlines()[-1])
    expected = score_picks(
        read_picks(pred, catalog=DEFAULT_CATALOG), read_picks(truth, catalog=DEFAULT_CATALOG), DEFAULT_CATALOG
    ).score
    assert printed == pytest.approx(expected, abs=1e-6)

    # An ensemble of a map with itself is that map.
    ok(cli("ensemble", probs, probs, "-o", tmp_path / "e.zarr", "--mode", "mean", "-q"))
    ensembled = read_volume(tmp_path / "e.zarr", VolumeRequest())
    np.testing.assert_array_equal(np.asarray(ensembled.data[:]), np.asarray(volume.data[:]))

    # view overlays a map on its tomogram's grid: a full-resolution one
    full = tmp_path / "full.zarr"
    ok(cli("predict-probs", project / "data" / "TS_sim_1.zarr", "-m", model, "--output-stride", "1", "-o", full, "-q"))
    assert read_volume(full, VolumeRequest()).shape == (7, 48, 96, 96)
    ok(
        cli(
            "view",
            project / "data" / "TS_sim_1.zarr",
            "--probs",
            full,
            "--picks",
            pred,
            "--gt",
            truth,
            "-o",
            tmp_path / "view.png",
            "-q",
        )
    )
    assert (tmp_path / "view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
