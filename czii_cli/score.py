"""The competition's F-beta metric for particle picks, and a stricter one-to-one variant.

The default matching reproduces the CZII CryoET Object Identification metric exactly:

1. a class's match distance is its radius times ``distance_multiplier`` (0.5);
2. per experiment and class, a reference counts as one true positive when any candidate
   lies within that distance (inclusive, as SciPy's ball queries are); extra candidates
   near one reference are false positives;
3. ``FP = candidates - TP`` and ``FN = references - TP``.  A candidate within reach of
   two references makes two true positives, so FP can be negative: the competition's code
   did exactly this and so does this module;
4. TP, FP and FN are summed per class over all experiments;
5. precision ``tp / (tp + fp)`` and recall ``tp / (tp + fn)`` are 0 when their
   denominator is 0, ``F = (1 + b^2) P R / (b^2 P + R)`` is 0 when ``P + R`` is 0;
6. the score is ``sum(weight * F) / sum of all catalog weights`` (7 for the default
   catalog, whether or not every class occurs in the references);
7. candidates of experiments without references are ignored.

``matching="one-to-one"`` instead counts the size of a maximum one-to-one assignment of
candidates to references within the distance, so FP is never negative.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from scipy.spatial import cKDTree

from .catalog import Catalog
from .errors import DataError, UsageError
from .picks import Picks

if TYPE_CHECKING:
    from .io.copick import PicksSelection

MATCHINGS = ("any", "one-to-one")


@dataclass(frozen=True)
class ClassScore:
    """Counts and F-beta of one particle class."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    fbeta: float
    weight: float

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "fbeta": self.fbeta,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class ScoreReport:
    """The final score, its per-class parts and the same breakdown per experiment.

    Attributes
    ----------
    score : float
        Weighted F-beta over all classes.
    per_class : dict of str to ClassScore
        Every catalog class, in catalog order.
    per_experiment : dict of str to ScoreReport
        The same computed on each reference experiment alone (empty in those reports).
    beta, distance_multiplier : float
        The metric's parameters.
    matching : str
        ``any`` or ``one-to-one``.
    """

    score: float
    per_class: dict[str, ClassScore]
    beta: float
    distance_multiplier: float
    matching: str
    per_experiment: dict[str, ScoreReport] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form: score, metric parameters, classes and experiments."""
        document = {
            "score": self.score,
            "metric": {"beta": self.beta, "distance_multiplier": self.distance_multiplier, "matching": self.matching},
            "classes": {name: part.to_json() for name, part in self.per_class.items()},
        }
        if self.per_experiment:
            document["per_experiment"] = {
                name: {"score": report.score, "classes": {c: s.to_json() for c, s in report.per_class.items()}}
                for name, report in self.per_experiment.items()
            }
        return document


@dataclass(frozen=True)
class MatchCounts:
    """TP, FP and FN per reference experiment (rows) and catalog class (columns)."""

    experiments: tuple[str, ...]
    classes: tuple[str, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    def rows(self, index: np.ndarray | slice) -> MatchCounts:
        """The counts of some experiments only."""
        return MatchCounts(
            tuple(np.asarray(self.experiments, dtype=object)[index].tolist()),
            self.classes,
            self.tp[index],
            self.fp[index],
            self.fn[index],
        )


@dataclass(frozen=True)
class Group:
    """Row indices of the candidates and references of one experiment and class."""

    experiment: str
    particle_type: str
    candidates: np.ndarray
    references: np.ndarray


def check_metric_options(*, beta: float = 4.0, distance_multiplier: float = 0.5, matching: str = "any") -> None:
    """Raise :class:`UsageError` for a non-positive beta or distance, or an unknown matching."""
    if matching not in MATCHINGS:
        raise UsageError(f"unknown matching {matching!r} (choose from {', '.join(MATCHINGS)})")
    if not beta > 0:
        raise UsageError(f"beta must be positive, got {beta}")
    if not distance_multiplier > 0:
        raise UsageError(f"distance multiplier must be positive, got {distance_multiplier}")


def fbeta_score(
    tp: npt.ArrayLike, fp: npt.ArrayLike, fn: npt.ArrayLike, *, beta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F-beta from counts, with the competition's zero rules.

    Works on scalars or arrays of counts (broadcast together).

    Examples
    --------
    >>> p, r, f = fbeta_score(3, 1, 2, beta=4.0)
    >>> float(p), float(r), round(float(f), 6)
    (0.75, 0.6, 0.607143)
    >>> [float(v) for v in fbeta_score(0, 0, 5, beta=4.0)]
    [0.0, 0.0, 0.0]
    """
    tp, fp, fn = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (tp, fp, fn)))
    predicted, actual = tp + fp, tp + fn
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    b2 = beta**2
    fbeta = np.divide(
        (1 + b2) * (precision * recall),
        b2 * precision + recall,
        out=np.zeros_like(tp),
        where=(precision + recall) > 0,
    )
    return precision, recall, fbeta


