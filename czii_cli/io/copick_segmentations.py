"""copick segmentations: volumes written into a project's overlay as copick names them.

A segmentation of a run lives at
``<overlay>/ExperimentRuns/<run>/Segmentations/{voxel_size:.3f}_{user}_{session}_{name}[-multilabel].zarr``:
an OME-Zarr image (OME-NGFF 0.4 on zarr format 2, the format the copick library opens),
full resolution in array ``0``.  A binary segmentation is named after one pickable
object; czii writes a class's probability map there (float values in 0..1).  A
multilabel one (voxel = the object's label) carries the ``-multilabel`` suffix.

czii adds its own ``attrs["czii"]`` (kind, classes, run, provenance), so reading a
segmentation back gives the same :class:`~czii_cli.io.artifacts.Volume` metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import BACKGROUND
from ..coords import check_czyx, check_zyx
from ..errors import DataError, UsageError
from .artifacts import ArtifactMeta, Volume, open_zarr_group
from .atomic import atomic_path
from .copick import CopickProject, check_identity, check_name

MULTILABEL_SUFFIX = "-multilabel"
SLAB = 64  # z-planes copied at a time
NESTED_V2_KEYS: dict[str, Any] = {
    "name": "v2",
    "separator": "/",
}  # chunk keys 0/0/0: copick's store normalises keys to "/"


@dataclass(frozen=True)
class SegmentationName:
    """The fields of a segmentation store name."""

    voxel_size: float
    user_id: str
    session_id: str
    name: str
    multilabel: bool = False

    def store_name(self) -> str:
        """``{voxel_size:.3f}_{user}_{session}_{name}[-multilabel].zarr``.

        Examples
        --------
        >>> SegmentationName(10.0, "czii", "0", "ribosome").store_name()
        '10.000_czii_0_ribosome.zarr'
        >>> SegmentationName(7.84, "czii", "0", "labels", multilabel=True).store_name()
        '7.840_czii_0_labels-multilabel.zarr'
        """
        suffix = MULTILABEL_SUFFIX if self.multilabel else ""
        return f"{self.voxel_size:.3f}_{self.user_id}_{self.session_id}_{self.name}{suffix}.zarr"

    @classmethod
    def parse(cls, store_name: str) -> SegmentationName | None:
        """The fields of a store name, or None when it is not one.

        Examples
        --------
        >>> SegmentationName.parse("10.000_czii_0_labels-multilabel.zarr")
        SegmentationName(voxel_size=10.0, user_id='czii', session_id='0', name='labels', multilabel=True)
        """
        stem = store_name.removesuffix(".zarr")
        parts = stem.split("_", 3)
        if len(parts) != 4 or not all(parts):
            return None
        try:
            voxel_size = float(parts[0])
        except ValueError:
            return None
        name, multilabel = parts[3], parts[3].endswith(MULTILABEL_SUFFIX)
        if multilabel:
            name = name[: -len(MULTILABEL_SUFFIX)]
        return cls(voxel_size, parts[1], parts[2], name, multilabel) if name else None


def segmentation_path(project: CopickProject, run: str, name: SegmentationName) -> Path:
    """Where a run's segmentation is stored; user, session and name are checked first."""
    source = str(project.config_path)
    check_identity(name.user_id, what="user_id", source=source)
    check_identity(name.session_id, what="session_id", source=source)
    check_name(name.name, what="segmentation name", source=source)
    return project.segmentations_dir(run) / check_name(name.store_name(), what="segmentation store", source=source)


def list_segmentations(project: CopickProject, run: str) -> list[SegmentationName]:
    """Every segmentation of a run whose store name parses, sorted by name."""
    folder = project.segmentations_dir(run)
    if not folder.is_dir():
        return []
    found = [
        SegmentationName.parse(p.name)
        for p in sorted(folder.iterdir())
        if p.is_dir() and p.name.endswith(".zarr") and not p.name.startswith(".")
    ]
    return [f for f in found if f is not None]


