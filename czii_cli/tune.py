"""Per-class score cutoffs that maximise the F-beta metric, searched exactly.

For each class the search runs over every distinct score of its candidates (keep picks
with ``score >= cutoff``), not over a grid.  Candidates are taken in descending score
order and each one either adds a true positive or not:

* ``any`` matching: a reference becomes matched at the highest score among the
  candidates within its reach, so ``TP(cutoff)`` counts references whose best reaching
  score is ``>= cutoff``; O(N log N) overall.
* ``one-to-one`` matching: a maximum matching grows by at most one when a candidate is
  added, exactly when an augmenting path starts at that candidate; one depth-first search
  per candidate keeps the matching maximum.  The cost is O(candidates x size of the
  within-reach component), small for picks, but slower than ``any``.

Two rules choose a cutoff from the F-beta of every candidate cutoff:

* ``robust`` (the default) is made to carry over to tomograms that were not tuned on.
  A cutoff only has to be *as good as the best within one reference's worth*: the
  tolerance is what the best F-beta would lose if one of its true positives were missed,
  so it is wide for a class with a handful of particles and narrow for one with hundreds.
  Among the cutoffs within that tolerance the *lowest* wins (most recall, which F-beta
  with beta 4 favours, and the side that survives a shift of the scores on new data).
  An isolated high cutoff that one particle decides is therefore never chosen.  A class
  with no reference or no true positive in the tuning data gets no cutoff (its picks are
  kept whole: there is nothing to learn from), and so does a class whose chosen cutoff
  is its lowest candidate score.
* ``best`` is the exact optimum on the tuning data: among cutoffs reaching the best
  F-beta the highest wins (fewest picks); a class whose best F-beta is 0 keeps only its
  top-scoring picks.

The reported cutoff is the midpoint between the chosen score and the next lower distinct
score, rounded to the fewest decimals that stay within the middle half of that gap: it
keeps the same picks with ``>=`` while tolerating rounding of the scores (picks CSVs
store six significant digits).  Classes are independent in the final score, so
per-class choices make the total.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
from scipy.sparse import csr_matrix

from .catalog import Catalog
from .errors import DataError, UsageError
from .picks import Picks
from .score import (
    MatchCounts,
    ScoreReport,
    check_metric_options,
    fbeta_score,
    reach_pairs,
    score_counts,
    score_picks,
    split_groups,
)

if TYPE_CHECKING:
    from .io.copick import PicksSelection


@dataclass(frozen=True)
class GroupEvents:
    """What tuning needs of one experiment and class.

    Attributes
    ----------
    candidate_scores : ndarray
        Score of every candidate.
    match_scores : ndarray
        One entry per true positive: the cutoff at or below which it is counted.
    n_references : int
        Number of references.
    """

    candidate_scores: np.ndarray
    match_scores: np.ndarray
    n_references: int

    def counts_at(self, cutoff: float) -> tuple[int, int, int]:
        """TP, FP and FN when picks with ``score >= cutoff`` are kept."""
        tp = int(np.count_nonzero(self.match_scores >= cutoff))
        return tp, int(np.count_nonzero(self.candidate_scores >= cutoff)) - tp, self.n_references - tp


@dataclass(frozen=True)
class TuneResult:
    """Tuned cutoffs and the scores before, after and under cross-validation.

    ``thresholds`` holds a cutoff for every class that has candidates in a reference
    experiment.  ``cv`` is the leave-one-experiment-out score (its ``per_experiment`` holds
    each held-out fold), or None when not asked for.
    """

    thresholds: dict[str, float]
    before: ScoreReport
    after: ScoreReport
    cv: ScoreReport | None


RULES = ("robust", "best")
DEFAULT_RULE = "robust"


class _MetricOptions(TypedDict):
    """The metric's keyword options, passed on as they are to the scoring functions."""

    beta: float
    distance_multiplier: float
    matching: str


def check_rule(rule: str) -> None:
    """Raise :class:`UsageError` unless ``rule`` is one of :data:`RULES`."""
    if rule not in RULES:
        raise UsageError(f"unknown threshold rule {rule!r} (choose from {', '.join(RULES)})")


