"""czii volume artifacts: tomograms, labels, heatmaps and probability maps on disk.

An artifact is a zarr group with an array ``data`` and ``attrs["czii"]`` holding the
metadata of :class:`ArtifactMeta`.  It is stored as

* a zarr directory (``p.zarr/``),
* a single zip file holding the same store (``p.zip``, or anything streamed to stdout),
* a ``.npy`` file with the metadata in a sidecar ``NAME.npy.json``.

Readers tell the forms apart by content, not by name.  Writers are atomic.

The zarr forms (format 3) are also OME-Zarr images (OME-NGFF 0.5): the group's
``attrs["ome"]`` holds ``multiscales`` with axes ``c`` (channel, for ``czyx``), ``z``,
``y``, ``x`` (space, Å) and, per level, the voxel size as a ``scale`` transformation
(and the origin as a ``translation``).  Level 0 is the array ``data`` itself; an
optional preview level ``data_2x`` halves every spatial axis.  Artifacts written before
this carried no ``ome`` block; they read the same.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import errno
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

import numpy as np
import numpy.typing as npt

from .. import __version__
from ..catalog import BACKGROUND
from ..coords import same_voxel_size
from ..errors import DataError, UsageError
from .atomic import (
    OutputError,
    atomic_path,
    check_output,
    is_partial_name,
    is_stdout,
    refuse_partial,
    remove_path,
    stdout_errors,
    write_error,
)

if TYPE_CHECKING:
    import zarr
    from zarr.codecs.blosc import CName, Shuffle

SCHEMA = 1
KINDS = ("tomogram", "labels", "heatmap", "probs")
ZIP_MAGIC = b"PK\x03\x04"
NGFF_VERSION = "0.5"
PREVIEW_PATH = "data_2x"
NPY_MAGIC = b"\x93NUMPY"


class BloscSettings(TypedDict):
    """Keyword arguments of zarr's ``BloscCodec`` (see :data:`COMPRESSION`)."""

    cname: CName
    clevel: int
    shuffle: Shuffle