def split_groups(pred: Picks, gt: Picks, catalog: Catalog) -> list[Group]:
    """Pair candidates and references by (experiment, class), for every reference experiment.

    Every reference experiment gets one group per catalog class, empty or not, in sorted
    experiment and catalog order.  Candidates of experiments without references are
    dropped.  An unknown class name in either table is a :class:`DataError`.
    """
    names = catalog.names
    experiments = np.unique(gt.experiment.astype(str)) if len(gt) else np.empty(0, dtype=str)
    gt_keys = _experiment_index(gt, experiments) * len(names) + _class_index(gt, names, "references")
    pred_experiment = _experiment_index(pred, experiments)
    pred_class = _class_index(pred, names, "predictions")
    kept = np.flatnonzero(pred_experiment >= 0)
    pred_keys = pred_experiment[kept] * len(names) + pred_class[kept]
    gt_rows = _rows_by_key(gt_keys, np.arange(len(gt)), len(experiments) * len(names))
    pred_rows = _rows_by_key(pred_keys, kept, len(experiments) * len(names))
    return [
        Group(str(experiment), name, next(pred_rows), next(gt_rows)) for experiment in experiments for name in names
    ]


def _experiment_index(picks: Picks, experiments: np.ndarray) -> np.ndarray:
    """Index of each row's experiment in ``experiments`` (sorted), -1 where absent."""
    if len(experiments) == 0:
        return np.full(len(picks), -1, dtype=np.int64)
    values = picks.experiment.astype(str)
    index = np.minimum(np.searchsorted(experiments, values), len(experiments) - 1)
    return np.where(experiments[index] == values, index, -1).astype(np.int64)


def _class_index(picks: Picks, names: list[str], what: str) -> np.ndarray:
    present, inverse = np.unique(picks.particle_type.astype(str), return_inverse=True)
    lookup = {name: i for i, name in enumerate(names)}
    unknown = [str(p) for p in present if p not in lookup]
    if unknown:
        raise DataError(f"{what}: unknown particle class {unknown[0]!r} (known: {', '.join(names)})")
    return np.array([lookup[p] for p in present], dtype=np.int64)[inverse.reshape(-1)]


