"""The file side of ``predict-probs``: which tomograms to read, where each artifact goes.

One tomogram goes to ``-o OUT`` (or stdout, piped); several, or ``-o`` naming a folder
(an existing one that is not a zarr store, or a path ending in ``/``), go to
``DIR/<run>.zarr``.  Every output is checked before any prediction starts, so a long
batch does not fail half-way on an existing file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import DataError, UsageError
from .artifacts import Volume, stdin_to_tempfile
from .atomic import check_output, is_stdout
from .outputs import artifact_target, output_folder, plan_folder
from .volumes import VolumeRequest, list_runs, read_tomogram


@dataclass(frozen=True)
class TomogramInput:
    """One tomogram to predict.

    Attributes
    ----------
    path : Path
        The file or copick project it is read from (stdin already copied to a file).
    request : VolumeRequest
        Run, tomogram type and voxel-size override to read it with.
    name : str
        Its run name, else the file stem: the output's name and what reports call it.
    volume : Volume or None
        The tomogram, opened lazily; None when it could not be opened (its job then
        fails with the reason, by name, and the batch goes on).
    """

    path: Path
    request: VolumeRequest
    name: str
    volume: Volume | None


def find_tomograms(paths: Sequence[Path], request: VolumeRequest) -> list[TomogramInput]:
    """Every tomogram to predict: each path, and every run of a copick project without ``--run``.

    A tomogram that cannot be opened is kept (``volume`` None) so that a batch reports
    it by name and goes on with the others; when it is the only one, its error is
    raised here.
    """
    found, errors = [], []
    for given in paths:
        path = stdin_to_tempfile() if is_stdout(given) else Path(given)
        for run in list_runs(path, request):
            wanted = replace(request, run=run)
            try:
                volume, error = read_tomogram(path, wanted), None
            except DataError as err:
                volume, error = None, err
            name = (volume.meta.run if volume is not None else run) or path.stem
            found.append(TomogramInput(path, wanted, name, volume))
            errors.append(error)
    if len(found) == 1 and errors[0] is not None:
        raise errors[0]
    return found


def plan_outputs(
    names: Sequence[str],
    output: str | None,
    *,
    overwrite: bool,
    skip_existing: bool = False,
    sources: Sequence[str] | None = None,
) -> list[Path | str]:
    """The target of each named tomogram's artifact (a path, or ``-`` for stdout).

    An existing output is an error unless ``overwrite`` (it is replaced) or
    ``skip_existing`` (its tomogram is skipped) is set.  In a folder, each output is
    named after its run: a name that is not a plain file name (``../x``, ``/abs``) is a
    DataError naming its input (``sources``, in the order of ``names``).
    """
    existing_ok = overwrite or skip_existing
    folder = output_folder(output)
    if len(names) == 1 and folder is None:
        target = artifact_target(None if output is None else Path(output))
        if not is_stdout(target):
            check_output(Path(target), overwrite=existing_ok)
        return [target]
    if output is None or is_stdout(output):
        raise UsageError(f"{len(names)} tomograms give one artifact each; the output must be a folder (DIR/)")
    folder = folder or Path(output)
    if not folder.parent.exists():
        raise UsageError(f"{output}: the folder {folder.parent} does not exist")
    sources = list(sources) if sources is not None else list(names)
    collision = "several tomograms are named {name!r}; their outputs would collide"
    return [*plan_folder(folder, names, suffix=".zarr", sources=sources, overwrite=existing_ok, collision=collision)]
