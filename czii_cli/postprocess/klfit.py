r"""KL fitting: place particle templates in each component, then re-centre them on its boundary.

The 10th place solution's post-processing.  For each connected component of
``prob >= threshold`` (at least the class's minimum size):

**Placement.**  Let P be the component's predicted density normalised to sum 1 (zero
outside the component) and Q_c the particle template, a ball (or a Gaussian, sigma half
the blob radius, cut at the blob radius) of the blob radius ``radius_scale * radius``,
normalised to sum 1 and centred at c.  The placement minimises

.. math::

    KL(Q_c \,\|\, P) = \sum_x Q_c(x) \log Q_c(x) - \sum_x Q_c(x) \log P(x)
                     = -H(Q) - (Q \star \log P)(c).

The template's entropy H(Q) does not depend on c, so the best placement is the maximum of
the correlation of log P with the template, computed for every c at once with an FFT
(``scipy.signal.fftconvolve``) on the component's bounding box.  Normalising P by its sum
Z shifts log P by the constant log Z and changes no argmax, so the map itself is used.
Where P is 0, log P is minus infinity: a template reaching outside the component is
infinitely bad.  A floor ε (1e-3 of the component's peak) keeps this finite:
``log(P + ε) - log ε`` is 0 on empty voxels, so the FFT's zero padding means "empty" too.
This direction of KL is mode seeking: Q must sit where P is high everywhere under it,
that is inside one particle.  The other direction, KL(P || Q), asks Q to cover all of P and
puts it between two particles.

**One particle at a time.**  After each placement the voxels under the template are
explained: removed from the residual density, whose correlation is computed afresh for
the next placement (centres are restricted to unexplained component voxels).  Placing
stops when the best next centre is closer than ``overlap`` template diameters to a placed
one (templates begin to overlap), or when the mass left to explain, under the next
template or in the whole residual, is below ``min_mass`` times the mean mass a placed
template explained (what is left is the fringe of particles already placed).

**Refinement.**  The component's boundary voxels (in the component, with a 6-neighbour
outside it) are split among the particles, each voxel going to its nearest centre.  The
circumcentre of four boundary points lies at the centre of a sphere through them, so the
circumcentres of ``samples`` random 4-point subsets of a particle's share (seeded
generator) form a cloud around its centre.  Its dense core, the points within the median
distance of the coordinate-wise median, is averaged into the refined centre (kept only if
it moved less than half a blob radius, which guards against flat or tiny shares).

Score: the template-weighted mean probability at the placement.

Worked example.  A density with two particles and a Gaussian template of the same width, in 1D:

>>> x = np.arange(11.0)
>>> P = np.exp(-(x - 3) ** 2 / 2) + np.exp(-(x - 7) ** 2 / 2)
>>> P /= P.sum()
>>> def Q(c):
...     q = np.exp(-(x - c) ** 2 / 2)
...     return q / q.sum()
>>> def kl(a, b):
...     return round(float(np.sum(a * np.log(a / b))), 2)
>>> [kl(Q(c), P) for c in (3, 5, 7)]  # KL(Q || P): lowest on a particle
[0.63, 0.95, 0.63]
>>> [kl(P, Q(c)) for c in (3, 5, 7)]  # KL(P || Q): lowest between the two
[3.37, 1.37, 3.37]

In 3D, two balls of radius 4 whose centres are 6 voxels (1.2 radii) apart form one
component; two templates fit it:

>>> z, y, xx = np.mgrid[:11, :11, :18]
>>> prob = np.zeros((11, 11, 18), np.float32)
>>> for cx in (5, 11):
...     prob[(z - 5) ** 2 + (y - 5) ** 2 + (xx - cx) ** 2 <= 16] = 0.8
>>> kl_fit_picks(prob, threshold=0.5, radius=8.0).centres.round(1)
array([[ 4.9,  5. ,  5. ],
       [ 5. ,  5. , 11. ]])
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve
from scipy.spatial import cKDTree

from ..errors import UsageError
from .common import (
    DEFAULT_MIN_SIZE_FRACTION,
    DEFAULT_RADIUS_SCALE,
    Detections,
    ball,
    blob_radius,
    component_crops,
    min_component_size,
    threshold_components,
)

TEMPLATES = ("ball", "gaussian")
FLOOR = 1e-3  # of the component's peak: the density assumed where there is none


def kl_fit_picks(
    prob: np.ndarray,
    *,
    threshold: float,
    radius: float,
    radius_scale: float = DEFAULT_RADIUS_SCALE,
    template: str = "ball",
    overlap: float = 0.5,
    min_mass: float = 0.5,
    samples: int = 256,
    seed: int = 0,
    connectivity: int = 26,
    min_size_fraction: float = DEFAULT_MIN_SIZE_FRACTION,
    min_size: int | None = None,
) -> Detections:
    """Fit particle templates to the components of one class's probability map.

    Parameters
    ----------
    prob : ndarray, shape (Z, Y, X)
        Probability (or heatmap) of one class.
    threshold : float
        Voxels with ``prob >= threshold`` are foreground.
    radius : float
        Particle radius in voxels.
    radius_scale : float
        Template (blob) radius as a fraction of the particle radius.
    template : {"ball", "gaussian"}
        Template shape.
    overlap : float
        Stop placing when centres would be closer than this many template diameters.
    min_mass : float
        Stop placing when the next template would explain less than this fraction of
        the mean mass explained per placed template.
    samples : int
        Random 4-point boundary samples per particle for the refinement.
    seed : int
        Seed of the sampling; the same seed gives the same picks.
    connectivity : {6, 18, 26}
        Neighbourhood of the component labelling.
    min_size_fraction, min_size
        Minimum component size, see :func:`~czii_cli.postprocess.common.min_component_size`.

    Returns
    -------
    Detections
        Refined centres (voxels, z/y/x) and template-weighted mean probabilities.
    """
    if template not in TEMPLATES:
        raise UsageError(f"template must be one of {', '.join(TEMPLATES)}, got {template!r}")
    if not overlap > 0 or min_mass < 0 or samples < 1:
        raise UsageError("overlap and samples must be positive and min mass not negative")
    rho = blob_radius(radius, radius_scale)
    weights = particle_template(rho, template)
    half = weights.shape[0] // 2
    smallest = min_component_size(
        radius, radius_scale=radius_scale, min_size_fraction=min_size_fraction, min_size=min_size
    )
    found = threshold_components(prob, threshold=threshold, connectivity=connectivity)
    parts = []
    for component in component_crops(found, shape=prob.shape, pad=half + 1, min_size=smallest):
        density = np.where(component.region, prob[component.box], 0.0)
        placed = place_templates(density, weights, min_gap=overlap * 2 * rho, min_mass=min_mass)
        rng = np.random.default_rng([seed, component.label])
        refined = refine_centres(component.region, placed, samples=samples, max_shift=rho / 2, rng=rng)
        scores = np.array([_template_mean(density, weights, centre) for centre in placed], dtype=np.float64)
        parts.append(Detections(refined + component.offset, scores))
    return Detections.concat(parts)


def particle_template(rho: float, template: str = "ball") -> np.ndarray:
    """The normalised particle template Q: a ball or a cut Gaussian of radius ``rho`` voxels.

    Examples
    --------
    >>> q = particle_template(1.0)
    >>> q.shape, round(float(q.sum()), 6), round(float(q[1, 1, 1]), 4)
    ((3, 3, 3), 1.0, 0.1429)
    """
    support = ball(max(rho, 1.0))
    if template == "gaussian":
        half = support.shape[0] // 2
        z, y, x = np.mgrid[-half : half + 1, -half : half + 1, -half : half + 1]
        weights = np.exp(-(z * z + y * y + x * x) / (2 * (rho / 2) ** 2)) * support
    else:
        weights = support.astype(np.float64)
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def place_templates(density: np.ndarray, template: np.ndarray, *, min_gap: float, min_mass: float) -> np.ndarray:
    """Greedy KL placements of ``template`` in one component's density (see the module notes).

    Parameters
    ----------
    density : ndarray, shape (Z, Y, X)
        The component's probabilities, 0 outside it.
    template : ndarray
        Normalised template, odd cube shape.
    min_gap : float
        Placing stops when the best next centre is closer than this (voxels) to a placed one.
    min_mass : float
        Placing stops when the next template (or the whole residual) holds less than
        this fraction of the mean mass explained per placement.

    Returns
    -------
    ndarray of int, shape (K, 3)
        Placed centres in the density's voxel indices (K >= 1 for a non-empty density).
    """
    floor = FLOOR * float(density.max())
    half = template.shape[0] // 2
    support = template > 0
    residual = density.astype(np.float64)
    fit = _masked_fit(residual, template, floor)
    remaining = float(residual.sum())
    placed: list[np.ndarray] = []
    explained: list[float] = []
    while remaining > 0 and not (explained and remaining < min_mass * np.mean(explained)):
        best = int(np.argmax(fit))
        if fit.flat[best] == -np.inf:
            break
        centre = np.array(np.unravel_index(best, fit.shape))
        if placed and np.min(np.linalg.norm(np.array(placed) - centre, axis=1)) < min_gap:
            break
        window, inner = _window(centre, half, residual.shape)
        covered = residual[window] * support[inner]
        if explained and covered.sum() < min_mass * np.mean(explained):
            break
        explained.append(float(covered.sum()))
        remaining -= explained[-1]
        residual[window] -= covered
        placed.append(centre)
        # Only centres within 2 half-widths see the change: refit there, from a crop
        # 3 half-widths wide (the crop's zero padding matches the whole box's at its edges).
        source, _ = _window(centre, 3 * half, residual.shape)
        changed, _ = _window(centre, 2 * half, residual.shape)
        local = _masked_fit(residual[source], template, floor)
        fit[changed] = local[tuple(slice(c.start - s.start, c.stop - s.start) for c, s in zip(changed, source))]
    return np.array(placed, dtype=np.intp).reshape(-1, 3)


def _masked_fit(residual: np.ndarray, template: np.ndarray, floor: float) -> np.ndarray:
    """Correlation of log(1 + residual / floor) with the template, -inf where nothing is left."""
    fit = fftconvolve(np.log1p(residual / floor), template, mode="same")
    fit[residual <= 0] = -np.inf
    return fit


def refine_centres(
    region: np.ndarray, centres: np.ndarray, *, samples: int, max_shift: float, rng: np.random.Generator
) -> np.ndarray:
    """Re-centre particles on the circumcentres of their share of the component boundary.

    Parameters
    ----------
    region : ndarray of bool, shape (Z, Y, X)
        The component.
    centres : ndarray, shape (K, 3)
        Placed centres (voxel indices of ``region``).
    samples : int
        Random 4-point subsets per particle.
    max_shift : float
        A refined centre farther than this from its placement is discarded.
    rng : numpy Generator
        Source of the subsets.

    Returns
    -------
    ndarray of float64, shape (K, 3)
        Refined centres.

    Examples
    --------
    >>> z, y, x = np.mgrid[:13, :13, :13]
    >>> sphere = (z - 6.0) ** 2 + (y - 6.5) ** 2 + (x - 6.0) ** 2 <= 20
    >>> refine_centres(sphere, np.array([[6, 6, 6]]), samples=200, max_shift=2.0,
    ...                rng=np.random.default_rng(0)).round(1)
    array([[6. , 6.5, 6. ]])
    """
    boundary = region & ~ndimage.binary_erosion(region, border_value=1)
    points = np.argwhere(boundary).astype(np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    refined = centres.copy()
    if len(points) < 4:
        return refined
    owner = cKDTree(centres).query(points)[1]
    for k, centre in enumerate(centres):
        share = points[owner == k]
        if len(share) < 4:
            continue
        cloud = circumcentres(share[rng.integers(0, len(share), size=(samples, 4))])
        if len(cloud) == 0:
            continue
        middle = np.median(cloud, axis=0)
        spread = np.linalg.norm(cloud - middle, axis=1)
        estimate = cloud[spread <= np.median(spread)].mean(axis=0)
        if np.linalg.norm(estimate - centre) <= max_shift:
            refined[k] = estimate
    return refined


def circumcentres(quads: np.ndarray) -> np.ndarray:
    """Centres of the spheres through each set of four points (degenerate sets dropped).

    The centre c of a sphere through p0..p3 solves ``2 (pi - p0) . c = |pi|^2 - |p0|^2``
    for i = 1, 2, 3.

    Examples
    --------
    >>> circumcentres(np.array([[[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, 0, 1]]]))
    array([[0., 0., 0.]])
    """
    origin = quads[:, 0, :]
    matrix = 2.0 * (quads[:, 1:, :] - origin[:, None, :])
    rhs = (quads[:, 1:, :] ** 2).sum(axis=2) - (origin**2).sum(axis=1)[:, None]
    solvable = np.abs(np.linalg.det(matrix)) > 1e-6
    if not solvable.any():
        return np.empty((0, 3))
    return np.linalg.solve(matrix[solvable], rhs[solvable][:, :, None])[:, :, 0] + 0.0


def _window(centre: np.ndarray, half: int, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices of a template of half-width ``half`` at ``centre``, clipped to ``shape``: (volume, template)."""
    volume, inner = [], []
    for c, n in zip(centre, shape):
        lo, hi = max(0, c - half), min(n, c + half + 1)
        volume.append(slice(lo, hi))
        inner.append(slice(lo - (c - half), hi - (c - half)))
    return tuple(volume), tuple(inner)


def _template_mean(density: np.ndarray, template: np.ndarray, centre: np.ndarray) -> float:
    """Template-weighted mean of ``density`` around ``centre`` (the pick's score)."""
    window, inner = _window(centre, template.shape[0] // 2, density.shape)
    return float((density[window] * template[inner]).sum())
