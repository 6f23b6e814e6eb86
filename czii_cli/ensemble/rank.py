"""Rank matching of float16 maps through value histograms, in bounded memory.

The competition winner mapped one model's map onto another's distribution by rank: B's
values are replaced by A's sorted values at the same rank.  Values are ranked at float16
precision (the probability maps' storage type; float32 inputs are rounded first), so a
class channel of any size is summarised by two 65,536-bin histograms, one per map, and
the mapping becomes a lookup table from B's value to A's.

Tied values (many voxels share one float16 value) occupy a block of ranks; each of them
gets the mean of A's sorted values over that block, so the result does not depend on
voxel order.  Without ties this is exactly ``out[argsort(B)] = sort(A)``.

Memory: the histograms and the table are 65,536 entries each, whatever the volume.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

BINS = 1 << 16


def float16_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving integer keys of values rounded to float16 (``-inf`` low, ``+inf`` high).

    Examples
    --------
    >>> keys = float16_keys(np.array([-2.0, -0.5, 0.0, 0.25, 3.0]))
    >>> bool(np.all(np.diff(keys.astype(int)) > 0))
    True
    """
    bits = np.asarray(values).astype(np.float16).view(np.uint16).astype(np.int32)
    negative = bits >= 0x8000
    keys = np.where(negative, 0x7FFF - (bits & 0x7FFF), bits + 0x8000)
    return keys.astype(np.uint16)


def key_values() -> np.ndarray:
    """The float value of each key of :func:`float16_keys`, as float64 (65,536 entries)."""
    keys = np.arange(BINS, dtype=np.int32)
    bits = np.where(keys >= 0x8000, keys - 0x8000, 0x8000 | (0x7FFF - keys))
    return bits.astype(np.uint16).view(np.float16).astype(np.float64)


def value_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of each float16 value (by key); add the histograms of blocks for a whole map."""
    return np.bincount(float16_keys(values).ravel(), minlength=BINS).astype(np.int64)


def rank_lookup(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Table mapping each float16 value of a map to the reference's value at the same rank.

    Parameters
    ----------
    reference, other : ndarray of int64, shape (65536,)
        Value histograms (:func:`value_histogram`) of map A and map B, which must hold
        the same number of values.

    Returns
    -------
    ndarray of float32, shape (65536,)
        Index it with ``float16_keys(b)`` to rank-match ``b`` onto A.

    Examples
    --------
    >>> a, b = np.array([0.1, 0.5, 0.9]), np.array([3.0, 1.0, 2.0])
    >>> table = rank_lookup(value_histogram(a), value_histogram(b))
    >>> table[float16_keys(b)].round(2)
    array([0.9, 0.1, 0.5], dtype=float32)
    """
    if reference.sum() != other.sum():
        raise DataError(f"rank matching needs maps of equal size ({reference.sum()} vs {other.sum()} values)")
    values = key_values()
    if np.isnan(values[reference > 0]).any() or np.isnan(values[other > 0]).any():
        raise DataError("a probability map holds NaN values; rank matching needs finite values")
    present = np.where(reference > 0, values, 0.0)
    ranks_below = np.concatenate([[0], np.cumsum(reference)])
    sums_below = np.concatenate([[0.0], np.cumsum(reference * present)])

    def smallest_sum(rank: np.ndarray) -> np.ndarray:
        """Sum of the ``rank`` smallest reference values."""
        key = np.searchsorted(ranks_below, rank, side="right") - 1
        inside = rank - ranks_below[key]
        total: np.ndarray = sums_below[key] + inside * present[np.minimum(key, BINS - 1)]
        return total

    bounds = np.concatenate([[0], np.cumsum(other)])
    with np.errstate(invalid="ignore", divide="ignore"):
        table = (smallest_sum(bounds[1:]) - smallest_sum(bounds[:-1])) / other
    lookup: np.ndarray = np.where(other > 0, table, 0.0).astype(np.float32)
    return lookup
