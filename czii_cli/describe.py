"""Plain-data descriptions of czii inputs (volumes, picks, model files, copick projects).

Used by ``czii info``; each function returns a JSON-ready dict.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .io.artifacts import Volume
from .picks import Picks


def describe_volume(volume: Volume) -> dict:
    """Kind, shape, dtype, voxel size (Å), origin, run, classes, chunks and provenance."""
    meta = volume.meta
    chunks = getattr(volume.data, "chunks", None)
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
        "provenance": list(meta.provenance),
    }


def describe_picks(picks: Picks, *, source: str) -> dict:
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


def describe_model(document: dict, *, source: str) -> dict:
    """Everything in a model file except the weights, plus the parameter count."""
    state = document.get("state_dict", {})
    parameters = int(sum(int(np.prod(tuple(t.shape))) for t in state.values() if hasattr(t, "shape")))
    summary = {k: v for k, v in document.items() if k != "state_dict"}
    return {"type": "model", "source": source, **summary, "parameters": parameters}
