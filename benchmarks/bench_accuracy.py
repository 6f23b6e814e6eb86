"""Accuracy that holds on tomograms no step has seen, at fixed CPU training budgets.

For each budget (default 300, 600 and 1200 s of wall-clock training on this machine):

* czii, through the real commands and the default recipe: ``czii simulate`` (training runs
  and one validation run, at the simulator's defaults), ``normalize``, ``make-labels``,
  ``czii train DATA -o M --val-runs VAL --max-time S`` (no other option), then
  ``predict-probs`` -> ``postprocess`` with no threshold option (the pipeline's own
  thresholds) -> ``score``;
* a plain MONAI UNet baseline, written here with plain MONAI and torch: spheres of 0.5 x
  the class radius painted with numpy, class-weighted cross-entropy (weights
  sqrt(background voxels / class voxels), background 1), uniformly random 64^3 crops
  without augmentation, Adam 1e-3, the last weights; sliding-window inference (MONAI,
  Gaussian blending), softmax, then ``czii postprocess --threshold 0.5``: one global
  threshold, 0.5 on each class's softmax probability, the same connected-component
  centroids (cc3d) as czii, and the same ``czii score``.

Both are scored on the validation run and on tomograms that no step has seen:

* ``unseen``: another seed, another SNR, another particle contrast and another size
  (``czii simulate --seed 1 --snr 0.07 --contrast 1.4 --shape 128 320 320`` by default:
  about four times the training run's volume, so that each class holds 5-34 particles
  and one particle moves its F4 by a few hundredths, not by a tenth);
* ``noisy``: another seed (3), a lower SNR, more defocus and uneven ice (the options
  in ``NOISY``, default ``--snr 0.04 --defocus 4.5 --ice-gradient 0.5``; empty skips it),
  at the same size as ``unseen``;
* ``full``: when ``../shared/data/czii_train_picks.csv`` is present, one full-size
  184x630x630 tomogram at the real particle positions of run TS_5_4, with the particles
  twice as dark (``--contrast 2``).

Printed per budget, model and class: unseen F4, validation F4 and the gap (unseen minus
validation), then czii minus the baseline on each unseen set; the table goes to stdout
and, with every figure, to ``bench-output/accuracy.json`` and ``bench-output/accuracy.csv``.

Everything is configurable from the environment (or, for budgets, the command line), so
the whole benchmark can be smoke-run in a few minutes::

    BUDGETS="60" SHAPE="64 128 128" FULL_SHAPE="96 256 256" python -m benchmarks.bench_accuracy

``BUDGETS`` (seconds, space separated), ``TRAIN_RUNS`` (3), ``SHAPE`` (96 192 192),
``DENSITY`` (3), ``UNSEEN_SHAPE`` (128 320 320, also the noisy run's), ``UNSEEN_SNR``
(0.07), ``UNSEEN_CONTRAST`` (1.4), ``NOISY``, ``FULL_SHAPE``
(184 630 630: picks outside a smaller shape are dropped), ``FULL_RUN`` (TS_5_4; empty
skips it), ``FULL_CONTRAST`` (2), ``PICKS_CSV``, ``BASELINE`` (1; 0 skips it),
``TRAIN_SIMULATE`` (extra ``czii simulate`` options for the training and validation
runs, e.g. ``"--snr 0.04:0.2 --contrast 0.7:2"`` to measure training on varied runs;
empty by default),
``CZII_TRAIN_ARGS`` (extra ``czii train`` options of the czii arm, e.g. ``"--bin 2"``;
alternatives separated by ``|`` train one czii arm each on the same data, back to back,
e.g. ``"--bin 1 | --bin 2"``; an arm is named ``czii`` plus its options),
``PREDICT_ARGS`` (extra ``predict-probs`` options; alternatives separated by ``|`` score
every czii model once each, e.g. ``" | --tta flips"``, the second named after the arm
with ``predict`` and its options),
``OUTPUT`` (bench-output), ``KEEP`` (1 keeps the working folder there).  Every czii arm
also records the seconds of ``predict-probs`` and of ``postprocess`` on each set.

Wall time: about 2 x the sum of the budgets plus simulation and inference (a few
minutes per budget at full size).  Figures move when other work shares the CPU, since
the budgets are wall-clock.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Result

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PICKS = REPO.parent / "shared" / "data" / "czii_train_picks.csv"
DEFAULT_NOISY = "--snr 0.04 --defocus 4.5 --ice-gradient 0.5"
"""``czii simulate`` options of the ``noisy`` unseen run: less signal, stronger blur, uneven ice."""
TARGET_UNSEEN = 0.90
TARGET_FULL = 0.85
TARGET_MARGIN = 0.08
TARGET_GAP = 0.05

BASELINE_CHANNELS = (32, 64, 128, 128)
BASELINE_STRIDES = (2, 2, 1)
BASELINE_CROP = 64
BASELINE_BATCH = 2
BASELINE_LR = 1e-3
BASELINE_SPHERE = 0.5
BASELINE_THRESHOLD = 0.5
BASELINE_WINDOW = (64, 128, 128)


@dataclass(frozen=True)
class Settings:
    """What one benchmark run does; see the module docstring for the environment names."""

    budgets: tuple[int, ...]
    train_runs: int
    shape: tuple[int, int, int]
    density: float
    unseen_shape: tuple[int, int, int]
    unseen_snr: float
    unseen_contrast: float
    noisy: tuple[str, ...]
    full_shape: tuple[int, int, int]
    full_run: str
    full_contrast: float
    picks_csv: Path
    baseline: bool
    train_simulate: tuple[str, ...]
    czii_arms: tuple[tuple[str, ...], ...]
    predict_arms: tuple[tuple[str, ...], ...]
    output: Path
    keep: bool

    @classmethod
    def from_environment(cls, budgets: list[str] | None = None) -> Settings:
        env = os.environ
        text = " ".join(budgets) if budgets else env.get("BUDGETS", "300 600 1200")
        return cls(
            budgets=tuple(int(float(b)) for b in text.replace(",", " ").split()),
            train_runs=int(env.get("TRAIN_RUNS", "3")),
            shape=_shape(env.get("SHAPE", "96 192 192")),
            density=float(env.get("DENSITY", "3")),
            unseen_shape=_shape(env.get("UNSEEN_SHAPE", "128 320 320")),
            unseen_snr=float(env.get("UNSEEN_SNR", "0.07")),
            unseen_contrast=float(env.get("UNSEEN_CONTRAST", "1.4")),
            noisy=tuple(shlex.split(env.get("NOISY", DEFAULT_NOISY))),
            full_shape=_shape(env.get("FULL_SHAPE", "184 630 630")),
            full_run=env.get("FULL_RUN", "TS_5_4"),
            full_contrast=float(env.get("FULL_CONTRAST", "2")),
            picks_csv=Path(env.get("PICKS_CSV", str(DEFAULT_PICKS))),
            baseline=env.get("BASELINE", "1") != "0",
            train_simulate=tuple(shlex.split(env.get("TRAIN_SIMULATE", ""))),
            czii_arms=_alternatives(env.get("CZII_TRAIN_ARGS", "")),
            predict_arms=_alternatives(env.get("PREDICT_ARGS", "")),
            output=Path(env.get("OUTPUT", str(REPO / "bench-output"))),
            keep=env.get("KEEP", "0") == "1",
        )


def _shape(text: str) -> tuple[int, int, int]:
    sides = tuple(int(s) for s in text.replace("x", " ").split())
    if len(sides) != 3:
        raise ValueError(f"a shape is three sides Z Y X, got {text!r}")
    return sides  # type: ignore[return-value]


def _alternatives(text: str) -> tuple[tuple[str, ...], ...]:
    """``"A | B C"`` -> ``(("A",), ("B", "C"))``: one option list per ``|``-separated arm."""
    return tuple(tuple(shlex.split(arm)) for arm in text.split("|"))


_START = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr (the benchmark runs for a long time)."""
    print(f"  accuracy [{time.perf_counter() - _START:6.0f} s] {message}", file=sys.stderr, flush=True)


