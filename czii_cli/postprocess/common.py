"""Helpers every post-processing method shares: thresholds, sizes, components, centroids.

Sizes and distances are in voxels of the map; a class's particle radius in voxels is its
catalog radius (Å) divided by the voxel size.  The *blob radius* is the radius a network
draws a particle with: ``radius_scale`` times the particle radius (default 0.5, the
training spheres of most top solutions).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Literal, NamedTuple, cast

import numpy as np

from ..errors import UsageError
from ..make_labels import DEFAULT_RADIUS_SCALE as DEFAULT_RADIUS_SCALE  # the training spheres' scale, re-exported
from ..pick_settings import DEFAULT_THRESHOLD as DEFAULT_THRESHOLD  # re-exported for the methods

DEFAULT_MIN_SIZE_FRACTION = 1.0 / 7.0  # 5th place: training-sphere volume / 7
CONNECTIVITIES = (6, 18, 26)


class Detections(NamedTuple):
    """Picks of one class channel, in voxel units.

    Attributes
    ----------
    centres : ndarray of float64, shape (N, 3)
        Fractional voxel positions, z/y/x.
    scores : ndarray of float64, shape (N,)
        Confidence of each pick (each method documents which).
    """

    centres: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        """No picks."""
        return cls(np.empty((0, 3)), np.empty(0))

    @classmethod
    def concat(cls, parts: Iterable[Detections]) -> Detections:
        """The picks of several parts (components, say), in order; no parts: no picks.

        Examples
        --------
        >>> one = Detections(np.array([[1.0, 2.0, 3.0]]), np.array([0.5]))
        >>> Detections.concat([one, Detections.empty(), one]).scores
        array([0.5, 0.5])
        """
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([part.centres.reshape(-1, 3) for part in parts]),
            np.concatenate([part.scores for part in parts]),
        )


class ComponentStats(NamedTuple):
    """Per-label statistics of a label image, index 0 unused (background).

    Attributes
    ----------
    size : ndarray of int64, shape (n + 1,)
        Voxel count.
    mass : ndarray of float64, shape (n + 1,)
        Sum of the weights.
    centroid : ndarray of float64, shape (n + 1, 3)
        Weight-weighted centroid, z/y/x.
    peak : ndarray of float64, shape (n + 1,)
        Largest weight.
    """

    size: np.ndarray
    mass: np.ndarray
    centroid: np.ndarray
    peak: np.ndarray


class Components(NamedTuple):
    """The connected components of a thresholded map.

    Attributes
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Component labels 1..n, 0 for background.
    n : int
        Number of components.
    foreground : ndarray of intp, shape (F,)
        Flat indices of the foreground voxels, in increasing order.
    """

    labels: np.ndarray
    n: int
    foreground: np.ndarray


class ComponentCrop(NamedTuple):
    """One component cut out of its map with a margin (see :func:`component_crops`).

    Attributes
    ----------
    label : int
        The component's label.
    size : int
        Its voxel count.
    box : tuple of slice
        The padded bounding box, in voxels of the map.
    region : ndarray of bool
        The component's voxels inside ``box``.
    offset : ndarray of int, shape (3,)
        The map position (z/y/x) of the box's first voxel: add it to positions in the box.
    """

    label: int
    size: int
    box: tuple[slice, ...]
    region: np.ndarray
    offset: np.ndarray


# ----------------------------------------------------------------------------- thresholds


def class_thresholds(thresholds: float | Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    """One threshold per class name: a float for all, or a mapping (missing names take 0.15).

    Examples
    --------
    >>> class_thresholds({"ribosome": 0.3}, ["apo-ferritin", "ribosome"])
    {'apo-ferritin': 0.15, 'ribosome': 0.3}
    """
    if isinstance(thresholds, Mapping):
        return {name: float(thresholds.get(name, DEFAULT_THRESHOLD)) for name in names}
    return {name: float(thresholds) for name in names}


# ----------------------------------------------------------------------------- sizes


def blob_radius(radius: float, radius_scale: float) -> float:
    """The radius (voxels) a network draws a particle of ``radius`` voxels with."""
    if not radius_scale > 0:
        raise UsageError(f"radius scale must be positive, got {radius_scale}")
    return radius_scale * radius


def min_component_size(
    radius: float,
    *,
    radius_scale: float = DEFAULT_RADIUS_SCALE,
    min_size_fraction: float = DEFAULT_MIN_SIZE_FRACTION,
    min_size: int | None = None,
) -> int:
    """Smallest component (voxels) worth a pick for a class of ``radius`` voxels.

    ``min_size`` wins when given; otherwise ``min_size_fraction`` of the volume of the
    training sphere (radius ``radius_scale * radius``), at least 1.

    Examples
    --------
    >>> min_component_size(12.0)  # sphere of radius 6: 904.8 voxels, / 7
    129
    """
    if min_size is not None:
        if min_size < 0:
            raise UsageError(f"min size must not be negative, got {min_size}")
        return max(1, int(min_size))
    if min_size_fraction < 0:
        raise UsageError(f"min size fraction must not be negative, got {min_size_fraction}")
    sphere = 4.0 / 3.0 * math.pi * blob_radius(radius, radius_scale) ** 3
    return max(1, int(min_size_fraction * sphere))


def ball(radius: float) -> np.ndarray:
    """Boolean ball of voxels within ``radius`` of the centre, shape ``(2k+1,)*3``, k = floor(radius).

    Examples
    --------
    >>> int(ball(1.0).sum())
    7
    """
    half = int(math.floor(radius))
    axis = np.arange(-half, half + 1)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    inside: np.ndarray = z * z + y * y + x * x <= radius * radius + 1e-9
    return inside


# ----------------------------------------------------------------------------- components


def check_connectivity(connectivity: int) -> Literal[6, 18, 26]:
    """Return ``connectivity`` if it is 6, 18 or 26, else raise a UsageError."""
    if connectivity not in CONNECTIVITIES:
        raise UsageError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    # cast: the membership test above is the narrowing mypy cannot follow
    return cast(Literal[6, 18, 26], int(connectivity))


def threshold_mask(prob: np.ndarray, threshold: float) -> np.ndarray:
    """``prob >= threshold`` as a float32 map compares, for float16 and float32 maps alike.

    A float16 map is compared without a float32 copy: for a positive threshold, on the
    bit patterns (non-negative float16 values order like their 16-bit integers), against
    the smallest float16 at or above ``float32(threshold)``, so the mask is exactly that
    of ``prob.astype(np.float32) >= np.float32(threshold)`` (NaN is never foreground).
    Other dtypes, or a threshold of at most 0, use the plain comparison.

    Examples
    --------
    >>> prob = np.array([0.1499, 0.15, np.nan, np.inf, -0.2], dtype=np.float16)
    >>> threshold_mask(prob, 0.14996).tolist()
    [False, True, False, True, False]
    >>> (prob.astype(np.float32) >= np.float32(0.14996)).tolist()
    [False, True, False, True, False]
    >>> (prob >= 0.14996).tolist()  # the threshold rounded to float16 would take 0.1499
    [True, True, False, True, False]
    """
    limit = np.float32(threshold)
    if prob.dtype != np.float16 or not limit > 0:
        return prob >= limit if prob.dtype == np.float16 else prob >= threshold
    with np.errstate(over="ignore"):  # a threshold above float16's range: only +inf passes
        cutoff = np.float16(limit)
    if np.float32(cutoff) < limit:
        cutoff = np.nextafter(cutoff, np.float16(np.inf))
    bits = int(cutoff.view(np.uint16))
    infinity = int(np.float16(np.inf).view(np.uint16))
    # bit patterns in [bits, +inf] are the foreground: one wrapping subtraction, one comparison
    shifted = np.subtract(prob.view(np.uint16), np.uint16(bits), dtype=np.uint16)
    return np.less_equal(shifted, np.uint16(infinity - bits), out=np.empty(prob.shape, dtype=bool))


def label_components(mask: np.ndarray, *, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Connected components of a boolean volume (cc3d): labels 1..n and n."""
    import cc3d

    labels, count = cc3d.connected_components(
        np.ascontiguousarray(mask), connectivity=check_connectivity(connectivity), return_N=True, binary_image=True
    )
    return labels, int(count)


