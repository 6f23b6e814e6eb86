"""Drive a training run and keep its files: best model, resumable last checkpoint, curves.

Next to ``model.pt`` (the best EMA weights by validation F-beta, or the latest when there
is no validation) a run writes ``model.last.pt`` (everything ``--resume`` needs),
``model.metrics.csv`` (one row per round) and ``model.curves.png`` (loss and validation
F-beta).  Ctrl-C saves ``model.last.pt`` before the interrupt propagates.

Each validation round scores the EMA weights twice (see
:func:`~.validation.validate_round`): picks at the fixed threshold (``val_score``,
``f4_<class>``) and candidates at per-class thresholds tuned on the round
(``tuned_score``, ``tuned_f4_<class>``, ``pick_threshold_<class>`` and ``cutoff_<class>``).
The setting ``select`` says which of the two scores keeps the best checkpoint; the model
file's ``train`` summary holds both scores of that checkpoint and its tuned thresholds.

Under ``torchrun`` every rank trains and only rank 0 validates and writes; the others
wait at a barrier after each round.  The ranks agree on the elapsed time (the slowest
clock) and on Ctrl-C after every step, so they stop at the same step.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Catalog
from ..io.atomic import atomic_text
from .checkpoint import ModelFile, save_model
from .dataset import TrainingVolume
from .distributed import World
from .metrics import ClassScores, MetricsRow
from .training import BatchMaker, Trainer, rng_state
from .validation import RoundScores, validate_round


@dataclass(frozen=True)
class OutputPaths:
    """The files of one training run, named after the model file."""

    model: Path
    last: Path
    metrics: Path
    curves: Path

    @classmethod
    def beside(cls, model: Path) -> OutputPaths:
        """``model.pt`` -> ``model.last.pt``, ``model.metrics.csv``, ``model.curves.png``.

        Examples
        --------
        >>> OutputPaths.beside(Path("runs/unet.pt")).last.as_posix()
        'runs/unet.last.pt'
        """
        model = Path(model)
        stem = model.name[: -len(model.suffix)] if model.suffix else model.name
        return cls(
            model,
            model.with_name(f"{stem}.last.pt"),
            model.with_name(f"{stem}.metrics.csv"),
            model.with_name(f"{stem}.curves.png"),
        )

    def all(self) -> list[Path]:
        return [self.model, self.last, self.metrics, self.curves]


@dataclass
class RunRecord:
    """What a run has achieved so far; survives ``--resume``."""

    history: list[MetricsRow] = field(default_factory=list)
    best_score: float | None = None
    best_step: int | None = None
    seconds: float = 0.0
    model_written: bool = False
    """Whether this process wrote the model file (not saved: a resumed run may find no new best)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "history": [row.to_json() for row in self.history],
            "best_score": self.best_score,
            "best_step": self.best_step,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> RunRecord:
        return cls(
            [MetricsRow.from_json(row) for row in document.get("history", [])],
            document.get("best_score"),
            document.get("best_step"),
            float(document.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class Validation:
    """Validation volumes and how to score them."""

    volumes: Sequence[TrainingVolume]
    catalog: Catalog
    patch_size: tuple[int, int, int] | None
    multiple: int
    minimum: tuple[int, int, int]
    overlap: float
    threshold: float
    candidate_thresholds: tuple[float, ...]
    rule: str
    output_stride: int = 1


StepCallback = Callable[[int, str], None]
RoundCallback = Callable[[MetricsRow], None]


def selected_score(row: MetricsRow, select: str) -> float | None:
    """The score of ``row`` that the ``select`` setting keeps the best checkpoint by."""
    return row.tuned_score if select == "tuned" else row.val_score


def fit(
    trainer: Trainer,
    batches: BatchMaker,
    *,
    rng: np.random.Generator,
    template: ModelFile,
    paths: OutputPaths,
    record: RunRecord,
    validation: Validation | None,
    on_step: StepCallback | None = None,
    on_round: RoundCallback | None = None,
    world: World = World(),
) -> RunRecord:
    """Train until the configured steps (or time) are done, validating after every epoch.

    Parameters
    ----------
    trainer : Trainer
        Possibly restored from a checkpoint (its ``step`` says where to continue).
    batches : BatchMaker
    rng : numpy.random.Generator
        The data generator (its state is saved with each checkpoint).
    template : ModelFile
        Everything of the model file except ``state_dict``; ``train`` holds the summary
        every checkpoint repeats.
    paths : OutputPaths
    record : RunRecord
        History so far (empty for a new run); updated in place and returned.
    validation : Validation or None
    on_step : callable(step, status), optional
        Called after every step (progress display).
    on_round : callable(row), optional
        Called with each metrics row.
    world : World, optional
        This process among the ``torchrun`` ranks; the record is kept by rank 0 only.
    """
    config = trainer.config
    total = config.total_steps
    started = time.perf_counter()
    base_seconds = record.seconds
    losses: list[float] = []
    status = _status(record)
    resume_rng = None  # random state from before the batch of a step that has not finished
    last_round_seconds = 0.0  # a time budget keeps room for the final validation round
    try:
        with world.deferred_interrupts() as interrupted:
            while trainer.step < total:
                resume_rng = rng_state(rng)
                images, targets = batches.batch(rng)
                budget = config.max_time - last_round_seconds if config.max_time else None
                time_used = world.maximum(time.perf_counter() - started)[0] / budget if budget else 0.0
                losses.append(trainer.train_step(images, targets, time_used=time_used))
                resume_rng = None
                elapsed, stop = world.maximum(time.perf_counter() - started, float(interrupted()))
                record.seconds = base_seconds + elapsed
                out_of_time = budget is not None and elapsed >= budget
                if trainer.step % config.steps_per_epoch == 0 or trainer.step == total or out_of_time:
                    row = _round(trainer, record, losses, validation, template, paths, rng, world)
                    last_round_seconds = world.maximum(time.perf_counter() - started - elapsed)[0]
                    losses = []
                    status = _status(record)
                    if on_round:
                        on_round(row)
                if on_step:
                    on_step(trainer.step, f"loss {losses[-1]:.4f} · {status}" if losses else status)
                if stop:
                    raise KeyboardInterrupt
                if out_of_time:
                    break
    except KeyboardInterrupt:
        record.seconds = base_seconds + time.perf_counter() - started
        random_states = world.gather(resume_rng or rng_state(rng))
        if world.is_main:
            if validation is None:
                save_model(paths.model, _model(template, trainer, record), overwrite=True)
                record.model_written = True
            _save_last(trainer, record, template, paths, random_states)
        world.barrier()
        raise
    return record


def _status(record: RunRecord) -> str:
    scored = [row for row in record.history if row.val_score is not None]
    if not scored:
        return "val F4 -"
    last = scored[-1]
    tuned = "" if last.tuned_score is None else f", tuned {last.tuned_score:.3f}"
    return f"val F4 {last.val_score:.3f}{tuned} (best {record.best_score:.3f})"


def _round(
    trainer: Trainer,
    record: RunRecord,
    losses: list[float],
    validation: Validation | None,
    template: ModelFile,
    paths: OutputPaths,
    rng: np.random.Generator,
    world: World,
) -> MetricsRow:
    """Close a round on every rank: average the loss, gather the random states; rank 0 keeps the files."""
    config = trainer.config
    row = MetricsRow(
        step=trainer.step,
        epoch=round(trainer.step / config.steps_per_epoch, 3),
        seconds=round(record.seconds, 1),
        lr=trainer.optimizer.param_groups[0]["lr"],
        train_loss=world.mean(float(np.mean(losses))) if losses else None,
    )
    random_states = world.gather(rng_state(rng))
    if world.is_main:
        row = _keep_round(row, trainer, record, validation, template, paths, random_states)
    world.barrier()
    return row


def _keep_round(
    row: MetricsRow,
    trainer: Trainer,
    record: RunRecord,
    validation: Validation | None,
    template: ModelFile,
    paths: OutputPaths,
    random_states: list[dict[str, Any]],
) -> MetricsRow:
    """Validate, record the row, write the best model, the last checkpoint, metrics and curves."""
    select = trainer.config.select
    if validation is not None:
        scores = validate_round(
            trainer.evaluation_network(),
            validation.volumes,
            classes=template.classes,
            catalog=validation.catalog,
            activation=template.activation,
            patch_size=validation.patch_size,
            multiple=validation.multiple,
            minimum=validation.minimum,
            overlap=validation.overlap,
            threshold=validation.threshold,
            candidate_thresholds=validation.candidate_thresholds,
            rule=validation.rule,
            device=trainer.device,
            output_stride=validation.output_stride,
        )
        row = _scored(row, scores)
    record.history.append(row)
    score = selected_score(row, select)
    improved = validation is None or record.best_score is None or (score is not None and score > record.best_score)
    if improved:
        if validation is not None:
            record.best_score, record.best_step = score, trainer.step
        save_model(paths.model, _model(template, trainer, record), overwrite=True)
        record.model_written = True
    _save_last(trainer, record, template, paths, random_states)
    write_metrics(paths.metrics, record.history)
    plot_curves(paths.curves, record.history, best_step=record.best_step)
    return row


def _scored(row: MetricsRow, scores: RoundScores) -> MetricsRow:
    """``row`` with a validation round's scores; a class without candidates has no thresholds (None)."""
    per_class = {
        name: ClassScores(
            float(scores.fixed.per_class[name].fbeta),
            float(scores.tuned.per_class[name].fbeta),
            scores.pick_thresholds.get(name),
            scores.cutoffs.get(name),
        )
        for name in scores.fixed.per_class
    }
    return replace(row, val_score=float(scores.fixed.score), tuned_score=float(scores.tuned.score), per_class=per_class)


def _summary(template: ModelFile, trainer: Trainer, record: RunRecord) -> dict[str, Any]:
    """The ``train`` dict of a saved model: settings, steps, and the kept checkpoint's scores.

    ``best_score`` and ``best_per_class`` are the score that selected the checkpoint
    (``select``); ``best_fixed`` and ``best_tuned`` hold both scores of that round.
    ``best_tuned`` is also a thresholds file for ``czii postprocess --thresholds``: its
    ``thresholds`` are the per-class score cutoffs, for picks made with ``method`` at the
    per-class ``pick_thresholds`` (``--threshold``).
    """
    from ..postprocess import DEFAULT_METHOD

    config = trainer.config
    best: dict[str, Any] = {"best_per_class": {}}
    if record.best_step is not None:
        row = next(row for row in record.history if row.step == record.best_step)
        fixed = {
            "score": row.val_score,
            "per_class": row.fixed(),
            "method": DEFAULT_METHOD,
            "threshold": config.val_threshold,
        }
        tuned = {
            "score": row.tuned_score,
            "per_class": row.tuned(),
            "thresholds": row.cutoffs(),
            "method": DEFAULT_METHOD,
            "pick_thresholds": row.pick_thresholds(),
        }
        best = {
            "best_per_class": (fixed if config.select == "fixed" else tuned)["per_class"],
            "best_fixed": fixed,
            "best_tuned": tuned,
        }
    return {
        **template.train,
        "steps": trainer.step,
        "best_score": record.best_score,
        "best_step": record.best_step,
        **best,
        "seconds": round(record.seconds, 1),
    }


def _model(template: ModelFile, trainer: Trainer, record: RunRecord) -> ModelFile:
    return replace(template, train=_summary(template, trainer, record), state_dict=trainer.weights())


def _save_last(
    trainer: Trainer, record: RunRecord, template: ModelFile, paths: OutputPaths, random_states: list[dict[str, Any]]
) -> None:
    """``rng`` is rank 0's random state, ``rank_rngs`` those of the other ranks."""
    resume = {**trainer.state(), "rng": random_states[0], "rank_rngs": random_states[1:], "record": record.to_json()}
    last = replace(_model(template, trainer, record), train={**_summary(template, trainer, record), "resume": resume})
    save_model(paths.last, last, overwrite=True)


def write_metrics(path: Path, history: Sequence[MetricsRow]) -> None:
    """One CSV row per round, an empty cell where a round has no value.

    Columns: step, epoch, seconds, lr, train_loss, val_score, tuned_score, then per class
    f4 (at the fixed threshold), tuned_f4, pick_threshold and cutoff (the tuned candidate
    threshold and score cutoff).
    """
    rows = [row.to_json() for row in history]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    with atomic_text(path, overwrite=True) as handle:
        handle.write(buffer.getvalue())


def plot_curves(path: Path, history: Sequence[MetricsRow], *, best_step: int | None = None) -> None:
    """Training loss and validation F-beta (overall and per class) against the step, as a PNG.

    Drawn by :func:`czii_cli.plots.training_figure`, in the style of every czii figure.
    """
    from ..io.figures import write_png
    from ..plots import training_figure

    write_png(path, training_figure(history, best_step=best_step), overwrite=True)