def czii(*args: object, stdout: Path | None = None) -> str:
    """Run one czii command in a fresh interpreter; return its stdout."""
    command = [sys.executable, "-c", "from czii_cli.launcher import run; run()", *map(str, args)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"czii {args[0]} failed: {completed.stderr.strip().splitlines()[-1:]}")
    if stdout is not None:
        stdout.write_text(completed.stdout)
    return completed.stdout


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class EvalSet:
    """A tomogram to score: its normalized artifact and its true picks."""

    name: str
    tomogram: Path
    truth: Path


def prepare_data(work: Path, settings: Settings) -> tuple[Path, list[str], list[EvalSet]]:
    """Simulate, normalize and label; return the training folder, its runs and the sets to score."""
    shape = [str(s) for s in settings.shape]
    runs = [f"TS_sim_{i}" for i in range(settings.train_runs + 1)]
    data = work / "data"
    data.mkdir(parents=True)
    czii(
        "simulate",
        work / "sim",
        "--runs",
        len(runs),
        "--shape",
        *shape,
        "--density",
        settings.density,
        "--layout",
        "mrc",
        "--seed",
        0,
        *settings.train_simulate,
        "-q",
    )
    for run in runs:
        czii("normalize", work / "sim" / "train_images" / f"{run}.mrc", "-o", data / f"{run}.zarr", "-q")
        czii(
            "make-labels",
            work / "sim" / "train_annotations" / f"{run}.csv",
            "--like",
            data / f"{run}.zarr",
            "-o",
            data / f"{run}.labels.zarr",
            "-q",
        )
    validation = runs[-1]
    sets = [
        EvalSet("validation", data / f"{validation}.zarr", work / "sim" / "train_annotations" / f"{validation}.csv")
    ]

    unseen_shape = [str(s) for s in settings.unseen_shape]
    unseen_options = ("--snr", settings.unseen_snr, "--contrast", settings.unseen_contrast)
    sets.append(
        simulated_set(work, "unseen", shape=unseen_shape, density=settings.density, seed=1, options=unseen_options)
    )
    if settings.noisy:
        sets.append(
            simulated_set(work, "noisy", shape=unseen_shape, density=settings.density, seed=3, options=settings.noisy)
        )

    if settings.full_run and settings.picks_csv.is_file():
        positions = work / "full-positions.csv"
        if real_positions(settings.picks_csv, positions, run=settings.full_run, shape=settings.full_shape):
            czii(
                "simulate",
                work / "full",
                "--picks",
                positions,
                "--shape",
                *map(str, settings.full_shape),
                "--layout",
                "mrc",
                "--seed",
                2,
                "--contrast",
                settings.full_contrast,
                "-q",
            )
            czii(
                "normalize", work / "full" / "train_images" / f"{settings.full_run}.mrc", "-o", work / "full.zarr", "-q"
            )
            truth = work / "full" / "train_annotations" / f"{settings.full_run}.csv"
            sets.append(EvalSet("full", work / "full.zarr", truth))
    return data, runs, sets


