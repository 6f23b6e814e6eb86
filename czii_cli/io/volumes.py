"""Read any tomogram-like input as a :class:`Volume`; write MRC and OME-Zarr.

Accepted inputs, told apart by content:

* czii artifacts (zarr directory, zarr zip, ``.npy`` + sidecar, ``-`` for stdin);
* MRC files (voxel size from the header);
* OME-Zarr multiscale images (level 0 by default);
* copick projects (config file or root folder) with ``run`` and ``tomo_type``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from ..coords import check_voxel_size, check_zyx
from ..errors import DataError, UsageError
from . import copick
from .artifacts import (
    ArtifactMeta,
    Volume,
    check_real_dtype,
    open_zarr_group,
    read_artifact,
    sniff,
    stdin_to_tempfile,
    zarr_member,
)
from .atomic import atomic_path

if TYPE_CHECKING:
    import zarr


@dataclass(frozen=True)
class VolumeRequest:
    """How to pick one tomogram out of an input that may hold several."""

    run: str | None = None
    tomo_type: str | None = None
    voxel_size: float | None = None  # overrides what the file says
    level: int = 0


def read_volume(path: Path | str, request: VolumeRequest = VolumeRequest()) -> Volume:
    """Open a volume lazily from any supported input.

    Parameters
    ----------
    path : path or "-"
        The input; ``-`` reads a zip artifact from stdin.
    request : VolumeRequest
        Run, tomogram type, OME-Zarr level and voxel-size override.

    Returns
    -------
    Volume
        ``data`` indexed ``[z, y, x]`` (or ``[c, z, y, x]``), metadata with the voxel size
        in Å, the origin and the run name.
    """
    path = stdin_to_tempfile() if str(path) == "-" else Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if copick.find_config(path) is not None:
        return read_copick_tomogram(path, request)
    form = sniff(path)
    if form in ("dir", "zip"):
        group = open_zarr_group(path)
        try:
            attrs: dict[str, Any] = dict(group.attrs)  # parsed loosely, as JSON
        except Exception as err:  # attributes of a damaged store
            raise DataError(f"{path}: unreadable zarr attributes ({type(err).__name__}: {err})") from None
        if "czii" in attrs:
            volume = read_artifact(path)
        elif "multiscales" in attrs or "multiscales" in (attrs.get("ome") or {}):
            volume = read_ome_zarr(path, group, level=request.level, run=request.run)
        else:
            raise DataError(f"{path}: a zarr store that is neither a czii artifact nor OME-Zarr")
    elif form == "npy":
        volume = read_artifact(path)
    else:
        volume = read_mrc(path, run=request.run)
    if request.voxel_size is not None:
        voxel = check_voxel_size(request.voxel_size, source=str(path), override=True)
        volume.meta = volume.meta.evolve(voxel_size=voxel)
    else:
        check_voxel_size(volume.meta.voxel_size, source=str(path))
    return volume


def read_tomogram(path: Path | str, request: VolumeRequest = VolumeRequest()) -> Volume:
    """Open a single-channel tomogram lazily, as :func:`read_volume` does.

    Raises
    ------
    DataError
        When the volume is not a single-channel ``zyx`` volume (a probability map, say),
        naming the file and the axes found.
    """
    volume = read_volume(path, request)
    check_zyx(volume.data.shape, source=volume.source, what="tomogram", axes=volume.meta.axes)
    return volume


def list_runs(path: Path, request: VolumeRequest) -> list[str | None]:
    """Runs to process in an input: every copick run unless one is asked for; else [run]."""
    path = Path(path)
    if str(path) != "-" and copick.find_config(path) is not None and request.run is None:
        return list(copick.open_project(path).runs())
    return [request.run]


class RawVolumeReader:
    """Read z-slabs of a raw C-ordered volume from a file on demand.

    Unlike a memory map, pages read once do not stay resident, so streaming over a
    large MRC keeps memory bounded.  Supports ``reader[z0:z1, ...]`` and ``reader[...]``.
    """

    def __init__(self, path: Path, *, offset: int, shape: tuple[int, int, int], dtype: np.dtype):
        self.path, self.offset, self.shape, self.dtype = Path(path), int(offset), tuple(shape), np.dtype(dtype)
        self.ndim = 3

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: int | slice | EllipsisType | tuple[Any, ...]) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first = key[0] if key and key[0] is not Ellipsis else slice(None)
        rest = key[1:] if key and key[0] is not Ellipsis else key
        if isinstance(first, (int, np.integer)):
            first = int(first) % self.shape[0]
            planes, squeeze = (first, first + 1), True
        elif isinstance(first, slice) and first.step in (None, 1):
            planes, squeeze = first.indices(self.shape[0])[:2], False
        else:
            raise TypeError("RawVolumeReader supports z slices with step 1 only")
        start, stop = planes[0], max(planes[0], planes[1])
        plane = self.shape[1] * self.shape[2]
        count = (stop - start) * plane
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * plane * self.dtype.itemsize)
            block = np.fromfile(handle, dtype=self.dtype, count=count)
        if block.size != count:
            raise DataError(f"{self.path}: file is shorter than its header says")
        block = block.reshape(stop - start, *self.shape[1:])
        if squeeze:
            one_plane: np.ndarray = block[0][rest] if rest else block[0]
            return one_plane
        return block[(slice(None),) + rest] if rest else block


def read_mrc(path: Path, *, run: str | None = None) -> Volume:
    """Open an MRC file lazily; voxel size and origin come from its header."""
    import mrcfile

    try:
        with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
            check_zyx(() if mrc.data is None else mrc.data.shape, source=str(path), what="MRC volume")
            voxel = float(mrc.voxel_size.x)
            origin = mrc.header.origin
            origin = (float(origin.z), float(origin.y), float(origin.x))
            offset = int(mrc.data.offset)
            shape, dtype = tuple(mrc.data.shape), mrc.data.dtype
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable MRC file ({err})") from None
    check_real_dtype(dtype, source=path)
    data = RawVolumeReader(path, offset=offset, shape=shape, dtype=dtype)
    meta = ArtifactMeta(
        kind="tomogram",
        axes="zyx",
        voxel_size=voxel,
        origin=origin,
        run=run or path.stem,
    )
    return Volume(data=data, meta=meta, source=str(path))


def read_ome_zarr(path: Path, group: zarr.Group, *, level: int = 0, run: str | None = None) -> Volume:
    """Open one level of an OME-Zarr multiscale image (OME-NGFF 0.4 or 0.5)."""
    try:
        attrs: Mapping[str, Any] = group.attrs  # parsed loosely: malformed metadata raises below
        multiscale = (attrs["multiscales"] if "multiscales" in attrs else attrs["ome"]["multiscales"])[0]
        dataset = multiscale["datasets"][level]
        array = zarr_member(group, str(dataset["path"]), source=path)
        scale, translation = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
        for transform in dataset.get("coordinateTransformations", []):
            if transform["type"] == "scale":
                scale = [float(v) for v in transform["scale"]][-3:]
            elif transform["type"] == "translation":
                translation = [float(v) for v in transform["translation"]][-3:]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: malformed OME-Zarr multiscales metadata ({err!r})") from None
    check_real_dtype(array.dtype, source=path)
    check_zyx(array.shape, source=str(path), what="OME-Zarr image")
    factor = _unit_to_angstrom(multiscale.get("axes", []))
    if run is None:
        run = _copick_run_of(path) or path.name.removesuffix(".zarr")
    meta = ArtifactMeta(
        kind="tomogram",
        axes="zyx",
        voxel_size=scale[-1] * factor,
        # three values when the multiscales metadata is well formed; the length is not checked here
        origin=cast("tuple[float, float, float]", tuple(t * factor for t in translation)),
        run=run,
    )
    return Volume(data=array, meta=meta, source=str(path))


def _unit_to_angstrom(axes: list[Any]) -> float:
    units = {"angstrom": 1.0, "nanometer": 10.0, "micrometer": 1e4}
    for axis in axes:
        if isinstance(axis, dict) and axis.get("type") == "space":
            return units.get(axis.get("unit", "angstrom"), 1.0)
    return 1.0


def _copick_run_of(path: Path) -> str | None:
    """``.../ExperimentRuns/<run>/VoxelSpacing10.000/x.zarr`` -> ``<run>``."""
    parts = path.resolve().parts
    if len(parts) >= 4 and parts[-4] == "ExperimentRuns":
        return parts[-3]
    return None


def read_copick_tomogram(path: Path, request: VolumeRequest) -> Volume:
    """Open one run's tomogram in a copick project."""
    project = copick.open_project(path)
    run = request.run
    if run is None:
        runs = project.runs()
        if len(runs) != 1:
            raise UsageError(f"{path}: the project has {len(runs)} runs; choose one run")
        run = runs[0]
    tomogram = project.tomogram_path(run, request.tomo_type)
    return read_ome_zarr(tomogram, open_zarr_group(tomogram), level=request.level, run=run)


