"""Plain-data descriptions of czii inputs (volumes, picks, model files, copick projects).

Used by ``czii info``; each function returns a JSON-ready dict.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .io.artifacts import Volume
from .pick_settings import DEFAULT_THRESHOLD, PickSettings, from_training_summary, recorded_settings
from .picks import Picks

NO_TUNED_THRESHOLDS = (
    f"postprocess defaults (threshold {DEFAULT_THRESHOLD:g} for every class): no tuned thresholds recorded"
)


def describe_volume(volume: Volume) -> dict[str, Any]:
    """Kind, shape, dtype, voxel size (Å), origin, run, classes, chunks and provenance."""
    meta = volume.meta
    chunks = getattr(volume.data, "chunks", None)
    thresholds: dict[str, str] = {}
    if meta.kind in ("probs", "heatmap"):
        thresholds = {"thresholds": _applies(recorded_settings(meta.extra, source=volume.source))}
    return {
        "type": "volume",
        "source": volume.source,
        "kind": meta.kind,
        "axes": meta.axes,
        "shape": list(volume.shape),
        "dtype": str(volume.data.dtype),
        "chunks": list(chunks) if chunks is not None else None,
        "voxel_size": meta.voxel_size,
        "origin": list(meta.origin),
        "run": meta.run,
        "classes": list(meta.classes),
        "extra": meta.extra,
        **thresholds,
        "provenance": list(meta.provenance),
    }


def describe_picks(picks: Picks, *, source: str) -> dict[str, Any]:
    """Row count, score column presence, and counts per experiment and class."""
    counts = Counter(zip(picks.experiment.tolist(), picks.particle_type.tolist()))
    per_experiment: dict[str, dict[str, int]] = {}
    for (experiment, particle), n in sorted(counts.items()):
        per_experiment.setdefault(experiment, {})[particle] = n
    extent = None
    if len(picks):
        extent = {"min_xyz": picks.xyz.min(axis=0).tolist(), "max_xyz": picks.xyz.max(axis=0).tolist()}
    return {
        "type": "picks",
        "source": source,
        "rows": len(picks),
        "has_score": picks.score is not None,
        "experiments": picks.experiments,
        "classes": picks.particle_types,
        "counts": per_experiment,
        "extent_angstrom": extent,
    }


def describe_model(document: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Everything in a model file except the weights, the parameter count and the thresholds it passes on."""
    state = document.get("state_dict", {})
    parameters = int(sum(int(np.prod(tuple(t.shape))) for t in state.values() if hasattr(t, "shape")))
    summary = {k: v for k, v in document.items() if k != "state_dict"}
    recorded = document.get("train")
    train: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    thresholds = _applies(from_training_summary(train, model=source))
    return {"type": "model", "source": source, **summary, "parameters": parameters, "thresholds": thresholds}


def _applies(settings: PickSettings | None) -> str:
    """Which thresholds postprocess will apply to maps of this file (without threshold options), and why."""
    if settings is None:
        return NO_TUNED_THRESHOLDS
    return f"applied by postprocess unless given thresholds: {settings.describe()}"