def simulated_set(
    work: Path, name: str, *, shape: list[str], density: float, seed: int, options: tuple[object, ...]
) -> EvalSet:
    """One small unseen run, ``czii simulate --seed SEED OPTIONS``, normalized: an evaluation set."""
    czii(
        "simulate",
        work / name,
        "--shape",
        *shape,
        "--density",
        density,
        "--layout",
        "mrc",
        "--seed",
        seed,
        *options,
        "-q",
    )
    czii("normalize", work / name / "train_images" / "TS_sim_0.mrc", "-o", work / f"{name}.zarr", "-q")
    return EvalSet(name, work / f"{name}.zarr", work / name / "train_annotations" / "TS_sim_0.csv")


def real_positions(source: Path, target: Path, *, run: str, shape: tuple[int, int, int]) -> int:
    """Copy the picks of ``run`` that lie inside ``shape`` (10 Å voxels) to ``target``; count them."""
    extent = [side * 10.0 for side in shape[::-1]]  # x, y, z in Å
    with open(source, newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["experiment"] == run and all(0 <= float(row[a]) < e for a, e in zip("xyz", extent))
        ]
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["experiment", "particle_type", "x", "y", "z"], extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def score(picks: Path, truth: Path) -> dict:
    """``czii score --format json``: overall and per-class F4."""
    document = json.loads(czii("score", picks, truth, "--format", "json", "-q"))
    return {
        "score": document["score"],
        "classes": {n: c["fbeta"] for n, c in document["classes"].items()},
        "counts": {n: [c["tp"], c["fp"], c["fn"]] for n, c in document["classes"].items()},
    }