COMPRESSION: BloscSettings = {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle"}
"""Blosc settings of every zarr array written: LZ4 on bit-shuffled values.  On a float16
probability map that encodes at about 2 GB/s and decodes at about 2.9 GB/s on one core
(compression ratio 2.9), against 0.3 and 0.5-1 GB/s for zarr's default zstd level 3
(ratio 4.4): encoding a full 7x184x630x630 map takes about half a second instead of
about three (zarr's own work per chunk stays)."""
INCOMPLETE = "incomplete"
"""Set in ``attrs["czii"]`` while an artifact is being written; readers refuse it."""


@dataclass(frozen=True)
class ArtifactMeta:
    """Metadata every czii volume carries.

    Attributes
    ----------
    kind : str
        ``tomogram``, ``labels``, ``heatmap`` or ``probs``.
    axes : str
        ``zyx`` for one channel, ``czyx`` for several.
    voxel_size : float
        Voxel edge in Å.
    origin : tuple of float
        Position of voxel (0, 0, 0) in Å, in zyx order.
    run : str or None
        Experiment (run) name; picks take their ``experiment`` from it.
    classes : list of str
        Channel names (``czyx``) or label names in label order (``labels``).
    provenance : list of dict
        One entry per stage that made the file: command, version, args, inputs, time.
    extra : dict
        Stage-specific facts (normalization, activation, ...), kept verbatim.
    """

    kind: str
    axes: str
    voxel_size: float
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    run: str | None = None
    classes: tuple[str, ...] = ()
    provenance: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``attrs["czii"]`` document."""
        document = {
            "schema": SCHEMA,
            "kind": self.kind,
            "axes": self.axes,
            "voxel_size": float(self.voxel_size),
            "origin": [float(v) for v in self.origin],
            "run": self.run,
            "classes": list(self.classes),
            "provenance": [dict(p) for p in self.provenance],
        }
        document.update(self.extra)
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any], *, source: str) -> ArtifactMeta:
        """Parse an ``attrs["czii"]`` document; malformed metadata is a DataError."""
        known = {"schema", "kind", "axes", "voxel_size", "origin", "run", "classes", "provenance"}
        try:
            if int(document.get("schema", 0)) > SCHEMA:
                raise DataError(f"{source}: written by a newer czii (schema {document['schema']})")
            kind = str(document["kind"])
            if kind not in KINDS:
                raise DataError(f"{source}: unknown artifact kind {kind!r}")
            return cls(
                kind=kind,
                axes=str(document["axes"]),
                voxel_size=float(document["voxel_size"]),
                # three values (zyx) by the format; their count is not checked here
                origin=cast("tuple[float, float, float]", tuple(float(v) for v in document.get("origin", (0, 0, 0)))),
                run=document.get("run"),
                classes=tuple(document.get("classes", ())),
                provenance=tuple(document.get("provenance", ())),
                extra={k: v for k, v in document.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{source}: malformed czii metadata ({err!r})") from None

    def with_step(self, command: str, *, args: dict[str, Any], inputs: Sequence[str]) -> ArtifactMeta:
        """Return a copy with one more provenance entry."""
        return replace(self, provenance=self.provenance + (provenance_entry(command, args, inputs),))

    def evolve(self, **changes: Any) -> ArtifactMeta:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)


def provenance_entry(command: str, args: dict[str, Any], inputs: Sequence[str]) -> dict[str, Any]:
    """One provenance record: what ran, with which resolved arguments, on which inputs."""
    return {
        "command": command,
        "version": __version__,
        "args": json.loads(json.dumps(args, default=str)),
        "inputs": [str(i) for i in inputs],
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


@dataclass
class Volume:
    """An array and its metadata.

    ``data`` may be lazy (a zarr array or a memory map); index it to read a region, or
    call :meth:`load` for the whole thing in memory.
    """

    data: Any
    meta: ArtifactMeta
    source: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[-3:])

    def load(self, dtype: Any = None) -> np.ndarray:
        """Read the whole array into memory, optionally converting its dtype."""
        array = np.asarray(self.data[...])
        return array if dtype is None else array.astype(dtype, copy=False)


# ----------------------------------------------------------------------------- reading


def sniff(path: Path) -> str:
    """Tell an artifact's storage form from its content: ``dir``, ``zip``, ``npy`` or ``other``."""
    if path.is_dir():
        return "dir"
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    return "other"


def open_zarr_group(path: Path) -> zarr.Group:
    """Open a zarr group stored as a directory or a zip file, read-only."""
    import zarr
    from zarr.storage import LocalStore, ZipStore

    form = sniff(path)
    try:
        store = ZipStore(path, mode="r") if form == "zip" else LocalStore(path, read_only=True)
        return zarr.open_group(store=store, mode="r")
    except Exception as err:  # zarr raises many types for a damaged store
        raise DataError(f"{path}: not a readable zarr store ({type(err).__name__}: {err})") from None


class GuardedArray:
    """A lazy array whose read errors become a :class:`DataError` naming its file.

    A damaged chunk (truncated, not decompressible) only shows when it is read, deep
    inside a stage; this wrapper turns whatever the storage library raises then into
    one error about the file.  Everything but indexing is passed to the wrapped array.
    """

    def __init__(self, array: Any, source: str):
        self._array, self._source = array, source

    def __getitem__(self, key: Any) -> npt.NDArray[Any]:
        try:
            region: npt.NDArray[Any] = self._array[key]
            return region
        except DataError:
            raise
        except MemoryError:
            raise
        except Exception as err:  # zarr and its codecs raise many types for a damaged chunk
            raise DataError(
                f"{self._source}: damaged data, a chunk cannot be read ({type(err).__name__}: {err})"
            ) from None

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> npt.NDArray[Any]:
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype)

    def __len__(self) -> int:
        return len(self._array)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_array", "_source"):
            raise AttributeError(name)
        return getattr(self._array, name)


