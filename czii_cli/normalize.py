"""Tomogram intensity normalization, as the competition's top solutions did it.

* ``zscore``: subtract the tomogram's mean and divide by its standard deviation
  (optionally clip the result to ``clip = (lo, hi)`` standard deviations);
* ``robust``: subtract the median and divide by the standard deviation that the median
  absolute deviation implies (1.4826 MAD), both from an even subsample of at most
  :data:`ROBUST_SAMPLE_VOXELS` finite voxels, then clip to ``clip`` (default -5, 5).  A
  few very dark objects (gold beads, vesicles, carbon edges) move the mean and inflate
  the standard deviation, and with them every particle's contrast; they barely move the
  median and the MAD, and the clip keeps them from dominating a network's input.
* ``percentile``: clip to the ``clip = (lo, hi)`` percentiles (default 5, 99, the 5th
  place's choice), then min-max scale to [0, 1].

Statistics are taken over the whole tomogram, slab by slab, so a full 184x630x630 volume
is normalized without holding float64 copies.  Models record the *method* (not the
numbers); every tomogram is normalized with its own statistics.

Non-finite voxels (NaN, +-Inf) never enter the statistics.  By default a tomogram with
any is refused (:class:`~czii_cli.errors.NonFiniteError`, with the count); with
``nonfinite="fill"`` they are replaced by the mean of the finite voxels before scaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .errors import NonFiniteError, UsageError

if TYPE_CHECKING:
    from .io.volumes import VolumeRequest

METHODS = ("zscore", "robust", "percentile")
NONFINITE_POLICIES = ("error", "fill")
DEFAULT_PERCENTILE_CLIP = (5.0, 99.0)
DEFAULT_ROBUST_CLIP = (-5.0, 5.0)
ROBUST_SAMPLE_VOXELS = 1 << 23
MAD_TO_STD = 1.4826  # the standard deviation of a normal distribution per unit of MAD


def normalization_method(method: str = "zscore", clip: Sequence[float] | None = None) -> dict[str, Any]:
    """Validate and describe a normalization: ``{"method": ..., "clip": [lo, hi] | None}``."""
    if method not in METHODS:
        raise UsageError(f"unknown normalization {method!r} (choose from {', '.join(METHODS)})")
    if method == "percentile" and clip is None:
        clip = DEFAULT_PERCENTILE_CLIP
    if method == "robust" and clip is None:
        clip = DEFAULT_ROBUST_CLIP
    if clip is not None:
        lo, hi = (float(v) for v in clip)
        if not lo < hi:
            raise UsageError(f"clip needs LO < HI, got {lo} {hi}")
        if method == "percentile" and not (0.0 <= lo and hi <= 100.0):
            raise UsageError(f"percentile clip must lie in [0, 100], got {lo} {hi}")
        clip = [lo, hi]
    return {"method": method, "clip": clip}


def normalization_stats(
    data: Any,
    *,
    method: str = "zscore",
    clip: Sequence[float] | None = None,
    slab: int = 16,
    nonfinite: str = "error",
    source: str = "the volume",
) -> dict[str, Any]:
    """Compute the statistics a normalization needs over the finite voxels of a volume.

    Parameters
    ----------
    data : array-like, shape (Z, Y, X)
        The tomogram; may be lazy (zarr, memmap): it is read ``slab`` z-planes at a time.
    method, clip : see :func:`normalization_method`.
    nonfinite : {"error", "fill"}
        What NaN and infinite voxels do: ``error`` raises :class:`NonFiniteError`
        naming ``source`` and the count; ``fill`` records the finite mean (``fill``) so
        :func:`apply_normalization` puts it in their place.
    source : str
        The volume's name, for error messages.

    Returns
    -------
    dict
        The method description plus ``mean``/``std`` (zscore), ``center``/``scale``
        (robust) or ``low``/``high`` (percentile), ``nonfinite`` (the count) and
        ``fill`` (None unless voxels are replaced), ready for :func:`apply_normalization`.

    Raises
    ------
    NonFiniteError
        Non-finite voxels with ``nonfinite="error"``, or no finite voxel at all.

    Examples
    --------
    >>> s = normalization_stats(np.array([[[1.0, 3.0]]]))
    >>> s["mean"], s["std"]
    (2.0, 1.0)
    >>> s = normalization_stats(np.array([[[1.0, np.nan, 3.0]]]), nonfinite="fill")
    >>> s["mean"], s["nonfinite"], s["fill"]
    (2.0, 1, 2.0)

    One very dark voxel among a thousand moves the z-score statistics, not the robust ones:

    >>> values = np.tile([-1.0, 0.0, 1.0], 334)[:1000].reshape(10, 10, 10)
    >>> values[0, 0, 0] = -1000.0
    >>> z, r = normalization_stats(values), normalization_stats(values, method="robust")
    >>> round(z["mean"], 2), round(z["std"], 1), r["center"], r["scale"]
    (-1.0, 31.6, 0.0, 1.4826)
    """
    spec = normalization_method(method, clip)
    if nonfinite not in NONFINITE_POLICIES:
        raise UsageError(f"unknown non-finite policy {nonfinite!r} (choose from {', '.join(NONFINITE_POLICIES)})")
    depth = data.shape[0]
    total = int(np.prod(data.shape))
    zscore = spec["method"] == "zscore"
    count, mean, m2, bad = 0, 0.0, 0.0, 0
    flat = None if zscore else np.empty(total, dtype=np.float32)  # finite voxels, for the percentiles
    # the z-score's float64 slab, reused: a fresh one per slab costs its page faults
    scratch: npt.NDArray[np.float64] | None = None
    for start in range(0, depth, slab):
        raw = np.asarray(data[start : start + slab])
        block: npt.NDArray[np.floating[Any]]
        if zscore:
            if scratch is None or scratch.size < raw.size:
                scratch = np.empty(raw.size, dtype=np.float64)
            block = scratch[: raw.size].reshape(raw.shape)
            np.copyto(block, raw, casting="unsafe")
        else:
            block = np.asarray(raw, dtype=np.float32)
        block_sum = float(block.sum(dtype=np.float64))
        if not np.isfinite(block_sum):  # only then look for the voxels that are not finite
            finite = np.isfinite(block)
            bad += int(block.size - np.count_nonzero(finite))
            block = block[finite]
            block_sum = float(block.sum(dtype=np.float64))
        n = block.size
        if n == 0:
            continue
        if not zscore:
            assert flat is not None  # allocated for every method but zscore
            flat[count : count + n] = block.ravel()
            count, mean = count + n, mean + block_sum  # the sum, divided below
            continue
        block_mean = block_sum / n
        np.subtract(block, block_mean, out=block)  # in place: the slab is read again for the next one
        block_m2 = float(np.square(block, out=block).sum())
        delta = block_mean - mean
        grown = count + n
        mean += delta * n / grown
        m2 += block_m2 + delta * delta * count * n / grown
        count = grown
    if count == 0:
        raise NonFiniteError(f"{source}: no finite voxel (all {total} are NaN or infinite)", count=bad, total=total)
    if bad and nonfinite == "error":
        raise NonFiniteError(
            f"{source}: {bad} of {total} voxels are not finite (NaN or infinite)", count=bad, total=total
        )
    if zscore:
        std = float(np.sqrt(m2 / count))
        return {**spec, "mean": mean, "std": std if std > 0 else 1.0, "nonfinite": bad, "fill": mean if bad else None}
    fill = mean / count if bad else None
    assert flat is not None  # allocated for every method but zscore
    if spec["method"] == "robust":
        return {**spec, **_robust_center_scale(flat[:count]), "nonfinite": bad, "fill": fill}
    low, high = np.percentile(flat[:count], spec["clip"], overwrite_input=True)
    return {**spec, "low": float(low), "high": float(high), "nonfinite": bad, "fill": fill}


def _robust_center_scale(finite: npt.NDArray[np.float32]) -> dict[str, float]:
    """Median and MAD-implied standard deviation of an even subsample of ``finite`` voxels."""
    sample = finite[:: max(1, len(finite) // ROBUST_SAMPLE_VOXELS)]
    center = float(np.median(sample))
    scale = MAD_TO_STD * float(np.median(np.abs(sample - np.float32(center))))
    if scale <= 0:  # more than half the voxels share one value: fall back to the spread
        scale = float(sample.std())
    return {"center": center, "scale": scale if scale > 0 else 1.0}


def count_nonfinite(data: Any, *, slab: int = 16) -> tuple[int, int]:
    """Count NaN and infinite values of a (possibly lazy) array, ``slab`` planes at a time.

    Returns
    -------
    (int, int)
        The number of non-finite values and the number of values.

    Examples
    --------
    >>> count_nonfinite(np.array([[1.0, np.inf], [np.nan, 0.0]]))
    (2, 4)
    """
    bad = 0
    for start in range(0, data.shape[0], slab):
        block = np.asarray(data[start : start + slab])
        if block.dtype.kind == "f":
            bad += int(block.size - np.count_nonzero(np.isfinite(block)))
    return bad, int(np.prod(data.shape))


def apply_normalization(block: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """Normalize a block of voxels with precomputed statistics; returns float32.

    Non-finite voxels take the value ``stats["fill"]`` first when it is set.
    """
    block = np.asarray(block, dtype=np.float32)
    if stats.get("fill") is not None:
        block = np.where(np.isfinite(block), block, np.float32(stats["fill"]))
    if stats["method"] in ("zscore", "robust"):
        center, scale = (
            (stats["mean"], stats["std"]) if stats["method"] == "zscore" else (stats["center"], stats["scale"])
        )
        out = (block - np.float32(center)) / np.float32(scale)
        if stats.get("clip") is not None:
            np.clip(out, stats["clip"][0], stats["clip"][1], out=out)
        return out
    low, high = np.float32(stats["low"]), np.float32(stats["high"])
    scale = high - low if high > low else np.float32(1.0)
    out = (np.clip(block, low, high) - low) / scale
    return np.asarray(out, dtype=np.float32)  # no copy when already float32, as astype(copy=False)


def normalize(
    data: Any, *, method: str = "zscore", clip: Sequence[float] | None = None, nonfinite: str = "error"
) -> np.ndarray:
    """Normalize a whole volume in memory (see :func:`normalization_stats`).

    Examples
    --------
    >>> normalize(np.array([[[1.0, 3.0]]]))
    array([[[-1.,  1.]]], dtype=float32)
    >>> normalize(np.arange(5.0).reshape(1, 1, 5), method="percentile", clip=(0, 100))
    array([[[0.  , 0.25, 0.5 , 0.75, 1.  ]]], dtype=float32)
    """
    stats = normalization_stats(data, method=method, clip=clip, nonfinite=nonfinite)
    return apply_normalization(np.asarray(data), stats)


class NormalizedFile(NamedTuple):
    """What :func:`normalize_file` wrote.

    Attributes
    ----------
    output : Path or str
        The artifact (``-`` when streamed to stdout).
    source : str
        The tomogram read, as its messages name it.
    shape : tuple of int
        The volume's shape (z, y, x).
    stats : dict
        The statistics used (:func:`normalization_stats`), as the artifact records them.
    """

    output: Path | str
    source: str
    shape: tuple[int, ...]
    stats: dict[str, Any]


NORMALIZE_SLAB = 64
"""Planes written at a time: the artifact's chunk depth, so each chunk is written once."""


