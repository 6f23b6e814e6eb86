"""Does a model pre-trained on broad simulated data make fine-tuning better or faster?

Three steps, all through the real commands and the default recipe:

1. **Pre-train** (:data:`RECIPE`): ``czii simulate`` a broad project (``PRETRAIN_RUNS``
   runs of 96x192x192, each drawing its own SNR, particle contrast, defocus, ice
   gradient, off-target, membrane and gold rates from wide ranges, seed 100) and
   ``czii train`` on it for ``PRETRAIN_STEPS`` steps (validating on the project's last
   run; the MRC runs are normalized and labelled on the fly).  The commands are recorded
   in the model file (``train["recipe"]``, shown by ``czii info``); ``make pretrained``
   runs this step alone.
2. **Fine-tune vs scratch** on the "user" project of ``bench_accuracy`` (3 training runs and
   one validation run at the simulator's defaults, seed 0): for each of
   ``FINETUNE_STEPS`` (space separated), one run from scratch and one run per fine-tuning
   arm (``FINETUNE_ARGS``, alternatives separated by ``|``, each with ``--init`` of the
   pre-trained model), all for the same number of optimizer steps, so they get the same
   compute whatever else runs on the machine.  Everything else is the default recipe:
   the plan's patch and class weights come from the user's data, as in any run.
3. **Score** each model on the sets of ``bench_accuracy``: its validation run, an unseen
   run (another seed, SNR 0.07, contrast 1.4) and the full-size 184x630x630 tomogram at
   the real positions of TS_5_4 with particles twice as dark, at the pipeline's own
   thresholds (postprocess with no threshold option).

Printed per steps, arm and class: F4 on each set and the arm minus scratch; then the
steps each fine-tuning arm needed to reach the best validation F4 of the scratch run
(from ``MODEL.metrics.csv``) and their ratio, and the wall seconds of every training.
Everything also goes to ``bench-output/pretrain.json`` and ``bench-output/pretrain.csv``.

Environment: ``PRETRAIN_STEPS`` (3000), ``PRETRAIN_RUNS`` (10), ``PRETRAINED`` (a model
file: skip step 1 and fine-tune from it, e.g. ``bench-output/light-sim.pt``),
``FINETUNE_STEPS`` (300), ``FINETUNE_ARGS`` (``"| --lr 3e-4"``: the default learning rate,
and a third of it), ``STEPS_PER_EPOCH`` (50: one validation round per 50 steps),
``PARALLEL`` (1: scratch arms train during the pre-training, fine-tuning arms side by side;
0: one training at a time), ``OUTPUT`` (bench-output), ``KEEP`` (1 keeps the working
folder), and the data settings of ``bench_accuracy`` (``TRAIN_RUNS``, ``SHAPE``,
``FULL_SHAPE``, ...).  A smoke run::

    PRETRAIN_STEPS=20 PRETRAIN_RUNS=2 FINETUNE_STEPS=10 TRAIN_RUNS=2 SHAPE="64 128 128" \\
        FULL_SHAPE="96 256 256" python -m benchmarks.bench_pretrain

``python -m benchmarks.bench_pretrain build OUT.pt`` runs step 1 alone and writes the
model, with its commands recorded, to OUT.pt (``make pretrained``).

Wall time with the defaults: the pre-training (3000 steps: about 20-25 min on an idle
2-core CPU, several times that when the CPU is shared), then the fine-tuning arms and
3 x 3 predictions; not part of ``make bench`` for that reason (``make bench-pretrain``).
"""

from __future__ import annotations

import csv
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks import bench_accuracy
from benchmarks.bench_accuracy import EvalSet, score
from benchmarks.common import Result

REPO = Path(__file__).resolve().parent.parent
TARGET_MARGIN = 0.05  # fine-tuned minus scratch, unseen F4, to call it a clear gain