def zarr_member(group: zarr.Group, name: str, *, source: Path | str) -> GuardedArray:
    """The array ``name`` of an open zarr group, guarded; unreadable metadata is a DataError."""
    try:
        array = group[name]
    except KeyError:
        raise DataError(f"{source}: the zarr store has no array {name!r}") from None
    except Exception as err:  # a corrupt zarr.json / .zarray raises JSON or validation errors
        raise DataError(
            f"{source}: the metadata of array {name!r} is unreadable ({type(err).__name__}: {err})"
        ) from None
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        raise DataError(f"{source}: {name!r} is not an array")
    return GuardedArray(array, str(source))


def check_real_dtype(dtype: Any, *, source: Path | str) -> None:
    """Refuse volumes whose voxels are not real numbers (complex, strings, records)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise DataError(f"{source}: voxels of type {dtype} are not real numbers; czii reads real-valued volumes only")


def read_artifact(path: Path) -> Volume:
    """Read a czii artifact: zarr directory, zarr zip or ``.npy`` with its sidecar."""
    path = Path(path)
    refuse_partial(path)
    if sniff(path) == "npy":
        return _read_npy(path)
    group = open_zarr_group(path)
    try:
        document = group.attrs.get("czii")
    except Exception as err:  # attributes of a damaged store
        raise DataError(f"{path}: unreadable zarr attributes ({type(err).__name__}: {err})") from None
    if document is None:
        raise DataError(f"{path}: a zarr store without czii metadata (attrs['czii'])")
    if not isinstance(document, dict):
        raise DataError(f"{path}: malformed czii metadata (attrs['czii'] is not an object)")
    if document.get(INCOMPLETE):
        raise DataError(f"{path}: an incomplete artifact (the run writing it did not finish); not an input")
    meta = ArtifactMeta.from_json(dict(document), source=str(path))
    try:
        data = zarr_member(group, "data" if _has_member(group, "data") else _first_level(group), source=path)
    except DataError as err:
        if "has no array" in str(err):
            raise DataError(f"{path}: the czii artifact has no 'data' array") from None
        raise
    _check_axes(meta, data.shape, path)
    check_real_dtype(data.dtype, source=path)
    return Volume(data=data, meta=meta, source=str(path))


def _has_member(group: zarr.Group, name: str) -> bool:
    """Whether ``group`` holds ``name``; damaged metadata counts as present, for its reader to report."""
    try:
        return name in group
    except Exception:  # a corrupt zarr.json / .zarray
        return True


def _first_level(group: zarr.Group) -> str:
    """The path of level 0 in a group's OME-NGFF multiscales (0.4 or 0.5), or ``data``."""
    attrs: Mapping[str, Any] = group.attrs  # parsed loosely: malformed metadata falls back below
    multiscales: Any = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    try:
        return str(multiscales[0]["datasets"][0]["path"])
    except (TypeError, KeyError, IndexError):
        return "data"


def output_is_complete(path: Path) -> bool:
    """True when ``path`` is a whole output: what ``--skip-existing`` may skip.

    A CSV needs its header line; a folder, ``.zarr``, ``.zip`` or ``.npy`` must be a
    readable czii artifact with its metadata (not flagged incomplete); any other file
    must not be empty.
    """
    path = Path(path)
    if not os.path.lexists(path) or is_partial_name(path):
        return False
    if path.suffix.lower() == ".csv":
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                header = handle.readline()
        except (OSError, UnicodeDecodeError):
            return False
        columns = {column.strip() for column in header.strip().split(",")}
        return header.endswith("\n") and {"x", "y", "z"} <= columns
    if path.is_dir() or path.suffix.lower() in (".zarr", ".zip", ".npy"):
        try:
            read_artifact(path)
        except (DataError, OSError):
            return False
        return True
    return path.is_file() and path.stat().st_size > 0


