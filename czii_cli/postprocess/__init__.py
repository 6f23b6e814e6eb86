"""From probability maps to particle picks: one method per module, one class channel at a time.

Every method is a pure function ``prob [z, y, x] -> Detections`` (voxel centres and
scores) taking ``threshold`` and the class ``radius`` in voxels plus its own keyword
options; :func:`extract_picks` runs one over every class channel of a map and returns
picks in Å.

==========  ========================================  =====================================
method      what it does                              score
==========  ========================================  =====================================
cc          connected components, weighted centroid   peak probability of the component
peaks       max-pool non-maximum suppression          peak value
watershed   distance-transform watershed split        peak probability of the region
dbscan      DBSCAN of voxels or component centroids   peak probability of the cluster
kl-fit      particle templates fitted by KL, refined  template-weighted mean probability
==========  ========================================  =====================================
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..catalog import BACKGROUND, Catalog, ParticleClass
from ..coords import voxel_to_angstrom
from ..errors import DataError, NonFiniteError, UsageError
from ..picks import Picks, concat
from .cc import cc_picks
from .common import DEFAULT_THRESHOLD, Detections, class_thresholds
from .dbscan import dbscan_picks
from .klfit import kl_fit_picks
from .peaks import peak_picks
from .watershed import watershed_picks

METHODS: dict[str, Callable[..., Detections]] = {
    "cc": cc_picks,
    "peaks": peak_picks,
    "watershed": watershed_picks,
    "dbscan": dbscan_picks,
    "kl-fit": kl_fit_picks,
}
DEFAULT_METHOD = "cc"
NATIVE_DTYPE_METHODS = frozenset({"cc"})
"""Methods that take a float16 map as it is (the same picks as its float32 conversion)."""
PARALLEL_METHODS = frozenset({"cc"})
"""Methods whose classes run in parallel threads by default (the work releases the GIL)."""

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_THRESHOLD",
    "METHODS",
    "Detections",
    "check_method_options",
    "extract_picks",
    "option_names",
]


def option_names(method: str) -> list[str]:
    """The keyword options a method accepts (besides ``threshold`` and ``radius``)."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    parameters = inspect.signature(METHODS[method]).parameters
    return [name for name in list(parameters)[1:] if name not in ("threshold", "radius")]


def check_method_options(method: str, options: Mapping[str, object]) -> None:
    """Raise a UsageError for an unknown method, an option it does not take or a bad value.

    Values are checked by running the method on a one-voxel map, so every check the
    method makes happens here, before any real work.
    """
    accepted = option_names(method)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(f"method {method!r} takes no option {unknown[0]!r} (options: {', '.join(accepted)})")
    METHODS[method](np.zeros((1, 1, 1), np.float32), threshold=1.0, radius=1.0, **options)


def extract_picks(
    probs: np.ndarray,
    *,
    classes: Sequence[str],
    catalog: Catalog,
    method: str = DEFAULT_METHOD,
    thresholds: float | Mapping[str, float] = DEFAULT_THRESHOLD,
    voxel_size: float,
    origin_zyx: Sequence[float] = (0.0, 0.0, 0.0),
    run: str,
    workers: int | None = None,
    **method_options: object,
) -> Picks:
    """Particle picks of every class channel of a probability map.

    Parameters
    ----------
    probs : array-like, shape (C, Z, Y, X)
        Probabilities or heatmaps; may be lazy (zarr array, memory map): channels are
        read one at a time, as float32, except that methods in
        :data:`NATIVE_DTYPE_METHODS` take float16 channels as they are.
    classes : sequence of str
        Channel names; a ``background`` channel is skipped, every other name must be in
        ``catalog``.
    catalog : Catalog
        Radii of the classes.
    method : str
        One of :data:`METHODS`.
    thresholds : float or mapping of str to float
        One threshold for all classes, or per class (missing classes take 0.15).
    voxel_size : float
        Voxel edge in Å.
    origin_zyx : sequence of float
        Position of voxel (0, 0, 0) in Å.
    run : str
        Experiment name of the picks.
    workers : int, optional
        Classes processed at a time, in threads; default: as many as there are CPU cores
        for methods in :data:`PARALLEL_METHODS`, else 1.  The picks do not depend on it.
    **method_options
        Keyword options of the method (see :func:`option_names`).

    Returns
    -------
    Picks
        Picks in Å with a score column, in stable order.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> probs = np.zeros((2, 8, 8, 8), np.float32)
    >>> probs[1, 2:5, 3:6, 4:7] = 0.5
    >>> picks = extract_picks(probs, classes=["background", "apo-ferritin"], catalog=DEFAULT_CATALOG,
    ...                       voxel_size=10.0, run="TS_1")
    >>> picks.particle_type.tolist(), picks.xyz.tolist(), picks.score.tolist()
    (['apo-ferritin'], [[50.0, 40.0, 30.0]], [0.5])
    """
    check_method_options(method, method_options)
    if len(classes) != probs.shape[0]:
        raise DataError(f"{len(classes)} class names for {probs.shape[0]} channels")
    channels = [(index, catalog.get(name)) for index, name in enumerate(classes) if name != BACKGROUND]
    cutoffs = class_thresholds(thresholds, [particle.name for _, particle in channels])
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if method in PARALLEL_METHODS else 1
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")

    def one_class(entry: tuple[int, ParticleClass]) -> Picks:
        index, particle = entry
        prob = np.asarray(probs[index])
        if not (method in NATIVE_DTYPE_METHODS and prob.dtype in (np.float16, np.float32)):
            prob = prob.astype(np.float32, copy=False)
        bad = int(prob.size - np.count_nonzero(np.isfinite(prob)))
        if bad:
            raise NonFiniteError(
                f"channel {particle.name!r}: {bad} of {prob.size} values are not finite (NaN or infinite)",
                count=bad,
                total=prob.size,
            )
        found = METHODS[method](
            prob, threshold=cutoffs[particle.name], radius=particle.radius / voxel_size, **method_options
        )
        xyz = voxel_to_angstrom(found.centres, voxel_size=voxel_size, origin_zyx=origin_zyx)
        return Picks.from_points(run, particle.name, xyz, found.scores)

    if workers == 1 or len(channels) < 2:
        found = [one_class(entry) for entry in channels]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(channels))) as pool:
            found = list(pool.map(one_class, channels))
    return concat([Picks.empty(with_score=True), *found]).sorted()
