"""Where an artifact goes: a path, stdout, or one file per input in a folder."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import NoOutputError, UsageError
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


def plan_folder(
    folder: Path,
    names: Sequence[str],
    *,
    suffix: str,
    sources: Sequence[str],
    overwrite: bool,
    what: str = "run name",
    collision: str = "several inputs are named {name!r}; their outputs would collide",
) -> list[Path]:
    """One output per input in ``folder``, named after it: ``folder / (name + suffix)``.

    The folder is created (its parent must exist); every target is checked before any
    is written, so a long batch does not fail half-way on an existing file.

    Parameters
    ----------
    folder : Path
        The output folder.
    names : sequence of str
        Each input's name, read from data (a run or experiment name).
    suffix : str
        The outputs' extension (``.csv``, ``.zarr``).
    sources : sequence of str
        Each input as given, in the order of ``names``, for the messages.
    overwrite : bool
        Whether an existing output may stay (to be replaced or skipped).
    what : str
        What the names are, for the message of a name that is not a plain file name.
    collision : str
        The message for two inputs of one name; ``{name}`` and ``{folder}`` are filled in.

    Returns
    -------
    list of Path
        The targets, in the order of ``names``.

    Raises
    ------
    UsageError
        Two inputs of one name, or an existing output without ``overwrite``.
    DataError
        A name that is no plain file name (``../x``, ``/abs``), naming its input.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "picks"
    >>> [p.name for p in plan_folder(folder, ["TS_1", "TS_2"], suffix=".csv", sources=["a", "b"], overwrite=False)]
    ['TS_1.csv', 'TS_2.csv']
    """
    from .atomic import check_output
    from .names import file_in_folder

    repeated = sorted({name for name in names if list(names).count(name) > 1})
    if repeated:
        raise UsageError(collision.format(name=repeated[0], folder=folder))
    targets = [file_in_folder(folder, name, suffix, source=source, what=what) for name, source in zip(names, sources)]
    folder.mkdir(exist_ok=True)
    for target in targets:
        check_output(target, overwrite=overwrite)
    return targets