def best_cutoff(
    candidate_scores: np.ndarray, match_scores: np.ndarray, n_references: int, *, beta: float, rule: str = DEFAULT_RULE
) -> float | None:
    """The cutoff for one class under ``rule``, given its tuning events.

    Parameters
    ----------
    candidate_scores : ndarray
        Scores of all candidates of the class (all experiments together); not empty.
    match_scores : ndarray
        One score per potential true positive (see :class:`GroupEvents`).
    n_references : int
        References of the class over all experiments.
    beta : float
        Recall weight of F-beta.
    rule : {"robust", "best"}
        See the module description.

    Returns
    -------
    float or None
        Keep picks with ``score >= cutoff``; None keeps every pick (``robust`` only).

    Examples
    --------
    Two validation particles found at 0.98 and 0.97 among three false picks: the exact
    optimum cuts just below them; within one particle's worth the robust rule keeps all.

    >>> scores, matches = np.array([0.98, 0.97, 0.6, 0.5, 0.4]), np.array([0.98, 0.97])
    >>> best_cutoff(scores, matches, 2, beta=4.0, rule="best"), best_cutoff(scores, matches, 2, beta=4.0)
    (0.8, None)

    With many references the tolerance is narrow: forty particles above 0.5, ten false
    picks between 0.3 and 0.5 and five weak ones among thirty false picks below 0.3: both
    rules keep the weak ones, the robust one a little further down.

    >>> scores = np.concatenate([np.linspace(0.9, 0.51, 40), np.linspace(0.49, 0.3, 10),
    ...                          np.linspace(0.29, 0.05, 35)])
    >>> matches = np.concatenate([scores[:40], scores[50:55]])
    >>> best_cutoff(scores, matches, 45, beta=4.0, rule="best"), best_cutoff(scores, matches, 45, beta=4.0)
    (0.258, 0.145)
    """
    check_rule(rule)
    cutoffs = np.unique(candidate_scores)[::-1]
    kept = len(candidate_scores) - np.searchsorted(np.sort(candidate_scores), cutoffs, side="left")
    tp = len(match_scores) - np.searchsorted(np.sort(match_scores), cutoffs, side="left")
    fbeta = fbeta_score(tp, kept - tp, n_references - tp, beta=beta)[2]
    best = int(np.argmax(fbeta))
    if rule == "robust":
        if n_references == 0 or fbeta[best] <= 0:
            return None
        one_missed = fbeta_score(tp[best] - 1, kept[best] - tp[best], n_references - tp[best] + 1, beta=beta)[2]
        tolerance = float(fbeta[best] - one_missed)
        best = int(np.flatnonzero(fbeta >= fbeta[best] - tolerance - 1e-12)[-1])
        if best + 1 == len(cutoffs):
            return None
    if best + 1 == len(cutoffs):
        return float(cutoffs[best])
    return _short_decimal_between(float(cutoffs[best + 1]), float(cutoffs[best]))


def _short_decimal_between(low: float, high: float) -> float:
    """The midpoint of ``low < high`` with the fewest decimals that keep it in the middle half."""
    midpoint, margin = low / 2 + high / 2, (high - low) / 4
    for decimals in range(18):
        value = round(midpoint, decimals)
        if low < value <= high and abs(value - midpoint) <= margin:
            return value
    return high


def group_events(
    pred: Picks, gt: Picks, catalog: Catalog, *, distance_multiplier: float = 0.5, matching: str = "any"
) -> dict[tuple[str, str], GroupEvents]:
    """Tuning events of every (reference experiment, class) group."""
    check_metric_options(distance_multiplier=distance_multiplier, matching=matching)
    scores = _scores_of(pred)
    events = {}
    for group in split_groups(pred, gt, catalog):
        candidates, references = pred.xyz[group.candidates], gt.xyz[group.references]
        group_scores = scores[group.candidates]
        distance = catalog.get(group.particle_type).radius * distance_multiplier
        cand, ref = reach_pairs(candidates, references, distance)
        if matching == "any":
            best = np.full(len(references), -np.inf)
            np.maximum.at(best, ref, group_scores[cand])
            match_scores = best[np.bincount(ref, minlength=len(references)) > 0]
        else:
            grew = _augmenting_candidates(group_scores, cand, ref, len(candidates), len(references))
            match_scores = group_scores[grew]
        events[group.experiment, group.particle_type] = GroupEvents(group_scores, match_scores, len(references))
    return events


def _scores_of(picks: Picks) -> np.ndarray:
    if picks.score is None:
        raise DataError("the predictions have no score column; tuning needs scored picks")
    if not np.isfinite(picks.score).all():
        raise DataError("the predictions have non-finite scores")
    return picks.score


