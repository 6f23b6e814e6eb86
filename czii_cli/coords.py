"""Conversions between picks in Å (columns x, y, z) and voxel indices (axes z, y, x).

Voxel index ``i`` along an axis sits at ``i * voxel_size + origin`` Å, the
competition's convention (10 Å voxels, index * 10).  ``origin`` is given in zyx order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import CziiError, DataError

VOXEL_SIZE_RTOL = 1e-3
"""Two voxel sizes are the same when they differ by at most this fraction of the larger
(0.01 Å at 10 Å: over 600 voxels the grids drift apart by less than one voxel)."""

MODEL_VOXEL_SIZE_WARNING = 0.05
"""A tomogram whose voxel size is off the model's training voxel size by more than this
fraction gets a warning when predicted (particles then look larger or smaller)."""


def angstrom_to_voxel(
    xyz_angstrom: np.ndarray, *, voxel_size: float, origin_zyx: Sequence[float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Convert picks in Å (``N x 3``, x/y/z) to fractional voxel indices (``N x 3``, z/y/x).

    Examples
    --------
    >>> angstrom_to_voxel(np.array([[120.0, 50.0, 30.0]]), voxel_size=10.0)
    array([[ 3.,  5., 12.]])
    """
    xyz = np.asarray(xyz_angstrom, dtype=np.float64).reshape(-1, 3)
    return (xyz[:, ::-1] - np.asarray(origin_zyx, dtype=np.float64)) / float(voxel_size)


def voxel_to_angstrom(
    zyx_voxel: np.ndarray, *, voxel_size: float, origin_zyx: Sequence[float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Convert voxel indices (``N x 3``, z/y/x) to picks in Å (``N x 3``, x/y/z).

    Examples
    --------
    >>> voxel_to_angstrom(np.array([[3.0, 5.0, 12.0]]), voxel_size=10.0)
    array([[120.,  50.,  30.]])
    """
    zyx = np.asarray(zyx_voxel, dtype=np.float64).reshape(-1, 3)
    return (zyx * float(voxel_size) + np.asarray(origin_zyx, dtype=np.float64))[:, ::-1]


def same_voxel_size(a: float, b: float) -> bool:
    """True when voxel sizes ``a`` and ``b`` (Å) are the same within :data:`VOXEL_SIZE_RTOL`.

    A non-finite voxel size is the same as no other.

    Parameters
    ----------
    a, b : float
        Voxel sizes in Å.

    Returns
    -------
    bool

    Examples
    --------
    >>> same_voxel_size(10.0, 10.01), same_voxel_size(10.0, 10.012), same_voxel_size(1.0, 1.002)
    (True, False, False)
    >>> same_voxel_size(float("inf"), 10.0), same_voxel_size(float("nan"), float("nan"))
    (False, False)
    """
    a, b = float(a), float(b)
    if not (np.isfinite(a) and np.isfinite(b)):
        return False
    return abs(a - b) <= VOXEL_SIZE_RTOL * max(abs(a), abs(b))


def check_voxel_size(value: float | None, *, source: str, override: bool = False) -> float:
    """Return ``value`` if it is a plausible voxel size in Å, else raise :class:`DataError`.

    Plausible means 0.1 Å to 1000 Å; a missing (0 or None) voxel size is refused rather
    than silently taken as 1.  With ``override`` the value was given by the caller (not
    read from ``source``), so an unusable one is a :class:`UsageError` that says so.

    Examples
    --------
    >>> check_voxel_size(10, source="a.mrc")
    10.0
    """
    from .errors import DataError

    if override:
        valid_voxel_size(value)
    if value is None or not np.isfinite(value) or value <= 0:
        raise DataError(f"{source}: no voxel size recorded; give the voxel size (Å)")
    if not 0.1 <= value <= 1000.0:
        raise DataError(f"{source}: implausible voxel size {value} Å; give the voxel size (Å)")
    return float(value)


def valid_voxel_size(value: float | str | None) -> float:
    """Return a voxel size given by a user if it is a positive, finite number of Å.

    Raises
    ------
    UsageError
        For 0, a negative number, NaN or infinity, naming the value.

    Examples
    --------
    >>> valid_voxel_size(10)
    10.0
    """
    from .errors import UsageError

    try:
        if value is None:  # refused like any other value float() cannot take
            raise TypeError(value)
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid voxel size {value!r}: expected a positive number of Å") from None
    if not (np.isfinite(number) and number > 0):
        raise UsageError(f"invalid voxel size {value}: expected a positive, finite number of Å")
    return number


def check_zyx(
    shape: Sequence[int],
    *,
    source: str,
    what: str = "volume",
    axes: str | None = None,
    error: type[CziiError] = DataError,
) -> tuple[int, int, int]:
    """Check that an array is a single-channel ``zyx`` volume: axes ``zyx`` (when known), three dimensions.

    Parameters
    ----------
    shape : sequence of int
        The array's shape.
    source : str
        What the message names first: the file, or the parameter.
    what : str
        What the volume is, for the message (``tomogram``, ``MRC volume``, ...).
    axes : str, optional
        The axes its metadata declares, when it has any.
    error : CziiError subclass
        The error raised (``DataError`` for files, ``UsageError`` for arguments).

    Returns
    -------
    tuple of int
        The shape ``(Z, Y, X)``.

    Examples
    --------
    >>> check_zyx((4, 5, 6), source="a.mrc")
    (4, 5, 6)
    >>> check_zyx((2, 4, 5, 6), source="p.zarr", what="tomogram", axes="czyx")
    Traceback (most recent call last):
    czii_cli.errors.DataError: p.zarr: expected a single-channel zyx tomogram, found axes 'czyx'
    >>> check_zyx((4, 5), source="a.mrc", what="MRC volume")
    Traceback (most recent call last):
    czii_cli.errors.DataError: a.mrc: expected a (z, y, x) MRC volume, found shape (4, 5)
    """
    if axes is not None and axes != "zyx":
        raise error(f"{source}: expected a single-channel zyx {what}, found axes {axes!r}")
    sides = tuple(int(side) for side in shape)
    if len(sides) != 3:
        raise error(f"{source}: expected a (z, y, x) {what}, found shape {sides}")
    return sides[0], sides[1], sides[2]


def check_czyx(axes: str, *, source: str, what: str = "probability map") -> None:
    """Check that an array's metadata declares per-class channels over a volume: axes ``czyx``.

    Parameters
    ----------
    axes : str
        The axes its metadata declares.
    source : str
        What the message names first: the file.
    what : str
        What the array should be, for the message.

    Raises
    ------
    DataError
        Any other axes.

    Examples
    --------
    >>> check_czyx("czyx", source="p.zarr")
    >>> check_czyx("zyx", source="t.zarr")
    Traceback (most recent call last):
    czii_cli.errors.DataError: t.zarr: expected a czyx probability map, found axes 'zyx'
    """
    if axes != "czyx":
        raise DataError(f"{source}: expected a czyx {what}, found axes {axes!r}")
