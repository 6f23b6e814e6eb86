"""`tune --plot`, `score --plot` and the one style they share with train's curves."""

from __future__ import annotations

import numpy as np

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io.picks import write_picks_csv
from czii_cli.picks import Picks, concat
from czii_cli.plots import class_colour, score_figure, training_figure, tune_figure
from czii_cli.score import score_picks
from czii_cli.training.metrics import MetricsRow
from czii_cli.tune import cutoff_curves, group_events, tune_thresholds

PNG = b"\x89PNG\r\n\x1a\n"


def case():
    """Ribosome: two references, found at scores 0.9 and 0.5, a false pick at 0.7; apo-ferritin: one miss."""
    gt = concat(
        [
            Picks.from_points("TS_1", "ribosome", [[0, 0, 0], [1000, 0, 0]]),
            Picks.from_points("TS_1", "apo-ferritin", [[0, 500, 0]]),
        ]
    )
    pred = concat(
        [
            Picks.from_points("TS_1", "ribosome", [[10, 0, 0], [500, 500, 500], [1010, 0, 0]], score=[0.9, 0.7, 0.5]),
            Picks.from_points("TS_1", "apo-ferritin", [[900, 900, 900]], score=[0.3]),
        ]
    )
    return pred, gt


def test_cutoff_curves_count_every_distinct_cutoff():
    pred, gt = case()
    curve = cutoff_curves(group_events(pred, gt, DEFAULT_CATALOG), DEFAULT_CATALOG, beta=4.0)["ribosome"]
    assert curve.cutoffs.tolist() == [0.9, 0.7, 0.5]
    assert (curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()) == ([1, 1, 2], [0, 1, 1], [1, 1, 0])
    np.testing.assert_allclose(curve.precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(curve.fbeta[2], 17 * (2 / 3) / (16 * 2 / 3 + 1))


def test_tune_figure_marks_the_chosen_cutoff_in_the_class_colour():
    pred, gt = case()
    result = tune_thresholds(pred, gt, DEFAULT_CATALOG, rule="best")
    curves = cutoff_curves(group_events(pred, gt, DEFAULT_CATALOG), DEFAULT_CATALOG, beta=4.0)
    figure = tune_figure(curves, result.thresholds, class_names=DEFAULT_CATALOG.names)
    axes = figure.axes
    assert len(axes) == 4  # apo-ferritin and ribosome, two panels each
    ribosome_fbeta = axes[2]
    assert ribosome_fbeta.get_title() == "ribosome: F4"
    colour = ribosome_fbeta.lines[0].get_color()
    assert colour == class_colour(DEFAULT_CATALOG.names.index("ribosome"))
    marks = [line for line in ribosome_fbeta.lines if line.get_linestyle() == ":"]
    assert [line.get_xdata()[0] for line in marks] == [result.thresholds["ribosome"]]


def test_score_figure_draws_three_bars_per_class():
    pred, gt = case()
    report = score_picks(pred, gt, DEFAULT_CATALOG)
    figure = score_figure(report, class_names=DEFAULT_CATALOG.names)
    bars = figure.axes[0].patches
    assert len(bars) == 3 * len(DEFAULT_CATALOG.names)
    ribosome = DEFAULT_CATALOG.names.index("ribosome")
    part = report.per_class["ribosome"]
    heights = [bars[k * len(DEFAULT_CATALOG.names) + ribosome].get_height() for k in range(3)]
    np.testing.assert_allclose(heights, [part.precision, part.recall, part.fbeta])


def test_training_curves_use_the_same_colours_and_marks():
    history = [
        {
            "step": 10,
            "train_loss": 1.0,
            "val_score": 0.2,
            "tuned_score": 0.3,
            "f4_apo-ferritin": 0.1,
            "tuned_f4_apo-ferritin": 0.2,
            "f4_ribosome": 0.3,
            "tuned_f4_ribosome": 0.4,
        },
        {
            "step": 20,
            "train_loss": 0.5,
            "val_score": 0.4,
            "tuned_score": 0.5,
            "f4_apo-ferritin": 0.2,
            "tuned_f4_apo-ferritin": 0.3,
            "f4_ribosome": 0.5,
            "tuned_f4_ribosome": 0.6,
        },
    ]
    figure = training_figure([MetricsRow.from_json(row) for row in history], best_step=20)
    lines = figure.axes[1].lines
    assert [line.get_color() for line in lines[2:6]] == ["C0", "C0", "C1", "C1"]
    assert list(lines[0].get_ydata()) == [0.2, 0.4] and list(lines[1].get_ydata()) == [0.3, 0.5]
    assert [list(line.get_ydata()) for line in lines[2:6]] == [[0.1, 0.2], [0.2, 0.3], [0.3, 0.5], [0.4, 0.6]]
    assert lines[-1].get_linestyle() == ":" and list(lines[-1].get_xdata()) == [20, 20]


def test_tune_and_score_write_their_plots_and_keep_existing_ones(cli, tmp_path):
    pred, gt = case()
    write_picks_csv(tmp_path / "pred.csv", pred)
    write_picks_csv(tmp_path / "gt.csv", gt)
    tuned = cli(
        "tune", tmp_path / "pred.csv", tmp_path / "gt.csv", "-o", tmp_path / "t.json", "--plot", tmp_path / "t.png"
    )
    assert tuned.exit_code == 0, tuned.stderr
    scored = cli("score", tmp_path / "pred.csv", tmp_path / "gt.csv", "--plot", tmp_path / "s.png")
    assert scored.exit_code == 0, scored.stderr
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG and (tmp_path / "s.png").read_bytes()[:8] == PNG
    again = cli("score", tmp_path / "pred.csv", tmp_path / "gt.csv", "--plot", tmp_path / "s.png")
    lines = again.stderr.strip().splitlines()
    assert again.exit_code == 2 and lines == [
        f"czii: error: {tmp_path / 's.png'}: output exists; pass --overwrite to replace it"
    ]
    assert cli("score", tmp_path / "pred.csv", tmp_path / "gt.csv", "--plot", tmp_path / "s.png", "-f").exit_code == 0
