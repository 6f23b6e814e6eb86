"""Sliding-window geometry: where the windows go and how their outputs are weighted.

Windows form a grid: along each axis the starts are spread evenly over the (padded)
extent, with the fewest windows that keep at least the requested overlap between
neighbours.  Each window's output is weighted by a Gaussian importance map, the product
of three 1D Gaussians (sigma = ``sigma_scale`` x window side, centred on the window,
as MONAI's ``compute_importance_map``).  Because both the grid and the map are
separable, the sum of the weights at voxel ``(z, y, x)`` is the product of three 1D sums;
normalising by it needs three short vectors instead of a weight volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import UsageError

SIGMA_SCALE = 0.125


def window_starts(size: int, window: int, *, overlap: float) -> list[int]:
    """Starts of the fewest windows of ``window`` voxels covering ``size`` with the overlap.

    Neighbouring windows overlap by at least ``overlap`` x ``window`` voxels; the starts
    are spread evenly, so the first window starts at 0 and the last ends at ``size``.
    An axis no longer than the window gets one window at 0 (the volume is padded).

    Parameters
    ----------
    size : int
        Extent of the axis in voxels.
    window : int
        Window side in voxels.
    overlap : float
        Minimum overlap between neighbours as a fraction of the window, in [0, 1).

    Returns
    -------
    list of int

    Examples
    --------
    >>> window_starts(320, 96, overlap=0.25)
    [0, 56, 112, 168, 224]
    >>> window_starts(192, 96, overlap=0.0)
    [0, 96]
    >>> window_starts(50, 96, overlap=0.25)
    [0]
    """
    if not 0.0 <= overlap < 1.0:
        raise UsageError(f"overlap must lie in [0, 1), got {overlap}")
    if size <= window:
        return [0]
    step = window * (1.0 - overlap)
    count = math.ceil((size - window) / step - 1e-9) + 1
    return [round(i * (size - window) / (count - 1)) for i in range(count)]


def gaussian_profile(window: int, *, sigma_scale: float = SIGMA_SCALE) -> np.ndarray:
    """1D Gaussian weights over a window side, peak 1 at the centre, float64.

    Examples
    --------
    >>> gaussian_profile(4, sigma_scale=0.25).round(3)
    array([0.325, 0.882, 0.882, 0.325])
    """
    offsets = np.arange(window, dtype=np.float64) - (window - 1) / 2.0
    sigma = sigma_scale * window
    return np.exp(-0.5 * (offsets / sigma) ** 2)


@dataclass(frozen=True)
class Tiling:
    """The window grid over one volume.

    Attributes
    ----------
    shape : tuple of int
        The volume's spatial shape (z, y, x).
    window : tuple of int
        Window shape (z, y, x).
    starts : tuple of three lists of int
        Window starts along z, y and x; the windows are their Cartesian product.
    """

    shape: tuple[int, int, int]
    window: tuple[int, int, int]
    starts: tuple[list[int], list[int], list[int]]

    @classmethod
    def plan(cls, shape: Sequence[int], window: Sequence[int], *, overlap: float) -> Tiling:
        """The grid of the fewest windows with at least ``overlap`` between neighbours.

        Examples
        --------
        >>> t = Tiling.plan((184, 630, 630), (96, 96, 96), overlap=0.25)
        >>> t.count, t.padded_shape
        (243, (184, 630, 630))
        >>> Tiling.plan((5, 40, 40), (8, 16, 16), overlap=0.5).padded_shape
        (8, 40, 40)
        """
        shape = tuple(int(s) for s in shape)
        window = tuple(int(w) for w in window)
        if len(shape) != 3 or len(window) != 3 or min(window) < 1 or min(shape) < 1:
            raise UsageError(f"cannot tile a volume of shape {shape} with windows of {window}")
        z, y, x = (window_starts(s, w, overlap=overlap) for s, w in zip(shape, window))
        return cls(shape=shape, window=window, starts=(z, y, x))

    @property
    def padded_shape(self) -> tuple[int, int, int]:
        """The volume's shape after zero-padding axes shorter than the window."""
        z, y, x = (max(s, w) for s, w in zip(self.shape, self.window))
        return (z, y, x)

    @property
    def count(self) -> int:
        """Number of windows."""
        return len(self.starts[0]) * len(self.starts[1]) * len(self.starts[2])

    def plane_windows(self) -> list[tuple[int, int]]:
        """The (y, x) starts of the windows in one z band, row by row."""
        return [(y, x) for y in self.starts[1] for x in self.starts[2]]

    def importance_map(self, *, sigma_scale: float = SIGMA_SCALE) -> npt.NDArray[np.float32]:
        """The window's Gaussian weights, shape ``window``, float32."""
        z, y, x = (gaussian_profile(w, sigma_scale=sigma_scale) for w in self.window)
        weights: npt.NDArray[np.float32] = (z[:, None, None] * y[None, :, None] * x[None, None, :]).astype(np.float32)
        return weights

    def inverse_weight_sums(self, *, sigma_scale: float = SIGMA_SCALE) -> tuple[np.ndarray, ...]:
        """Per axis, 1 / (sum of the Gaussian weights of the windows covering each voxel).

        Multiplying the three vectors' outer product into the blended sums gives the
        weighted mean, over the padded shape.
        """
        inverses = []
        for size, window, starts in zip(self.padded_shape, self.window, self.starts):
            profile = gaussian_profile(window, sigma_scale=sigma_scale)
            total = np.zeros(size, dtype=np.float64)
            for start in starts:
                total[start : start + window] += profile
            inverses.append((1.0 / total).astype(np.float32))
        return tuple(inverses)
