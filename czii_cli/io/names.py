"""Names read from data that become file names: run names, experiments, particle names.

A run name stored in an input (an artifact's ``run``, a copick run folder, a CSV's
``experiment``) names outputs such as ``DIR/<run>.csv``.  Such a name must be one
ordinary path component, so that no input can make czii write outside the output
folder or replace an unrelated file.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from ..errors import DataError
from .atomic import PARTIAL

MAX_NAME_BYTES = 200
"""Longest name accepted, in UTF-8 bytes: room under the usual 255-byte limit for a
suffix and the hidden temporary name an output is written under first."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a file name, or None when it can.

    Examples
    --------
    >>> name_problem("TS_5_4") is None
    True
    >>> name_problem("../escaped")
    "contains a path separator ('/')"
    >>> name_problem("..")
    "is '.' or '..'"
    """
    if not isinstance(name, str):
        return f"is not text ({type(name).__name__})"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is '.' or '..'"
    for separator in ("/", "\\"):
        if separator in name:
            return f"contains a path separator ({separator!r})"
    if "\x00" in name:
        return "contains a NUL character"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in name):
        return "contains a control character"
    if PARTIAL.match(name):
        return "looks like the temporary name of an unfinished output"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def check_file_name(name: object, *, source: str, what: str = "run name") -> str:
    """Return ``name`` if it can be a file name; else raise a DataError naming ``source``.

    Parameters
    ----------
    name : str
        The name as read from the data.
    source : str
        The input it was read from, for the message.
    what : str
        What the name is (``run name``, ``experiment``, ...), for the message.

    Examples
    --------
    >>> check_file_name("TS_5_4", source="p.zarr")
    'TS_5_4'
    """
    problem = name_problem(name)
    if problem is not None or not isinstance(name, str):  # name_problem refuses what is not text
        raise DataError(f"{source}: the {what} {name!r} cannot name an output file: it {problem}")
    return name


def file_in_folder(folder: Path, name: object, suffix: str = "", *, source: str, what: str = "run name") -> Path:
    """``folder / (name + suffix)`` for a name read from data, checked to stay inside ``folder``.

    Parameters
    ----------
    folder : Path
        The output folder.
    name : str
        A name read from the input ``source`` (checked with :func:`check_file_name`).
    suffix : str
        Appended to the name (``.csv``, ``.zarr``).
    source, what :
        For the message of the DataError raised for a bad name.

    Examples
    --------
    >>> file_in_folder(Path("out"), "TS_5_4", ".csv", source="p.zarr").as_posix()
    'out/TS_5_4.csv'
    """
    check_file_name(name, source=source, what=what)
    path = Path(folder) / f"{name}{suffix}"
    if path.parent != Path(folder) or Path(path.name).name != path.name:
        raise DataError(f"{source}: the {what} {name!r} would put its output outside {folder}")
    return path
