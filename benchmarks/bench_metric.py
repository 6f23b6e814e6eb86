"""Scoring and tuning speed on a competition-sized synthetic set.

100,000 scored candidates against 10,000 references over 20 experiments and the six
classes (tomograms of 630 x 630 x 184 voxels of 10 Å): each reference has a few
candidates around it, the rest are scattered.

* ``score``: :func:`czii_cli.score.score_picks`, target < 2 s.  Baseline: the
  competition's own procedure, written here: for each experiment and class select rows by
  boolean masks, build two KD-trees, ``query_ball_tree`` and a Python set of matched
  references.
* ``tune``: :func:`czii_cli.tune.tune_thresholds` (exact search over every distinct
  cutoff, plus the before/after scores), target < 5 s.  Baseline: ``score_picks`` at 100
  grid cutoffs applied to every class.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import KDTree

from benchmarks.common import Result, timed

EXPERIMENTS = 20
REFERENCES = 10_000
CANDIDATES = 100_000
BOX_ANGSTROM = np.array([6300.0, 6300.0, 1840.0])


def synthetic_case(seed: int = 0):
    """Scored candidates and references (x, y, z in Å)."""
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.picks import Picks

    rng = np.random.default_rng(seed)
    names = np.array(DEFAULT_CATALOG.names, dtype=object)
    radius = np.array([c.radius for c in DEFAULT_CATALOG])
    runs = np.array([f"TS_{i}" for i in range(EXPERIMENTS)], dtype=object)
    ref_run = rng.integers(0, EXPERIMENTS, REFERENCES)
    ref_class = rng.integers(0, len(names), REFERENCES)
    ref_xyz = rng.random((REFERENCES, 3)) * BOX_ANGSTROM
    near = rng.integers(0, REFERENCES, CANDIDATES // 2)  # half of the candidates sit near references
    near_xyz = ref_xyz[near] + rng.normal(0, 1, (len(near), 3)) * radius[ref_class[near], None] * 0.3
    far = CANDIDATES - len(near)
    cand_run = np.concatenate([ref_run[near], rng.integers(0, EXPERIMENTS, far)])
    cand_class = np.concatenate([ref_class[near], rng.integers(0, len(names), far)])
    cand_xyz = np.vstack([near_xyz, rng.random((far, 3)) * BOX_ANGSTROM])
    score = np.concatenate([rng.beta(5, 2, len(near)), rng.beta(2, 5, far)]).round(4)
    gt = Picks(runs[ref_run], names[ref_class], ref_xyz)
    pred = Picks(runs[cand_run], names[cand_class], cand_xyz, score)
    return pred, gt


def competition_style_score(pred, gt, catalog, *, beta: float = 4.0, distance_multiplier: float = 0.5) -> float:
    """The competition's procedure: masks per experiment and class, query_ball_tree, sets."""
    keep = np.isin(pred.experiment, np.unique(gt.experiment))
    pred = pred.subset(keep)
    totals = {name: [0, 0, 0] for name in catalog.names}
    for experiment in set(gt.experiment.tolist()):
        for particle in set(gt.particle_type.tolist()):
            distance = catalog.get(particle).radius * distance_multiplier
            refs = gt.xyz[(gt.experiment == experiment) & (gt.particle_type == particle)]
            cands = pred.xyz[(pred.experiment == experiment) & (pred.particle_type == particle)]
            if len(refs) == 0:
                tp, fp, fn = 0, len(cands), 0
            elif len(cands) == 0:
                tp, fp, fn = 0, 0, len(refs)
            else:
                matched = set()
                for hits in KDTree(cands).query_ball_tree(KDTree(refs), r=distance):
                    matched.update(hits)
                tp = len(matched)
                fp, fn = len(cands) - tp, len(refs) - tp
            for i, value in enumerate((tp, fp, fn)):
                totals[particle][i] += value
    total = 0.0
    for particle, (tp, fp, fn) in totals.items():
        precision = tp / (tp + fp) if tp + fp > 0 else 0
        recall = tp / (tp + fn) if tp + fn > 0 else 0
        fbeta = (1 + beta**2) * precision * recall / (beta**2 * precision + recall) if precision + recall > 0 else 0.0
        total += catalog.get(particle).weight * fbeta
    return total / catalog.total_weight


def grid_tuning(pred, gt, catalog, *, matching: str) -> float:
    """Best score over 100 grid cutoffs (one cutoff for all classes at a time, per class kept)."""
    from czii_cli.score import score_picks

    best: dict[str, float] = {}
    for cutoff in np.linspace(pred.score.min(), pred.score.max(), 100):
        report = score_picks(pred.subset(pred.score >= cutoff), gt, catalog, matching=matching)
        for name, part in report.per_class.items():
            best[name] = max(best.get(name, 0.0), part.fbeta)
    return sum(catalog.get(name).weight * f for name, f in best.items()) / catalog.total_weight


def run() -> list[Result]:
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.score import score_picks
    from czii_cli.tune import tune_thresholds

    pred, gt = synthetic_case()
    size = f"{len(pred) // 1000}k vs {len(gt) // 1000}k"
    results = []
    baseline_time, baseline_score = timed(lambda: competition_style_score(pred, gt, DEFAULT_CATALOG), repeat=2)
    for matching in ("any", "one-to-one"):
        seconds, report = timed(
            lambda matching=matching: score_picks(pred, gt, DEFAULT_CATALOG, matching=matching), repeat=3
        )
        if matching == "any" and abs(report.score - baseline_score) > 1e-12:
            raise RuntimeError(f"score {report.score} differs from the competition-style {baseline_score}")
        results.append(
            Result(
                benchmark=f"score {size} ({matching})",
                value=f"{seconds:.2f} s",
                baseline="competition-style masks + query_ball_tree (any)",
                baseline_value=f"{baseline_time:.2f} s",
                ratio=baseline_time / seconds,
                target="< 2 s",
                ok=seconds < 2.0,
            )
        )
    for matching in ("any", "one-to-one"):
        seconds, tuned = timed(lambda matching=matching: tune_thresholds(pred, gt, DEFAULT_CATALOG, matching=matching))
        grid_time, grid_score = timed(
            lambda matching=matching: grid_tuning(pred, gt, DEFAULT_CATALOG, matching=matching)
        )
        results.append(
            Result(
                benchmark=f"tune {len(pred) // 1000}k scored picks ({matching})",
                value=f"{seconds:.2f} s (score {tuned.after.score:.4f})",
                baseline="score_picks at 100 grid cutoffs",
                baseline_value=f"{grid_time:.1f} s (score {grid_score:.4f})",
                ratio=grid_time / seconds,
                target="< 5 s",
                ok=seconds < 5.0,
            )
        )
    return results
