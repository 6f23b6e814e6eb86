"""The thresholds that turn one model's probability maps into picks, carried stage to stage.

A training run tunes, on its validation runs, a pick (binarization) threshold and a score
cutoff per class (:mod:`czii_cli.training.validation`, robust rule by default).  The model
file keeps them in its ``train`` summary (``best_tuned``); ``predict-probs`` copies them
into the probability map's metadata as ``pick_settings``; ``postprocess`` applies them
when it is given no thresholds of its own.  So a user who chains the commands gets the
tuned picks, and every file says which thresholds will apply and where they came from.

The settings hold for the method they were tuned with: another method scores picks
differently, so it falls back to the default threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError

DEFAULT_THRESHOLD = 0.15
"""The pick threshold of a class that nothing tuned (probability, 0-1)."""
KEY = "pick_settings"
"""The key of the settings in a probability map's ``attrs["czii"]``."""


@dataclass(frozen=True)
class PickSettings:
    """Per-class thresholds for picking one model's maps.

    Attributes
    ----------
    method : str
        The post-processing method they were tuned with.
    default_threshold : float
        Pick threshold of classes without their own.
    pick_thresholds : dict of str to float
        Per-class pick (binarization) thresholds.
    cutoffs : dict of str to float
        Per-class minimum pick score; a class without one keeps all its picks.
    origin : str
        Where they come from, for people (the model, its validation runs, the rule).
    """

    method: str
    default_threshold: float
    pick_thresholds: dict[str, float] = field(default_factory=dict)
    cutoffs: dict[str, float] = field(default_factory=dict)
    origin: str = ""

    def threshold_of(self, name: str) -> float:
        """The pick threshold of class ``name``."""
        return self.pick_thresholds.get(name, self.default_threshold)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, as stored in probability maps."""
        return {
            "method": self.method,
            "default_threshold": self.default_threshold,
            "pick_thresholds": dict(self.pick_thresholds),
            "cutoffs": dict(self.cutoffs),
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, document: object, *, source: str) -> PickSettings:
        """Read settings written by :meth:`to_json`; a malformed document is a :class:`DataError`.

        Examples
        --------
        >>> PickSettings.from_json({"method": "cc", "default_threshold": 0.15,
        ...                         "pick_thresholds": {"ribosome": 0.05}}, source="p.zarr").threshold_of("ribosome")
        0.05
        >>> PickSettings.from_json({"method": "cc", "default_threshold": "x"}, source="p.zarr")
        Traceback (most recent call last):
        ...
        czii_cli.errors.DataError: p.zarr: pick settings: default_threshold must be a finite number, got 'x'
        """
        if not isinstance(document, Mapping) or not isinstance(document.get("method"), str):
            raise DataError(f"{source}: pick settings must be an object with a method name")
        return cls(
            method=document["method"],
            default_threshold=_number(document.get("default_threshold"), f"{source}: pick settings: default_threshold"),
            pick_thresholds=_table(document.get("pick_thresholds", {}), f"{source}: pick settings: pick_thresholds"),
            cutoffs=_table(document.get("cutoffs", {}), f"{source}: pick settings: cutoffs"),
            origin=str(document.get("origin", "")),
        )

    def describe(self) -> str:
        """One line for people: the thresholds per class and their origin.

        Examples
        --------
        >>> PickSettings("cc", 0.15, {"ribosome": 0.05}, {"ribosome": 0.3}, "tuned on TS_1").describe()
        'cc at 0.15; ribosome: threshold 0.05, score >= 0.3 (tuned on TS_1)'
        """
        names = list(dict.fromkeys([*self.pick_thresholds, *self.cutoffs]))
        parts = [
            f"{name}: threshold {self.threshold_of(name):g}"
            + (f", score >= {self.cutoffs[name]:g}" if name in self.cutoffs else "")
            for name in names
        ]
        text = f"{self.method} at {self.default_threshold:g}" + ("; " + "; ".join(parts) if parts else "")
        return text + (f" ({self.origin})" if self.origin else "")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _table(values: object, what: str) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise DataError(f"{what} must map class names to numbers")
    return {str(name): _number(value, f"{what}[{name!r}]") for name, value in values.items()}


def from_training_summary(train: Mapping[str, Any], *, model: str) -> PickSettings | None:
    """The settings a model's training chose, from its ``train`` summary; None when it tuned none.

    Parameters
    ----------
    train : mapping
        The model file's ``train`` dict (``best_tuned``, ``config``, ``val_runs``, ...).
    model : str
        The model file, for the origin and for messages.

    Examples
    --------
    >>> summary = {"best_tuned": {"method": "cc", "thresholds": {"ribosome": 0.4},
    ...                           "pick_thresholds": {"ribosome": 0.05}},
    ...            "config": {"val_threshold": 0.15, "threshold_rule": "robust"}, "val_runs": ["TS_1"],
    ...            "best_step": 250}
    >>> from_training_summary(summary, model="m.pt").describe()
    'cc at 0.15; ribosome: threshold 0.05, score >= 0.4 (m.pt: tuned (robust rule) on validation run TS_1, step 250)'
    """
    tuned = train.get("best_tuned")
    if not isinstance(tuned, Mapping) or not tuned.get("pick_thresholds"):
        return None
    recorded = train.get("config")
    config: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    runs = [str(run) for run in train.get("val_runs", [])]
    rule = config.get("threshold_rule", "best")  # models from before the rule existed tuned exactly
    where = f"validation run{'s' if len(runs) != 1 else ''} {', '.join(runs)}" if runs else "validation"
    stride = config.get("output_stride", 1)
    at_stride = f" at output stride {stride}" if stride != 1 else ""
    origin = f"{model}: tuned ({rule} rule) on {where}{at_stride}, step {train.get('best_step')}"
    return PickSettings.from_json(
        {
            "method": tuned.get("method"),
            "default_threshold": config.get("val_threshold", DEFAULT_THRESHOLD),
            "pick_thresholds": tuned.get("pick_thresholds", {}),
            "cutoffs": tuned.get("thresholds", {}),
            "origin": origin,
        },
        source=model,
    )


def common_settings(settings: Sequence[PickSettings | None]) -> PickSettings | None:
    """The settings several maps or models share; None unless all have the same thresholds.

    An ensemble's map is not any one member's: its members' thresholds carry over only
    when they agree.

    Examples
    --------
    >>> a = PickSettings("cc", 0.15, {"ribosome": 0.05}, origin="a.pt")
    >>> common_settings([a, PickSettings("cc", 0.15, {"ribosome": 0.05}, origin="b.pt")]).origin
    'a.pt; b.pt'
    >>> common_settings([a, PickSettings("cc", 0.15, {"ribosome": 0.1})]) is None
    True
    """
    present = [s for s in settings if s is not None]
    if not settings or len(present) < len(settings):
        return None
    first = present[0]
    keys = {
        (s.method, s.default_threshold, tuple(sorted(s.pick_thresholds.items())), tuple(sorted(s.cutoffs.items())))
        for s in present
    }
    if len(keys) > 1:
        return None
    origins = list(dict.fromkeys(s.origin for s in present if s.origin))
    return PickSettings(
        first.method, first.default_threshold, dict(first.pick_thresholds), dict(first.cutoffs), "; ".join(origins)
    )


def recorded_settings(extra: Mapping[str, Any], *, source: str) -> PickSettings | None:
    """The settings a probability map's metadata (``attrs["czii"]`` extras) records, if any.

    Examples
    --------
    >>> recorded_settings({"activation": "softmax"}, source="p.zarr") is None
    True
    """
    return PickSettings.from_json(extra[KEY], source=source) if KEY in extra else None