def component_stats(
    labels: np.ndarray, count: int, weights: np.ndarray, *, foreground: np.ndarray | None = None
) -> ComponentStats:
    """Size, mass, weighted centroid and peak of each label in one pass over the foreground.

    ``foreground`` (optional) is the flat indices of the labelled voxels in increasing
    order (``np.flatnonzero(labels)``), when the caller has them more cheaply, e.g.
    from the boolean mask it labelled.  ``weights`` may be float16 or float32; they are
    summed in float64.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 0, 2]]])
    >>> stats = component_stats(labels, 2, np.array([[[1.0, 3.0, 9.0, 2.0]]]))
    >>> stats.size[1:], stats.centroid[1].tolist(), stats.peak[1:]
    (array([2, 1]), [0.0, 0.0, 0.75], array([3., 2.]))
    """
    flat = np.flatnonzero(labels) if foreground is None else foreground
    ids = labels.ravel()[flat].astype(np.intp)
    w = weights.ravel()[flat].astype(np.float64)
    return grouped_stats(ids, count + 1, np.unravel_index(flat, labels.shape), w)


def grouped_stats(groups: np.ndarray, n: int, coordinates: Iterable[np.ndarray], weights: np.ndarray) -> ComponentStats:
    """Size, mass, weighted centroid and peak of ``n`` groups of weighted points.

    Parameters
    ----------
    groups : ndarray of intp, shape (N,)
        The group (0..n-1) of each point.
    n : int
        Number of groups.
    coordinates : sequence of three ndarrays, shape (N,), or one array of shape (3, N)
        The z, y and x coordinates of the points.
    weights : ndarray of float64, shape (N,)
        Their weights.

    Returns
    -------
    ComponentStats
        One row per group; a group without mass has its centroid at 0.

    Examples
    --------
    >>> points = np.array([[0, 0, 1], [0, 0, 3], [2, 2, 2]])
    >>> stats = grouped_stats(np.array([0, 0, 1]), 2, points.T, np.array([1.0, 3.0, 0.5]))
    >>> stats.size.tolist(), stats.centroid.tolist(), stats.peak.tolist()
    ([2, 1], [[0.0, 0.0, 2.5], [2.0, 2.0, 2.0]], [3.0, 0.5])
    """
    size = np.bincount(groups, minlength=n)
    mass = np.bincount(groups, weights=weights, minlength=n)
    centroid = np.zeros((n, 3))
    for axis, coordinate in enumerate(coordinates):
        centroid[:, axis] = np.bincount(groups, weights=weights * coordinate, minlength=n)
    np.divide(centroid, mass[:, None], out=centroid, where=mass[:, None] > 0)
    peak = np.zeros(n)
    np.maximum.at(peak, groups, weights)
    return ComponentStats(size, mass, centroid, peak)


