"""Normalize a full-size 184x630x630 tomogram: time and peak memory.

Target: peak RSS under 3x the tomogram's float32 size.  Baseline: the plain in-memory
numpy z-score ``(x - x.mean()) / x.std()`` on the loaded array, in the same run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import GIB, Result, run_isolated

SHAPE = (184, 630, 630)

CZII = """
import json, time
from czii_cli.main import app
start = time.perf_counter()
app({args!r}, standalone_mode=False)
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""

NUMPY = """
import json, time, mrcfile, numpy as np
start = time.perf_counter()
with mrcfile.open({path!r}) as mrc:
    x = mrc.data.astype(np.float32)
y = (x - x.mean(dtype=np.float64)) / x.std(dtype=np.float64)
np.save({out!r}, y.astype(np.float32))
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""


def run() -> list[Result]:
    from czii_cli.io.volumes import write_mrc

    size = int(np.prod(SHAPE)) * 4
    results = []
    with tempfile.TemporaryDirectory(prefix="czii-bench-") as tmp:
        mrc = Path(tmp) / "TS_bench.mrc"
        data = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
        write_mrc(mrc, data, voxel_size=10.0)
        del data
        baseline = run_isolated(NUMPY.format(path=str(mrc), out=str(Path(tmp) / "numpy.npy")))
        for method in ("zscore", "percentile"):
            out = Path(tmp) / f"{method}.zarr"
            measured = run_isolated(CZII.format(args=["normalize", str(mrc), "--method", method, "-o", str(out), "-q"]))
            ratio = measured["peak_rss_bytes"] / size
            results.append(
                Result(
                    benchmark=f"normalize {method} 184x630x630: peak RSS / float32 tomogram",
                    value=f"{measured['peak_rss_bytes'] / GIB:.2f} GiB, {measured['seconds']:.1f} s",
                    baseline="numpy in-memory z-score",
                    baseline_value=f"{baseline['peak_rss_bytes'] / GIB:.2f} GiB, {baseline['seconds']:.1f} s",
                    ratio=ratio,
                    target="< 3.0x tomogram",
                    ok=ratio < 3.0,
                )
            )
    return results