def _augmenting_candidates(
    scores: np.ndarray, cand: np.ndarray, ref: np.ndarray, n_candidates: int, n_references: int
) -> np.ndarray:
    """Indices of candidates that grow a maximum matching when added in descending score order."""
    graph = csr_matrix((np.ones(len(cand)), (cand, ref)), shape=(n_candidates, n_references))
    starts, neighbours = graph.indptr.tolist(), graph.indices.tolist()
    partner_of_reference = [-1] * n_references
    grew = []
    for candidate in np.argsort(-scores, kind="stable").tolist():
        if starts[candidate] < starts[candidate + 1] and _augment(candidate, starts, neighbours, partner_of_reference):
            grew.append(candidate)
    return np.array(grew, dtype=np.int64)


def _augment(start: int, starts: list[int], neighbours: list[int], partner_of_reference: list[int]) -> bool:
    """Find an augmenting path from an unmatched candidate (iterative DFS) and flip it."""
    for reference in neighbours[starts[start] : starts[start + 1]]:
        if partner_of_reference[reference] < 0:
            partner_of_reference[reference] = start
            return True
    visited: set[int] = set()
    path = [start]  # candidates on the current alternating path
    through: list[int] = []  # the reference leading to each candidate after the first
    position = [starts[start]]
    while path:
        candidate = path[-1]
        if position[-1] == starts[candidate + 1]:
            path.pop()
            position.pop()
            if through:
                through.pop()
            continue
        reference = neighbours[position[-1]]
        position[-1] += 1
        if reference in visited:
            continue
        visited.add(reference)
        partner = partner_of_reference[reference]
        if partner < 0:
            for step, matched_reference in enumerate([*through, reference]):
                partner_of_reference[matched_reference] = path[step]
            return True
        path.append(partner)
        through.append(reference)
        position.append(starts[partner])
    return False


def thresholds_from_events(
    events: Mapping[tuple[str, str], GroupEvents],
    catalog: Catalog,
    *,
    beta: float,
    experiments: set[str] | None = None,
    rule: str = DEFAULT_RULE,
) -> dict[str, float]:
    """The cutoff of every class over the given experiments (all by default), pooled.

    Classes without candidates there get no cutoff, and so do those for which ``rule``
    keeps every pick (see :func:`best_cutoff`).
    """
    thresholds = {}
    for name in catalog.names:
        parts = [
            part
            for (experiment, particle), part in events.items()
            if particle == name and (experiments is None or experiment in experiments)
        ]
        candidate_scores = np.concatenate([p.candidate_scores for p in parts]) if parts else np.empty(0)
        if len(candidate_scores) == 0:
            continue
        cutoff = best_cutoff(
            candidate_scores,
            np.concatenate([p.match_scores for p in parts]),
            sum(p.n_references for p in parts),
            beta=beta,
            rule=rule,
        )
        if cutoff is not None:
            thresholds[name] = cutoff
    return thresholds


def apply_thresholds(picks: Picks, thresholds: Mapping[str, float]) -> Picks:
    """Keep picks with ``score >= thresholds[class]``; classes without a cutoff are kept whole.

    Examples
    --------
    >>> picks = Picks.from_points("TS_1", "ribosome", np.zeros((3, 3)), score=[0.1, 0.5, 0.9])
    >>> apply_thresholds(picks, {"ribosome": 0.5}).score.tolist()
    [0.5, 0.9]
    """
    scores = _scores_of(picks)
    cutoff = np.array([thresholds.get(str(name), -np.inf) for name in picks.particle_type], dtype=np.float64)
    return picks.subset(scores >= cutoff)


def cross_validate(
    events: Mapping[tuple[str, str], GroupEvents],
    catalog: Catalog,
    *,
    beta: float,
    distance_multiplier: float,
    matching: str,
    rule: str = DEFAULT_RULE,
) -> ScoreReport:
    """Leave-one-experiment-out score: tune on the other experiments, count on the held-out one.

    TP, FP and FN of the held-out evaluations are summed per class before F-beta.  A class
    without candidates in the training experiments keeps all its held-out picks.
    """
    experiments = list(dict.fromkeys(experiment for experiment, _ in events))
    if len(experiments) < 2:
        raise DataError("cross-validation needs references in at least two experiments")
    shape = (len(experiments), len(catalog))
    tp, fp, fn = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    for row, held_out in enumerate(experiments):
        thresholds = thresholds_from_events(
            events, catalog, beta=beta, experiments=set(experiments) - {held_out}, rule=rule
        )
        for column, name in enumerate(catalog.names):
            held_out_counts = events[held_out, name].counts_at(thresholds.get(name, -np.inf))
            tp[row, column], fp[row, column], fn[row, column] = held_out_counts
    counts = MatchCounts(tuple(experiments), tuple(catalog.names), tp, fp, fn)
    return score_counts(counts, catalog, beta=beta, distance_multiplier=distance_multiplier, matching=matching)


