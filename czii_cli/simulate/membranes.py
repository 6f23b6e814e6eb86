"""Membranes as distractors: vesicles and gently curved sheets, both spherical shells.

A vesicle is a small shell (radius 200-600 Å) whose centre lies in the volume; a sheet is
a slice of a large shell (radius 2000-6000 Å) that crosses the volume through a random
point, so only a curved band of it shows.  Both are lipid bilayers 40 Å thick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .shapes import EDGE_VOXELS

VESICLES_PER_CUBIC_MICRON = 30.0  # about 2 in a 184x630x630 run of 10 Å voxels
SHEETS_PER_CUBIC_MICRON = 10.0  # about 0.7 in such a run
VESICLE_RADII_A = (200.0, 600.0)
SHEET_RADII_A = (2000.0, 6000.0)
BILAYER_THICKNESS_A = 40.0
BILAYER_DENSITY = 0.7  # relative to protein (1.0)


@dataclass(frozen=True)
class Membrane:
    """A spherical bilayer; lengths in voxels, centre in z, y, x."""

    centre_zyx: tuple[float, float, float]
    radius: float
    thickness: float

    def clearance(self, points_zyx: np.ndarray) -> np.ndarray:
        """Distance (voxels) from each point to the nearer face of the bilayer."""
        distance = np.linalg.norm(np.asarray(points_zyx) - np.asarray(self.centre_zyx), axis=-1)
        clearance: np.ndarray = np.abs(distance - self.radius) - self.thickness / 2
        return clearance


def random_membranes(
    shape_zyx: Sequence[int], *, voxel_size: float, rng: np.random.Generator, rate_scale: float = 1.0
) -> list[Membrane]:
    """Draw the vesicles and sheets of one run; counts are Poisson in the physical volume.

    ``rate_scale`` multiplies both rates (``VESICLES_PER_CUBIC_MICRON``,
    ``SHEETS_PER_CUBIC_MICRON``); 0 gives a run without membranes.

    Examples
    --------
    >>> found = random_membranes((184, 630, 630), voxel_size=10.0, rng=np.random.default_rng(3))
    >>> all(m.thickness == 4.0 for m in found)
    True
    """
    shape = np.asarray(shape_zyx, dtype=float)
    cubic_microns = float(np.prod(shape)) * (voxel_size * 1e-4) ** 3
    thickness = BILAYER_THICKNESS_A / voxel_size
    membranes = []
    for _ in range(rng.poisson(VESICLES_PER_CUBIC_MICRON * cubic_microns * rate_scale)):
        centre = rng.uniform(0.0, shape - 1)
        radius = rng.uniform(*VESICLE_RADII_A) / voxel_size
        membranes.append(Membrane(tuple(centre), radius, thickness))
    for _ in range(rng.poisson(SHEETS_PER_CUBIC_MICRON * cubic_microns * rate_scale)):
        through = rng.uniform(0.0, shape - 1)
        direction = rng.normal(size=3)
        radius = rng.uniform(*SHEET_RADII_A) / voxel_size
        centre = through - direction / np.linalg.norm(direction) * radius
        membranes.append(Membrane(tuple(centre), radius, thickness))
    return membranes


def render_membrane(volume: np.ndarray, membrane: Membrane) -> None:
    """Add a membrane's density into ``volume`` in place, one z plane at a time."""
    centre = np.asarray(membrane.centre_zyx, dtype=np.float64)
    half = membrane.radius + membrane.thickness / 2 + EDGE_VOXELS
    low = np.maximum(np.floor(centre - half).astype(int), 0)
    high = np.minimum(np.ceil(centre + half).astype(int) + 1, volume.shape)
    if np.any(high <= low):
        return
    dy = np.arange(low[1], high[1], dtype=np.float32) - np.float32(centre[1])
    dx = np.arange(low[2], high[2], dtype=np.float32) - np.float32(centre[2])
    planar = dy[:, None] ** 2 + dx[None, :] ** 2
    half_thickness = np.float32(membrane.thickness / 2)
    for z in range(low[0], high[0]):
        distance = np.sqrt(planar + np.float32(z - centre[0]) ** 2)
        distance -= np.float32(membrane.radius)
        wall = np.clip(0.5 - (np.abs(distance) - half_thickness) / EDGE_VOXELS, 0.0, 1.0)
        volume[z, low[1] : high[1], low[2] : high[2]] += BILAYER_DENSITY * wall
