"""Where particles go: class counts scaled from the real data, crowded but never overlapping.

Counts follow the competition's training set (1,269 particles over 7 runs of
184x630x630 voxels of 10 Å), scaled with the physical volume of the run and drawn from
a Poisson law, so a small run may lack a rare class.  Classes outside the six get the
mean density of the six.

Placement is rejection sampling: a candidate centre, uniform in the volume but at least
half its radius from every face, is accepted when it keeps ``MIN_SEPARATION * (r_i + r_j)``
from every placed object and stays clear of every membrane by its radius.  Objects go in
from the largest down, which packs best.  The check is a vectorised distance test against
every placed object (a few hundred per full-size run), cheaper here than rebuilding a
KD-tree after each insertion.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..catalog import Catalog
from .membranes import Membrane

REAL_COUNTS = {
    "apo-ferritin": 375,
    "beta-amylase": 87,
    "beta-galactosidase": 112,
    "ribosome": 331,
    "thyroglobulin": 251,
    "virus-like-particle": 113,
}
REAL_VOLUME_A3 = 7 * 184 * 630 * 630 * 10.0**3
MIN_SEPARATION = 1.0  # centre distance >= (r_i + r_j) * this: particle spheres never intersect
BORDER_FRACTION = 0.5  # centres at least radius * this inside the volume
OFF_TARGETS_PER_PARTICLE = 0.5  # off-target proteins per expected true particle
OFF_TARGET_RADII_A = (30.0, 110.0)
GOLD_PER_CUBIC_MICRON = 100.0  # about 7 beads in a 184x630x630 run of 10 Å voxels
GOLD_RADII_A = (45.0, 55.0)  # 10 nm fiducials
MAX_ATTEMPTS = 500


def expected_counts(
    catalog: Catalog, shape_zyx: Sequence[int], *, voxel_size: float, density_scale: float = 1.0
) -> dict[str, float]:
    """Mean number of particles of each class in a run of this size.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> round(expected_counts(DEFAULT_CATALOG, (184, 630, 630), voxel_size=10.0)["ribosome"], 2)
    47.29
    """
    fraction = float(np.prod(shape_zyx)) * voxel_size**3 / REAL_VOLUME_A3 * density_scale
    mean_count = sum(REAL_COUNTS.values()) / len(REAL_COUNTS)
    return {c.name: REAL_COUNTS.get(c.name, mean_count) * fraction for c in catalog}


class ExclusionSampler:
    """Rejection sampler of non-overlapping balls in a box, avoiding membranes.

    Parameters
    ----------
    shape_zyx : sequence of 3 ints
        The volume, in voxels.
    membranes : sequence of Membrane
        Bilayers that no ball may cross.
    rng : numpy Generator
    """

    def __init__(self, shape_zyx: Sequence[int], *, membranes: Sequence[Membrane], rng: np.random.Generator):
        self.shape = np.asarray(shape_zyx, dtype=float)
        self.membranes = list(membranes)
        self.rng = rng
        self.centres = np.empty((0, 3))
        self.radii = np.empty(0)

    def add(self, centre_zyx: np.ndarray, radius: float) -> None:
        """Record a ball without checking it (positions given by the user)."""
        self.centres = np.vstack([self.centres, np.asarray(centre_zyx, dtype=float)[None]])
        self.radii = np.append(self.radii, radius)

    def fits(self, centre_zyx: np.ndarray, radius: float) -> bool:
        """True when a ball here overlaps no placed ball and no membrane."""
        if len(self.radii):
            distance = np.linalg.norm(self.centres - centre_zyx, axis=1)
            if np.any(distance < MIN_SEPARATION * (self.radii + radius)):
                return False
        return all(m.clearance(centre_zyx) >= radius for m in self.membranes)

    def place(self, radius: float) -> np.ndarray | None:
        """Find and record a free centre for a ball of ``radius`` voxels, or None if full."""
        margin = np.minimum(BORDER_FRACTION * radius, (self.shape - 1) / 2)
        for _ in range(MAX_ATTEMPTS):
            centre = self.rng.uniform(margin, self.shape - 1 - margin)
            if self.fits(centre, radius):
                self.add(centre, radius)
                return centre
        return None


def place_random(sampler: ExclusionSampler, radii: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place balls of the given radii (voxels), largest first; drop those that find no room.

    Returns the indices (into ``radii``) of the placed balls and their centres
    (``N x 3``, z/y/x voxels), in placement order.
    """
    placed, centres = [], []
    for index in np.argsort(-np.asarray(radii, dtype=float), kind="stable"):
        centre = sampler.place(float(radii[index]))
        if centre is not None:
            placed.append(index)
            centres.append(centre)
    return np.asarray(placed, dtype=int), np.asarray(centres, dtype=float).reshape(-1, 3)


def draw_off_target_radii(
    expected_particles: float, *, voxel_size: float, rng: np.random.Generator, rate_scale: float = 1.0
) -> np.ndarray:
    """Radii (voxels) of the off-target proteins of a run.

    Their mean count is ``OFF_TARGETS_PER_PARTICLE * expected_particles * rate_scale``.
    """
    count = rng.poisson(OFF_TARGETS_PER_PARTICLE * expected_particles * rate_scale)
    return rng.uniform(*OFF_TARGET_RADII_A, size=count) / voxel_size


def draw_gold_radii(
    shape_zyx: Sequence[int], *, voxel_size: float, rng: np.random.Generator, rate_scale: float
) -> np.ndarray:
    """Radii (voxels) of the gold beads of a run: Poisson, ``GOLD_PER_CUBIC_MICRON * rate_scale``.

    Examples
    --------
    >>> radii = draw_gold_radii((184, 630, 630), voxel_size=10.0, rng=np.random.default_rng(0), rate_scale=3.0)
    >>> len(radii) > 0 and bool(np.all((radii >= 4.5) & (radii <= 5.5)))
    True
    """
    cubic_microns = float(np.prod(shape_zyx)) * (voxel_size * 1e-4) ** 3
    count = rng.poisson(GOLD_PER_CUBIC_MICRON * cubic_microns * rate_scale)
    return rng.uniform(*GOLD_RADII_A, size=count) / voxel_size
