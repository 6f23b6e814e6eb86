"""Connected components: threshold, label, keep big enough components, report their centroids.

The 2nd and 5th place solutions' post-processing.  Each 3D connected component of
``prob >= threshold`` (6-, 18- or 26-connected, cc3d) is one particle at its
probability-weighted centroid, unless it has fewer voxels than the class's minimum size
(by default 1/7 of the training sphere's volume, as the 5th place found).

Score: the component's peak probability, so keeping picks with ``score >= t`` keeps
exactly the components that still exist at threshold ``t``.
"""

from __future__ import annotations

import numpy as np

from .common import (
    DEFAULT_MIN_SIZE_FRACTION,
    DEFAULT_RADIUS_SCALE,
    Detections,
    component_centroids,
    min_component_size,
)


def cc_picks(
    prob: np.ndarray,
    *,
    threshold: float,
    radius: float,
    connectivity: int = 26,
    radius_scale: float = DEFAULT_RADIUS_SCALE,
    min_size_fraction: float = DEFAULT_MIN_SIZE_FRACTION,
    min_size: int | None = None,
) -> Detections:
    """Centroids of the connected components of one class's probability map.

    Parameters
    ----------
    prob : ndarray, shape (Z, Y, X)
        Probability (or heatmap) of one class, float16 or float32; a float16 map is
        thresholded and weighted as is (no float32 copy), with the same picks as its
        float32 conversion.
    threshold : float
        Voxels with ``prob >= threshold`` are foreground.
    radius : float
        Particle radius in voxels.
    connectivity : {6, 18, 26}
        Neighbourhood of the component labelling.
    radius_scale, min_size_fraction, min_size
        Minimum component size, see :func:`~czii_cli.postprocess.common.min_component_size`.

    Returns
    -------
    Detections
        Probability-weighted centroids (voxels, z/y/x) and peak probabilities.

    Examples
    --------
    >>> prob = np.zeros((5, 5, 9), np.float32)
    >>> prob[1:4, 1:4, 1:4] = 0.5
    >>> prob[2, 2, 6] = 0.9  # one voxel: too small for a particle of radius 4
    >>> cc_picks(prob, threshold=0.3, radius=4.0)
    Detections(centres=array([[2., 2., 2.]]), scores=array([0.5]))
    """
    smallest = min_component_size(
        radius, radius_scale=radius_scale, min_size_fraction=min_size_fraction, min_size=min_size
    )
    table = component_centroids(prob, threshold=threshold, connectivity=connectivity, min_size=smallest)
    return Detections(table.centroid, table.peak)
