"""Scale out: predict-probs and postprocess over many tomograms with -j, a Dask cluster,
--skip-existing after a killed worker, and failures reported by name."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import make_model
from typer.testing import CliRunner

from czii_cli.io.artifacts import read_artifact
from czii_cli.io.volumes import VolumeRequest, write_mrc
from czii_cli.main import app

RUNS = [f"TS_{i}" for i in range(4)]
THRESHOLD = ("--threshold", "0.145")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Four tiny tomograms, a tiny model, and the serial outputs to compare with."""
    root = tmp_path_factory.mktemp("scaleout")
    rng = np.random.default_rng(7)
    for run in RUNS:
        write_mrc(root / f"{run}.mrc", (rng.normal(size=(10, 12, 14)) * 4 + 20).astype(np.float32), voxel_size=10.0)
    tomograms = [root / f"{run}.mrc" for run in RUNS]
    model = make_model(root / "m.pt")
    runner = CliRunner()
    serial = runner.invoke(app, ["predict-probs", *map(str, tomograms), "-m", str(model), "-o", str(root / "probs")])
    assert serial.exit_code == 0, serial.stderr
    maps = [root / "probs" / f"{run}.zarr" for run in RUNS]
    per_input = runner.invoke(app, ["postprocess", *map(str, maps), *THRESHOLD, "-o", f"{root}/picks/"])
    merged = runner.invoke(app, ["postprocess", *map(str, maps), *THRESHOLD])
    assert per_input.exit_code == 0 and merged.exit_code == 0, per_input.stderr + merged.stderr
    assert merged.stdout.count("\n") > 4, "the tiny maps should give some picks"
    return SimpleNamespace(root=root, tomograms=tomograms, model=model, maps=maps, csv=merged.stdout)


