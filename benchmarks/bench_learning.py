"""Does ``czii train`` learn on a CPU?  The light net on simulated data, 10 minutes.

``czii simulate`` makes 4 runs of 96x192x192 at 10 Å (seed 0); ``czii train`` with its
defaults (light net, spheres at 0.5 r, CE + Tversky, class-balanced 64^3 crops) trains on
3 runs for ``--max-time 600`` and validates on the 4th with the real pipeline.  Target:
validation F4 >= 0.5.  Baseline: the same network untrained, scored the same way in the
same run.  Takes about 11 minutes; wall time is inflated when other work shares the CPU.

``python -m benchmarks.bench_learning curves``: learning curves at fixed step counts,
which other work on the CPU does not move (only their wall time): the same data, one
``czii train`` per arm back to back (``LEARNING_ARMS``, extra ``czii train`` options,
alternatives separated by ``|``; ``LEARNING_STEPS`` steps, default 300, validated every
``LEARNING_EVERY``, default 75, seed 0, unless an arm gives its own ``--max-steps``: arms of
equal compute then train the steps their measured patches/s buy), printing validation F4
(fixed and tuned) per arm and step.  With the patches/s of ``python -m benchmarks.bench_train plan`` the steps
convert to training time: how the training plan's width and precision were chosen.
"""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Result

SHAPE = ("96", "192", "192")
VALIDATION_RUN = "TS_sim_3"
MAX_TIME = 600


def czii(*args: str) -> None:
    command = [sys.executable, "-c", "from czii_cli.main import run; run()", *args]
    completed = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"czii {args[0]} failed: {completed.stderr.strip().splitlines()[-1:]}")


def untrained_score(data: Path) -> float:
    import torch

    from czii_cli.make_labels import TargetSpec
    from czii_cli.training.dataset import find_runs, load_run
    from czii_cli.training.plan import output_channels
    from czii_cli.training.registry import build_network, patch_multiple
    from czii_cli.training.validation import validate

    source = next(s for s in find_runs([data]) if s.run == VALIDATION_RUN)
    volume = load_run(
        source, catalog=source.catalog, spec=TargetSpec(), normalization={"method": "zscore", "clip": None}
    )
    channels, activation = output_channels(source.catalog, "spheres")
    torch.manual_seed(0)
    network = build_network("light", in_channels=1, out_channels=len(channels)).eval()
    report = validate(
        network,
        [volume],
        classes=channels,
        catalog=source.catalog,
        activation=activation,
        patch_size=None,
        multiple=patch_multiple("light"),
        minimum=(64, 64, 64),
        overlap=0.25,
        threshold=0.15,
        device=torch.device("cpu"),
    )
    return report.score


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="czii-learning-") as tmp:
        data, model = Path(tmp) / "sim", Path(tmp) / "light.pt"
        czii("simulate", str(data), "--runs", "4", "--shape", *SHAPE, "--seed", "0", "-q")
        baseline = untrained_score(data)
        czii("train", str(data), "-o", str(model), "--val-runs", VALIDATION_RUN, "--max-time", str(MAX_TIME), "-q")
        with open(model.with_name("light.metrics.csv")) as handle:
            rows = list(csv.DictReader(handle))
    best = max(rows, key=lambda row: float(row["val_score"]))
    curve = " ".join(f"{float(row['val_score']):.2f}@{row['step']}" for row in rows)
    per_class = " ".join(f"{k[3:]} {float(v):.2f}" for k, v in best.items() if k.startswith("f4_"))
    score = float(best["val_score"])
    return [
        Result(
            benchmark=f"train light on simulate data, {MAX_TIME} s CPU: validation F4",
            value=f"best {score:.3f} at step {best['step']} (curve {curve}; {per_class})",
            baseline="the untrained light net",
            baseline_value=f"{baseline:.3f}",
            ratio=None,
            target=">= 0.5",
            ok=score >= 0.5,
        )
    ]


DEFAULT_ARMS = (
    "--precision float32 | --precision bfloat16 | --precision bfloat16 --arch-param channels=[16,24,32] | "
    "--precision bfloat16 --arch-param channels=[32,48,64]"
)


def curves() -> list[dict[str, str]]:
    """Validation F4 per arm and step at fixed step counts (see the module docstring)."""
    arms = [shlex.split(arm) for arm in os.environ.get("LEARNING_ARMS", DEFAULT_ARMS).split("|")]
    steps, every = os.environ.get("LEARNING_STEPS", "300"), os.environ.get("LEARNING_EVERY", "75")
    table = []
    with tempfile.TemporaryDirectory(prefix="czii-curves-") as tmp:
        data = Path(tmp) / "sim"
        czii("simulate", str(data), "--runs", "4", "--shape", *SHAPE, "--seed", "0", "-q")
        for index, options in enumerate(arms):
            model = Path(tmp) / f"arm{index}.pt"
            command = ["train", str(data), "-o", str(model), "--val-runs", VALIDATION_RUN, "--seed", "0", "-q"]
            limits = [] if "--max-steps" in options else ["--max-steps", steps, "--steps-per-epoch", every]
            czii(*command, *limits, *options)
            with open(model.with_name(f"arm{index}.metrics.csv")) as handle:
                for row in csv.DictReader(handle):
                    table.append(
                        {
                            "arm": " ".join(options) or "(defaults)",
                            "step": row["step"],
                            "seconds": row["seconds"],
                            "val_score": f"{float(row['val_score']):.3f}",
                            "tuned_score": f"{float(row['tuned_score']):.3f}",
                        }
                    )
            print("\t".join(table[-1].values()), file=sys.stderr, flush=True)
    return table


if __name__ == "__main__":
    if sys.argv[1:] == ["curves"]:
        rows = curves()
        print("\t".join(rows[0]))
        for row in rows:
            print("\t".join(row.values()))
    else:
        for result in run():
            print(result)
