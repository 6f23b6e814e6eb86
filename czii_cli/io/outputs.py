"""Where an artifact goes: a path, stdout, or one file per input in a folder."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import NoOutputError
from .atomic import is_stdout

ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")
"""Files that make a folder a zarr store (v3, v2 group, v2 array)."""


def artifact_target(output: Path | None) -> Path | str:
    """The output path, ``-`` for stdout, or stdout by default when it is piped.

    Parameters
    ----------
    output : Path or None
        The output asked for; ``-`` is stdout, None means stdout when it is not a
        terminal.

    Returns
    -------
    Path or str
        The path, or ``"-"``.

    Raises
    ------
    NoOutputError
        When no output is given and stdout is a terminal.

    Examples
    --------
    >>> artifact_target(Path("out.zarr")), artifact_target(Path("-"))
    (PosixPath('out.zarr'), '-')
    """
    if output is None:
        if sys.stdout.isatty():
            raise NoOutputError()
        return "-"
    return "-" if str(output) == "-" else output


def output_folder(output: str | None) -> Path | None:
    """The folder ``output`` names for one output per input, or None for a single output.

    A folder is a path written with a trailing ``/`` or an existing directory, but never
    an existing zarr store (``p.zarr/`` names the store, which overwriting replaces).

    Parameters
    ----------
    output : str or None
        The output as given, ``-`` for stdout.

    Returns
    -------
    Path or None
        The folder, or None when ``output`` names one output (or none).

    Examples
    --------
    >>> output_folder("picks/"), output_folder("picks.csv"), output_folder("-")
    (PosixPath('picks'), None, None)
    """
    if output is None or is_stdout(output):
        return None
    path = Path(output)
    if path.is_dir() and any((path / name).exists() for name in ZARR_MARKERS):
        return None
    return path if output.endswith("/") or path.is_dir() else None
