"""Simulate one full-size 184x630x630 run: time and peak memory.

Targets: under 60 s and under 4 GiB peak RSS.  Baseline: drawing the same number of
float32 Gaussian white-noise values with numpy, in a fresh interpreter of its own, so the
ratio tells how much the particles, membranes and Fourier-space imaging cost on top of
the noise any simulation needs.  Each child reports its own peak RSS, so figures from
other benchmarks' children do not leak in.
"""

from __future__ import annotations

from benchmarks.common import GIB, Result, run_isolated

SHAPE = (184, 630, 630)
TARGET_SECONDS = 60.0
TARGET_GIB = 4.0

SIMULATE = """
import json, resource, time
import numpy as np
from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.simulate import simulate_run
start = time.perf_counter()
sim = simulate_run({shape!r}, catalog=DEFAULT_CATALOG, voxel_size=10.0,
                   rng=np.random.default_rng(np.random.SeedSequence([0, 0])))
print(json.dumps({{"seconds": time.perf_counter() - start, "particles": len(sim.picks),
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""

NOISE = """
import json, resource, time
import numpy as np
start = time.perf_counter()
noise = np.random.default_rng(0).standard_normal({shape!r}, dtype=np.float32)
print(json.dumps({{"seconds": time.perf_counter() - start,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def run() -> list[Result]:
    baseline = run_isolated(NOISE.format(shape=SHAPE))
    measured = run_isolated(SIMULATE.format(shape=SHAPE))
    size = "x".join(map(str, SHAPE))
    seconds, base_seconds = measured["seconds"], baseline["seconds"]
    peak, base_peak = measured["peak_rss_bytes"] / GIB, baseline["peak_rss_bytes"] / GIB
    return [
        Result(
            benchmark=f"simulate one {size} run ({measured['particles']} particles): time",
            value=f"{seconds:.1f} s",
            baseline="numpy Gaussian white noise, same shape",
            baseline_value=f"{base_seconds:.2f} s",
            ratio=seconds / base_seconds,
            target=f"< {TARGET_SECONDS:.0f} s",
            ok=seconds < TARGET_SECONDS,
        ),
        Result(
            benchmark=f"simulate one {size} run: peak RSS",
            value=f"{peak:.2f} GiB",
            baseline="numpy Gaussian white noise, same shape",
            baseline_value=f"{base_peak:.2f} GiB",
            ratio=peak / base_peak,
            target=f"< {TARGET_GIB:.0f} GiB",
            ok=peak < TARGET_GIB,
        ),
    ]
