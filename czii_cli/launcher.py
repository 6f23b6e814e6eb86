"""The ``czii`` executable: asks glibc for transparent huge pages, then runs the commands.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh
mapping and unmaps it when the block is freed.  The activations of a forward pass over a
large tile, and the volumes and maps of the other stages, are such blocks: each one is
faulted in again, 4 KiB at a time, every time it is allocated.  One forward pass of the
default ``light`` net over a 184x632x376 tile took about 1.26 million page faults
(4.8 GiB faulted in).  The ``glibc.malloc.hugetlb=1`` tunable makes malloc ask the
kernel for transparent huge pages on those mappings (2 MiB per fault): ``predict-probs``
on a full tomogram then took 9.8 s instead of 12.8 s, at the same peak memory.

glibc reads its tunables only when a process starts, so :func:`run` starts the command
again (:func:`restart_with_huge_pages`), once, in the same interpreter with the tunable
added to ``GLIBC_TUNABLES``.  It does so only on Linux with glibc 2.35 or later, when the
kernel gives huge pages on request (``madvise`` mode: ``always`` gives them anyway,
``never`` not at all), and when ``GLIBC_TUNABLES`` does not already set
``glibc.malloc.hugetlb``: setting it yourself, ``GLIBC_TUNABLES=glibc.malloc.hugetlb=0``
for instance, keeps your choice and the command runs as it is.  This module imports
nothing heavy, so the restart costs only the interpreter's start (about 0.06 s).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb"
MINIMUM_GLIBC = (2, 35)
"""The first glibc release with the ``glibc.malloc.hugetlb`` tunable."""
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def glibc_version() -> tuple[int, int] | None:
    """The running glibc's (major, minor), or None where the C library is not glibc."""
    try:
        reported = os.confstr("CS_GNU_LIBC_VERSION")  # e.g. "glibc 2.36"
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return None
    name, _, number = (reported or "").partition(" ")
    parts = number.split(".")
    if name != "glibc" or len(parts) < 2 or not all(part.isdigit() for part in parts[:2]):
        return None
    return int(parts[0]), int(parts[1])


def transparent_huge_pages_mode(setting: Path = THP_SETTING) -> str | None:
    """The kernel's transparent huge page mode (``always``, ``madvise``, ``never``), or None."""
    try:
        text = setting.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def huge_pages_environment(
    environment: Mapping[str, str], *, platform: str, glibc: tuple[int, int] | None, thp_mode: str | None
) -> dict[str, str] | None:
    """The environment to start the command again with, or None to run it as it is.

    Parameters
    ----------
    environment : mapping of str to str
        The process's environment.
    platform : str
        ``sys.platform``.
    glibc : tuple of int, optional
        The glibc version (:func:`glibc_version`); None for another C library.
    thp_mode : str, optional
        The kernel's transparent huge page mode (:func:`transparent_huge_pages_mode`).

    Returns
    -------
    dict or None
        ``environment`` with ``glibc.malloc.hugetlb=1`` added to ``GLIBC_TUNABLES``.

    Examples
    --------
    >>> huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, platform="linux",
    ...                        glibc=(2, 36), thp_mode="madvise")["GLIBC_TUNABLES"]
    'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1'
    >>> huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, platform="linux",
    ...                        glibc=(2, 36), thp_mode="madvise") is None
    True
    """
    if not platform.startswith("linux") or glibc is None or glibc < MINIMUM_GLIBC or thp_mode != "madvise":
        return None
    tunables = environment.get("GLIBC_TUNABLES", "")
    if any(item.partition("=")[0] == HUGE_PAGES_TUNABLE for item in tunables.split(":")):
        return None
    changed = dict(environment)
    changed["GLIBC_TUNABLES"] = ":".join(item for item in (tunables, f"{HUGE_PAGES_TUNABLE}=1") if item)
    return changed


def restart_with_huge_pages() -> None:
    """Start this process's command line again under the huge-page tunable, where that applies.

    Returns only when nothing applies (or the interpreter cannot be started again); the
    restarted process finds the tunable set and goes on.
    """
    environment = huge_pages_environment(
        os.environ, platform=sys.platform, glibc=glibc_version(), thp_mode=transparent_huge_pages_mode()
    )
    if environment is not None and sys.orig_argv:
        try:
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
        except OSError:  # the interpreter cannot be started again: run as it is
            pass


def run() -> None:
    """Console-script entry point: start again with huge pages where that applies, then run."""
    restart_with_huge_pages()
    from .main import run as run_commands

    run_commands()