def tune_thresholds(
    pred: Picks,
    gt: Picks,
    catalog: Catalog,
    *,
    beta: float = 4.0,
    distance_multiplier: float = 0.5,
    matching: str = "any",
    cross_validation: bool = False,
    rule: str = DEFAULT_RULE,
) -> TuneResult:
    """Find the per-class score cutoffs that maximise the F-beta score.

    Parameters
    ----------
    pred : Picks
        Scored candidates (a ``score`` column is required).
    gt : Picks
        References.
    catalog : Catalog
        Radii and weights.
    beta, distance_multiplier, matching
        The metric, as in :func:`czii_cli.score.score_picks`.
    cross_validation : bool
        Also compute the leave-one-experiment-out score.
    rule : {"robust", "best"}
        How a cutoff is chosen (see the module description).

    Returns
    -------
    TuneResult

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> gt = Picks.from_points("TS_1", "ribosome", [[0, 0, 0], [500, 0, 0]])
    >>> pred = Picks.from_points("TS_1", "ribosome", [[10, 0, 0], [20, 0, 0], [900, 0, 0]], score=[0.9, 0.4, 0.2])
    >>> result = tune_thresholds(pred, gt, DEFAULT_CATALOG, rule="best")
    >>> result.thresholds, result.after.per_class["ribosome"].fp
    ({'ribosome': 0.7}, 0)
    """
    check_metric_options(beta=beta, distance_multiplier=distance_multiplier, matching=matching)
    check_rule(rule)
    metric = _MetricOptions(beta=beta, distance_multiplier=distance_multiplier, matching=matching)
    events = group_events(pred, gt, catalog, distance_multiplier=distance_multiplier, matching=matching)
    thresholds = thresholds_from_events(events, catalog, beta=beta, rule=rule)
    return TuneResult(
        thresholds=thresholds,
        before=score_picks(pred, gt, catalog, **metric),
        after=score_picks(apply_thresholds(pred, thresholds), gt, catalog, **metric),
        cv=cross_validate(events, catalog, rule=rule, **metric) if cross_validation else None,
    )


@dataclass(frozen=True)
class CutoffCurve:
    """Counts and scores of one class at every distinct cutoff, highest cutoff first.

    Attributes
    ----------
    cutoffs : ndarray
        Each distinct candidate score (keep picks with ``score >= cutoff``).
    tp, fp, fn : ndarray of int
    precision, recall, fbeta : ndarray of float
    """

    cutoffs: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    fbeta: np.ndarray


def cutoff_curves(
    events: Mapping[tuple[str, str], GroupEvents], catalog: Catalog, *, beta: float
) -> dict[str, CutoffCurve]:
    """F-beta, precision and recall of each class against its score cutoff (all experiments).

    Classes without candidates get no curve.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> events = {("TS_1", "ribosome"): GroupEvents(np.array([0.9, 0.8, 0.2]), np.array([0.9, 0.8]), 2)}
    >>> curve = cutoff_curves(events, DEFAULT_CATALOG, beta=4.0)["ribosome"]
    >>> curve.cutoffs.tolist(), curve.tp.tolist(), curve.fp.tolist(), curve.recall.tolist()
    ([0.9, 0.8, 0.2], [1, 2, 2], [0, 0, 1], [0.5, 1.0, 1.0])
    """
    curves = {}
    for name in catalog.names:
        parts = [part for (_, particle), part in events.items() if particle == name]
        candidate_scores = np.concatenate([p.candidate_scores for p in parts]) if parts else np.empty(0)
        if len(candidate_scores) == 0:
            continue
        match_scores = np.sort(np.concatenate([p.match_scores for p in parts]))
        references = sum(p.n_references for p in parts)
        cutoffs = np.unique(candidate_scores)[::-1]
        kept = len(candidate_scores) - np.searchsorted(np.sort(candidate_scores), cutoffs, side="left")
        tp = len(match_scores) - np.searchsorted(match_scores, cutoffs, side="left")
        fp, fn = kept - tp, references - tp
        precision, recall, fbeta = fbeta_score(tp, fp, fn, beta=beta)
        curves[name] = CutoffCurve(cutoffs, tp, fp, fn, precision, recall, fbeta)
    return curves


# ----------------------------------------------------------------------------- files


class TooFewExperimentsError(UsageError):
    """Cross validation over experiments, with references in fewer than two (exit code 2).

    Attributes
    ----------
    source : str
        The references.
    found : int
        Their number of experiments.
    """

    def __init__(self, source: str, found: int) -> None:
        self.source, self.found = source, found
        super().__init__(f"{source}: cross validation needs references in at least two experiments, found {found}")

    def __reduce__(self) -> tuple[type[TooFewExperimentsError], tuple[str, int]]:
        return TooFewExperimentsError, (self.source, self.found)


