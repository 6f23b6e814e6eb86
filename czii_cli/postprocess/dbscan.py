"""DBSCAN clustering of thresholded voxels, or of connected-component centroids.

Both variants cluster *atoms*, each with a centroid, a voxel count, a probability mass
and a peak, using scikit-learn's DBSCAN with the voxel counts as sample weights: an atom
is a core point when the atoms within ``eps`` hold at least half the class's minimum size
in voxels (or half the voxels of a ball of radius ``eps``, if fewer).  Each cluster is
one particle at the probability-weighted centroid of all its voxels, kept when it holds
at least the minimum size.

* ``points="voxels"``: the atoms are the thresholded voxels grouped into blocks of
  ``max(1, floor(eps / 2))`` voxels a side (coarser still while more than ``max_points``
  blocks remain), so a full map stays fast and no voxel is dropped: centroids, sizes and
  peaks are exact.
* ``points="centroids"``: the atoms are the connected components (the 9th place's
  variant), so fragments of one particle closer than ``eps`` become one pick.

``eps`` is ``eps_scale`` times the particle radius; by default 0.25 for ``voxels`` (blobs
with a gap narrower than that become one particle) and 0.5 for ``centroids`` (fragments
within the metric's match distance become one).

Score: the peak probability of the cluster's voxels.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError
from .common import (
    DEFAULT_MIN_SIZE_FRACTION,
    DEFAULT_RADIUS_SCALE,
    ComponentStats,
    Detections,
    component_centroids,
    grouped_stats,
    min_component_size,
)

POINTS = ("voxels", "centroids")
DEFAULT_MAX_POINTS = 200_000
DEFAULT_EPS_SCALES = {"voxels": 0.25, "centroids": 0.5}


def dbscan_picks(
    prob: np.ndarray,
    *,
    threshold: float,
    radius: float,
    points: str = "voxels",
    eps_scale: float | None = None,
    connectivity: int = 26,
    radius_scale: float = DEFAULT_RADIUS_SCALE,
    min_size_fraction: float = DEFAULT_MIN_SIZE_FRACTION,
    min_size: int | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> Detections:
    """Cluster one class's thresholded map with DBSCAN.

    Parameters
    ----------
    prob : ndarray, shape (Z, Y, X)
        Probability (or heatmap) of one class.
    threshold : float
        Voxels with ``prob >= threshold`` are clustered.
    radius : float
        Particle radius in voxels.
    points : {"voxels", "centroids"}
        Cluster the voxels themselves or the centroids of connected components.
    eps_scale : float, optional
        DBSCAN neighbourhood radius as a fraction of the particle radius (default 0.25
        for voxels, 0.5 for centroids).
    connectivity : {6, 18, 26}
        Component labelling for ``points="centroids"``.
    radius_scale, min_size_fraction, min_size
        Minimum particle size, see :func:`~czii_cli.postprocess.common.min_component_size`.
    max_points : int
        Most voxel blocks clustered (``voxels``); blocks grow to stay below.

    Returns
    -------
    Detections
        Cluster centroids (voxels, z/y/x) and peak probabilities.

    Examples
    --------
    >>> prob = np.zeros((6, 6, 14), np.float32)
    >>> prob[1:4, 1:4, 1:4] = 0.5
    >>> prob[1:4, 1:4, 5:8] = 0.75  # a fragment two voxels away: one particle
    >>> dbscan_picks(prob, threshold=0.3, radius=4.0, eps_scale=0.5)
    Detections(centres=array([[2. , 2. , 4.4]]), scores=array([0.75]))
    """
    if points not in POINTS:
        raise UsageError(f"points must be one of {', '.join(POINTS)}, got {points!r}")
    if eps_scale is None:
        eps_scale = DEFAULT_EPS_SCALES[points]
    if not eps_scale > 0 or max_points < 1:
        raise UsageError("eps scale and max points must be positive")
    eps = eps_scale * radius
    smallest = min_component_size(
        radius, radius_scale=radius_scale, min_size_fraction=min_size_fraction, min_size=min_size
    )
    if points == "centroids":
        atoms = component_centroids(prob, threshold=threshold, connectivity=connectivity)
    else:
        atoms, step = voxel_blocks(prob, threshold=threshold, step=max(1, int(eps // 2)), max_blocks=max_points)
        eps = max(eps, step * math.sqrt(3))  # neighbouring blocks always connect
    if len(atoms.size) == 0:
        return Detections.empty()
    return cluster_atoms(atoms, eps=eps, smallest=smallest)


def voxel_blocks(prob: np.ndarray, *, threshold: float, step: int, max_blocks: int) -> tuple[ComponentStats, int]:
    """Thresholded voxels grouped into cubes of ``step`` voxels (coarser until few enough).

    Returns the per-block statistics (non-empty blocks only) and the step used.

    Examples
    --------
    >>> prob = np.zeros((1, 1, 4), np.float32)
    >>> prob[0, 0, :3] = [0.5, 0.25, 0.75]
    >>> blocks, step = voxel_blocks(prob, threshold=0.2, step=2, max_blocks=10)
    >>> blocks.size.tolist(), blocks.centroid[:, 2].tolist(), blocks.peak.tolist()
    ([2, 1], [0.3333333333333333, 2.0], [0.5, 0.75])
    """
    coordinates = np.argwhere(prob >= threshold)
    values = prob[tuple(coordinates.T)].astype(np.float64)
    while True:
        keys = coordinates // step
        flat_keys = np.ravel_multi_index(tuple(keys.T), tuple(n // step + 1 for n in prob.shape))
        _, block = np.unique(flat_keys, return_inverse=True)
        if len(coordinates) == 0 or block.max() < max_blocks:
            break
        step += 1
    n = int(block.max()) + 1 if len(coordinates) else 0
    return grouped_stats(block.astype(np.intp), n, coordinates.T, values), step


def cluster_atoms(atoms: ComponentStats, *, eps: float, smallest: int) -> Detections:
    """DBSCAN of weighted atoms; one pick per cluster holding at least ``smallest`` voxels."""
    from sklearn.cluster import DBSCAN

    reachable = 4.0 / 3.0 * math.pi * eps**3  # voxels an eps-ball holds: more can never gather
    clustering = DBSCAN(eps=eps, min_samples=max(1, math.ceil(min(smallest, reachable) / 2)))
    members = clustering.fit_predict(atoms.centroid, sample_weight=atoms.size)
    inside = members >= 0
    members, n = members[inside], int(members.max()) + 1
    size = np.bincount(members, weights=atoms.size[inside], minlength=n)
    mass = np.bincount(members, weights=atoms.mass[inside], minlength=n)
    moments = [np.bincount(members, weights=atoms.mass[inside] * c, minlength=n) for c in atoms.centroid[inside].T]
    peak = np.zeros(n)
    np.maximum.at(peak, members, atoms.peak[inside])
    keep = size >= smallest
    return Detections(np.stack(moments, axis=1)[keep] / mass[keep, None], peak[keep])
