"""Run one job per input over many inputs: serially, in local processes, or on Dask.

Each job reads one input and writes one output, atomically (outputs are renamed into
place only when complete), so a finished output is always whole and ``skip_existing``
can trust what it finds.  A failing job is reported by name and the others go on.

``scheduler`` is the address of an existing Dask distributed scheduler (for SLURM or
PBS, start one with dask-jobqueue); each input is one task, and outputs are written
where the task runs, so they must be on a filesystem all workers share.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .errors import CziiError, UsageError


@dataclass(frozen=True)
class Job:
    """One unit of batch work: ``function(**kwargs)`` producing ``output``."""

    name: str
    output: Path | None
    function: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)


@dataclass
class BatchReport:
    """What happened to each job, by name."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def pending_jobs(jobs: Sequence[Job], *, skip_existing: bool) -> tuple[list[Job], list[str]]:
    """Split jobs into those to run and those whose output already exists (when skipping)."""
    if not skip_existing:
        return list(jobs), []
    todo, skipped = [], []
    for job in jobs:
        (skipped.append(job.name) if job.output is not None and job.output.exists() else todo.append(job))
    return todo, skipped


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    skip_existing: bool = False,
    description: str = "jobs",
    on_progress: Callable[[BatchReport, int], None] | None = None,
) -> BatchReport:
    """Run ``jobs`` and collect their results.

    Parameters
    ----------
    jobs : sequence of Job
        Functions must be importable top-level callables (they are pickled for workers).
    workers : int
        Local worker processes when no scheduler is given; 1 runs in this process.
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``).
    skip_existing : bool
        Do not rerun jobs whose output exists.
    on_progress : callable, optional
        Called as ``on_progress(report, remaining)`` after each job ends.
    """
    todo, skipped = pending_jobs(jobs, skip_existing=skip_existing)
    report = BatchReport(skipped=skipped)
    if scheduler is not None:
        _run_dask(todo, scheduler, report, on_progress)
    elif workers > 1 and len(todo) > 1:
        _run_pool(todo, workers, report, on_progress)
    else:
        for index, job in enumerate(todo):
            _record(report, job.name, *_call(job))
            if on_progress:
                on_progress(report, len(todo) - index - 1)
    return report


def _call(job: Job) -> tuple[bool, Any]:
    """Run one job; a czii error becomes a failure message, anything else too (by name)."""
    try:
        return True, job.function(**job.kwargs)
    except CziiError as err:
        return False, str(err)
    except Exception as err:  # a worker must report, not kill the batch
        return False, f"{type(err).__name__}: {err}"


def _record(report: BatchReport, name: str, ok: bool, value: Any) -> None:
    if ok:
        report.done.append(name)
        report.results[name] = value
    else:
        report.failed[name] = str(value)


def _run_pool(todo: list[Job], workers: int, report: BatchReport, on_progress) -> None:
    # spawn: torch and BLAS thread pools do not survive fork safely.
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_limit_threads, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(_call, job): job for job in todo}
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in finished:
                job = futures[future]
                try:
                    _record(report, job.name, *future.result())
                except Exception as err:  # the worker process itself died
                    _record(report, job.name, False, f"worker died: {type(err).__name__}: {err}")
                if on_progress:
                    on_progress(report, len(remaining))


def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass


def _run_dask(todo: list[Job], address: str, report: BatchReport, on_progress) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--scheduler needs dask distributed: pip install 'czii[cluster]'") from None
    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise UsageError(f"cannot reach the Dask scheduler at {address} ({err})") from None
    with client:
        futures = {client.submit(_call, job, key=f"czii-{job.name}-{index}", pure=False): job
                   for index, job in enumerate(todo)}
        remaining = len(futures)
        for future in as_completed(futures):
            job = futures[future]
            remaining -= 1
            try:
                _record(report, job.name, *future.result())
            except Exception as err:  # the task was lost with its worker
                _record(report, job.name, False, f"task failed: {type(err).__name__}: {err}")
            if on_progress:
                on_progress(report, remaining)
