"""The file side of ``predict-probs``: which tomograms to read, where each artifact goes.

One tomogram goes to ``-o OUT`` (or stdout, piped); several, or ``-o`` naming an existing
folder that is not a zarr store, go to ``DIR/<run>.zarr``.  Every output is checked
before any prediction starts, so a long batch does not fail half-way on an existing file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..commands.output import artifact_target
from ..errors import DataError, UsageError
from ..io.artifacts import Volume
from ..io.atomic import check_output, is_stdout
from ..io.volumes import VolumeRequest, list_runs, read_volume


def read_tomograms(paths: Sequence[Path], request: VolumeRequest) -> list[Volume]:
    """Open every tomogram lazily: each path, and every run of a copick project without ``--run``."""
    volumes = []
    for path in paths:
        for run in list_runs(path, request):
            volume = read_volume(path, replace(request, run=run))
            if volume.meta.axes != "zyx":
                raise DataError(f"{volume.source}: expected a single-channel zyx tomogram, found axes {volume.meta.axes!r}")
            volumes.append(volume)
    return volumes


def plan_outputs(volumes: Sequence[Volume], output: Path | None, *, overwrite: bool) -> list[Path | str]:
    """The target of each volume's artifact (a path, or ``-`` for stdout)."""
    if len(volumes) == 1 and not _is_plain_folder(output):
        target = artifact_target(output)
        if not is_stdout(target):
            check_output(Path(target), overwrite=overwrite)
        return [target]
    if output is None or is_stdout(output):
        raise UsageError(f"{len(volumes)} tomograms give one artifact each; pass -o DIR")
    if not output.parent.exists():
        raise UsageError(f"{output}: the folder {output.parent} does not exist")
    names = [f"{volume.meta.run}.zarr" for volume in volumes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"several tomograms are named {repeated[0].removesuffix('.zarr')!r}; their outputs would collide")
    output.mkdir(exist_ok=True)
    targets = [output / name for name in names]
    for target in targets:
        check_output(target, overwrite=overwrite)
    return targets


def _is_plain_folder(path: Path | None) -> bool:
    """An existing folder that is not a zarr store (so outputs go inside it)."""
    if path is None or is_stdout(path) or not path.is_dir():
        return False
    return not any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))
