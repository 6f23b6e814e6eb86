"""The batch runner: serial, local processes and Dask give the same results."""

from __future__ import annotations

import os
import time
from pathlib import Path

from batch_jobs import write_square

from czii_cli.batch import WORKER_DIED, Job, run_jobs
from czii_cli.io.atomic import atomic_path


def _jobs(folder: Path, values) -> list[Job]:
    return [
        Job(f"input-{v}", folder / f"{v}.txt", write_square, {"value": v, "output": folder / f"{v}.txt"})
        for v in values
    ]


def test_serial_runs_every_job_and_reports_failures_by_name(tmp_path):
    report = run_jobs(_jobs(tmp_path, [1, 13, 3]))
    assert report.done == ["input-1", "input-3"]
    assert report.failed == {"input-13": "input-13: unlucky input"}
    assert report.results == {"input-1": 1, "input-3": 9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.txt", "3.txt"]


def test_skip_existing_skips_complete_outputs_only(tmp_path):
    (tmp_path / "1.txt").write_text("1")
    (tmp_path / ".2.txt.partial-99-deadbeef").write_text("half")  # what a killed worker leaves
    report = run_jobs(_jobs(tmp_path, [1, 2]), skip_existing=True)
    assert report.skipped == ["input-1"]
    assert report.done == ["input-2"]
    assert (tmp_path / "2.txt").read_text() == "4"


def test_process_pool_matches_serial(tmp_path):
    serial, pooled = tmp_path / "serial", tmp_path / "pooled"
    serial.mkdir(), pooled.mkdir()
    a = run_jobs(_jobs(serial, [1, 2, 13, 4]))
    b = run_jobs(_jobs(pooled, [1, 2, 13, 4]), workers=2)
    assert sorted(b.done) == a.done and b.failed == a.failed
    assert {p.name: p.read_text() for p in serial.iterdir()} == {p.name: p.read_text() for p in pooled.iterdir()}


def test_dask_local_cluster_matches_serial(tmp_path):
    import distributed

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        report = run_jobs(_jobs(tmp_path, [1, 2, 13]), scheduler=cluster.scheduler_address)
    assert sorted(report.done) == ["input-1", "input-2"]
    assert report.failed == {"input-13": "input-13: unlucky input"}
    assert (tmp_path / "2.txt").read_text() == "4"


def write_half_then_die(value: int, output: Path) -> None:
    """A job whose worker is killed part-way through writing its output."""
    with atomic_path(Path(output), overwrite=False) as tmp:
        tmp.write_text("half")
        os._exit(9)


def slow_square(value: int, output: Path) -> int:
    """write_square, slow enough to be in flight when its neighbour's worker dies."""
    time.sleep(0.5)
    return write_square(value, output)


def test_a_killed_local_worker_fails_only_its_job_and_leaves_no_output(tmp_path):
    jobs = _jobs(tmp_path, [1, 2, 3, 4])
    jobs[0] = Job("input-1", tmp_path / "1.txt", slow_square, {"value": 1, "output": tmp_path / "1.txt"})
    jobs[1] = Job("input-2", tmp_path / "2.txt", write_half_then_die, {"value": 2, "output": tmp_path / "2.txt"})
    report = run_jobs(jobs, workers=2)
    assert sorted(report.done) == ["input-1", "input-3", "input-4"]
    assert report.failed == {"input-2": WORKER_DIED}
    assert not (tmp_path / "2.txt").exists()
    assert [p.name for p in tmp_path.glob(".2.txt.partial-*")]  # the leftover is not an output
    again = run_jobs(_jobs(tmp_path, [1, 2, 3, 4]), workers=2, skip_existing=True)
    assert again.skipped == ["input-1", "input-3", "input-4"] and again.done == ["input-2"]
    assert (tmp_path / "2.txt").read_text() == "4"