def _read_npy(path: Path) -> Volume:
    sidecar = path.with_name(path.name + ".json")
    try:
        data = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err})") from None
    if not sidecar.exists():
        raise DataError(f"{path}: no metadata sidecar {sidecar.name}")
    try:
        document = json.loads(sidecar.read_text())["czii"]
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{sidecar}: malformed sidecar ({err!r})") from None
    if not isinstance(document, dict):
        raise DataError(f"{sidecar}: malformed sidecar (czii metadata is not an object)")
    meta = ArtifactMeta.from_json(document, source=str(sidecar))
    _check_axes(meta, data.shape, path)
    check_real_dtype(data.dtype, source=path)
    return Volume(data=data, meta=meta, source=str(path))


def _check_axes(meta: ArtifactMeta, shape: Sequence[int], path: Path) -> None:
    if len(meta.axes) != len(shape):
        raise DataError(f"{path}: axes {meta.axes!r} do not fit an array of shape {tuple(shape)}")
    if meta.axes == "czyx" and meta.classes and len(meta.classes) != shape[0]:
        raise DataError(f"{path}: {len(meta.classes)} class names for {shape[0]} channels")


def stdin_to_tempfile() -> Path:
    """Copy standard input to a temporary file (removed at exit) and return its path."""
    if sys.stdin.isatty():
        raise UsageError("-: refusing to read binary data from a terminal")
    handle = tempfile.NamedTemporaryFile(prefix="czii-stdin-", delete=False)
    with handle:
        shutil.copyfileobj(sys.stdin.buffer, handle, length=1 << 20)

    def remove() -> None:
        if os.path.exists(handle.name):
            os.unlink(handle.name)

    atexit.register(remove)
    return Path(handle.name)


# ----------------------------------------------------------------------------- writing


def output_form(target: Path | str) -> str:
    """The storage form for an output: ``stream``, ``npy``, ``zip`` or ``dir``."""
    if is_stdout(target):
        return "stream"
    suffix = Path(target).suffix.lower()
    if suffix == ".npy":
        return "npy"
    if suffix == ".zip":
        return "zip"
    return "dir"


def default_chunks(shape: Sequence[int], axes: str) -> tuple[int, ...]:
    """Chunks of at most 64^3 voxels per channel, one channel per chunk."""
    spatial = tuple(min(64, s) for s in shape[-3:])
    return (1,) + spatial if axes == "czyx" else spatial


