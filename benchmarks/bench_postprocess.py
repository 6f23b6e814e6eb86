"""Post-process a full-size 7x184x630x630 float16 probability map with every method.

The map holds a Gaussian blob per particle of run TS_6_4 at its real position (from
``../shared/data/czii_train_picks.csv`` when present, else random positions), with
random height, width and a small position error, plus weak decoy blobs and low-level
noise; it is saved as a zarr artifact.  Each method runs through the library in a fresh
process.

Baselines, measured in the same run: time, reading the map from disk and thresholding
every channel (so the ratio is the method's own overhead); memory, the map's size.
Targets: cc and peaks under 15 s, watershed, dbscan and kl-fit under 120 s, peak RSS
under 2x the map.  Each figure also gives the F4 score of the picks against the blob
centres (czii_cli.score.score_picks).
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import GIB, Result, run_isolated

SHAPE = (184, 630, 630)
RUN = "TS_6_4"
PICKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "czii_train_picks.csv"
TIME_TARGETS = {"cc": 15.0, "peaks": 15.0, "watershed": 120.0, "dbscan": 120.0, "kl-fit": 120.0}
MEMORY_TARGET = 2.0

READ_AND_THRESHOLD = """
import json, time
import numpy as np
from czii_cli.io.artifacts import read_artifact
start = time.perf_counter()
volume = read_artifact({path!r})
foreground = 0
for channel in range(1, volume.shape[0]):
    foreground += int(np.count_nonzero(np.asarray(volume.data[channel], dtype=np.float32) >= 0.15))
print(json.dumps({{"seconds": time.perf_counter() - start, "foreground": foreground}}))
"""

METHOD = """
import json, time
from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io.artifacts import read_artifact
from czii_cli.io.picks import write_picks_csv
from czii_cli.postprocess import extract_picks
start = time.perf_counter()
volume = read_artifact({path!r})
picks = extract_picks(volume.data, classes=volume.meta.classes, catalog=DEFAULT_CATALOG, method={method!r},
                      thresholds=0.15, voxel_size=volume.meta.voxel_size, run=volume.meta.run)
seconds = time.perf_counter() - start
write_picks_csv({out!r}, picks)
print(json.dumps({{"seconds": seconds, "picks": len(picks)}}))
"""


def particle_centres(rng: np.random.Generator):
    """Picks of TS_6_4 in Å (real positions when the shared file exists, else random)."""
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.picks import Picks, concat

    if PICKS.exists():
        with open(PICKS) as handle:
            rows = [r for r in csv.DictReader(handle) if r["experiment"] == RUN]
        xyz = np.array([[float(r[a]) for a in "xyz"] for r in rows])
        names = np.array([r["particle_type"] for r in rows], dtype=object)
        return Picks(np.full(len(rows), RUN, dtype=object), names, xyz)
    counts = {
        "apo-ferritin": 58,
        "beta-amylase": 9,
        "beta-galactosidase": 12,
        "ribosome": 74,
        "thyroglobulin": 30,
        "virus-like-particle": 10,
    }
    parts = []
    for particle in DEFAULT_CATALOG:
        upper = np.array(SHAPE[::-1]) * 10.0
        parts.append(Picks.from_points(RUN, particle.name, rng.uniform(100, upper - 100, (counts[particle.name], 3))))
    return concat(parts)


def add_blob(channel: np.ndarray, centre_zyx: np.ndarray, *, sigma: float, height: float) -> None:
    """Add a Gaussian blob in place (maximum with what is there), cut at 3 sigma."""
    half = int(np.ceil(3 * sigma))
    lo = np.maximum(np.floor(centre_zyx).astype(int) - half, 0)
    hi = np.minimum(np.floor(centre_zyx).astype(int) + half + 2, channel.shape)
    if np.any(hi <= lo):
        return
    grids = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre_zyx))
    patch = channel[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    np.maximum(patch, (height * np.exp(-r2 / (2 * sigma**2))).astype(np.float32), out=patch)


def build_map(path: Path, seed: int = 0):
    """Write the simulated probability map; return the true picks."""
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.coords import angstrom_to_voxel
    from czii_cli.io.artifacts import ArtifactMeta, create_artifact

    rng = np.random.default_rng(seed)
    truth = particle_centres(rng)
    names = ("background", *DEFAULT_CATALOG.names)
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run=RUN, classes=names)
    total = np.zeros(SHAPE, dtype=np.float32)
    with create_artifact(path, shape=(len(names), *SHAPE), dtype="float16", meta=meta) as out:
        for index, particle in enumerate(DEFAULT_CATALOG, start=1):
            channel = rng.uniform(0.0, 0.04, SHAPE).astype(np.float32)
            radius = particle.radius / 10.0
            centres = angstrom_to_voxel(truth.where(particle_type=particle.name).xyz, voxel_size=10.0)
            for centre in centres:
                add_blob(
                    channel,
                    centre + rng.normal(0, 0.5, 3),
                    sigma=rng.uniform(0.3, 0.4) * radius,
                    height=rng.uniform(0.4, 1.0),
                )
            for _ in range(len(centres)):  # decoys: weak, small blobs anywhere
                add_blob(channel, rng.uniform(0, 1, 3) * SHAPE, sigma=0.2 * radius, height=rng.uniform(0.1, 0.3))
            out[index] = channel.astype(np.float16)
            total += channel
        out[0] = np.clip(1.0 - total, 0.0, 1.0).astype(np.float16)
    return truth


def run() -> list[Result]:
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.io.picks import read_picks
    from czii_cli.score import score_picks

    map_bytes = 7 * int(np.prod(SHAPE)) * 2
    results = []
    with tempfile.TemporaryDirectory(prefix="czii-bench-") as tmp:
        path = Path(tmp) / "probs.zarr"
        truth = build_map(path)
        baseline = run_isolated(READ_AND_THRESHOLD.format(path=str(path)))
        for method, limit in TIME_TARGETS.items():
            out = Path(tmp) / f"{method}.csv"
            measured = run_isolated(METHOD.format(path=str(path), method=method, out=str(out)))
            f4 = score_picks(read_picks(out), truth, DEFAULT_CATALOG).score
            memory = measured["peak_rss_bytes"] / map_bytes
            results.append(
                Result(
                    benchmark=f"postprocess {method} 7x184x630x630 f16 ({len(truth)} particles)",
                    value=f"{measured['seconds']:.1f} s, {measured['peak_rss_bytes'] / GIB:.2f} GiB, "
                    f"{measured['picks']} picks, F4 {f4:.3f}",
                    baseline="read + threshold map; map size",
                    baseline_value=f"{baseline['seconds']:.1f} s; {map_bytes / GIB:.2f} GiB",
                    ratio=measured["seconds"] / baseline["seconds"],
                    target=f"< {limit:.0f} s, RSS < {MEMORY_TARGET:.0f}x map",
                    ok=measured["seconds"] < limit and memory < MEMORY_TARGET,
                )
            )
    return results
