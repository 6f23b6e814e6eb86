"""A training run's history: typed rows, written flat with the same columns as ever."""

from __future__ import annotations

from czii_cli.training.metrics import ClassScores, MetricsRow
from czii_cli.training.session import RunRecord, write_metrics

UNSCORED = MetricsRow(step=2, epoch=0.5, seconds=1.5, lr=0.0005, train_loss=0.75)
SCORED = MetricsRow(
    step=4,
    epoch=1.0,
    seconds=3.0,
    lr=0.001,
    train_loss=None,
    val_score=0.25,
    tuned_score=0.5,
    per_class={"small": ClassScores(0.125, 0.5, 0.05, 0.375), "large": ClassScores(0.375, 0.5, None, None)},
)


def test_the_metrics_file_keeps_its_columns_and_cells(tmp_path):
    write_metrics(tmp_path / "m.metrics.csv", [UNSCORED, SCORED])
    assert (tmp_path / "m.metrics.csv").read_text().splitlines() == [
        "step,epoch,seconds,lr,train_loss,val_score,tuned_score,f4_small,f4_large,tuned_f4_small,tuned_f4_large,"
        "pick_threshold_small,pick_threshold_large,cutoff_small,cutoff_large",
        "2,0.5,1.5,0.0005,0.75,,,,,,,,,,",
        "4,1.0,3.0,0.001,,0.25,0.5,0.125,0.375,0.5,0.5,0.05,,0.375,",
    ]


def test_rows_read_back_from_a_resume_state():
    flat = RunRecord(history=[UNSCORED, SCORED], best_score=0.5, best_step=4, seconds=3.0).to_json()
    assert flat["history"][0] == {
        "step": 2,
        "epoch": 0.5,
        "seconds": 1.5,
        "lr": 0.0005,
        "train_loss": 0.75,
        "val_score": None,
        "tuned_score": None,
    }
    record = RunRecord.from_json(flat)
    assert record.history == [UNSCORED, SCORED]
    assert list(record.history[1].per_class) == ["small", "large"]
    assert SCORED.cutoffs() == {"small": 0.375} and SCORED.pick_thresholds() == {"small": 0.05}
    assert SCORED.fixed() == {"small": 0.125, "large": 0.375} and SCORED.tuned() == {"small": 0.5, "large": 0.5}