@contextmanager
def create_artifact(
    target: Path | str,
    *,
    shape: Sequence[int],
    dtype: Any,
    meta: ArtifactMeta,
    overwrite: bool = False,
    chunks: Sequence[int] | None = None,
    preview: bool = False,
) -> Iterator[Any]:
    """Create an artifact and yield its writable ``data`` array (zarr array or memmap).

    The caller fills the array region by region, so large maps never need to sit in
    memory.  When the block ends without error, the artifact is moved into place (or
    streamed to stdout as a zip); on error nothing is left behind.

    Parameters
    ----------
    target : path or "-"
        ``-`` streams a zip to stdout; ``*.npy`` writes npy + sidecar; ``*.zip`` a zip
        file; anything else a zarr directory.
    shape, dtype : array shape and dtype.
    meta : ArtifactMeta
        Metadata to store; ``axes`` must fit ``shape``.
    overwrite : bool
        Replace an existing output.
    chunks : sequence of int, optional
        Zarr chunk shape; defaults to :func:`default_chunks`.
    preview : bool
        Also store a 2x downsampled level (``data_2x``, in the OME-NGFF multiscales) for
        quick viewing; zarr forms only.
    """
    if len(meta.axes) != len(shape):
        raise UsageError(f"axes {meta.axes!r} do not fit shape {tuple(shape)}")
    form = output_form(target)
    if form == "stream" and sys.stdout.isatty():
        raise UsageError("refusing to write binary data to a terminal; name an output file")
    chunks = tuple(chunks) if chunks is not None else default_chunks(shape, meta.axes)
    if preview and form == "npy":
        raise UsageError(f"{target}: a 2x preview level needs a zarr output, not .npy")
    if form == "npy":
        yield from _create_npy(Path(target), shape, dtype, meta, overwrite)
        return
    if form == "dir":
        with atomic_path(Path(target), overwrite=overwrite) as tmp:
            group, array = _create_zarr_dir(tmp, shape, dtype, meta, chunks)
            yield array
            if preview:
                _add_preview_level(tmp, array, meta)
            _mark_complete(group, meta, levels=2 if preview else 1)
        return
    if form == "zip":  # built in a hidden scratch store next to the zip, removed on every path
        with atomic_path(Path(target), overwrite=overwrite) as tmp:
            store = tmp.with_name(tmp.name + ".store")
            try:
                group, array = _create_zarr_dir(store, shape, dtype, meta, chunks)
                yield array
                if preview:
                    _add_preview_level(store, array, meta)
                _mark_complete(group, meta, levels=2 if preview else 1)
                _zip_directory(store, tmp)
            except BaseException:
                remove_path(store, settle=True)
                raise
            remove_path(store)
        return
    workdir = Path(tempfile.mkdtemp(prefix="czii-artifact-"))
    try:
        try:
            group, array = _create_zarr_dir(workdir / "store", shape, dtype, meta, chunks)
            yield array
            if preview:
                _add_preview_level(workdir / "store", array, meta)
            _mark_complete(group, meta, levels=2 if preview else 1)
            _zip_directory(workdir / "store", workdir / "stream.zip")
        except OSError as err:
            error = write_error(workdir, err, scratch=workdir)
            if error.target != workdir:  # about another file (an input)
                raise error from None
            raise OutputError(
                f"{workdir}: cannot write the scratch copy of the stdout stream: {error.reason}",
                target=workdir,
                reason=error.reason,
            ) from None
        with stdout_errors(), open(workdir / "stream.zip", "rb") as handle:
            shutil.copyfileobj(handle, sys.stdout.buffer, length=1 << 20)
            sys.stdout.buffer.flush()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_artifact(
    target: Path | str,
    data: np.ndarray,
    meta: ArtifactMeta,
    *,
    overwrite: bool = False,
    chunks: Sequence[int] | None = None,
    preview: bool = False,
) -> None:
    """Write an in-memory array as an artifact (see :func:`create_artifact`)."""
    with create_artifact(
        target, shape=data.shape, dtype=data.dtype, meta=meta, overwrite=overwrite, chunks=chunks, preview=preview
    ) as out:
        out[...] = data


def compressors() -> tuple[Any, ...]:
    """The codecs of a new zarr array's chunks (see :data:`COMPRESSION`)."""
    from zarr.codecs import BloscCodec

    return (BloscCodec(**COMPRESSION),)


def _create_zarr_dir(
    path: Path, shape: Sequence[int], dtype: npt.DTypeLike, meta: ArtifactMeta, chunks: tuple[int, ...]
) -> tuple[zarr.Group, zarr.Array[Any]]:
    import zarr
    from zarr.storage import LocalStore

    group = zarr.open_group(store=LocalStore(path), mode="w", zarr_format=3)
    group.attrs.update({"ome": ngff_metadata(meta, levels=1), "czii": {**meta.to_json(), INCOMPLETE: True}})
    fill = 0 if np.dtype(dtype).kind in "biuf" else None
    return group, group.create_array(
        "data",
        shape=tuple(shape),
        dtype=dtype,
        chunks=chunks,
        fill_value=fill,
        compressors=compressors(),
        dimension_names=_dimension_names(meta.axes),
    )