def normalize_file(
    tomogram: Path,
    output: Path | str,
    *,
    method: str = "zscore",
    clip: Sequence[float] | None = None,
    request: VolumeRequest | None = None,
    fill_nonfinite: bool = False,
    preview: bool = False,
    overwrite: bool = False,
) -> NormalizedFile:
    """Normalize a tomogram file into a czii tomogram artifact.

    The statistics are taken over the whole tomogram (see :func:`normalization_stats`),
    then the volume is written slab by slab; the artifact keeps the voxel size, run, the
    statistics and its provenance, and appears under its name only when complete.

    Parameters
    ----------
    tomogram : Path
        Any readable volume: MRC, OME-Zarr, czii artifact, or a copick project.
    output : Path or "-"
        The artifact (``.zarr`` directory or zip, ``.npy``); ``-`` streams a zip to stdout.
    method, clip :
        The normalization (see :func:`normalization_method`).
    request : VolumeRequest, optional
        Run, tomogram type and voxel-size override to read ``tomogram`` with.
    fill_nonfinite : bool
        Replace NaN and infinite voxels by the mean of the finite ones (``stats`` of the
        result counts them); by default such a tomogram is refused.
    preview : bool
        Also store a 2x downsampled level (OME-Zarr multiscales).
    overwrite : bool
        Replace an existing ``output``.

    Returns
    -------
    NormalizedFile

    Raises
    ------
    UsageError
        An unknown method, a bad clip, or an existing output without ``overwrite``.
    NonFiniteError
        Non-finite voxels without ``fill_nonfinite``, or no finite voxel at all.

    Examples
    --------
    >>> import tempfile
    >>> from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact
    >>> folder = Path(tempfile.mkdtemp())
    >>> raw = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0, run="TS_1")
    >>> _ = write_artifact(folder / "raw.zarr", np.array([[[1.0, 3.0]]], np.float32), raw)
    >>> done = normalize_file(folder / "raw.zarr", folder / "t.zarr")
    >>> read_artifact(done.output).data[:].tolist(), done.stats["mean"]
    ([[[-1.0, 1.0]]], 2.0)
    """
    from .io.artifacts import create_artifact
    from .io.volumes import VolumeRequest, read_tomogram

    spec = normalization_method(method, clip)
    volume = read_tomogram(tomogram, request or VolumeRequest())
    stats = normalization_stats(
        volume.data,
        method=spec["method"],
        clip=spec["clip"],
        nonfinite="fill" if fill_nonfinite else "error",
        source=volume.source,
    )
    meta = volume.meta.evolve(kind="tomogram", extra={**volume.meta.extra, "normalization": stats})
    meta = meta.with_step("normalize", args={**spec, "fill_nonfinite": fill_nonfinite}, inputs=[volume.source])
    with create_artifact(
        output, shape=volume.shape, dtype="float32", meta=meta, overwrite=overwrite, preview=preview
    ) as out:
        for start in range(0, volume.shape[0], NORMALIZE_SLAB):
            out[start : start + NORMALIZE_SLAB] = apply_normalization(
                volume.data[start : start + NORMALIZE_SLAB], stats
            )
    return NormalizedFile(output, volume.source, tuple(volume.shape), stats)
