"""Everything meant for people goes to stderr: logs, tables, progress bars.

stdout is reserved for data (CSV, a score, a zarr stream).  Progress bars go quiet
when stderr is not a terminal, and ``-q`` silences informational logs.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)

_verbosity = 0  # -1 quiet, 0 normal, 1 verbose

T = TypeVar("T")


def set_verbosity(*, quiet: bool = False, verbose: bool = False) -> None:
    """Set the global log level from the ``-q`` / ``-v`` flags."""
    global _verbosity
    _verbosity = -1 if quiet else (1 if verbose else 0)


def info(message: str) -> None:
    """Log a line for people (hidden by ``-q``)."""
    if _verbosity >= 0:
        console.print(message, soft_wrap=True)


def debug(message: str) -> None:
    """Log a detail line (shown only with ``-v``)."""
    if _verbosity >= 1:
        console.print(f"[dim]{message}[/dim]", soft_wrap=True)


def warn(message: str) -> None:
    """Log a warning; shown even with ``-q``."""
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


# numpy's floating-point warnings: czii checks for non-finite values itself and says so.
NUMPY_FLOAT_WARNINGS = r"(invalid value|divide by zero|overflow|underflow) encountered"


@contextmanager
def user_warnings() -> Iterator[None]:
    """Show Python warnings to people as one stderr line each, without source lines.

    Inside the block numpy's floating-point warnings are dropped and any other warning
    is printed as ``warning: <message>``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NUMPY_FLOAT_WARNINGS, category=RuntimeWarning)
        warnings.showwarning = _show_warning
        yield


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    from rich.markup import escape

    warn(escape(f"{' '.join(str(message).split())} ({category.__name__})"))


def error_line(message: str) -> None:
    """Write the single error line for a failed command to stderr."""
    sys.stderr.write(f"czii: error: {message}\n")
    sys.stderr.flush()


def progress_enabled() -> bool:
    """Progress bars only make sense on an interactive stderr."""
    return _verbosity >= 0 and console.is_terminal


def make_progress() -> Progress:
    """A rich progress bar on stderr that is silent off a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not progress_enabled(),
        transient=False,
    )


def track(
    items: Iterable[T], *, description: str, total: int | None = None, progress: Progress | None = None
) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar on stderr.

    The bar is a task of ``progress`` when one is given (a display already showing other
    bars), else of its own display.
    """
    if progress is None:
        with make_progress() as own:
            yield from track(items, description=description, total=total, progress=own)
        return
    task = progress.add_task(description, total=total, status="")
    for item in items:
        yield item
        progress.advance(task)
