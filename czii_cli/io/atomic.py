"""Atomic outputs: write to a temporary sibling, move into place on success.

A killed process or a failed command leaves either the old output or none, never a
half-written one; an existing output is only replaced with ``--overwrite``.  So an
output that exists under its name is complete, which is what ``--skip-existing``
trusts.  The temporary is a hidden sibling, ``.NAME.partial-PID-RANDOM`` (a file or a
directory, such as a zarr store), never taken for the output (readers refuse such
names); one left by a killed process can be deleted once nothing writes to the folder.

One mechanism serves every writing command:

* :func:`check_output` refuses, before any work, an output that exists (unless
  overwriting), a name that is no file name (``.``), a folder that is not a czii output
  (even when overwriting), and a folder it cannot write to;
* :func:`atomic_path` removes the temporary on every failure path and turns an
  ``OSError`` (disk full, read-only disk, permission denied) into an :class:`OutputError`
  naming the output;
* the final name is created exclusively: when another run created it meanwhile, this
  run fails instead of silently replacing it (unless overwriting).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import DataError, OutputExistsError, UsageError

PARTIAL = re.compile(r"^\..+\.partial-\d+-[0-9a-f]{8}(\..*)?$")
"""Names of temporaries (and of their scratch folders): never an input, never an output."""

MARKER = ".czii-output.json"
"""Marks a folder czii wrote that is not a zarr store (a simulated project), so that
``--overwrite`` may replace it; any other ordinary folder is never replaced."""

RACE = " (another run created it while this one was writing)"
"""What an output-exists error adds when the output appeared while czii wrote it."""


class OutputError(DataError):
    """An output could not be written: disk full, read-only, no permission, closed pipe.

    ``target`` is the output (or ``-``) and ``reason`` the problem in words.
    """

    def __init__(self, message: str, *, target: Path | str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.target, self.reason = target, reason


def is_stdout(target: Path | str | None) -> bool:
    """True when ``target`` names standard output (``-``)."""
    return target is not None and str(target) == "-"


def is_partial_name(path: Path | str) -> bool:
    """True for the hidden temporary name of an unfinished output.

    Examples
    --------
    >>> is_partial_name(".p.zarr.partial-123-0a1b2c3d"), is_partial_name("p.zarr")
    (True, False)
    """
    return bool(PARTIAL.match(Path(path).name))


def refuse_partial(path: Path | str) -> None:
    """A DataError for the hidden temporary of an unfinished output, named as an input."""
    if is_partial_name(path):
        raise DataError(f"{path}: the temporary of an unfinished czii output (its run did not finish); not an input")


def os_reason(err: OSError) -> str:
    """The problem an OSError reports, in words (``No space left on device``)."""
    if isinstance(err, BrokenPipeError) or err.errno == errno.EPIPE:
        return "broken pipe (the reading program closed it before all output was written)"
    return err.strerror or (os.strerror(err.errno) if err.errno else str(err) or type(err).__name__)


def write_error(target: Path | str, err: OSError, *, scratch: Path | None = None) -> OutputError:
    """The error to raise when writing ``target`` failed with ``err``.

    The message names ``target``, unless ``err`` is about another file (not the
    temporary ``scratch`` of ``target``), which it then names instead.
    """
    about = err.filename
    if about is not None and scratch is not None and str(about).startswith(str(scratch)):
        about = None
    reason = os_reason(err)
    if about is not None and str(about) != str(target):
        return OutputError(f"{about}: {reason}", target=about, reason=reason)
    name = "stdout" if is_stdout(target) else target
    return OutputError(f"{name}: cannot write: {reason}", target=target, reason=reason)


def is_czii_folder(path: Path) -> bool:
    """True for a folder czii wrote: a zarr store with czii metadata, or one with the marker."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            document = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        attributes = document.get(key, {}) if key and isinstance(document, dict) else document
        if isinstance(attributes, dict) and "czii" in attributes:
            return True
    return False


