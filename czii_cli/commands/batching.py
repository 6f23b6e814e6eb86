"""Batch options and one progress bar for commands that process many inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from ..batch import BatchReport, Job, run_jobs

Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Address of a Dask distributed scheduler (tcp://host:8786); each input is one task. "
        "Outputs must be on a filesystem the workers share.",
        show_default=False,
    ),
]
SkipExisting = Annotated[
    bool, typer.Option("--skip-existing", help="Skip inputs whose output is already complete.")
]


def run_with_progress(
    jobs: Sequence[Job], *, workers: int, scheduler: str | None, skip_existing: bool, description: str
) -> BatchReport:
    """Run jobs under one progress bar (done, failed, remaining); report failures by name.

    Raises a DataError (exit 1) after all jobs ended if any failed.
    """
    from ..console import info, make_progress
    from ..errors import DataError

    with make_progress() as progress:
        task = progress.add_task(description, total=len(jobs), status="")

        def update(report: BatchReport, remaining: int) -> None:
            progress.update(
                task,
                completed=len(report.done) + len(report.failed) + len(report.skipped),
                status=f"done {len(report.done)} · failed {len(report.failed)} · remaining {remaining}",
            )

        report = run_jobs(
            jobs, workers=workers, scheduler=scheduler, skip_existing=skip_existing,
            description=description, on_progress=update,
        )
        update(report, 0)
    for name in report.skipped:
        info(f"skipped {name}: output exists")
    for name, message in report.failed.items():
        info(f"[red]failed[/red] {name}: {message}")
    if report.failed:
        names = ", ".join(report.failed)
        raise DataError(f"{len(report.failed)} of {len(jobs)} inputs failed: {names}")
    return report
