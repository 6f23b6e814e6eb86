"""Batch options and one progress bar for commands that process many inputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, overload

import typer

from ..batch import BatchReport, Job, run_jobs
from ..errors import UsageError
from ..io.atomic import is_stdout

Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Address of a Dask distributed scheduler (tcp://host:8786); each input is one task. "
        "Outputs must be on a filesystem the workers share.",
        show_default=False,
    ),
]
SkipExisting = Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output is already complete.")]


def check_batch_options(*, scheduler: str | None, skip_existing: bool, overwrite: bool, stdin: bool) -> None:
    """Refuse batch options that contradict each other or the inputs (a UsageError)."""
    if skip_existing and overwrite:
        raise UsageError("--skip-existing keeps complete outputs and --overwrite replaces them; choose one")
    if scheduler is not None and stdin:
        raise UsageError("--scheduler workers cannot read this process's stdin; pass input files")


@overload
def absolute(path: Path) -> Path: ...
@overload
def absolute(path: Path | str) -> Path | str: ...
def absolute(path: Path | str) -> Path | str:
    """``path`` made absolute (``-`` kept), so that workers elsewhere find it."""
    return path if is_stdout(path) else Path(path).absolute()


def run_with_progress(
    jobs: Sequence[Job],
    *,
    workers: int,
    scheduler: str | None,
    skip_existing: bool,
    description: str,
    on_done: Callable[[str, Any], None] | None = None,
) -> BatchReport:
    """Run jobs under one progress bar (done, failed, remaining); report failures by name.

    Skipped inputs are logged; each failure is a warning with its reason (shown even
    with ``-q``), and the others go on.

    Parameters
    ----------
    jobs : sequence of Job
        One per input, with unique names.
    workers, scheduler, skip_existing :
        As in :func:`czii_cli.batch.run_jobs`.
    description : str
        The progress bar's label.
    on_done : callable, optional
        Called as ``on_done(name, result)`` for each finished job, in the order of
        ``jobs``, once the bar is closed (to log what each job made).

    Returns
    -------
    BatchReport
        Raises a DataError (exit 1) instead, after all jobs ended, if any failed.
    """
    from ..console import info, make_progress, warn
    from ..errors import DataError

    with make_progress() as progress:
        task = progress.add_task(description, total=len(jobs), status="")

        def update(report: BatchReport, remaining: int) -> None:
            skipped = f" · skipped {len(report.skipped)}" if report.skipped else ""
            progress.update(
                task,
                completed=len(report.done) + len(report.failed) + len(report.skipped),
                status=f"done {len(report.done)}{skipped} · failed {len(report.failed)} · remaining {remaining}",
            )

        report = run_jobs(
            jobs,
            workers=workers,
            scheduler=scheduler,
            skip_existing=skip_existing,
            description=description,
            on_progress=update,
        )
        update(report, 0)
    for job in jobs:
        if job.name in report.results and on_done is not None:
            on_done(job.name, report.results[job.name])
    for name in report.skipped:
        info(f"skipped {name}: output exists")
    for name, message in report.failed.items():  # shown even with -q
        warn(f"[red]failed[/red] {name}: {message}")
    if report.failed:
        names = ", ".join(report.failed)
        raise DataError(f"{len(report.failed)} of {len(jobs)} inputs failed: {names}")
    return report