# ----------------------------------------------------------------------------- czii


def arm_name(options: tuple[str, ...], predict_options: tuple[str, ...] = ()) -> str:
    """``czii`` for the default recipe, else ``czii`` and its extra training (and predict) options."""
    name = " ".join(("czii", *options))
    return f"{name} predict {' '.join(predict_options)}" if predict_options else name


def run_czii(
    data: Path,
    validation: str,
    sets: list[EvalSet],
    *,
    budget: int,
    folder: Path,
    options: tuple[str, ...] = (),
    predict_arms: tuple[tuple[str, ...], ...] = ((),),
) -> dict[str, dict]:
    """Train with the default recipe (plus ``options``) for ``budget`` seconds, once.

    Every set is then predicted, post-processed, scored and timed once per entry of
    ``predict_arms`` (extra ``predict-probs`` options); the outcomes are keyed by
    :func:`arm_name`.
    """
    folder.mkdir(parents=True)
    model = folder / "czii.pt"
    start = time.perf_counter()
    czii("train", data, "-o", model, "--val-runs", validation, "--max-time", budget, *options, "-q")
    train_seconds = time.perf_counter() - start
    outcomes = {}
    for index, predict_options in enumerate(predict_arms):
        scores, seconds = {}, {}
        for item in sets:
            stem = f"{item.name}-{index}" if index else item.name
            probs, picks = folder / f"{stem}.probs.zarr", folder / f"{stem}.csv"
            start = time.perf_counter()
            czii("predict-probs", item.tomogram, "-m", model, "-o", probs, *predict_options, "-q")
            predicted = time.perf_counter()
            czii("postprocess", probs, "-o", picks, "-q")
            seconds[item.name] = {"predict_probs": predicted - start, "postprocess": time.perf_counter() - predicted}
            scores[item.name] = score(picks, item.truth)
            shutil.rmtree(probs, ignore_errors=True)
        outcomes[arm_name(options, predict_options)] = {
            "train_seconds": train_seconds,
            "options": list(options),
            "predict_options": list(predict_options),
            "scores": scores,
            "seconds": seconds,
        }
    return outcomes


# ----------------------------------------------------------------------------- baseline


def paint_spheres(shape, picks, *, names: list[str], voxel_size: float, scale: float):
    """Label volume (uint8): class index + 1 inside a ball of ``scale`` x radius around each pick."""
    import numpy as np

    from czii_cli.catalog import DEFAULT_CATALOG

    labels = np.zeros(shape, dtype=np.uint8)
    for name, (x, y, z) in zip(picks.particle_type, picks.xyz):
        radius = scale * DEFAULT_CATALOG.get(name).radius / voxel_size
        centre = np.array([z, y, x]) / voxel_size
        low = np.maximum(np.floor(centre - radius).astype(int), 0)
        high = np.minimum(np.ceil(centre + radius).astype(int) + 1, shape)
        grid = np.ogrid[tuple(slice(lo, hi) for lo, hi in zip(low, high))]
        inside = sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2
        box = labels[tuple(slice(lo, hi) for lo, hi in zip(low, high))]
        box[inside] = names.index(name) + 1
    return labels