@dataclass(frozen=True)
class PretrainRecipe:
    """How the packaged model is made: simulated runs, their ranges, the training run."""

    name: str = "light-sim"
    runs: int = 10
    shape: tuple[int, int, int] = (96, 192, 192)
    density: float = 3.0
    simulate_seed: int = 100
    ranges: tuple[str, ...] = (
        "--snr",
        "0.03:0.3",
        "--contrast",
        "0.6:2.2",
        "--defocus",
        "2:5",
        "--ice-gradient",
        "0:0.8",
        "--off-targets",
        "0.5:2",
        "--vesicles",
        "0.5:2",
        "--gold",
        "0:3",
    )
    steps: int = 3000
    steps_per_epoch: int = 150
    train_seed: int = 0

    def run_names(self) -> list[str]:
        return [f"TS_sim_{i}" for i in range(self.runs)]

    def commands(self, model: str) -> list[list[str]]:
        """The czii commands, run in an empty folder, that write ``model`` (a path relative to it)."""
        shape = [str(side) for side in self.shape]
        commands = [
            ["simulate", "sim", "--runs", str(self.runs), "--shape", *shape, "--density", f"{self.density:g}"]
            + ["--layout", "mrc", "--seed", str(self.simulate_seed), *self.ranges, "-q"]
        ]
        epochs = -(-self.steps // self.steps_per_epoch)
        commands.append(  # MRC + CSV runs: train normalizes and labels them on the fly
            ["train", "sim", "-o", model, "--val-runs", self.run_names()[-1], "--max-steps", str(self.steps)]
            + ["--epochs", str(epochs), "--steps-per-epoch", str(self.steps_per_epoch), "--seed", str(self.train_seed)]
            + ["-q"]
        )
        return commands


RECIPE = PretrainRecipe()


def log(message: str) -> None:
    bench_accuracy.log(f"pretrain: {message}")


def czii_in(folder: Path, args: list[str]) -> str:
    """Run one czii command with ``folder`` as its working directory; return its stdout."""
    command = [sys.executable, "-c", "from czii_cli.main import run; run()", *args]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=folder)
    if completed.returncode != 0:
        raise RuntimeError(f"czii {args[0]} failed: {completed.stderr.strip().splitlines()[-1:]}")
    return completed.stdout


def with_recipe(model, *, commands: list[str], version: str):
    """``model`` (a ModelFile) with the commands that made it recorded in ``train["recipe"]``."""
    recipe = {"commands": [str(line) for line in commands], "czii_version": str(version)}
    return replace(model, train={**model.train, "recipe": recipe})


def build(recipe: PretrainRecipe, model: Path, *, work: Path) -> float:
    """Run the recipe in ``work``, record its commands in the model file, move it to ``model``.

    Returns the wall seconds of the training command.
    """
    from czii_cli import __version__
    from czii_cli.training.checkpoint import load_model_file, save_model

    work.mkdir(parents=True, exist_ok=True)
    name = f"{recipe.name}.pt"
    commands = recipe.commands(name)
    seconds = 0.0
    for args in commands:
        log(f"czii {shlex.join(args)}")
        start = time.perf_counter()
        czii_in(work, args)
        if args[0] == "train":
            seconds = time.perf_counter() - start
    written = load_model_file(work / name)
    recorded = with_recipe(written, commands=[shlex.join(["czii", *args]) for args in commands], version=__version__)
    save_model(model, recorded, overwrite=True)
    return seconds


# ----------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class Settings:
    pretrain_steps: int
    pretrain_runs: int
    pretrained: Path | None
    finetune_steps: tuple[int, ...]
    finetune_arms: tuple[tuple[str, ...], ...]
    steps_per_epoch: int
    parallel: bool
    data: bench_accuracy.Settings

    @classmethod
    def from_environment(cls) -> Settings:
        env = os.environ
        data = bench_accuracy.Settings.from_environment(["0"])
        given = env.get("PRETRAINED", "")
        return cls(
            pretrain_steps=int(env.get("PRETRAIN_STEPS", str(RECIPE.steps))),
            pretrain_runs=int(env.get("PRETRAIN_RUNS", str(RECIPE.runs))),
            pretrained=Path(given).resolve() if given else None,
            finetune_steps=tuple(int(s) for s in env.get("FINETUNE_STEPS", "300").split()),
            finetune_arms=tuple(tuple(shlex.split(arm)) for arm in env.get("FINETUNE_ARGS", "| --lr 3e-4").split("|")),
            steps_per_epoch=int(env.get("STEPS_PER_EPOCH", "50")),
            parallel=env.get("PARALLEL", "1") != "0",
            data=data,
        )


def arm_name(options: tuple[str, ...] | None) -> str:
    if options is None:
        return "scratch"
    return " ".join(("fine-tuned", *options))