def write_segmentation(
    project: CopickProject,
    run: str,
    data: Any,
    *,
    name: SegmentationName,
    meta: ArtifactMeta | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one ``(z, y, x)`` volume as a copick segmentation of ``run``.

    Parameters
    ----------
    project : CopickProject
    run : str
        A run of the project.
    data : array-like (Z, Y, X)
        May be lazy (a zarr array): it is copied 64 z-planes at a time.  Non-finite
        values are refused.
    name : SegmentationName
        Voxel size (Å), user, session, object name and whether it is multilabel.
    meta : ArtifactMeta, optional
        Stored as ``attrs["czii"]``; its axes must be ``zyx``.
    overwrite : bool
        Replace an existing segmentation.

    Returns
    -------
    Path
        The store written (atomically: it appears only when complete).
    """
    import zarr
    from zarr.storage import LocalStore

    if run not in project.runs():
        raise DataError(
            f"{project.config_path}: no run {run!r} to write a segmentation into (runs: {', '.join(project.runs())})"
        )
    check_zyx(
        data.shape, source=f"segmentation {name.name!r}", axes=None if meta is None else meta.axes, error=UsageError
    )
    target = segmentation_path(project, run, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(s) for s in data.shape)
    with atomic_path(target, overwrite=overwrite) as tmp:
        group = zarr.open_group(store=LocalStore(tmp), mode="w", zarr_format=2)
        array = group.create_array(
            "0",
            shape=shape,
            dtype=data.dtype,
            chunks=tuple(min(256, s) for s in shape),
            fill_value=0,
            chunk_key_encoding=NESTED_V2_KEYS,
        )
        for start in range(0, shape[0], SLAB):
            block = np.asarray(data[start : start + SLAB])
            if block.dtype.kind == "f" and not np.isfinite(block).all():
                raise DataError(f"segmentation {name.name!r} of run {run!r}: non-finite values")
            array[start : start + SLAB] = block
        attrs: dict[str, Any] = {
            "multiscales": [
                {
                    "version": "0.4",
                    "name": name.name,
                    "axes": [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"],
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [{"type": "scale", "scale": [float(name.voxel_size)] * 3}],
                        }
                    ],
                    "metadata": {"description": "written by czii"},
                }
            ]
        }
        if meta is not None:
            attrs["czii"] = meta.to_json()
        group.attrs.update(attrs)
    return target


def read_segmentation(project: CopickProject, run: str, name: SegmentationName) -> Volume:
    """Open a copick segmentation lazily as a Volume.

    The metadata is czii's own when the store carries it, else a ``labels`` volume
    (multilabel) or a single-class ``probs`` volume named after the object.
    """
    path = segmentation_path(project, run, name)
    if not path.is_dir():
        found = ", ".join(s.store_name() for s in list_segmentations(project, run)) or "none"
        raise DataError(f"{project.config_path}: run {run!r} has no segmentation {name.store_name()} (found: {found})")
    group = open_zarr_group(path)
    try:
        array: Any = group["0"]  # read as an array; check_zyx reads its shape
    except KeyError:
        raise DataError(f"{path}: a segmentation without level 0") from None
    attrs: Mapping[str, Any] = group.attrs  # parsed loosely: from_json refuses malformed metadata
    if "czii" in attrs:
        meta = ArtifactMeta.from_json(dict(attrs["czii"]), source=str(path))
    else:
        meta = ArtifactMeta(
            kind="labels" if name.multilabel else "probs",
            axes="zyx",
            voxel_size=name.voxel_size,
            run=run,
            classes=() if name.multilabel else (name.name,),
        )
    check_zyx(array.shape, source=str(path), what="segmentation")
    return Volume(data=array, meta=meta, source=str(path))


def probs_segmentation_names(
    classes: Iterable[str], *, voxel_size: float, user: str, session: str
) -> list[SegmentationName]:
    """One binary segmentation per class channel of a probability map (background excepted)."""
    return [SegmentationName(float(voxel_size), user, session, c) for c in classes if c != BACKGROUND]


def write_probs_to_copick(
    project: CopickProject, volume: Volume, *, run: str, user: str, session: str, overwrite: bool = False
) -> list[Path]:
    """Write each class channel of a ``czyx`` probability map as a copick segmentation of ``run``.

    Each store is named after its class (``10.000_czii_0_ribosome.zarr``) and keeps the
    map's metadata, its classes narrowed to that channel.  Returns the stores written.
    """
    meta = volume.meta
    check_czyx(meta.axes, source=str(volume.source))
    names = probs_segmentation_names(meta.classes, voxel_size=meta.voxel_size, user=user, session=session)
    written = []
    for name in names:
        channel = list(meta.classes).index(name.name)
        channel_meta = meta.evolve(axes="zyx", classes=(name.name,))
        written.append(
            write_segmentation(
                project, run, _Channel(volume.data, channel), name=name, meta=channel_meta, overwrite=overwrite
            )
        )
    return written


class _Channel:
    """One channel of a lazy ``czyx`` array, indexed like a ``zyx`` one along z."""

    def __init__(self, data: Any, channel: int) -> None:
        self.data, self.channel = data, channel
        self.shape = tuple(data.shape[1:])
        self.dtype = np.dtype(data.dtype)

    def __getitem__(self, key: int | slice | tuple[int | slice, ...]) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return np.asarray(self.data[(self.channel, *key)])


def write_target_to_copick(
    project: CopickProject,
    data: np.ndarray,
    meta: ArtifactMeta,
    *,
    kind: str,
    user: str,
    session: str,
    overwrite: bool = False,
) -> list[Path]:
    """Write a training target of ``meta.run`` as copick segmentations.

    A label map (``spheres`` or ``points``, voxel = class label) becomes one multilabel
    segmentation named after its kind; a ``heatmap`` (czyx) one segmentation per class.
    """
    if meta.run is None:
        raise DataError("the target names no run to write into the project")
    if kind == "heatmap":
        volume = Volume(data=data, meta=meta, source=str(meta.run))
        return write_probs_to_copick(project, volume, run=meta.run, user=user, session=session, overwrite=overwrite)
    name = SegmentationName(float(meta.voxel_size), user, session, kind, multilabel=True)
    return [write_segmentation(project, meta.run, data, name=name, meta=meta, overwrite=overwrite)]
