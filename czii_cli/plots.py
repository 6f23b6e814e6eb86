"""Figures of czii's numbers, in one style: training curves, tuning curves, score bars.

Every figure is a matplotlib ``Figure`` built without pyplot (no global state, no
display needed); :func:`czii_cli.io.figures.write_png` writes it.  One style throughout:
class ``i`` of the catalog is drawn in colour ``C{i}`` in every figure, overall scores in
black, a chosen value (the kept checkpoint, a tuned cutoff) as a grey dotted line, scores
on a 0..1 axis, light grid, legends in small type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .training.metrics import MetricsRow

OVERALL = "black"
MARK = {"color": "grey", "linestyle": ":", "linewidth": 1}
LEGEND = {"fontsize": 7}
PANEL_SIZE = (5.0, 4.0)  # inches per panel
DPI = 100


def class_colour(index: int) -> str:
    """The colour of the class at ``index`` in the catalog (matplotlib's cycle).

    Examples
    --------
    >>> class_colour(0), class_colour(11)
    ('C0', 'C1')
    """
    return f"C{index % 10}"


def new_figure(
    rows: int, columns: int, *, title: str | None = None, width: float | None = None
) -> tuple[Any, np.ndarray]:
    """A figure of ``rows x columns`` panels and its axes as a 2-D array (``width`` in inches overrides)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width or PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows), dpi=DPI)
    axes = np.atleast_2d(figure.subplots(rows, columns, squeeze=False))
    for ax in axes.flat:
        ax.grid(True, alpha=0.3, linewidth=0.5)
    if title:
        figure.suptitle(title)
    return figure, axes


def finish(figure: Any) -> Any:
    """Lay out a figure before it is saved."""
    figure.tight_layout()
    return figure


def training_figure(history: Sequence[MetricsRow], *, best_step: int | None = None, beta: float = 4.0) -> Any:
    """Training loss and validation F-beta (overall and per class) against the step.

    Scores at the fixed threshold are solid lines, at tuned thresholds dashed (one
    colour per class); a dotted vertical line marks ``best_step``, the kept checkpoint.
    """
    figure, axes = new_figure(1, 2)
    loss_axes, score_axes = axes[0]
    steps = [row.step for row in history]
    loss_axes.plot(
        steps,
        [np.nan if row.train_loss is None else row.train_loss for row in history],
        marker="o",
        color=OVERALL,
    )
    loss_axes.set(xlabel="step", ylabel="training loss", title="loss")
    scored = [row for row in history if row.val_score is not None]
    if scored:
        x = [row.step for row in scored]

        def curve(values: Sequence[float | None]) -> list[float]:
            return [np.nan if value is None else value for value in values]

        def class_curve(name: str, *, tuned: bool) -> list[float]:
            scores = [row.per_class.get(name) for row in scored]
            return curve([None if s is None else (s.tuned_fbeta if tuned else s.fbeta) for s in scores])

        score_axes.plot(
            x, curve([row.val_score for row in scored]), marker="o", linewidth=2, label="score, fixed", color=OVERALL
        )
        score_axes.plot(
            x,
            curve([row.tuned_score for row in scored]),
            marker="o",
            linewidth=2,
            linestyle="--",
            label="score, tuned",
            color=OVERALL,
        )
        for index, name in enumerate(scored[-1].per_class):
            colour = class_colour(index)
            score_axes.plot(x, class_curve(name, tuned=False), linewidth=1, label=name, color=colour)
            score_axes.plot(x, class_curve(name, tuned=True), linewidth=1, linestyle="--", color=colour)
        if best_step is not None:
            score_axes.axvline(best_step, label=f"kept (step {best_step})", **MARK)
        score_axes.legend(**LEGEND)
    score_axes.set(
        xlabel="step",
        ylabel=f"validation F{beta:g}",
        ylim=(0, 1),
        title="validation (solid: fixed threshold, dashed: tuned)",
    )
    return finish(figure)


def tune_figure(
    curves: Mapping[str, Any], thresholds: Mapping[str, float], *, class_names: Sequence[str], beta: float = 4.0
) -> Any:
    """Per class: F-beta against the score cutoff, and the precision-recall curve.

    Parameters
    ----------
    curves : mapping
        Class name to :class:`czii_cli.tune.CutoffCurve`.
    thresholds : mapping
        The chosen cutoff of each class, marked on both panels.
    class_names : sequence of str
        The catalog's classes, which fix each class's colour.
    beta : float
        For the axis label.
    """
    names = [name for name in class_names if name in curves]
    figure, axes = new_figure(max(1, len(names)), 2, title=f"F{beta:g} against the score cutoff, chosen cutoff dotted")
    if not names:
        axes[0, 0].set_title("no scored candidates")
    for row, name in enumerate(names):
        curve, colour = curves[name], class_colour(list(class_names).index(name))
        fbeta_axes, pr_axes = axes[row]
        fbeta_axes.step(curve.cutoffs, curve.fbeta, where="post", color=colour, label=name)
        pr_axes.plot(curve.recall, curve.precision, color=colour, marker=".", markersize=3, label=name)
        cutoff = thresholds.get(name)
        if cutoff is not None:
            at = int(np.count_nonzero(curve.cutoffs >= cutoff)) - 1  # the lowest cutoff still kept
            at = max(at, 0)
            fbeta_axes.axvline(cutoff, label=f"cutoff {cutoff:.4g}: F{beta:g} {curve.fbeta[at]:.3f}", **MARK)
            pr_axes.plot(
                [curve.recall[at]],
                [curve.precision[at]],
                marker="o",
                markersize=7,
                markerfacecolor="none",
                markeredgecolor=MARK["color"],
                linestyle="none",
                label=f"cutoff {cutoff:.4g}",
            )
        fbeta_axes.set(
            xlabel="score cutoff (keep score >= cutoff)", ylabel=f"F{beta:g}", ylim=(0, 1), title=f"{name}: F{beta:g}"
        )
        pr_axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{name}: precision-recall")
        fbeta_axes.legend(**LEGEND)
        pr_axes.legend(**LEGEND)
    return finish(figure)


def score_figure(report: Any, *, class_names: Sequence[str], title: str | None = None) -> Any:
    """Per-class bars of precision, recall and F-beta (one group per class, the final score in the title).

    ``report`` is a :class:`czii_cli.score.ScoreReport`.  Each group's bars take the
    class colour: precision light, recall medium, F-beta solid.
    """
    names = [name for name in class_names if name in report.per_class]
    figure, axes = new_figure(1, 1, title=title, width=max(PANEL_SIZE[0], 1.4 * len(names) + 1.5))
    ax = axes[0, 0]
    x = np.arange(len(names))
    width = 0.27
    for offset, (key, alpha) in enumerate((("precision", 0.35), ("recall", 0.65), ("fbeta", 1.0))):
        values = [getattr(report.per_class[name], key) for name in names]
        colours = [class_colour(list(class_names).index(name)) for name in names]
        bars = ax.bar(
            x + (offset - 1) * width, values, width, color=colours, alpha=alpha, edgecolor=OVERALL, linewidth=0.5
        )
        for bar, value in zip(bars, values):
            ax.annotate(
                f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=6
            )
    ax.axhline(report.score, label=f"score {report.score:.4f}", **MARK)
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.set(
        ylabel="precision / recall / F" + f"{report.beta:g}",
        ylim=(0, 1.08),
        title=f"per class: precision, recall, F{report.beta:g} (light to solid)",
    )
    ax.legend(**LEGEND)
    return finish(figure)
