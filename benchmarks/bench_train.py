"""CPU training throughput of every architecture at a 64^3 patch, batch 2.

Measured: patches per second through the real training step (class-balanced crops,
augmentation, one-hot targets, CE + Tversky loss, AdamW, clipping, EMA).  Baseline: the
bare forward + backward + optimizer step of the same network on one fixed random batch,
in the same run, alternated step by step with the measured one (median step times).  The
ratio (pipeline / bare) shows what the data pipeline and the bookkeeping cost; target
>= 0.8.

The training plan's figures (``python -m benchmarks.bench_train plan``, also part of
``make bench``): patches/s of the default recipe's step for each light-net width of the
plan (:data:`czii_cli.training.recipe.LIGHT_WIDTHS`) in float32 and in bfloat16
(autocast, channels-last), all alternated step by step in one process, against float32
at the default width; and whether two seeded runs of a few steps in bfloat16 give
bit-identical weights (the plan only chooses bfloat16 if they do).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.common import Result

PATCH = (64, 64, 64)
BATCH = 2
WARMUP, TIMED = 1, 3
VOLUME = (96, 160, 160)
ARCHS = ("light", "unet", "segresnet", "dynunet", "flexunet")


def training_volumes(rng: np.random.Generator):
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.make_labels import TargetSpec, make_target
    from czii_cli.picks import Picks, concat
    from czii_cli.training.dataset import TrainingVolume

    volumes = []
    for index in range(3):
        run = f"bench_{index}"
        picks = concat(
            Picks.from_points(run, c.name, rng.uniform([0, 0, 0], np.array(VOLUME[::-1]) * 10.0, size=(6, 3)))
            for c in DEFAULT_CATALOG
        )
        target = make_target(VOLUME, picks, catalog=DEFAULT_CATALOG, spec=TargetSpec(), voxel_size=10.0)
        image = rng.normal(size=VOLUME).astype(np.float32)
        volumes.append(
            TrainingVolume(run, image, target, picks, 10.0, (0.0, 0.0, 0.0), {"method": "zscore", "clip": None}, run)
        )
    return volumes


def interleaved_rates(first, second, *, warmup: int = WARMUP, timed: int = TIMED) -> tuple[float, float]:
    """Patches/s of two step functions, alternated so both meet the same machine load.

    Each is warmed up first; the median step time is used, so one disturbed step (other
    work on the CPU) does not decide the ratio.
    """
    for _ in range(warmup):
        first()
        second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(timed):
        for step, samples in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            step()
            samples.append(time.perf_counter() - start)
    return BATCH / float(np.median(times[0])), BATCH / float(np.median(times[1]))


def measure(arch: str, volumes) -> tuple[float, float, int]:
    from czii_cli.training.config import TrainConfig
    from czii_cli.training.registry import build_network

    config = TrainConfig(arch=arch, loss=(("ce", 1.0), ("tversky", 0.5)), patch=PATCH, batch_size=BATCH)
    torch.manual_seed(0)
    network = build_network(arch, in_channels=1, out_channels=7)
    parameters = sum(p.numel() for p in network.parameters())
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    x = torch.randn(BATCH, 1, *PATCH)
    y = torch.randint(0, 7, (BATCH, *PATCH))

    def bare_step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(network(x), y).backward()
        optimizer.step()

    _, recipe_step = trainer_step(volumes, config, seed=0)
    pipeline, bare = interleaved_rates(recipe_step, bare_step)
    return pipeline, bare, parameters


def interleaved_medians(steps, *, warmup: int = WARMUP, timed: int = TIMED, clock=time.perf_counter) -> list[float]:
    """Median seconds per call of each step function, called in turn so all meet the same load.

    ``clock``: ``time.perf_counter`` (wall time) or ``time.process_time`` (this process's
    CPU time, which other work on the machine moves far less).
    """
    for _ in range(warmup):
        for step in steps:
            step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(timed):
        for step, samples in zip(steps, times):
            start = clock()
            step()
            samples.append(clock() - start)
    return [float(np.median(samples)) for samples in times]


def recipe_trainer(volumes, *, precision: str, channels: tuple[int, ...], seed: int = 0):
    """A fresh trainer of the default recipe (light, 64^3 x 2, CE + Tversky) and its step function."""
    from czii_cli.training.config import TrainConfig

    config = TrainConfig(
        loss=(("ce", 1.0), ("tversky", 0.5)),
        patch=PATCH,
        batch_size=BATCH,
        precision=precision,
        arch_params={"channels": list(channels)},
        seed=seed,
    )
    return trainer_step(volumes, config, seed=seed)


def trainer_step(volumes, config, *, seed: int):
    """A fresh, seeded trainer of ``config`` (7 classes, class weights 1 and 4) and its step function."""
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.make_labels import centres_from_picks
    from czii_cli.training.registry import build_network
    from czii_cli.training.training import BatchMaker, Trainer

    torch.manual_seed(seed)
    trainer = Trainer(
        build_network(config.arch, in_channels=1, out_channels=7, params=config.arch_params),
        config=config,
        activation="softmax",
        class_weights=[1.0] + [4.0] * 6,
        device=torch.device("cpu"),
    )
    centres = [centres_from_picks(v.picks, catalog=DEFAULT_CATALOG, voxel_size=10.0) for v in volumes]
    batches = BatchMaker(volumes, config=config, n_channels=7, centres=centres)
    rng = np.random.default_rng(seed)
    return trainer, lambda: trainer.train_step(*batches.batch(rng))


def reproducible(volumes, *, precision: str, channels: tuple[int, ...], steps: int = 4) -> bool:
    """Whether two seeded runs of ``steps`` steps end with bit-identical weights."""
    weights = []
    for _ in range(2):
        trainer, step = recipe_trainer(volumes, precision=precision, channels=channels, seed=3)
        for _ in range(steps):
            step()
        weights.append(trainer.weights())
    return all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def plan_rows() -> list[Result]:
    """Patches/s per width and precision against float32 at the default width; bfloat16 reproducibility.

    With ``CZII_BENCH_CLOCK=process`` the steps run on one thread and are timed in CPU
    seconds of this process: ratios that hold when other work shares the machine.
    """
    import os

    from czii_cli.training.recipe import DEFAULT_LIGHT_WIDTH, LIGHT_WIDTHS

    torch.use_deterministic_algorithms(True, warn_only=True)  # as czii train sets it on a CPU
    process = os.environ.get("CZII_BENCH_CLOCK", "wall") == "process"
    if process:
        torch.set_num_threads(1)
    volumes = training_volumes(np.random.default_rng(0))
    arms = [(precision, width) for width in LIGHT_WIDTHS for precision in ("float32", "bfloat16")]
    steps = [recipe_trainer(volumes, precision=precision, channels=width)[1] for precision, width in arms]
    seconds = interleaved_medians(steps, warmup=2, timed=7, clock=time.process_time if process else time.perf_counter)
    unit = "patches per CPU second, 1 thread" if process else "patches/s"
    rates = {arm: BATCH / s for arm, s in zip(arms, seconds)}
    baseline = rates[("float32", DEFAULT_LIGHT_WIDTH)]
    results = []
    for (precision, width), rate in rates.items():
        results.append(
            Result(
                benchmark=f"plan: train light {'-'.join(map(str, width))} 64^3 x {BATCH}, {precision}: patches/s",
                value=f"{rate:.2f} {unit}",
                baseline=f"float32 light {'-'.join(map(str, DEFAULT_LIGHT_WIDTH))} (same run, alternated)",
                baseline_value=f"{baseline:.2f} {unit}",
                ratio=rate / baseline,
                target="(information: the plan's rates)",
                ok=True,
            )
        )
    for width in LIGHT_WIDTHS:
        same = reproducible(volumes, precision="bfloat16", channels=width)
        results.append(
            Result(
                benchmark=f"plan: bfloat16 light {'-'.join(map(str, width))}, two seeded 4-step runs",
                value="bit-identical" if same else "differ",
                baseline="float32 (bit-identical)",
                baseline_value="-",
                ratio=None,
                target="bit-identical",
                ok=same,
            )
        )
    return results


def run() -> list[Result]:
    results = plan_rows()
    volumes = training_volumes(np.random.default_rng(0))
    for arch in ARCHS:
        pipeline, bare, parameters = measure(arch, volumes)
        ratio = pipeline / bare
        results.append(
            Result(
                benchmark=f"train {arch} ({parameters / 1e6:.2f} M params) 64^3 x 2, CPU: patches/s",
                value=f"{pipeline:.2f} patches/s",
                baseline="bare forward+backward+AdamW on a fixed batch",
                baseline_value=f"{bare:.2f} patches/s",
                ratio=ratio,
                target=">= 0.8x bare",
                ok=ratio >= 0.8,
            )
        )
    return results


if __name__ == "__main__":
    import sys

    for result in plan_rows() if sys.argv[1:] == ["plan"] else run():
        print(result)
