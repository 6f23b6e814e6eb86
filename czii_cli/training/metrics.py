"""One row of a training run's history: the round's loss and validation scores, typed.

A row is written flat, one column per value, in ``model.metrics.csv`` and in the resume
state of ``model.last.pt``: ``step, epoch, seconds, lr, train_loss, val_score,
tuned_score``, then for every class ``f4_<class>`` (F-beta at the fixed threshold),
``tuned_f4_<class>`` (at the tuned cutoff), ``pick_threshold_<class>`` and
``cutoff_<class>`` (the tuned candidate threshold and score cutoff).  Only
:meth:`MetricsRow.to_json` and :meth:`MetricsRow.from_json` know these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FIXED_PREFIX = "f4_"
TUNED_PREFIX = "tuned_f4_"
PICK_THRESHOLD_PREFIX = "pick_threshold_"
CUTOFF_PREFIX = "cutoff_"


@dataclass(frozen=True)
class ClassScores:
    """The validation scores of one class in one round.

    Attributes
    ----------
    fbeta : float or None
        F-beta at the fixed pick threshold.
    tuned_fbeta : float or None
        F-beta at the tuned score cutoff.
    pick_threshold, cutoff : float or None
        The tuned candidate's pick threshold and score cutoff; None when the class had
        no candidates.
    """

    fbeta: float | None
    tuned_fbeta: float | None = None
    pick_threshold: float | None = None
    cutoff: float | None = None


@dataclass(frozen=True)
class MetricsRow:
    """One round of a training run.

    Attributes
    ----------
    step : int
        Optimizer steps done.
    epoch : float
        ``step / steps_per_epoch``, rounded to 3 decimals.
    seconds : float
        Training time so far.
    lr : float
        Learning rate of the last step.
    train_loss : float or None
        Mean loss of the round's steps.
    val_score, tuned_score : float or None
        Validation F-beta at the fixed threshold and at tuned cutoffs; None without
        validation.
    per_class : mapping of str to ClassScores
        Per-class scores, in the catalog's order; empty without validation.

    Examples
    --------
    >>> row = MetricsRow(step=4, epoch=1.0, seconds=2.5, lr=0.001, train_loss=0.75, val_score=0.5,
    ...                  tuned_score=0.6, per_class={"a": ClassScores(0.5, 0.6, 0.05, 0.2)})
    >>> list(row.to_json())
    ['step', 'epoch', 'seconds', 'lr', 'train_loss', 'val_score', 'tuned_score', 'f4_a', 'tuned_f4_a', \
'pick_threshold_a', 'cutoff_a']
    >>> MetricsRow.from_json(row.to_json()) == row
    True
    """

    step: int
    epoch: float
    seconds: float
    lr: float
    train_loss: float | None
    val_score: float | None = None
    tuned_score: float | None = None
    per_class: Mapping[str, ClassScores] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The flat columns of the metrics file, in their order (None: an empty cell)."""
        names = list(self.per_class)
        scores = self.per_class
        return {
            "step": self.step,
            "epoch": self.epoch,
            "seconds": self.seconds,
            "lr": self.lr,
            "train_loss": self.train_loss,
            "val_score": self.val_score,
            "tuned_score": self.tuned_score,
            **{f"{FIXED_PREFIX}{name}": scores[name].fbeta for name in names},
            **{f"{TUNED_PREFIX}{name}": scores[name].tuned_fbeta for name in names},
            **{f"{PICK_THRESHOLD_PREFIX}{name}": scores[name].pick_threshold for name in names},
            **{f"{CUTOFF_PREFIX}{name}": scores[name].cutoff for name in names},
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> MetricsRow:
        """Read back :meth:`to_json` (a resumed run's history); the classes are the ``f4_`` columns."""
        names = [key[len(FIXED_PREFIX) :] for key in document if key.startswith(FIXED_PREFIX)]
        per_class = {
            name: ClassScores(
                document.get(f"{FIXED_PREFIX}{name}"),
                document.get(f"{TUNED_PREFIX}{name}"),
                document.get(f"{PICK_THRESHOLD_PREFIX}{name}"),
                document.get(f"{CUTOFF_PREFIX}{name}"),
            )
            for name in names
        }
        return cls(
            step=int(document["step"]),
            epoch=document.get("epoch", 0.0),
            seconds=document.get("seconds", 0.0),
            lr=document.get("lr", 0.0),
            train_loss=document.get("train_loss"),
            val_score=document.get("val_score"),
            tuned_score=document.get("tuned_score"),
            per_class=per_class,
        )

    def fixed(self) -> dict[str, float | None]:
        """``{class: F-beta at the fixed threshold}``."""
        return {name: scores.fbeta for name, scores in self.per_class.items()}

    def tuned(self) -> dict[str, float | None]:
        """``{class: F-beta at the tuned cutoff}``."""
        return {name: scores.tuned_fbeta for name, scores in self.per_class.items()}

    def pick_thresholds(self) -> dict[str, float]:
        """``{class: tuned pick threshold}`` of the classes that have one."""
        return {n: s.pick_threshold for n, s in self.per_class.items() if s.pick_threshold is not None}

    def cutoffs(self) -> dict[str, float]:
        """``{class: tuned score cutoff}`` of the classes that have one."""
        return {n: s.cutoff for n, s in self.per_class.items() if s.cutoff is not None}