def _mark_complete(group: zarr.Group, meta: ArtifactMeta, *, levels: int) -> None:
    """Drop the ``incomplete`` flag once the data (and its ``levels`` levels) is written.

    Both attributes are written together, so a stale copy of the group's attributes can
    not undo the listing of a preview level.
    """
    group.attrs.update({"ome": ngff_metadata(meta, levels=levels), "czii": meta.to_json()})


def _dimension_names(axes: str) -> tuple[str, ...]:
    return tuple(axes)


def ngff_metadata(meta: ArtifactMeta, *, levels: int = 1) -> dict[str, Any]:
    """The OME-NGFF 0.5 ``ome`` attributes of an artifact with ``levels`` levels (1 or 2).

    Level ``k`` has voxels ``2**k`` times larger; a block mean's centre moves by half the
    block, so its translation is the origin plus ``(2**k - 1) / 2`` voxels.

    Examples
    --------
    >>> ome = ngff_metadata(ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0), levels=2)
    >>> [a["name"] for a in ome["multiscales"][0]["axes"]]
    ['c', 'z', 'y', 'x']
    >>> [d["coordinateTransformations"][0]["scale"] for d in ome["multiscales"][0]["datasets"]]
    [[1.0, 10.0, 10.0, 10.0], [1.0, 20.0, 20.0, 20.0]]
    """
    channel = meta.axes == "czyx"
    axes = ([{"name": "c", "type": "channel"}] if channel else []) + [
        {"name": name, "type": "space", "unit": "angstrom"} for name in "zyx"
    ]
    datasets: list[dict[str, Any]] = []
    for level, path in enumerate(("data", PREVIEW_PATH)[:levels]):
        factor = 2**level
        scale = [float(meta.voxel_size) * factor] * 3
        shift = [float(o) + float(meta.voxel_size) * (factor - 1) / 2 for o in meta.origin]
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": ([1.0] if channel else []) + scale}]
        if any(shift):
            transforms.append({"type": "translation", "translation": ([0.0] if channel else []) + shift})
        datasets.append({"path": path, "coordinateTransformations": transforms})
    document: dict[str, Any] = {
        "version": NGFF_VERSION,
        "multiscales": [
            {"name": meta.run or meta.kind, "axes": axes, "datasets": datasets, "type": "mean" if levels > 1 else None}
        ],
    }
    if document["multiscales"][0]["type"] is None:
        del document["multiscales"][0]["type"]
    if channel and meta.classes:
        palette = ("808080", "0075DC", "FFA405", "2BCE48", "F0A3FF", "993F00", "4C005C", "005C31", "94FFB5")
        document["omero"] = {
            "channels": [
                {
                    "label": str(name),
                    "color": palette[i % len(palette)],
                    "active": name != BACKGROUND,
                    "window": {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0},
                }
                for i, name in enumerate(meta.classes)
            ]
        }
    return document


