"""Atomic outputs: write to a temporary sibling, rename into place on success.

A killed process or a failed command leaves either the old output or none, never a
half-written one; an existing output is only replaced with ``--overwrite``.  So an
output that exists under its name is complete, which is what ``--skip-existing``
trusts.  The temporary is a hidden sibling, ``.NAME.partial-PID-RANDOM`` (a file or a
directory, such as a zarr store), never taken for the output; one left by a killed
process can be deleted once nothing writes to the folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import UsageError


def is_stdout(target: Path | str | None) -> bool:
    """True when ``target`` names standard output (``-``)."""
    return target is not None and str(target) == "-"


def check_output(path: Path, *, overwrite: bool) -> None:
    """Refuse to replace an existing output unless ``overwrite`` is set."""
    if is_stdout(path):
        return
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: output exists; pass --overwrite to replace it")
    if not path.parent.exists():
        raise UsageError(f"{path}: the folder {path.parent} does not exist")


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name next to ``path``, on the same filesystem."""
    return path.parent / f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextmanager
def atomic_path(path: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block succeeds.

    The temporary may become a file or a directory.  On any exception it is removed and
    ``path`` is left untouched.
    """
    path = Path(path)
    check_output(path, overwrite=overwrite)
    tmp = temporary_sibling(path)
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    if path.exists():
        trash = temporary_sibling(path)
        os.replace(path, trash)
        os.replace(tmp, path)
        remove_path(trash)
    else:
        os.replace(tmp, path)


@contextmanager
def atomic_text(target: Path | str, *, overwrite: bool) -> Iterator[IO[str]]:
    """Open a text output: stdout for ``-``, else an atomic file."""
    if is_stdout(target):
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_path(Path(target), overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as handle:
            yield handle
