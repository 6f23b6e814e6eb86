"""Where a command's artifact goes: a path, or stdout when it is not a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError


def artifact_target(output: Path | None) -> Path | str:
    """Resolve ``-o``: a path, ``-`` for stdout, or stdout by default when it is piped."""
    if output is None:
        if sys.stdout.isatty():
            raise UsageError("no output given and stdout is a terminal; pass -o OUT (or pipe to a file)")
        return "-"
    return "-" if str(output) == "-" else output