def downsample_block(block: np.ndarray, *, integer: bool) -> np.ndarray:
    """Halve the last three axes: 2x2x2 means (floats) or every other voxel (labels).

    Odd trailing planes are dropped by the mean and kept by the subsampling, matching
    ``ceil`` / ``floor`` shapes; :func:`preview_shape` gives the shape used.
    """
    if integer:
        return block[..., ::2, ::2, ::2]
    z, y, x = (s // 2 * 2 for s in block.shape[-3:])
    trimmed = np.asarray(block[..., :z, :y, :x], dtype=np.float32)
    lead = trimmed.shape[:-3]
    means: npt.NDArray[np.float32] = trimmed.reshape(*lead, z // 2, 2, y // 2, 2, x // 2, 2).mean(axis=(-5, -3, -1))
    return means


def preview_shape(shape: Sequence[int], *, integer: bool) -> tuple[int, ...]:
    """The shape of the 2x level of an array of ``shape``."""
    spatial = [(s + 1) // 2 if integer else s // 2 for s in shape[-3:]]
    return tuple(shape[:-3]) + tuple(spatial)


def _add_preview_level(path: Path, array: Any, meta: ArtifactMeta) -> None:
    """Write ``data_2x`` from the finished level 0, 64 z-planes at a time, and list it."""
    import zarr
    from zarr.storage import LocalStore

    integer = np.dtype(array.dtype).kind in "biu"
    group = zarr.open_group(store=LocalStore(path), mode="r+")
    shape = preview_shape(array.shape, integer=integer)
    if min(shape[-3:]) < 1:
        raise UsageError(f"{path}: too small for a 2x preview level ({tuple(array.shape)})")
    chunks = default_chunks(shape, meta.axes)
    half = group.create_array(
        PREVIEW_PATH,
        shape=shape,
        dtype=array.dtype,
        chunks=chunks,
        fill_value=0,
        compressors=compressors(),
        dimension_names=_dimension_names(meta.axes),
    )
    depth = shape[-3]
    for start in range(0, depth, 32):
        stop = min(depth, start + 32)
        block = array[..., 2 * start : 2 * stop, :, :]
        half[..., start:stop, :, :] = downsample_block(np.asarray(block), integer=integer).astype(array.dtype)
    group.attrs["ome"] = ngff_metadata(meta, levels=2)


def _zip_directory(source: Path, destination: Path) -> None:
    """Pack a zarr directory store into a zip (stored, chunks are already compressed)."""
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for root, _dirs, files in os.walk(source):
            for name in sorted(files):
                full = Path(root) / name
                zf.write(full, full.relative_to(source).as_posix())


def _create_npy(
    path: Path, shape: Sequence[int], dtype: npt.DTypeLike, meta: ArtifactMeta, overwrite: bool
) -> Iterator[Any]:
    """The array goes into place first (exclusively), then its sidecar: until the sidecar is
    there the ``.npy`` is no readable artifact; a sidecar that cannot be written takes the
    array with it."""
    sidecar = path.with_name(path.name + ".json")
    check_output(sidecar, overwrite=overwrite)
    with atomic_path(path, overwrite=overwrite) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
        try:
            _preallocate(tmp)
            yield array
            array.flush()
        finally:
            del array
    try:
        with atomic_path(sidecar, overwrite=True) as tmp_json:
            tmp_json.write_text(json.dumps({"czii": meta.to_json()}, indent=1))
    except BaseException:
        remove_path(path)
        raise


def _preallocate(path: Path) -> None:
    """Reserve the disk space of a sparse file, so that a full disk is an OSError now
    rather than a SIGBUS when the memory map is written (where the system can reserve it)."""
    if not hasattr(os, "posix_fallocate"):
        return
    descriptor = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(descriptor, 0, os.fstat(descriptor).st_size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(descriptor)


def check_same_grid(reference: Volume, other: Volume, *, spatial_only: bool = True) -> None:
    """Raise a DataError naming both files if two volumes do not share one voxel grid.

    Compares the spatial shape, voxel size (within :data:`~czii_cli.coords.VOXEL_SIZE_RTOL`)
    and origin (within 0.001 Å), and the full shape when ``spatial_only`` is false.
    """
    a: tuple[int, ...]
    b: tuple[int, ...]
    if spatial_only:
        a, b = reference.spatial_shape, other.spatial_shape
    else:
        a, b = reference.shape, other.shape
    if a != b:
        raise DataError(f"{other.source}: shape {b} does not match {reference.source} {a}")
    if not same_voxel_size(reference.meta.voxel_size, other.meta.voxel_size):
        raise DataError(
            f"{other.source}: voxel size {other.meta.voxel_size} Å does not match "
            f"{reference.source} {reference.meta.voxel_size} Å"
        )
    if any(abs(x - y) > 1e-3 for x, y in zip(reference.meta.origin, other.meta.origin)):
        raise DataError(
            f"{other.source}: origin {other.meta.origin} does not match {reference.source} {reference.meta.origin}"
        )
