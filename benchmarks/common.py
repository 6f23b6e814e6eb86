"""Shared helpers for benchmarks: results, timers, peak memory of a child process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    """One benchmark figure.

    ``value`` is measured, ``baseline_value`` is the named baseline measured in the same
    run; ``ratio`` is what the target is stated on.
    """

    benchmark: str
    value: str
    baseline: str
    baseline_value: str
    ratio: float | None
    target: str
    ok: bool


def timed(function: Callable[[], Any], *, repeat: int = 1) -> tuple[float, Any]:
    """Best wall time (s) of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


PEAK_FOOTER = """
def _czii_peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
print("CZII_PEAK_RSS", _czii_peak_rss())
"""


def run_isolated(code: str, *, env: dict | None = None) -> dict:
    """Run Python ``code`` in a fresh interpreter; it must print one JSON object.

    Returns that object plus ``peak_rss_bytes``: the child's own high-water mark read
    from ``/proc/self/status`` (``VmHWM``) after its code ran.  (``ru_maxrss`` of a
    child would include the parent's memory from before ``exec``.)
    """
    completed = subprocess.run(
        [sys.executable, "-c", code + PEAK_FOOTER],
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child failed with exit code {completed.returncode}")
    lines = completed.stdout.strip().splitlines()
    peak = int(lines[-1].split()[1])
    document = json.loads(lines[-2])
    document.setdefault("peak_rss_bytes", peak)
    return document


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


GIB = 1024**3