def run_arm(
    data: Path,
    validation: str,
    sets: list[EvalSet],
    *,
    steps: int,
    steps_per_epoch: int,
    folder: Path,
    init: Path | None,
    options: tuple[str, ...] = (),
) -> dict:
    """Train ``steps`` steps (from ``init`` if given); score every set at the model's own thresholds."""
    folder.mkdir(parents=True)
    model = folder / "model.pt"
    epochs = -(-steps // steps_per_epoch)
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    czii_in(
        folder,
        ["train", str(data), "-o", str(model), "--val-runs", validation, "--max-steps", str(steps)]
        + ["--epochs", str(epochs), "--steps-per-epoch", str(steps_per_epoch), "--seed", "0"]
        + (["--init", str(init)] if init is not None else [])
        + [*options, "-q"],
    )
    train_seconds = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    scores = {}
    for item in sets:
        probs, picks = folder / f"{item.name}.probs.zarr", folder / f"{item.name}.csv"
        czii_in(folder, ["predict-probs", str(item.tomogram), "-m", str(model), "-o", str(probs), "-q"])
        czii_in(folder, ["postprocess", str(probs), "-o", str(picks), "-q"])
        scores[item.name] = score(picks, item.truth)
        shutil.rmtree(probs, ignore_errors=True)
    return {
        "train_seconds": train_seconds,
        "load_average": [load_before, load_after],
        "options": list(options),
        "history": validation_history(folder / "model.metrics.csv"),
        "scores": scores,
    }


def validation_history(metrics: Path) -> list[list[float]]:
    """``[step, seconds, tuned validation F4]`` of each validation round in a metrics file."""
    rows = []
    with open(metrics, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("tuned_score"):
                rows.append([int(row["step"]), float(row["seconds"]), float(row["tuned_score"])])
    return rows


def steps_to_reach(history: list[list[float]], level: float) -> int | None:
    """The first step whose tuned validation F4 is at least ``level`` (None: never)."""
    return next((int(step) for step, _, value in history if value >= level - 1e-9), None)


def speedups(models: dict) -> dict[str, dict]:
    """Steps each arm needed to reach scratch's best validation F4, and scratch's own."""
    scratch = models["scratch"]["history"]
    if not scratch:
        return {}
    best = max(value for _, _, value in scratch)
    scratch_steps = steps_to_reach(scratch, best)
    out = {}
    for name, outcome in models.items():
        reached = steps_to_reach(outcome["history"], best)
        out[name] = {
            "level": best,
            "steps": reached,
            "ratio": None if not reached or scratch_steps is None else scratch_steps / reached,
        }
    return out


# ----------------------------------------------------------------------------- report


def table_rows(results: dict) -> list[dict]:
    rows = []
    for steps, models in results["steps"].items():
        scratch = models["scratch"]["scores"]
        for model, outcome in models.items():
            scores = outcome["scores"]
            for name in ["overall", *scores["validation"]["classes"]]:
                row: dict = {"steps": steps, "model": model, "class": name}
                for part, figures in scores.items():
                    value = figures["score"] if name == "overall" else figures["classes"][name]
                    base = scratch[part]["score"] if name == "overall" else scratch[part]["classes"][name]
                    row[part] = value
                    if model != "scratch":
                        row[f"{part}_minus_scratch"] = value - base
                rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print("\t".join(columns))
    for row in rows:
        print("\t".join(f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns))


def print_speedups(results: dict) -> None:
    print("steps\tmodel\ttrain_seconds\tload_average\tsteps_to_scratch_best_val\tscratch_best_val\tratio")
    for steps, models in results["steps"].items():
        reach = results["speedups"][steps]
        for name, outcome in models.items():
            got = reach.get(name, {})
            ratio = got.get("ratio")
            load = "/".join(f"{v:.1f}" for v in outcome["load_average"])
            print(
                f"{steps}\t{name}\t{outcome['train_seconds']:.0f}\t{load}\t{got.get('steps')}\t"
                f"{got.get('level', float('nan')):.3f}\t{'' if ratio is None else f'{ratio:.2f}'}"
            )


def measure(settings: Settings) -> dict:
    """Pre-train (unless given a model), train every arm and score it; return every figure.

    With ``PARALLEL=1`` (the default) the scratch arms train while the pre-training runs,
    and the fine-tuning arms train side by side: arms are compared at equal steps, so
    sharing the CPU changes their wall time, not their weights.
    """
    data_settings = settings.data
    output = data_settings.output
    output.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pretrain-work-", dir=output))
    try:
        start = time.perf_counter()
        results: dict = {
            "settings": {
                "pretrain_steps": settings.pretrain_steps,
                "pretrain_runs": settings.pretrain_runs,
                "pretrained": str(settings.pretrained or ""),
                "finetune_steps": list(settings.finetune_steps),
                "finetune_arms": [list(a) for a in settings.finetune_arms],
                "steps_per_epoch": settings.steps_per_epoch,
                "parallel": settings.parallel,
                "data": {k: (str(v) if isinstance(v, Path) else v) for k, v in data_settings.__dict__.items()},
            },
            "steps": {},
            "speedups": {},
        }
        log("simulating, normalizing and labelling the user's project and the unseen sets")
        data, runs, sets = bench_accuracy.prepare_data(work / "user", data_settings)
        results["sets"] = [s.name for s in sets]

        def arm(steps: int, index: int, options: tuple[str, ...] | None, init: Path | None) -> dict:
            name = arm_name(options)
            log(f"{steps} steps: {name}")
            outcome = run_arm(
                data,
                runs[-1],
                sets,
                steps=steps,
                steps_per_epoch=settings.steps_per_epoch,
                folder=work / f"arm-{steps}-{index}",
                init=init,
                options=options or (),
            )
            figures = ", ".join(f"{k} {v['score']:.3f}" for k, v in outcome["scores"].items())
            log(f"{steps} steps: {name}: {outcome['train_seconds']:.0f} s, F4 {figures}")
            return outcome

        def pretrain() -> Path:
            recipe = replace(RECIPE, steps=settings.pretrain_steps, runs=settings.pretrain_runs)
            model = work / "pretrained.pt"
            log(f"pre-training {recipe.steps} steps on {recipe.runs} simulated runs")
            load_before = os.getloadavg()[0]
            results["pretrain_seconds"] = build(recipe, model, work=work / "pretrain")
            results["pretrain_load_average"] = [load_before, os.getloadavg()[0]]
            log(f"pre-trained in {results['pretrain_seconds']:.0f} s")
            return model

        with ThreadPoolExecutor(max_workers=3 if settings.parallel else 1) as pool:
            pretrained = pool.submit(pretrain) if settings.pretrained is None else None
            scratch = {steps: pool.submit(arm, steps, 0, None, None) for steps in settings.finetune_steps}
            initial = settings.pretrained if pretrained is None else pretrained.result()
            tuned = {
                (steps, index): pool.submit(arm, steps, index, options, initial)
                for steps in settings.finetune_steps
                for index, options in enumerate(settings.finetune_arms, start=1)
            }
            for steps in settings.finetune_steps:
                models = {"scratch": scratch[steps].result()}
                for index, options in enumerate(settings.finetune_arms, start=1):
                    models[arm_name(options)] = tuned[steps, index].result()
                results["steps"][str(steps)] = models
                results["speedups"][str(steps)] = speedups(models)
        results["total_seconds"] = time.perf_counter() - start
        return results
    finally:
        if os.environ.get("KEEP", "0") != "1":
            shutil.rmtree(work, ignore_errors=True)


def results_of(results: dict) -> list[Result]:
    out = []
    for steps, models in results["steps"].items():
        scratch = models["scratch"]["scores"]
        for name, outcome in models.items():
            if name == "scratch":
                continue
            for part in (p for p in outcome["scores"] if p != "validation"):
                value, base = outcome["scores"][part]["score"], scratch[part]["score"]
                out.append(
                    Result(
                        benchmark=f"pretrain, {name}, {steps} steps: {part} F4 at the pipeline's own thresholds",
                        value=f"{value:.3f}",
                        baseline=f"from scratch, {steps} steps",
                        baseline_value=f"{base:.3f}",
                        ratio=value / base if base else None,
                        target=f">= scratch + {TARGET_MARGIN:.2f}",
                        ok=value - base >= TARGET_MARGIN,
                    )
                )
    return out


def run() -> list[Result]:
    settings = Settings.from_environment()
    results = measure(settings)
    rows = table_rows(results)
    print_table(rows)
    print_speedups(results)
    bench_accuracy.write_outputs(results, rows, settings.data.output, name="pretrain")
    return results_of(results)


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"] and len(argv) == 2:
        target = Path(argv[1]).resolve()
        with tempfile.TemporaryDirectory(prefix="pretrained-") as work:
            seconds = build(RECIPE, target, work=Path(work))
        log(f"{target}: trained in {seconds:.0f} s")
        return 0
    if argv:
        print("usage: python -m benchmarks.bench_pretrain [build OUT.pt]", file=sys.stderr)
        return 2
    for result in run():
        line = f"# {result.benchmark}: {result.value}; scratch {result.baseline_value}; met: {result.ok}"
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
