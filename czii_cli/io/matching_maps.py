"""The file side of ``ensemble``: open probability maps and refuse ones that do not match."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..coords import check_czyx
from ..errors import DataError, UsageError
from .artifacts import Volume, check_same_grid, read_artifact, stdin_to_tempfile


def read_matching_maps(paths: Sequence[Path]) -> list[Volume]:
    """Open czyx artifacts lazily; all must share classes, run, shape, voxel size and origin.

    The first mismatch is a DataError naming both files and what differs.
    """
    if sum(str(p) == "-" for p in paths) > 1:
        raise UsageError("only one input can be read from stdin ('-')")
    maps = []
    for path in paths:
        volume = read_artifact(stdin_to_tempfile() if str(path) == "-" else Path(path))
        check_czyx(volume.meta.axes, source=str(path))
        maps.append(volume)
    first = maps[0]
    for other in maps[1:]:
        if other.meta.classes != first.meta.classes:
            raise DataError(
                f"{other.source}: classes {list(other.meta.classes)} differ from "
                f"{first.source} {list(first.meta.classes)}"
            )
        if other.meta.run != first.meta.run:
            raise DataError(
                f"{other.source}: run {other.meta.run!r} differs from {first.source} run {first.meta.run!r}"
            )
        check_same_grid(first, other, spatial_only=False)
    return maps