# ----------------------------------------------------------------------------- writing


MRC_LABEL = "Written by czii"
"""The header's one text label: fixed, so the same volume gives the same bytes (mrcfile's
own label carries the time of writing)."""


def write_mrc(path: Path, data: np.ndarray, *, voxel_size: float, overwrite: bool = False) -> None:
    """Write a 3D float32 volume as MRC with its voxel size in the header, atomically.

    The bytes depend only on the volume and its voxel size (the header's label is
    :data:`MRC_LABEL`), so seeded runs write identical files.
    """
    import mrcfile

    with atomic_path(Path(path), overwrite=overwrite) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
            mrc.voxel_size = float(voxel_size)
            mrc.header.label[0] = MRC_LABEL
            mrc.header.nlabl = 1


def write_ome_zarr(
    path: Path,
    data: np.ndarray,
    *,
    voxel_size: float,
    levels: int = 3,
    chunks: int = 256,
    overwrite: bool = False,
) -> None:
    """Write an OME-NGFF 0.4 multiscale image in zarr format 2, as copick stores tomograms.

    Level 0 is full resolution; each further level halves every axis by 2x2x2 mean.
    Missing parent folders are created (copick nests tomograms deeply).
    """
    import zarr
    from zarr.storage import LocalStore

    Path(path).parent.mkdir(parents=True, exist_ok=True)

    with atomic_path(Path(path), overwrite=overwrite) as tmp:
        group = zarr.open_group(store=LocalStore(tmp), mode="w", zarr_format=2)
        datasets: list[dict[str, Any]] = []
        level_data = np.asarray(data, dtype=np.float32)
        for level in range(levels):
            if level > 0:
                level_data = downsample2(level_data)
            array = group.create_array(
                str(level),
                shape=level_data.shape,
                dtype=np.float32,
                chunks=tuple(min(chunks, s) for s in level_data.shape),
                chunk_key_encoding={"name": "v2", "separator": "/"},  # as copick's store expects
            )
            array[...] = level_data
            scale = float(voxel_size) * 2**level
            datasets.append(
                {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": [scale] * 3}]}
            )
        group.attrs["multiscales"] = [
            {
                "version": "0.4",
                "name": Path(path).stem,
                "axes": [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"],
                "datasets": datasets,
                "metadata": {"description": "written by czii"},
            }
        ]


def downsample2(data: np.ndarray) -> np.ndarray:
    """Halve each axis by averaging 2x2x2 blocks (odd trailing planes are dropped)."""
    z, y, x = (s // 2 * 2 for s in data.shape)
    trimmed = data[:z, :y, :x]
    halved: np.ndarray = trimmed.reshape(z // 2, 2, y // 2, 2, x // 2, 2).mean(axis=(1, 3, 5), dtype=np.float32)
    return halved


def write_json(path: Path, document: dict[str, Any], *, overwrite: bool = False) -> None:
    """Write a JSON document atomically."""
    with atomic_path(Path(path), overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(document, indent=2))