def component_boxes(
    labels: np.ndarray, count: int, *, foreground: np.ndarray | None = None
) -> list[tuple[int, int, tuple[slice, ...]]]:
    """``(label, size, bounding box)`` of each component, reading only the foreground for sizes.

    ``foreground`` (optional) is ``np.flatnonzero(labels)``, when the caller has it.

    Examples
    --------
    >>> boxes = component_boxes(np.array([[[0, 2, 2, 0, 1]]]), 2)
    >>> [(label, size) for label, size, _ in boxes]
    [(1, 1), (2, 2)]
    >>> boxes[1][2]
    (slice(0, 1, None), slice(0, 1, None), slice(1, 3, None))
    """
    from scipy import ndimage

    flat = np.flatnonzero(labels) if foreground is None else foreground
    sizes = np.bincount(labels.ravel()[flat], minlength=count + 1)
    boxes = ndimage.find_objects(labels, max_label=count)
    return [(index, int(sizes[index]), box) for index, box in enumerate(boxes, start=1) if box is not None]


def padded_box(box: tuple[slice, ...], shape: Sequence[int], pad: int) -> tuple[slice, ...]:
    """A bounding box grown by ``pad`` voxels on every side, clipped to ``shape``."""
    return tuple(slice(max(0, s.start - pad), min(n, s.stop + pad)) for s, n in zip(box, shape))


# ----------------------------------------------------------------------------- the shared core


def threshold_components(values: np.ndarray, *, threshold: float, connectivity: int = 26) -> Components:
    """Threshold a map and label the connected components of its foreground.

    Parameters
    ----------
    values : ndarray, shape (Z, Y, X)
        Probabilities (or heatmap) of one class; float16 maps are thresholded as their
        float32 conversion would be (:func:`threshold_mask`).
    threshold : float
        Voxels with ``values >= threshold`` are foreground.
    connectivity : {6, 18, 26}
        Neighbourhood of the labelling.

    Returns
    -------
    Components
        Labels, their number and the flat indices of the foreground.

    Examples
    --------
    >>> found = threshold_components(np.array([[[0.5, 0.1, 0.9, 0.7]]]), threshold=0.3)
    >>> found.labels.tolist(), found.n, found.foreground.tolist()
    ([[[1, 0, 2, 2]]], 2, [0, 2, 3])
    """
    mask = threshold_mask(values, threshold)
    labels, count = label_components(mask, connectivity=connectivity)
    return Components(labels, count, np.flatnonzero(mask))


