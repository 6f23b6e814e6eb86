"""Coarser grids: block means of a volume by an integer factor (binning).

Binning by ``k`` replaces every ``k x k x k`` block of voxels (axes zyx) with its mean,
so the voxel size grows ``k`` times and the number of voxels shrinks ``k**3`` times.
A side that ``k`` does not divide ends in a partial block, averaged over the voxels it
holds: the binned side is ``ceil(n / k)`` and no voxel is dropped.

Voxel ``j`` of the binned grid is the mean of voxels ``j k .. j k + k - 1``, whose centre
lies ``(k - 1) / 2`` voxels past voxel ``j k``: the binned grid's origin is shifted by
``(k - 1) / 2`` of the original voxel size (:func:`binned_origin`), so that picks in Å
keep their place (voxel ``i`` sits at ``i * voxel_size + origin``, see
:mod:`czii_cli.coords`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .coords import check_zyx
from .errors import NonFiniteError, UsageError


def check_factor(factor: int, *, name: str = "factor") -> int:
    """``factor`` as a positive whole number; anything else is a :class:`UsageError` naming ``name``.

    Examples
    --------
    >>> check_factor(2)
    2
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise UsageError(f"{name} must be a whole number >= 1, got {factor!r}")
    return int(factor)


def binned_shape(shape: Sequence[int], *, factor: int) -> tuple[int, int, int]:
    """The zyx shape of a volume of ``shape`` binned by ``factor`` (partial blocks kept).

    Examples
    --------
    >>> binned_shape((184, 630, 631), factor=2)
    (92, 315, 316)
    """
    factor = check_factor(factor)
    return tuple(math.ceil(int(side) / factor) for side in shape[-3:])  # type: ignore[return-value]


def binned_origin(origin_zyx: Sequence[float], *, voxel_size: float, factor: int) -> tuple[float, float, float]:
    """Where voxel (0, 0, 0) of the binned grid sits, in Å (zyx): the centre of the first block.

    Examples
    --------
    >>> binned_origin((0.0, 0.0, 100.0), voxel_size=10.0, factor=2)
    (5.0, 5.0, 105.0)
    """
    shift = (check_factor(factor) - 1) / 2.0 * float(voxel_size)
    return tuple(float(value) + shift for value in origin_zyx)  # type: ignore[return-value]


def bin_volume(volume: np.ndarray, *, factor: int, source: str = "the volume") -> np.ndarray:
    """Block means of ``volume`` over ``factor`` voxels along z, y and x.

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Any real dtype; sums are taken in float64.
    factor : int
        Voxels per block along each axis (1 returns a float32 copy).
    source : str
        What the volume is (a file name), for error messages.

    Returns
    -------
    ndarray, float32, shape ``binned_shape(volume.shape, factor=factor)``
        A side not divisible by ``factor`` ends in a block averaged over the voxels it
        holds.

    Raises
    ------
    NonFiniteError
        The volume holds NaN or infinite values (naming ``source`` and the count).
    UsageError
        ``factor`` is not a whole number >= 1, or ``volume`` is not three-dimensional.

    Examples
    --------
    >>> bin_volume(np.arange(8, dtype=np.float32).reshape(2, 2, 2), factor=2).tolist()
    [[[3.5]]]
    >>> bin_volume(np.array([[[1.0, 3.0, 8.0]]]), factor=2).tolist()
    [[[2.0, 8.0]]]
    """
    factor = check_factor(factor)
    array = np.asarray(volume)
    check_zyx(array.shape, source=source, what="volume to bin", error=UsageError)
    out = array.astype(np.float64, copy=False)
    if factor > 1:
        for axis in range(3):
            side = out.shape[axis]
            starts = np.arange(0, side, factor)
            counts = np.diff(np.append(starts, side)).astype(np.float64)
            shape = [1, 1, 1]
            shape[axis] = len(counts)
            out = np.add.reduceat(out, starts, axis=axis) / counts.reshape(shape)
    result = out.astype(np.float32)
    if not np.isfinite(result).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise NonFiniteError(
            f"{source}: {bad} of {array.size} voxels are not finite (NaN or infinite); binning needs finite values",
            count=bad,
            total=array.size,
        )
    return result
