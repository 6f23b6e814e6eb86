"""Ensembles of pick lists: weighted box fusion for points.

Within one experiment and class, the picks of all inputs are clustered greedily by
score: the highest-scoring unclustered pick seeds a cluster that takes every unclustered
pick within ``distance_factor`` x the class radius of it (the competition's match
distance with the default 0.5), and so on.  Clusters are therefore never chained beyond
one match distance from their seed.

Each cluster becomes one pick:

* position: the mean of its members' positions weighted by ``input weight x score``
  (by input weight alone when those are all zero);
* score: the members' mean score weighted by input weight, times the fraction of the
  inputs that voted (the summed weights of the inputs with a member in the cluster over
  the summed weights of all inputs).  A pick found by every input keeps its mean score;
  one found by one of two equally weighted inputs gets half.

Inputs without a score column count as score 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from ..catalog import Catalog
from ..errors import UsageError
from ..picks import Picks, check_classes, concat


def fuse_picks(
    inputs: Sequence[Picks],
    *,
    catalog: Catalog,
    weights: Sequence[float] | None = None,
    distance_factor: float = 0.5,
) -> Picks:
    """Fuse several pick lists into one, with a score column (see the module docstring).

    Parameters
    ----------
    inputs : sequence of Picks
        Pick lists in Å.
    catalog : Catalog
        Gives each class's radius.
    weights : sequence of float, optional
        One weight per input (default equal).
    distance_factor : float
        Cluster radius as a fraction of the class radius.

    Returns
    -------
    Picks
        Sorted by experiment, class and position.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> a = Picks.from_points("TS", "ribosome", [[100.0, 0, 0]], np.array([0.8]))
    >>> b = Picks.from_points("TS", "ribosome", [[120.0, 0, 0], [900.0, 0, 0]], np.array([0.4, 0.6]))
    >>> fused = fuse_picks([a, b], catalog=DEFAULT_CATALOG)
    >>> fused.xyz[:, 0].round(2).tolist(), fused.score.round(3).tolist()
    ([106.67, 900.0], [0.6, 0.3])
    """
    input_weights = np.ones(len(inputs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(input_weights) != len(inputs):
        raise UsageError(f"{len(input_weights)} weights for {len(inputs)} inputs")
    if (input_weights < 0).any() or not input_weights.sum() > 0:
        raise UsageError(f"weights must be non-negative with a positive sum, got {input_weights.tolist()}")
    for index, picks in enumerate(inputs):
        check_classes(picks, catalog.names, source=f"input {index + 1}")
    scored = [p if p.score is not None else p.with_score(np.ones(len(p))) for p in inputs]
    source = np.concatenate([np.full(len(p), i) for i, p in enumerate(scored)]).astype(int)
    merged = concat(scored)
    assert merged.score is not None  # every input was given a score column above
    groups = sorted(set(zip(merged.experiment.tolist(), merged.particle_type.tolist())))
    fused = []
    for experiment, particle in groups:
        mask = (merged.experiment == experiment) & (merged.particle_type == particle)
        radius = catalog.get(particle).radius * distance_factor
        xyz, score = _fuse_group(merged.xyz[mask], merged.score[mask], source[mask], input_weights, radius)
        fused.append(Picks.from_points(experiment, particle, xyz, score))
    return concat(fused).sorted() if fused else Picks.empty(with_score=True)


def _fuse_group(
    xyz: np.ndarray, score: np.ndarray, source: np.ndarray, weights: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy clusters of one experiment and class -> fused positions and scores."""
    tree = cKDTree(xyz)
    order = np.lexsort((np.arange(len(score)), source, -score))
    taken = np.zeros(len(score), dtype=bool)
    positions, scores = [], []
    for seed in order:
        if taken[seed]:
            continue
        members = np.array([j for j in tree.query_ball_point(xyz[seed], radius) if not taken[j]], dtype=int)
        taken[members] = True
        input_weight = weights[source[members]]
        pull = input_weight * score[members]
        if not pull.sum() > 0:
            pull = input_weight if input_weight.sum() > 0 else np.ones(len(members))
        positions.append((pull[:, None] * xyz[members]).sum(axis=0) / pull.sum())
        mean_score = (input_weight * score[members]).sum() / input_weight.sum() if input_weight.sum() > 0 else 0.0
        voted = weights[np.unique(source[members])].sum() / weights.sum()
        scores.append(mean_score * voted)
    return np.array(positions).reshape(-1, 3), np.array(scores)