def component_table(
    labels: np.ndarray, count: int, weights: np.ndarray, *, min_size: int = 1, foreground: np.ndarray | None = None
) -> ComponentStats:
    """Statistics of the labels 1..count holding at least ``min_size`` voxels, one row each.

    Like :func:`component_stats` (same ``foreground`` shortcut), without the background
    row and without the components smaller than ``min_size``; rows in label order.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 0, 2]]])
    >>> table = component_table(labels, 2, np.array([[[1.0, 3.0, 9.0, 2.0]]]), min_size=2)
    >>> table.size.tolist(), table.centroid.tolist(), table.peak.tolist()
    ([2], [[0.0, 0.0, 0.75]], [3.0])
    """
    stats = component_stats(labels, count, weights, foreground=foreground)
    keep = np.flatnonzero(stats.size[1:] >= min_size) + 1
    return ComponentStats(*(column[keep] for column in stats))


def component_centroids(
    values: np.ndarray, *, threshold: float, connectivity: int = 26, min_size: int = 1
) -> ComponentStats:
    """Threshold -> connected components -> statistics: one row per component big enough.

    The step every component-based method starts from.

    Parameters
    ----------
    values : ndarray, shape (Z, Y, X)
        Probabilities (or heatmap) of one class; also the weights of the centroids.
    threshold : float
        Voxels with ``values >= threshold`` are foreground.
    connectivity : {6, 18, 26}
        Neighbourhood of the labelling.
    min_size : int
        Components with fewer voxels are left out.

    Returns
    -------
    ComponentStats
        Size, mass, value-weighted centroid (voxels, z/y/x) and peak of each component,
        in label order (no background row).

    Examples
    --------
    >>> values = np.zeros((1, 3, 6))
    >>> values[0, :, 0:2] = 0.5
    >>> values[0, 1, 4] = 0.9
    >>> table = component_centroids(values, threshold=0.3)
    >>> table.size.tolist(), table.centroid.tolist(), table.peak.tolist()
    ([6, 1], [[0.0, 1.0, 0.5], [0.0, 1.0, 4.0]], [0.5, 0.9])
    >>> component_centroids(values, threshold=0.3, min_size=2).size.tolist()
    [6]
    """
    found = threshold_components(values, threshold=threshold, connectivity=connectivity)
    return component_table(found.labels, found.n, values, min_size=min_size, foreground=found.foreground)


def component_crops(found: Components, *, shape: Sequence[int], pad: int, min_size: int = 1) -> Iterator[ComponentCrop]:
    """Each component of at least ``min_size`` voxels, cut out with ``pad`` voxels around it.

    Parameters
    ----------
    found : Components
        From :func:`threshold_components`.
    shape : sequence of int
        Shape of the map (the boxes are clipped to it).
    pad : int
        Margin in voxels on every side of the bounding box.
    min_size : int
        Smaller components are skipped.

    Yields
    ------
    ComponentCrop
        In label order.

    Examples
    --------
    >>> found = threshold_components(np.array([[[0.0, 0.9, 0.9, 0.0, 0.0, 0.8]]]), threshold=0.5)
    >>> [(c.label, c.size, c.box[2], c.region.tolist()) for c in component_crops(found, shape=(1, 1, 6), pad=1)]
    [(1, 2, slice(0, 4, None), [[[False, True, True, False]]]), (2, 1, slice(4, 6, None), [[[False, True]]])]
    """
    for label, size, box in component_boxes(found.labels, found.n, foreground=found.foreground):
        if size < min_size:
            continue
        crop = padded_box(box, shape, pad)
        offset = np.array([s.start for s in crop], dtype=np.intp)
        yield ComponentCrop(label, size, crop, found.labels[crop] == label, offset)


def greedy_nms(centres: np.ndarray, scores: np.ndarray, distance: float) -> np.ndarray:
    """Indices of picks kept by greedy suppression: strongest first, drop others within ``distance``.

    Ties in score keep the earlier pick.

    Examples
    --------
    >>> greedy_nms(np.array([[0.0, 0, 0], [0, 0, 2], [0, 0, 9]]), np.array([0.5, 0.9, 0.1]), 3.0)
    array([1, 2])
    """
    from scipy.spatial import cKDTree

    order = np.argsort(-scores, kind="stable")
    if distance <= 0 or len(order) < 2:
        return np.sort(order)
    neighbours = cKDTree(centres).query_ball_point(centres, r=distance)
    removed = np.zeros(len(centres), dtype=bool)
    kept = []
    for index in order:
        if removed[index]:
            continue
        kept.append(index)
        removed[neighbours[index]] = True
    return np.sort(np.array(kept, dtype=np.intp))
