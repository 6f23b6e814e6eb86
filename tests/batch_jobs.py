"""Top-level job functions for the batch tests (worker processes import them)."""

from __future__ import annotations

from pathlib import Path

from czii_cli.errors import DataError
from czii_cli.io.atomic import atomic_path


def write_square(value: int, output: Path) -> int:
    """Write value**2 to ``output`` atomically; value 13 fails like a bad input would."""
    if value == 13:
        raise DataError(f"input-{value}: unlucky input")
    with atomic_path(Path(output), overwrite=False) as tmp:
        tmp.write_text(str(value * value))
    return value * value