def check_output(path: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, an output that cannot or may not be written.

    Raises a UsageError when ``path`` exists (a dangling symbolic link included) and
    ``overwrite`` is false; when it is a folder that is not a czii output, or holds the
    working folder, even if ``overwrite`` is true; when it names no file (``.``); and
    when its folder does not exist.  Raises an OutputError when that folder cannot be
    written to.
    """
    if is_stdout(path):
        return
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise UsageError(f"{path}: names a folder, not an output; give the output a name")
    if os.path.lexists(path):
        if not overwrite:
            raise OutputExistsError(path)
        if path.is_dir() and not path.is_symlink():
            if _working_folder().is_relative_to(path.resolve()):
                raise UsageError(f"{path}: holds the working folder; refusing to replace it")
            if not is_czii_folder(path):
                raise UsageError(
                    f"{path}: a folder that czii did not write; refusing to replace it (remove it "
                    "yourself or choose another output)"
                )
    if not path.parent.is_dir():
        raise UsageError(f"{path}: the folder {path.parent} does not exist")
    check_writable(path.parent, output=path)


def _working_folder() -> Path:
    try:
        return Path.cwd().resolve()
    except OSError:  # the working folder was deleted
        return Path("/nonexistent-working-folder")


def check_writable(folder: Path, *, output: Path | None = None) -> None:
    """Create and delete a probe file in ``folder``; an OutputError naming the output if that fails."""
    probe = Path(folder) / f".czii-probe.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "xb"):
            pass
    except OSError as err:
        reason = os_reason(err)
        raise OutputError(
            f"{output or folder}: cannot write to {folder}: {reason}", target=output or folder, reason=reason
        ) from None
    remove_path(probe)


def remove_path(path: Path, *, settle: bool = False) -> None:
    """Remove a file, a link or a directory tree if it exists; never raises.

    With ``settle``, a tree is removed again until it has stayed away for a moment (at
    most a few seconds): after a failed write, zarr's writer threads may still be
    creating chunks in it.
    """
    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            if settle:
                _settle_removal(path)
        elif os.path.lexists(path):
            path.unlink()
    except OSError:
        pass


def _settle_removal(path: Path, *, quiet_checks: int = 3, pause: float = 0.1, limit: float = 5.0) -> None:
    deadline, quiet = time.monotonic() + limit, 0
    while quiet < quiet_checks and time.monotonic() < deadline:
        time.sleep(pause)
        if os.path.lexists(path):
            quiet = 0
            shutil.rmtree(path, ignore_errors=True)
        else:
            quiet += 1


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name next to ``path``, on the same filesystem."""
    return path.parent / f".{path.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2(source: Path, destination: Path) -> bool:
    """Rename without replacing (Linux renameat2); False where the system cannot."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), _RENAME_NOREPLACE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(destination))


def rename_exclusive(source: Path, destination: Path) -> None:
    """Move ``source`` to ``destination``, failing (UsageError) if ``destination`` exists.

    Exclusive even against another process creating ``destination`` meanwhile: a no-replace
    rename, else a hard link for a file; elsewhere a check right before the rename.
    """
    try:
        if _renameat2(source, destination):
            return
        if not source.is_dir():
            try:
                os.link(source, destination, follow_symlinks=False)
            except FileExistsError:
                raise
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                    raise
            else:
                os.unlink(source)
                return
        if os.path.lexists(destination):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(destination))
        os.rename(source, destination)
    except FileExistsError:
        raise OutputExistsError(destination, note=RACE) from None
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise OutputExistsError(destination, note=RACE) from None
        raise


def _put_in_place(tmp: Path, path: Path, *, overwrite: bool) -> None:
    if not overwrite or not os.path.lexists(path):
        rename_exclusive(tmp, path)
        return
    if not (path.is_dir() and not path.is_symlink()) and not tmp.is_dir():
        os.replace(tmp, path)  # a file or link replaced at once
        return
    trash = temporary_sibling(path)
    os.rename(path, trash)
    try:
        rename_exclusive(tmp, path)
    except BaseException:
        if os.path.lexists(path):  # another run's output took the name: the old one is gone
            remove_path(trash)
        else:
            os.rename(trash, path)
        raise
    remove_path(trash)


@contextmanager
def atomic_path(path: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path to write; move it to ``path`` when the block succeeds.

    The temporary may become a file or a directory.  On any exception it is removed and
    ``path`` is left untouched; an ``OSError`` becomes an :class:`OutputError` naming
    ``path``.  Without ``overwrite``, an output another run created meanwhile is not
    replaced (UsageError).
    """
    path = Path(path)
    check_output(path, overwrite=overwrite)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        _put_in_place(tmp, path, overwrite=overwrite)
    except OSError as err:
        remove_path(tmp, settle=True)
        raise write_error(path, err, scratch=tmp) from None
    except OutputError as err:  # a file inside the temporary (a nested atomic output): name this output
        remove_path(tmp, settle=True)
        if err.target is not None and str(err.target).startswith(str(tmp)):
            raise OutputError(f"{path}: cannot write: {err.reason}", target=path, reason=err.reason) from None
        raise
    except BaseException:
        remove_path(tmp, settle=True)
        raise


@contextmanager
def stdout_errors() -> Iterator[None]:
    """Turn an OSError while writing stdout (full, closed pipe) into an OutputError."""
    try:
        yield
        sys.stdout.flush()
    except OSError as err:
        if err.filename is not None:
            raise
        raise write_error("-", err) from None


@contextmanager
def atomic_text(target: Path | str, *, overwrite: bool) -> Iterator[IO[str]]:
    """Open a text output: stdout for ``-``, else an atomic file."""
    if is_stdout(target):
        with stdout_errors():
            yield sys.stdout
        return
    with atomic_path(Path(target), overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as handle:
            yield handle