def same_probs(folder: Path, reference: Path) -> None:
    """``folder`` holds exactly the artifacts of ``reference``, array-equal (and no leftovers)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in reference.iterdir())
    for artifact in reference.iterdir():
        np.testing.assert_array_equal(read_artifact(folder / artifact.name).load(), read_artifact(artifact).load())


def same_csvs(folder: Path, reference: Path) -> None:
    assert {p.name: p.read_text() for p in folder.iterdir()} == {p.name: p.read_text() for p in reference.iterdir()}


def test_a_dask_cluster_gives_the_serial_outputs(cli, project, tmp_path, monkeypatch):
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        monkeypatch.chdir(tmp_path)  # relative paths here; the workers started elsewhere
        probs = cli("predict-probs", *project.tomograms, "-m", project.model, "-o", "probs/", "--scheduler", address)
        assert probs.exit_code == 0, probs.stderr
        maps = [Path("probs") / f"{run}.zarr" for run in RUNS]
        picks = cli("postprocess", *maps, *THRESHOLD, "-o", "picks/", "--scheduler", address)
        merged = cli("postprocess", *maps, *THRESHOLD, "--scheduler", address)
    assert probs.stdout == "" and picks.stdout == ""
    assert picks.exit_code == 0 and merged.exit_code == 0, picks.stderr + merged.stderr
    same_probs(tmp_path / "probs", project.root / "probs")
    same_csvs(tmp_path / "picks", project.root / "picks")
    assert merged.stdout == project.csv


def test_local_workers_give_the_serial_outputs(cli, project, tmp_path):
    # postprocess -j 2 is in test_postprocess_cli.py; each pool of workers costs a torch import
    probs = cli("predict-probs", *project.tomograms, "-m", project.model, "-o", tmp_path / "probs", "-j", "2")
    assert probs.exit_code == 0, probs.stderr
    same_probs(tmp_path / "probs", project.root / "probs")
    assert (
        f"TS_3.mrc: 1 tile (halo 20x20x20) of 12x12x16 x 1 model(s) x none TTA -> {tmp_path / 'probs' / 'TS_3.zarr'}"
        in probs.stderr
    )


class _DiesAfterOneWrite:
    """An output array whose first write lands on disk, then the process dies (kill -9 style)."""

    def __init__(self, array):
        self.array = array

    def __getattr__(self, name):
        return getattr(self.array, name)

    def __setitem__(self, key, value):
        self.array[key] = value
        os._exit(9)


def predict_then_die(**kwargs) -> None:
    """The predict-probs batch job, in a worker that is killed part-way through writing."""
    from czii_cli.predict_probs import job

    predict_into = job.predict_into

    def dying(members, volume, output, **options):
        return predict_into(members, volume, lambda channels: _DiesAfterOneWrite(output(channels)), **options)

    job.predict_into = dying
    job.predict_job(**kwargs)


def test_a_killed_worker_leaves_nothing_skip_existing_accepts(cli, project, tmp_path):
    from czii_cli.predict_probs.job import PredictSettings

    probs = tmp_path / "probs"
    probs.mkdir()
    for run in RUNS[:2]:  # two complete outputs from an earlier run
        os.symlink(project.root / "probs" / f"{run}.zarr", probs / f"{run}.zarr")
    worker = multiprocessing.get_context("spawn").Process(
        target=predict_then_die,
        kwargs={
            "path": project.tomograms[2],
            "request": VolumeRequest(),
            "target": probs / "TS_2.zarr",
            "settings": PredictSettings(models=(project.model,), window=(8, 8, 8)),
        },
    )
    worker.start()
    worker.join(120)
    assert worker.exitcode == 9
    (partial,) = [p for p in probs.iterdir() if p.name.startswith(".TS_2.zarr.")]
    assert any(p.is_file() and p.name != "zarr.json" for p in partial.rglob("*")), "some chunks were written"
    assert not (probs / "TS_2.zarr").exists()

    rerun = cli("predict-probs", *project.tomograms, "-m", project.model, "-o", probs, "--skip-existing")
    assert rerun.exit_code == 0, rerun.stderr
    assert "skipped TS_0: output exists" in rerun.stderr and "skipped TS_1: output exists" in rerun.stderr
    assert all((probs / f"{run}.zarr").is_symlink() for run in RUNS[:2])  # the complete ones were left alone
    partial.rename(tmp_path / partial.name)  # the killed worker's leftover is no output
    same_probs(probs, project.root / "probs")


def test_a_failing_tomogram_is_reported_by_name_and_the_others_are_written(cli, project, tmp_path):
    truncated = tmp_path / "TS_cut.mrc"
    write_mrc(truncated, np.ones((10, 12, 14), np.float32), voxel_size=10.0)
    truncated.write_bytes(truncated.read_bytes()[:-500])
    (tmp_path / "TS_junk.mrc").write_bytes(b"not a tomogram")
    inputs = [*project.tomograms[:2], truncated, tmp_path / "TS_junk.mrc", *project.tomograms[2:]]
    result = cli("predict-probs", *inputs, "-m", project.model, "-o", tmp_path / "probs")
    assert result.exit_code == 1
    assert f"failed TS_cut: {truncated}: not a readable MRC file" in result.stderr
    assert f"failed TS_junk: {tmp_path / 'TS_junk.mrc'}: not a readable MRC file" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "czii: error: 2 of 6 inputs failed: TS_cut, TS_junk"
    assert result.stdout == ""
    same_probs(tmp_path / "probs", project.root / "probs")

    (tmp_path / "bad.zarr").write_bytes(b"PK\x03\x04 not really a zip")
    maps = [*project.maps[:2], tmp_path / "bad.zarr", *project.maps[2:]]
    picks = cli("postprocess", *maps, *THRESHOLD, "-o", f"{tmp_path}/picks/")
    assert picks.exit_code == 1 and f"failed {tmp_path / 'bad.zarr'}: " in picks.stderr
    same_csvs(tmp_path / "picks", project.root / "picks")
    merged = cli("postprocess", *maps, *THRESHOLD, "-o", tmp_path / "picks.csv")
    assert merged.exit_code == 1 and not (tmp_path / "picks.csv").exists()  # no partial submission


def test_skip_existing_with_one_merged_csv_skips_the_whole_command(cli, project, tmp_path):
    (tmp_path / "picks.csv").write_text("old")
    result = cli("postprocess", *project.maps, "-o", tmp_path / "picks.csv", "--skip-existing")
    assert result.exit_code == 0 and "skipped 4 input(s)" in result.stderr
    assert (tmp_path / "picks.csv").read_text() == "old"
    result = cli("postprocess", *project.maps[:1], "-o", tmp_path / "new.csv", "--skip-existing")
    assert result.exit_code == 0 and (tmp_path / "new.csv").exists()


@pytest.mark.parametrize(
    "command, args, message",
    [
        ("postprocess", ["--skip-existing"], "--skip-existing needs an output on disk"),
        ("postprocess", ["--skip-existing", "-f", "-o", "x.csv"], "choose one"),
        ("predict-probs", ["-o", "-", "--scheduler", "tcp://127.0.0.1:1"], "need an output on disk"),
        ("predict-probs", ["--skip-existing", "-f", "-o", "p.zarr"], "choose one"),
    ],
)
def test_contradictory_batch_options_are_usage_errors(cli, project, tmp_path, monkeypatch, command, args, message):
    monkeypatch.chdir(tmp_path)
    inputs = project.maps[:1] if command == "postprocess" else [*project.tomograms[:1], "-m", project.model]
    result = cli(command, *inputs, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