def tune_files(
    pred: Path,
    gt: Path,
    output: Path | str,
    *,
    catalog: Catalog | None = None,
    beta: float = 4.0,
    distance_multiplier: float = 0.5,
    matching: str = "any",
    cross_validation: bool = False,
    rule: str = DEFAULT_RULE,
    pred_selection: PicksSelection | None = None,
    gt_selection: PicksSelection | None = None,
    plot: Path | None = None,
    overwrite: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> TuneResult:
    """Tune per-class score cutoffs of a scored picks file on references; write them as JSON.

    Parameters
    ----------
    pred, gt : Path
        Scored candidates (a CSV with a score column, a copick overlay) and references
        (see :func:`czii_cli.score.read_pick_pair`).
    output : Path or "-"
        The thresholds file ``postprocess`` applies (``-``: stdout); it records the
        metric, the rule, the scores before and after and its provenance.
    catalog : Catalog, optional
        Radii and weights; default: the six competition classes.
    beta, distance_multiplier, matching, cross_validation, rule :
        As for :func:`tune_thresholds`.
    pred_selection, gt_selection, on_warning :
        As for :func:`czii_cli.score.read_pick_pair`.
    plot : Path, optional
        Also write a PNG of F-beta against the cutoff and the precision-recall curve there.
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    TuneResult

    Raises
    ------
    UsageError
        A bad metric option or rule, or an existing output without ``overwrite``.
    TooFewExperimentsError
        ``cross_validation`` with references in fewer than two experiments.
    DataError
        Unreadable picks, candidates without a score column or with non-finite scores.

    Examples
    --------
    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> rows = "TS_1,ribosome,10,0,0,0.9\\nTS_1,ribosome,900,0,0,0.2\\n"
    >>> _ = (folder / "p.csv").write_text("experiment,particle_type,x,y,z,score\\n" + rows)
    >>> _ = (folder / "t.csv").write_text("experiment,particle_type,x,y,z\\nTS_1,ribosome,0,0,0\\n")
    >>> tune_files(folder / "p.csv", folder / "t.csv", folder / "cut.json", rule="best").thresholds
    {'ribosome': 0.6}
    """
    from .catalog import DEFAULT_CATALOG
    from .io.artifacts import provenance_entry
    from .io.atomic import check_output
    from .io.thresholds import write_thresholds
    from .score import read_pick_pair

    check_metric_options(beta=beta, distance_multiplier=distance_multiplier, matching=matching)
    check_rule(rule)
    catalog = catalog or DEFAULT_CATALOG
    check_output(Path(output), overwrite=overwrite)
    if plot is not None:
        check_output(plot, overwrite=overwrite)
    pred_picks, gt_picks = read_pick_pair(
        pred, gt, catalog=catalog, pred_selection=pred_selection, gt_selection=gt_selection, on_warning=on_warning
    )
    if pred_picks.score is None:
        raise DataError(f"{pred}: no score column; tuning needs scored picks (czii postprocess writes them)")
    if not np.isfinite(pred_picks.score).all():
        raise DataError(f"{pred}: non-finite values in the score column")
    if cross_validation and len(gt_picks.experiments) < 2:
        raise TooFewExperimentsError(str(gt), len(gt_picks.experiments))
    metric = {"beta": beta, "distance_multiplier": distance_multiplier, "matching": matching}
    result = tune_thresholds(
        pred_picks,
        gt_picks,
        catalog,
        beta=beta,
        distance_multiplier=distance_multiplier,
        matching=matching,
        cross_validation=cross_validation,
        rule=rule,
    )
    extra: dict[str, object] = {
        "metric": metric,
        "rule": rule,
        "score_before": result.before.score,
        "score_after": result.after.score,
    }
    if result.cv is not None:
        extra["cv_score"] = result.cv.score
    args = {**metric, "cv": cross_validation, "rule": rule}
    extra["provenance"] = [provenance_entry("tune", args, [str(pred), str(gt)])]
    write_thresholds(output, result.thresholds, extra=extra, overwrite=overwrite)
    if plot is not None:
        from .io.figures import write_png
        from .plots import tune_figure

        events = group_events(pred_picks, gt_picks, catalog, distance_multiplier=distance_multiplier, matching=matching)
        figure = tune_figure(
            cutoff_curves(events, catalog, beta=beta), result.thresholds, class_names=catalog.names, beta=beta
        )
        write_png(plot, figure, overwrite=overwrite)
    return result
