"""For the metric tests: a plain, independent implementation of the metric (loops,
brute-force distances, no KD-tree, no numpy in the matching) and random test cases."""

from __future__ import annotations

import numpy as np

from czii_cli.catalog import DEFAULT_CATALOG, Catalog
from czii_cli.picks import Picks, concat

# match distances of the default catalog at multiplier 0.5: all exact in binary floating point
DISTANCE = {c.name: c.radius * 0.5 for c in DEFAULT_CATALOG}


def rows_of(picks: Picks) -> list[tuple]:
    """(experiment, class, x, y, z, score) tuples."""
    scores = [None] * len(picks) if picks.score is None else picks.score.tolist()
    return [
        (str(e), str(c), float(p[0]), float(p[1]), float(p[2]), s)
        for e, c, p, s in zip(picks.experiment.tolist(), picks.particle_type.tolist(), picks.xyz.tolist(), scores)
    ]


def within(a, b, distance: float) -> bool:
    return (a[2] - b[2]) ** 2 + (a[3] - b[3]) ** 2 + (a[4] - b[4]) ** 2 <= distance * distance


def one_to_one_size(reach: list[list[bool]]) -> int:
    """Maximum bipartite matching by Kuhn's augmenting paths (candidates x references)."""
    partner: dict[int, int] = {}

    def augment(candidate: int, seen: set[int]) -> bool:
        for reference, ok in enumerate(reach[candidate]):
            if ok and reference not in seen:
                seen.add(reference)
                if reference not in partner or augment(partner[reference], seen):
                    partner[reference] = candidate
                    return True
        return False

    return sum(augment(candidate, set()) for candidate in range(len(reach)))


def plain_counts(pred: Picks, gt: Picks, catalog: Catalog, *, multiplier=0.5, matching="any", experiments=None):
    """{experiment: {class: [tp, fp, fn]}} over the reference experiments."""
    pred_rows, gt_rows = rows_of(pred), rows_of(gt)
    names = experiments if experiments is not None else sorted({r[0] for r in gt_rows})
    result = {}
    for experiment in names:
        result[experiment] = {}
        for particle in catalog.names:
            distance = catalog.get(particle).radius * multiplier
            refs = [r for r in gt_rows if r[0] == experiment and r[1] == particle]
            cands = [r for r in pred_rows if r[0] == experiment and r[1] == particle]
            reach = [[within(c, r, distance) for r in refs] for c in cands]
            if matching == "any":
                tp = sum(1 for j in range(len(refs)) if any(reach[i][j] for i in range(len(cands))))
            else:
                tp = one_to_one_size(reach)
            result[experiment][particle] = [tp, len(cands) - tp, len(refs) - tp]
    return result


def plain_fbeta(tp: int, fp: int, fn: int, beta: float) -> float:
    precision = tp / (tp + fp) if tp + fp > 0 else 0
    recall = tp / (tp + fn) if tp + fn > 0 else 0
    if precision + recall <= 0:
        return 0.0
    return (1 + beta**2) * (precision * recall) / (beta**2 * precision + recall)


def plain_score(pred: Picks, gt: Picks, catalog: Catalog, *, beta=4.0, multiplier=0.5, matching="any"):
    """(score, {class: (tp, fp, fn, fbeta)}) micro-summed over experiments."""
    counts = plain_counts(pred, gt, catalog, multiplier=multiplier, matching=matching)
    totals = {}
    for particle in catalog.names:
        tp = sum(counts[e][particle][0] for e in counts)
        fp = sum(counts[e][particle][1] for e in counts)
        fn = sum(counts[e][particle][2] for e in counts)
        totals[particle] = (tp, fp, fn, plain_fbeta(tp, fp, fn, beta))
    score = sum(catalog.get(p).weight * totals[p][3] for p in catalog.names) / sum(c.weight for c in catalog)
    return score, totals


def random_case(seed: int) -> tuple[Picks, Picks]:
    """References and candidates with the awkward cases the metric must get right.

    Duplicates, picks exactly at (and just beyond) the match distance, a candidate between
    two close references, empty classes, an experiment only in the candidates, classes only
    in the references.  Coordinates are integers so the exact-distance picks are exact.
    """
    rng = np.random.default_rng(seed)
    names = DEFAULT_CATALOG.names
    experiments = [f"TS_{i}" for i in range(int(rng.integers(1, 4)))]
    gt_parts, pred_parts = [], []
    for experiment in experiments:
        present = rng.choice(names, size=int(rng.integers(1, len(names))), replace=False)
        predicted = [n for n in present if rng.random() < 0.8]  # the others are only in GT
        for name in present:
            distance = DISTANCE[name]
            refs = rng.integers(0, 1500, size=(int(rng.integers(0, 8)), 3)).astype(float)
            if rng.random() < 0.3 and len(refs):  # a second reference close enough to share a candidate
                refs = np.vstack([refs, refs[:1] + [distance * 1.5, 0, 0]])
            gt_parts.append(Picks.from_points(experiment, name, refs))
            if name not in predicted:
                continue
            cands = [refs[rng.random(len(refs)) < 0.6] + rng.normal(0, distance * 0.6, size=(1, 3))]
            cands.append(refs[rng.random(len(refs)) < 0.3])  # exact hits, some duplicated below
            axis = np.eye(3)[rng.integers(0, 3, size=len(refs))]
            cands.append((refs + axis * distance)[rng.random(len(refs)) < 0.4])  # exactly at the distance
            cands.append((refs - axis * (distance + 1))[rng.random(len(refs)) < 0.2])  # just beyond
            cands.append(refs[:1] + [distance * 0.75, 0, 0])  # between the two close references
            cands.append(rng.integers(0, 1500, size=(int(rng.integers(0, 5)), 3)).astype(float))
            stacked = np.vstack(cands)
            stacked = np.vstack([stacked, stacked[rng.random(len(stacked)) < 0.2]])
            pred_parts.append(Picks.from_points(experiment, name, stacked))
    pred_parts.append(Picks.from_points("TS_only_pred", names[0], rng.integers(0, 1500, size=(3, 3)).astype(float)))
    gt, pred = concat(gt_parts), concat(pred_parts)
    shuffle = rng.permutation(len(pred))
    return pred.subset(shuffle), gt
