"""Run one job per input over many inputs: serially, in local processes, or on Dask.

Each job reads one input and writes one output, atomically (outputs are renamed into
place only when complete), so a finished output is always whole and ``skip_existing``
can trust what it finds.  A failing job is reported by name and the others go on.

``scheduler`` is the address of an existing Dask distributed scheduler (for SLURM or
PBS, start one with dask-jobqueue); each input is one task, and outputs are written
where the task runs, so they must be on a filesystem all workers share.

Workers split the cores: each of ``workers`` local processes gets cores / workers
threads, and a Dask task shares its worker's cores with the tasks that may run beside
it.  A local worker that dies fails only the job it was running.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .errors import CziiError, UsageError

WORKER_DIED = "its worker process died (killed, or out of memory)"

ProgressCallback = Callable[["BatchReport", int], None]


@dataclass(frozen=True)
class Job:
    """One unit of batch work: ``function(**kwargs)`` producing ``output``."""

    name: str
    output: Path | None
    function: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchReport:
    """What happened to each job, by name."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def pending_jobs(jobs: Sequence[Job], *, skip_existing: bool) -> tuple[list[Job], list[str]]:
    """Split jobs into those to run and those whose output is complete (when skipping).

    Only a whole output is skipped (:func:`czii_cli.io.artifacts.output_is_complete`): an
    empty folder or a CSV without its header is not.
    """
    from .io.artifacts import output_is_complete

    if not skip_existing:
        return list(jobs), []
    todo, skipped = [], []
    for job in jobs:
        (skipped.append(job.name) if job.output is not None and output_is_complete(job.output) else todo.append(job))
    return todo, skipped


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    skip_existing: bool = False,
    description: str = "jobs",
    on_progress: ProgressCallback | None = None,
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


def _run_pool(todo: list[Job], workers: int, report: BatchReport, on_progress: ProgressCallback | None) -> None:
    """Run jobs in spawned local processes, at most ``workers`` at a time.

    A worker that dies (killed, out of memory) breaks the pool and takes the jobs in
    flight with it.  A job that was alone in flight is the culprit and fails; when
    several were, each is rerun alone in a fresh pool, so only the culprit fails and
    the batch goes on.
    """
    total = len(todo)

    def progress() -> None:
        if on_progress:
            on_progress(report, total - len(report.done) - len(report.failed))

    queue = deque(todo)
    while queue:
        lost = _pool_round(queue, workers, report, progress)
        if len(lost) == 1:
            _record(report, lost[0].name, False, WORKER_DIED)
            progress()
        elif lost:
            for job in lost:
                if _pool_round(deque([job]), 1, report, progress):
                    _record(report, job.name, False, WORKER_DIED)
                    progress()


def _pool_round(queue: deque[Job], workers: int, report: BatchReport, progress: Callable[[], None]) -> list[Job]:
    """Run jobs from ``queue`` in one process pool until it is empty or the pool breaks.

    Returns the jobs that were in flight when a worker died (none if none did).
    """
    # spawn: torch and BLAS thread pools do not survive fork safely.
    threads = max(1, _cpu_count() // workers)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_limit_threads, initargs=(threads,)
    ) as pool:
        running: dict[Future[tuple[bool, Any]], Job] = {}
        lost: list[Job] = []
        while (queue or running) and not lost:
            while queue and len(running) < workers:  # nothing queued in the pool: in flight = running
                job = queue.popleft()
                running[pool.submit(_call, job)] = job
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            if any(isinstance(future.exception(), BrokenProcessPool) for future in finished):
                finished, _ = wait(running)  # a broken pool fails every future in flight
            for future in finished:
                job = running.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    lost.append(job)
                    continue
                if error is None:
                    _record(report, job.name, *future.result())
                else:  # the result could not come back (e.g. it does not pickle)
                    _record(report, job.name, False, f"worker failed: {type(error).__name__}: {error}")
                progress()
    return lost


def _cpu_count() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _limit_threads(threads: int) -> None:
    """Size the thread pools of a worker: OpenMP/BLAS through the environment, torch directly.

    Set before torch is first imported, the environment sizes its pool; a torch that is
    already imported is told directly.
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _call_on_dask(job: Job, slots_per_host: dict[str, int]) -> tuple[bool, Any]:
    """Run one job in a Dask worker, its cores shared among the tasks that may run beside it.

    A worker bound to part of the machine (as batch systems bind their jobs) shares its
    cores among its own threads; one that sees the whole machine shares it with the
    threads of every worker on its host (``slots_per_host``, from the client).
    """
    from distributed import get_worker
    from distributed.comm.addressing import get_address_host

    worker = get_worker()
    cores, slots = _cpu_count(), worker.state.nthreads
    if cores >= (os.cpu_count() or cores):
        slots = max(slots, slots_per_host.get(get_address_host(worker.address), slots))
    _limit_threads(max(1, cores // slots))
    return _call(job)


def _slots_per_host(nthreads: dict[str, int]) -> dict[str, int]:
    """Worker threads (task slots) per host, from ``Client.nthreads()``."""
    from distributed.comm.addressing import get_address_host

    slots: dict[str, int] = {}
    for address, count in nthreads.items():
        host = get_address_host(address)
        slots[host] = slots.get(host, 0) + count
    return slots


def _run_dask(todo: list[Job], address: str, report: BatchReport, on_progress: ProgressCallback | None) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError(f"scheduler {address}: needs dask distributed: pip install 'czii[cluster]'") from None
    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as err:
        raise UsageError(f"cannot reach the Dask scheduler at {address} ({err})") from None
    run = uuid.uuid4().hex[:8]  # keys unique per run: another run's same-named job is another task
    with client:
        slots = _slots_per_host(client.nthreads())
        futures = {
            client.submit(_call_on_dask, job, slots, key=f"czii-{job.name}-{run}-{index}", pure=False): job
            for index, job in enumerate(todo)
        }
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
