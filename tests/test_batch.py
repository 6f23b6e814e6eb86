"""The batch runner: serial, local processes and Dask give the same results."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from batch_jobs import write_square  # noqa: E402

from czii_cli.batch import Job, run_jobs  # noqa: E402


def _jobs(folder: Path, values) -> list[Job]:
    return [Job(f"input-{v}", folder / f"{v}.txt", write_square, {"value": v, "output": folder / f"{v}.txt"}) for v in values]


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

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        report = run_jobs(_jobs(tmp_path, [1, 2, 13]), scheduler=cluster.scheduler_address)
    assert sorted(report.done) == ["input-1", "input-2"]
    assert report.failed == {"input-13": "input-13: unlucky input"}
    assert (tmp_path / "2.txt").read_text() == "4"