def run_baseline(
    sim: Path, data: Path, runs: list[str], sets: list[EvalSet], *, budget: int, folder: Path, seed: int = 0
) -> dict:
    """Train the plain MONAI UNet for ``budget`` seconds on the training runs; score every set."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import UNet

    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.io.artifacts import write_artifact
    from czii_cli.io.picks import read_picks
    from czii_cli.io.volumes import read_volume

    folder.mkdir(parents=True, exist_ok=True)
    names = list(DEFAULT_CATALOG.names)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for run in runs[:-1]:  # the last run is the validation run
        volume = read_volume(data / f"{run}.zarr")
        image = np.asarray(volume.data[...], dtype=np.float32)
        picks = read_picks(sim / "train_annotations" / f"{run}.csv")
        images.append(image)
        labels.append(
            paint_spheres(image.shape, picks, names=names, voxel_size=volume.meta.voxel_size, scale=BASELINE_SPHERE)
        )
    counts = np.bincount(np.concatenate([lab.ravel() for lab in labels]), minlength=len(names) + 1).astype(float)
    weights = np.sqrt(counts[0] / np.maximum(counts, 1.0))
    weights[0] = 1.0
    network = UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=len(names) + 1,
        channels=BASELINE_CHANNELS,
        strides=BASELINE_STRIDES,
        num_res_units=1,
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=BASELINE_LR)
    loss_function = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    crop = BASELINE_CROP

    def batch():
        xs, ys = [], []
        for _ in range(BASELINE_BATCH):
            index = int(rng.integers(len(images)))
            image, label = images[index], labels[index]
            corner = [int(rng.integers(0, max(side - crop, 0) + 1)) for side in image.shape]
            box = tuple(slice(c, c + crop) for c in corner)
            xs.append(image[box][None])
            ys.append(label[box].astype(np.int64))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    network.train()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        x, y = batch()
        optimizer.zero_grad()
        loss = loss_function(network(x), y)
        loss.backward()
        optimizer.step()
        steps += 1
    train_seconds = time.perf_counter() - start

    network.eval()
    scores = {}
    for item in sets:
        volume = read_volume(item.tomogram)
        image = torch.from_numpy(np.asarray(volume.data[...], dtype=np.float32))[None, None]
        window = tuple(min(w, s - s % 4) for w, s in zip(BASELINE_WINDOW, image.shape[2:]))
        with torch.no_grad():
            logits = sliding_window_inference(image, window, 1, network, overlap=0.25, mode="gaussian")
            probs = torch.softmax(logits, dim=1)[0].numpy().astype(np.float16)
        del image, logits
        meta = volume.meta.evolve(
            kind="probs", axes="czyx", classes=("background", *names), extra={"activation": "softmax"}, provenance=[]
        )
        probs_path, picks_path = folder / f"{item.name}.probs.zarr", folder / f"{item.name}.csv"
        write_artifact(probs_path, probs, meta)
        del probs
        czii("postprocess", probs_path, "--threshold", BASELINE_THRESHOLD, "-o", picks_path, "-q")
        scores[item.name] = score(picks_path, item.truth)
        shutil.rmtree(probs_path, ignore_errors=True)
    return {"train_seconds": train_seconds, "steps": steps, "scores": scores}


# ----------------------------------------------------------------------------- report


def table_rows(results: dict) -> list[dict]:
    """One row per budget, model, class (and overall): unseen F4 per set, validation F4, gaps."""
    rows = []
    for budget, models in results["budgets"].items():
        for model, outcome in models.items():
            scores = outcome["scores"]
            validation = scores["validation"]
            unseen_sets = [name for name in scores if name != "validation"]
            for name in ["overall", *validation["classes"]]:
                val = validation["score"] if name == "overall" else validation["classes"][name]
                row = {"budget_s": budget, "model": model, "class": name, "validation": val}
                for unseen in unseen_sets:
                    figure = scores[unseen]["score"] if name == "overall" else scores[unseen]["classes"][name]
                    row[unseen] = figure
                    row[f"gap_{unseen}"] = figure - val
                    other = models.get("baseline") if model.startswith("czii") else None
                    if other is not None:
                        base = other["scores"][unseen]
                        row[f"czii_minus_baseline_{unseen}"] = figure - (
                            base["score"] if name == "overall" else base["classes"][name]
                        )
                rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print("\t".join(columns))
    for row in rows:
        print("\t".join(f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns))


def write_outputs(results: dict, rows: list[dict], output: Path, *, name: str = "accuracy") -> None:
    """``NAME.json`` (every figure and the table) and ``NAME.csv`` (the table) in ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{name}.json").write_text(json.dumps({**results, "table": rows}, indent=2))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(output / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def measure(settings: Settings) -> dict:
    """Run the whole benchmark; return every figure."""
    settings.output.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="accuracy-work-", dir=settings.output))
    try:
        start = time.perf_counter()
        log(f"simulating, normalizing and labelling into {work}")
        data, runs, sets = prepare_data(work, settings)
        log(f"scoring sets: {', '.join(s.name for s in sets)}")
        results = {
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.__dict__.items()},
            "sets": [s.name for s in sets],
            "prepare_seconds": time.perf_counter() - start,
            "budgets": {},
        }
        for budget in settings.budgets:
            models = {}
            for index, options in enumerate(settings.czii_arms):
                log(f"budget {budget} s: {arm_name(options)} train with the default recipe")
                outcomes = run_czii(
                    data,
                    runs[-1],
                    sets,
                    budget=budget,
                    folder=work / f"czii-{budget}-{index}",
                    options=options,
                    predict_arms=settings.predict_arms,
                )
                for name, outcome in outcomes.items():
                    log(f"budget {budget} s: {name} " + _summary(outcome))
                models.update(outcomes)
            if settings.baseline:
                log(f"budget {budget} s: plain MONAI UNet baseline")
                models["baseline"] = run_baseline(
                    work / "sim", data, runs, sets, budget=budget, folder=work / f"baseline-{budget}"
                )
                log(f"budget {budget} s: baseline {models['baseline']['steps']} steps, " + _summary(models["baseline"]))
            results["budgets"][str(budget)] = models
        results["total_seconds"] = time.perf_counter() - start
        return results
    finally:
        if not settings.keep:
            shutil.rmtree(work, ignore_errors=True)


