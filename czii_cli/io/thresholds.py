"""Thresholds files: per-class score cutoffs written by ``czii tune``, read by ``czii postprocess``.

The file is JSON: ``{"thresholds": {"<class>": <float>, ...}, ...}``.  Other keys (the
metric, scores before and after tuning, provenance) are kept for people and ignored by
the reader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError
from .atomic import atomic_text


def write_thresholds(
    path: Path | str,
    thresholds: Mapping[str, float],
    *,
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Write a thresholds file atomically (``-`` writes to stdout).

    ``extra`` adds top-level keys next to ``thresholds``; an existing file is only
    replaced with ``overwrite``.
    """
    values = {str(name): float(value) for name, value in thresholds.items()}
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise DataError(f"{path}: threshold of {bad[0]!r} is not a finite number")
    document = {"thresholds": values, **{k: v for k, v in (extra or {}).items() if k != "thresholds"}}
    text = json.dumps(document, indent=2, default=str) + "\n"
    with atomic_text(path, overwrite=overwrite) as handle:
        handle.write(text)


def read_thresholds(path: Path | str) -> dict[str, float]:
    """Read the per-class cutoffs of a thresholds file.

    Raises
    ------
    DataError
        The file is missing or not JSON, has no ``thresholds`` object, or a cutoff is
        not a finite number.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no such thresholds file") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON thresholds file ({err})") from None
    table = document.get("thresholds") if isinstance(document, dict) else None
    if not isinstance(table, dict):
        raise DataError(f'{path}: expected a JSON object with a "thresholds" object of class: cutoff')
    thresholds = {}
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"{path}: threshold of {name!r} is not a finite number ({value!r})")
        thresholds[str(name)] = float(value)
    return thresholds