def _rows_by_key(keys: np.ndarray, rows: np.ndarray, n_keys: int) -> Iterator[np.ndarray]:
    """Yield, for key 0 .. n_keys-1 in turn, the rows carrying that key."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_keys + 1))
    for key in range(n_keys):
        yield rows[order[bounds[key] : bounds[key + 1]]]


def reach_pairs(candidates: np.ndarray, references: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """All (candidate, reference) index pairs at most ``distance`` apart.

    Examples
    --------
    >>> cand, ref = reach_pairs(np.array([[0.0, 0, 0], [30.0, 0, 0]]), np.array([[0.0, 0, 0]]), 30.0)
    >>> cand.tolist(), ref.tolist()
    ([0, 1], [0, 0])
    """
    if len(candidates) == 0 or len(references) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pairs = cKDTree(candidates).sparse_distance_matrix(cKDTree(references), distance, output_type="ndarray")
    return pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)


def count_matches(candidates: np.ndarray, references: np.ndarray, *, distance: float, matching: str = "any") -> int:
    """Number of true positives between two point sets (``N x 3``) of one experiment and class.

    ``any``: references with at least one candidate within ``distance``.  ``one-to-one``:
    the size of a maximum one-to-one assignment within ``distance``.

    Examples
    --------
    >>> refs = np.array([[0.0, 0, 0], [50.0, 0, 0]])
    >>> cands = np.array([[25.0, 0, 0]])   # within 30 of both references
    >>> count_matches(cands, refs, distance=30.0), count_matches(cands, refs, distance=30.0, matching="one-to-one")
    (2, 1)
    """
    cand, ref = reach_pairs(candidates, references, distance)
    if matching == "any":
        return int(np.unique(ref).size)
    graph = csr_matrix((np.ones(len(cand)), (ref, cand)), shape=(len(references), len(candidates)))
    return int(np.count_nonzero(maximum_bipartite_matching(graph, perm_type="column") >= 0))


def match_counts(
    pred: Picks, gt: Picks, catalog: Catalog, *, distance_multiplier: float = 0.5, matching: str = "any"
) -> MatchCounts:
    """TP, FP and FN for every reference experiment and catalog class."""
    check_metric_options(distance_multiplier=distance_multiplier, matching=matching)
    groups = split_groups(pred, gt, catalog)
    experiments = tuple(dict.fromkeys(g.experiment for g in groups))
    shape = (len(experiments), len(catalog))
    tp, n_candidates, n_references = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    for index, group in enumerate(groups):
        row, column = divmod(index, len(catalog))
        distance = catalog.get(group.particle_type).radius * distance_multiplier
        tp[row, column] = count_matches(
            pred.xyz[group.candidates], gt.xyz[group.references], distance=distance, matching=matching
        )
        n_candidates[row, column] = len(group.candidates)
        n_references[row, column] = len(group.references)
    return MatchCounts(experiments, tuple(catalog.names), tp, n_candidates - tp, n_references - tp)


def score_counts(
    counts: MatchCounts,
    catalog: Catalog,
    *,
    beta: float = 4.0,
    distance_multiplier: float = 0.5,
    matching: str = "any",
    per_experiment: bool = True,
) -> ScoreReport:
    """Turn counts into per-class F-beta and the weighted score (micro-summed over rows)."""
    total_weight = catalog.total_weight
    if not total_weight > 0:
        raise DataError("the class weights sum to 0, so the weighted score is undefined")
    tp, fp, fn = (values.sum(axis=0) for values in (counts.tp, counts.fp, counts.fn))
    precision, recall, fbeta = fbeta_score(tp, fp, fn, beta=beta)
    weights = np.array([catalog.get(name).weight for name in counts.classes])
    per_class = {
        name: ClassScore(
            int(tp[i]),
            int(fp[i]),
            int(fn[i]),
            float(precision[i]),
            float(recall[i]),
            float(fbeta[i]),
            float(weights[i]),
        )
        for i, name in enumerate(counts.classes)
    }
    breakdown = {}
    if per_experiment:
        breakdown = {
            name: score_counts(
                counts.rows(slice(row, row + 1)),
                catalog,
                beta=beta,
                distance_multiplier=distance_multiplier,
                matching=matching,
                per_experiment=False,
            )
            for row, name in enumerate(counts.experiments)
        }
    score = float(sum(weights[i] * fbeta[i] for i in range(len(weights))) / total_weight)
    return ScoreReport(score, per_class, beta, distance_multiplier, matching, breakdown)


def score_picks(
    pred: Picks,
    gt: Picks,
    catalog: Catalog,
    *,
    beta: float = 4.0,
    distance_multiplier: float = 0.5,
    matching: str = "any",
) -> ScoreReport:
    """Score candidate picks against reference picks with the competition's F-beta.

    Parameters
    ----------
    pred, gt : Picks
        Candidates and references, coordinates in Å.  Candidates of experiments that
        have no references are ignored.
    catalog : Catalog
        Radii (match distance = radius * ``distance_multiplier``) and weights.
    beta : float
        Recall weight of F-beta.
    distance_multiplier : float
        Fraction of the radius within which a candidate matches.
    matching : {"any", "one-to-one"}
        ``any`` is the competition's rule; ``one-to-one`` allows each candidate and each
        reference at most one match.

    Returns
    -------
    ScoreReport

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> gt = Picks.from_points("TS_1", "ribosome", [[0, 0, 0], [500, 0, 0]])
    >>> pred = Picks.from_points("TS_1", "ribosome", [[10, 0, 0], [20, 0, 0], [900, 0, 0]])
    >>> report = score_picks(pred, gt, DEFAULT_CATALOG)
    >>> part = report.per_class["ribosome"]
    >>> part.tp, part.fp, part.fn, round(part.fbeta, 4), round(report.score, 4)
    (1, 2, 1, 0.4857, 0.0694)
    """
    check_metric_options(beta=beta, distance_multiplier=distance_multiplier, matching=matching)
    counts = match_counts(pred, gt, catalog, distance_multiplier=distance_multiplier, matching=matching)
    return score_counts(counts, catalog, beta=beta, distance_multiplier=distance_multiplier, matching=matching)


# ----------------------------------------------------------------------------- files


def read_pick_pair(
    pred: Path,
    gt: Path,
    *,
    catalog: Catalog,
    pred_selection: PicksSelection | None = None,
    gt_selection: PicksSelection | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[Picks, Picks]:
    """Read candidate and reference picks, each checked for class names ``catalog`` does not know.

    Parameters
    ----------
    pred, gt : Path
        Candidates (CSV, copick project or overlay; ``-`` reads CSV from stdin) and
        references (copick project, overlay, annotation folder or CSV).
    catalog : Catalog
        The particle classes.
    pred_selection, gt_selection : PicksSelection, optional
        Whose picks a copick project contributes to each side (default: the single user
        present for ``pred``, the ground truth for ``gt``).
    on_warning : callable, optional
        Called with a message when the two sides share no experiment (nothing can match).

    Returns
    -------
    (Picks, Picks)
        Candidates and references.
    """
    from .io.copick import GROUND_TRUTH, PicksSelection
    from .io.picks import read_picks
    from .picks import check_classes

    pred_picks = read_picks(pred, catalog=catalog, selection=pred_selection or PicksSelection(prefer=None))
    check_classes(pred_picks, catalog.names, source="<stdin>" if str(pred) == "-" else str(pred))
    gt_picks = read_picks(gt, catalog=catalog, selection=gt_selection or GROUND_TRUTH)
    check_classes(gt_picks, catalog.names, source=str(gt))
    message = disjoint_message(pred_picks, gt_picks, pred=pred, gt=gt)
    if message is not None and on_warning is not None:
        on_warning(message)
    return pred_picks, gt_picks


def disjoint_message(pred_picks: Picks, gt_picks: Picks, *, pred: Path, gt: Path) -> str | None:
    """The warning for candidates and references without an experiment in common (score 0), else None.

    Examples
    --------
    >>> a, b = Picks.from_points("TS_1", "ribosome", [0, 0, 0]), Picks.from_points("TS_2", "ribosome", [0, 0, 0])
    >>> disjoint_message(a, b, pred=Path("p.csv"), gt=Path("truth"))
    'no experiment of p.csv is in truth, so nothing can match: p.csv has TS_1; truth has TS_2'
    """
    mine, theirs = pred_picks.experiments, gt_picks.experiments
    if mine and theirs and not set(mine) & set(theirs):
        return (
            f"no experiment of {pred} is in {gt}, so nothing can match: {pred} has {_names(mine)}; "
            f"{gt} has {_names(theirs)}"
        )
    return None


def _names(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def score_files(
    pred: Path,
    gt: Path,
    *,
    catalog: Catalog | None = None,
    beta: float = 4.0,
    distance_multiplier: float = 0.5,
    matching: str = "any",
    pred_selection: PicksSelection | None = None,
    gt_selection: PicksSelection | None = None,
    plot: Path | None = None,
    overwrite: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> ScoreReport:
    """Score a picks file against reference picks with the competition's F-beta.

    Parameters
    ----------
    pred, gt : Path
        Candidates and references (see :func:`read_pick_pair`).
    catalog : Catalog, optional
        Radii and weights; default: the six competition classes.
    beta, distance_multiplier, matching :
        The metric (see :func:`score_picks`).
    pred_selection, gt_selection, on_warning :
        As for :func:`read_pick_pair`.
    plot : Path, optional
        Also write a PNG of the per-class precision, recall and F-beta bars there.
    overwrite : bool
        Replace an existing ``plot``.

    Returns
    -------
    ScoreReport

    Raises
    ------
    UsageError
        A bad metric option, or an existing ``plot`` without ``overwrite``.
    DataError
        Unreadable picks, or picks of classes ``catalog`` does not know.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "p.csv").write_text("experiment,particle_type,x,y,z\\nTS_1,ribosome,0,0,0\\n")
    >>> _ = (folder / "t.csv").write_text("experiment,particle_type,x,y,z\\nTS_1,ribosome,70,0,0\\n")
    >>> score_files(folder / "p.csv", folder / "t.csv").per_class["ribosome"].tp
    1
    """
    from .catalog import DEFAULT_CATALOG

    check_metric_options(beta=beta, distance_multiplier=distance_multiplier, matching=matching)
    catalog = catalog or DEFAULT_CATALOG
    if plot is not None:
        from .io.atomic import check_output

        check_output(plot, overwrite=overwrite)
    pred_picks, gt_picks = read_pick_pair(
        pred, gt, catalog=catalog, pred_selection=pred_selection, gt_selection=gt_selection, on_warning=on_warning
    )
    report = score_picks(
        pred_picks, gt_picks, catalog, beta=beta, distance_multiplier=distance_multiplier, matching=matching
    )
    if plot is not None:
        from .io.figures import write_png
        from .plots import score_figure

        write_png(plot, score_figure(report, class_names=catalog.names, title=f"{pred} vs {gt}"), overwrite=overwrite)
    return report