def _summary(outcome: dict) -> str:
    scores = ", ".join(f"{name} {part['score']:.3f}" for name, part in outcome["scores"].items())
    return f"trained {outcome['train_seconds']:.0f} s; F4 {scores}"


def results_of(results: dict) -> list[Result]:
    """The headline figures as benchmark results (the largest budget carries the targets)."""
    out = []
    for budget, models in results["budgets"].items():
        arm = next(name for name in models if name.startswith("czii"))
        czii_scores = models[arm]["scores"]
        base = models.get("baseline")
        for unseen in (name for name in czii_scores if name != "validation"):
            value = czii_scores[unseen]["score"]
            gap = value - czii_scores["validation"]["score"]
            base_value = base["scores"][unseen]["score"] if base else None
            target = TARGET_FULL if unseen == "full" else TARGET_UNSEEN
            ok = value >= target and abs(gap) <= TARGET_GAP
            if base_value is not None:
                ok = ok and value - base_value >= TARGET_MARGIN
            out.append(
                Result(
                    benchmark=f"accuracy, {arm}, {budget} s training: {unseen} F4 at the pipeline's own thresholds",
                    value=f"{value:.3f} (validation {czii_scores['validation']['score']:.3f}, gap {gap:+.3f})",
                    baseline="plain MONAI UNet, same budget, threshold 0.5",
                    baseline_value="" if base_value is None else f"{base_value:.3f}",
                    ratio=None if not base_value else value / base_value,
                    target=f">= {target:.2f}, |gap| <= {TARGET_GAP:.2f}, >= baseline + {TARGET_MARGIN:.2f}",
                    ok=ok,
                )
            )
        margins = (
            [czii_scores[n]["score"] - base["scores"][n]["score"] for n in czii_scores if n != "validation"]
            if base
            else []
        )
        if margins:
            mean = sum(margins) / len(margins)
            out.append(
                Result(
                    benchmark=f"accuracy, {arm}, {budget} s training: czii minus baseline, mean over the unseen sets",
                    value=f"{mean:+.3f} ({', '.join(f'{m:+.3f}' for m in margins)})",
                    baseline="plain MONAI UNet, same budget, threshold 0.5",
                    baseline_value="",
                    ratio=None,
                    target=f">= {TARGET_MARGIN:+.2f}",
                    ok=mean >= TARGET_MARGIN,
                )
            )
    return out


def run(budgets: list[str] | None = None) -> list[Result]:
    settings = Settings.from_environment(budgets)
    results = measure(settings)
    rows = table_rows(results)
    print_table(rows)
    write_outputs(results, rows, settings.output)
    return results_of(results)


if __name__ == "__main__":
    from czii_cli.launcher import restart_with_huge_pages

    restart_with_huge_pages()  # both arms under the allocator setting of the czii executable
    for result in run(sys.argv[1:]):
        print(
            f"# {result.benchmark}: {result.value}; baseline {result.baseline_value}; met: {result.ok}", file=sys.stderr
        )
