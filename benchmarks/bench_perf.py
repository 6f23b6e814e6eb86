"""A full tomogram from probabilities to picks, against MONAI and the network's floor.

All rows come from one run on this machine; each child process is fresh (time, peak RSS).

1. ``czii predict-probs`` on a full-size tomogram (``CZII_BENCH_SHAPE``, default
   184 630 630; e.g. ``CZII_BENCH_SHAPE="96 256 256"`` for a quick run) with the default
   model of ``czii train`` (the ``light`` net, 64^3 patch, trained for the output stride
   the plan chooses, :data:`czii_cli.training.recipe.AUTO_OUTPUT_STRIDE`), randomly
   initialised with its head biased towards background as a trained net's is (same cost
   as a trained one), with the default options: halo tiles, the CPU's precision, and the
   model's output stride (2: the map on the grid binned by 2, from the light net's
   half-resolution logits).
2. ``czii postprocess`` (cc, the default) on a 7-channel float16 map of that grid with a
   Gaussian blob per particle (:mod:`benchmarks.bench_postprocess`; at stride 2 the
   full-resolution map binned by 2, block means, 20 Å voxels: what a stride-2 map of those
   particles holds, since the random net's own map holds none).
3. The baseline: MONAI ``sliding_window_inference`` with the same net, float32, the 64^3
   training window, overlap 0.25, Gaussian, then softmax and a float16 save.
4. The floor: the bare forward of the net at the same output stride over the voxels once,
   timed on one 96x192x192 block in the default precision and layout, run as
   predict-probs runs it (BatchNorm folded into the convolutions), scaled to the
   volume's voxels (run right after the default prediction, so both meet about the same
   machine load).
5. Where the default prediction's time goes (in one more fresh process, through the
   library calls the command makes): importing czii and zarr, loading the model,
   normalization statistics, creating the artifact, probing the network (receptive field
   and memory), reading and preparing the tiles, the forward passes, activation and
   float16 conversion, handing the cores to zarr (encoding and writing) and closing the
   artifact.  The command's own imports and checks are what row 1 adds (both are
   fresh processes, so under load the two can differ either way).
6. The same at full resolution: ``--output-stride 1`` with ``postprocess`` on the
   full-resolution map, its floor and its stages; and ``--tiling sliding`` (64^3 windows
   at overlap 0.25 with Gaussian blending, the default before halo tiles).
7. The default prediction again without the transparent huge pages that the ``czii``
   executable asks glibc for (:mod:`czii_cli.launcher`); every other row runs with them,
   since ``python -m benchmarks`` starts itself again under the same tunable.
8. Training patches per second of the default recipe (light, 64^3 x 2, CE + Tversky):
   ``--precision bfloat16`` (autocast, channels-last) against float32 (what ``auto``
   gives on a CPU), alternated step by step (median step times).

Targets: predict-probs + postprocess <= 20 s on 2 cores, >= 5x MONAI, peak
<= 2 GiB, predict-probs <= 1.2x the floor, training >= 1.5x float32.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import GIB, Result, run_isolated

WINDOW = (64, 64, 64)
OVERLAP = 0.25
CLASSES = 7
BLOCK = (96, 192, 192)
NO_HUGE_PAGES = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
"""The environment of the one row that runs without the huge pages the czii executable asks for."""


def bench_shape() -> tuple[int, int, int]:
    """The tomogram shape: ``CZII_BENCH_SHAPE`` ("Z Y X"), default 184 630 630."""
    text = os.environ.get("CZII_BENCH_SHAPE", "184 630 630")
    shape = tuple(int(v) for v in text.replace("x", " ").split())
    if len(shape) != 3:
        raise ValueError(f"CZII_BENCH_SHAPE must be three sizes, got {text!r}")
    return shape


COMMAND = """
import json, time
import torch  # imported before the clock starts, as in the MONAI run
from czii_cli.main import app
start = time.perf_counter()
app({args!r}, standalone_mode=False)
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""

MONAI = """
import json, os, time
import mrcfile, numpy as np, torch
from monai.inferers import sliding_window_inference
from czii_cli.training.checkpoint import load_model_file
from czii_cli.normalize import normalize
torch.set_num_threads(len(os.sched_getaffinity(0)))
network = load_model_file({model!r}).build().eval()
start = time.perf_counter()
with mrcfile.open({mrc!r}) as mrc:
    volume = normalize(mrc.data)
with torch.inference_mode():
    logits = sliding_window_inference(torch.from_numpy(volume)[None, None], {window!r}, 1, network,
                                      overlap={overlap!r}, mode="gaussian")
    probs = torch.softmax(logits, dim=1)[0].numpy().astype(np.float16)
np.save({out!r}, probs)
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""

FLOOR = """
import json, os, time
import torch
from czii_cli.predict_probs.runner import NetworkRunner, resolve_precision
from czii_cli.training.checkpoint import load_model_file
torch.set_num_threads(len(os.sched_getaffinity(0)))
network = load_model_file({model!r}).build()
network.set_output_stride({stride!r})
block = torch.randn(1, 1, *{block!r})
found = {{}}
for precision in sorted({{resolve_precision("auto", torch.device("cpu")), "float32"}}):
    runner = NetworkRunner(network, device=torch.device("cpu"), precision=precision, output_stride={stride!r})
    with torch.inference_mode(), runner:
        for _ in range(4):  # layout trials (float32), then timed calls
            start = time.perf_counter()
            runner(block)
            seconds = time.perf_counter() - start
        best = seconds
        for _ in range(1):
            start = time.perf_counter()
            runner(block)
            best = min(best, time.perf_counter() - start)
    found[precision] = {{"seconds": best, "layout": runner.layout}}
print(json.dumps({{"precisions": found, "default": resolve_precision("auto", torch.device("cpu"))}}))
"""


BREAKDOWN = """
import json, os, time
from pathlib import Path
import torch  # imported before the clock starts, as in the command's run
start = time.perf_counter()
import zarr  # what the command imports: the storage library, and through the job its pick settings
from czii_cli.predict_probs import job
from czii_cli.io.artifacts import create_artifact
from czii_cli.io.volumes import read_tomogram
from czii_cli.predict_probs.members import load_models, members_for, window_multiple
from czii_cli.predict_probs.predict import FixedOutput, predict_into
from czii_cli.resample import binned_shape
torch.set_num_threads(len(os.sched_getaffinity(0)))
seconds = {{"import": time.perf_counter() - start}}
mark = time.perf_counter()
models = load_models([Path({model!r})])
networks = [model.build() for model in models]
volume = read_tomogram(Path({mrc!r}))
seconds["model"] = time.perf_counter() - mark
mark = time.perf_counter()
members, _ = members_for(networks, models, volume)
seconds["statistics"] = time.perf_counter() - mark
meta = volume.meta.evolve(kind="probs", axes="czyx", classes=tuple(models[0].classes))
mark = time.perf_counter()
shape = (len(models[0].classes), *binned_shape(volume.shape, factor={stride!r}))
with create_artifact(Path({out!r}), shape=shape, dtype="float16", meta=meta) as array:
    seconds["create"] = time.perf_counter() - mark
    report = predict_into(members, volume.data, FixedOutput(array), patch_size=models[0].patch_size,
                          activation=models[0].activation, multiple=window_multiple(models), tiling="auto",
                          output_stride={stride!r})
    seconds.update(report["seconds"])
    mark = time.perf_counter()
seconds["close"] = time.perf_counter() - mark
print(json.dumps({{"stages": seconds, "seconds": time.perf_counter() - start}}))
"""
STAGES = ("import", "model", "statistics", "create", "plan", "input", "forward", "activation", "write", "close")


def run() -> list[Result]:
    from czii_cli.training.recipe import AUTO_OUTPUT_STRIDE

    stride = AUTO_OUTPUT_STRIDE
    shape = bench_shape()
    voxels = int(np.prod(shape))
    with tempfile.TemporaryDirectory(prefix="czii-bench-") as tmp:
        tmp = Path(tmp)
        mrc, model = tmp / "TS_full.mrc", tmp / "light.pt"
        from czii_cli.io.volumes import write_mrc

        write_mrc(mrc, np.random.default_rng(0).normal(size=shape).astype(np.float32), voxel_size=10.0)
        _write_default_model(model, output_stride=stride)
        probs_map, half_map = tmp / "sim_probs.zarr", tmp / "sim_probs_2.zarr"
        _simulated_map(probs_map, shape)
        _binned_map(probs_map, half_map)
        default_map = half_map if stride == 2 else probs_map

        def predict(out: str, *options: str) -> str:
            return COMMAND.format(
                args=["predict-probs", str(mrc), "-m", str(model), "-o", str(tmp / out), *options, "-q"]
            )

        runs = {
            "czii": predict("p.zarr"),
            "postprocess": COMMAND.format(args=["postprocess", str(default_map), "-o", str(tmp / "picks.csv"), "-q"]),
            "stride1": predict("p1.zarr", "--output-stride", "1"),
            "postprocess1": COMMAND.format(args=["postprocess", str(probs_map), "-o", str(tmp / "picks1.csv"), "-q"]),
            "sliding": predict("s.zarr", "--tiling", "sliding"),
            "no_huge_pages": predict("n.zarr"),
            "monai": MONAI.format(
                model=str(model), mrc=str(mrc), window=WINDOW, overlap=OVERLAP, out=str(tmp / "monai.npy")
            ),
        }
        outputs = {
            "czii": tmp / "p.zarr",
            "postprocess": tmp / "picks.csv",
            "stride1": tmp / "p1.zarr",
            "postprocess1": tmp / "picks1.csv",
            "sliding": tmp / "s.zarr",
            "no_huge_pages": tmp / "n.zarr",
            "monai": tmp / "monai.npy",
            "breakdown": tmp / "b.zarr",
            "breakdown1": tmp / "b1.zarr",
        }
        for name, at in (("breakdown", stride), ("breakdown1", 1)):
            runs[name] = BREAKDOWN.format(model=str(model), mrc=str(mrc), out=str(outputs[name]), stride=at)
        repeats = int(os.environ.get("CZII_BENCH_REPEATS", "1"))
        measured = {name: [] for name in runs}
        floors, floors1 = [], []
        for _ in range(repeats):  # interleaved, each floor right after its prediction: best time, highest peak
            for name, code in runs.items():
                _remove(outputs[name])
                measured[name].append(run_isolated(code, env=NO_HUGE_PAGES if name == "no_huge_pages" else None))
                if name == "czii":
                    floors.append(run_isolated(FLOOR.format(model=str(model), block=BLOCK, stride=stride)))
                if name == "stride1":
                    floors1.append(run_isolated(FLOOR.format(model=str(model), block=BLOCK, stride=1)))
    seconds = {name: min(r["seconds"] for r in found) for name, found in measured.items()}
    stages = min((r for r in measured["breakdown"]), key=lambda r: r["seconds"])["stages"]
    stages1 = min((r for r in measured["breakdown1"]), key=lambda r: r["seconds"])["stages"]
    peak = {name: max(r["peak_rss_bytes"] for r in found) / GIB for name, found in measured.items()}
    default = floors[0]["default"]
    scale = voxels / float(np.prod(BLOCK))
    floor_seconds = {p: min(f["precisions"][p]["seconds"] for f in floors) * scale for p in floors[0]["precisions"]}
    floor1 = min(f["precisions"][default]["seconds"] for f in floors1) * scale
    size = "x".join(map(str, shape))
    total = seconds["czii"] + seconds["postprocess"]
    total1 = seconds["stride1"] + seconds["postprocess1"]
    grid = f"output stride {stride}" + (" (the map binned by 2, 20 Å voxels)" if stride == 2 else "")
    block = f"{BLOCK[0]}x{BLOCK[1]}x{BLOCK[2]} block, x {scale:.1f}"
    results = [
        Result(
            benchmark=f"{size}: predict-probs + postprocess (default light model, default options: {grid})",
            value=f"{total:.1f} s (predict {seconds['czii']:.1f} s, {peak['czii']:.2f} GiB; "
            f"postprocess {seconds['postprocess']:.1f} s, {peak['postprocess']:.2f} GiB)",
            baseline="MONAI sliding_window_inference float32, 64^3, overlap 0.25, gaussian (+ softmax, save)",
            baseline_value=f"{seconds['monai']:.1f} s, {peak['monai']:.2f} GiB",
            ratio=seconds["monai"] / total,
            target="<= 20 s and >= 5x MONAI",
            ok=total <= 20.0 and seconds["monai"] / total >= 5.0,
        ),
        Result(
            benchmark=f"{size}: predict-probs peak RSS",
            value=f"{peak['czii']:.2f} GiB",
            baseline="MONAI sliding_window_inference in memory",
            baseline_value=f"{peak['monai']:.2f} GiB",
            ratio=peak["czii"] / peak["monai"],
            target="<= 2 GiB",
            ok=max(peak["czii"], peak["postprocess"], peak["stride1"], peak["postprocess1"]) <= 2.0,
        ),
        Result(
            benchmark=f"{size}: predict-probs default ({default}, halo tiles, {grid}) / bare forward over the "
            "voxels once",
            value=f"{seconds['czii']:.1f} s",
            baseline=f"bare {default} forward at output stride {stride}, {block}",
            baseline_value=f"{floor_seconds[default]:.1f} s",
            ratio=seconds["czii"] / floor_seconds[default],
            target="<= 1.2x",
            ok=seconds["czii"] / floor_seconds[default] <= 1.2,
        ),
        Result(
            benchmark=f"{size}: bare forward over the voxels once (the floor), float32",
            value=f"{floor_seconds['float32']:.1f} s",
            baseline=f"bare {default} forward",
            baseline_value=f"{floor_seconds[default]:.1f} s",
            ratio=floor_seconds["float32"] / floor_seconds[default],
            target="(information)",
            ok=True,
        ),
        _stages_row(f"{size}: predict-probs default stages", stages, seconds["czii"], floor_seconds[default]),
        Result(
            benchmark=f"{size}: predict-probs --output-stride 1 + postprocess (the map at full resolution)",
            value=f"{total1:.1f} s (predict {seconds['stride1']:.1f} s, {peak['stride1']:.2f} GiB; "
            f"postprocess {seconds['postprocess1']:.1f} s, {peak['postprocess1']:.2f} GiB)",
            baseline="MONAI sliding_window_inference float32, 64^3, overlap 0.25, gaussian (+ softmax, save)",
            baseline_value=f"{seconds['monai']:.1f} s; default options {total:.1f} s",
            ratio=seconds["monai"] / total1,
            target="(information: full-resolution maps)",
            ok=True,
        ),
        Result(
            benchmark=f"{size}: predict-probs --output-stride 1 / bare forward at stride 1 over the voxels once",
            value=f"{seconds['stride1']:.1f} s",
            baseline=f"bare {default} forward at output stride 1, {block}",
            baseline_value=f"{floor1:.1f} s",
            ratio=seconds["stride1"] / floor1,
            target="(information)",
            ok=True,
        ),
        _stages_row(f"{size}: predict-probs --output-stride 1 stages", stages1, seconds["stride1"], floor1),
        Result(
            benchmark=f"{size}: predict-probs --tiling sliding (64^3, overlap 0.25, gaussian, stride 1; the old "
            "default)",
            value=f"{seconds['sliding']:.1f} s, {peak['sliding']:.2f} GiB",
            baseline="predict-probs --output-stride 1 (halo tiles)",
            baseline_value=f"{seconds['stride1']:.1f} s",
            ratio=seconds["sliding"] / seconds["stride1"],
            target="(speed-up of the halo tiles)",
            ok=True,
        ),
        Result(
            benchmark=f"{size}: predict-probs default without transparent huge pages (GLIBC_TUNABLES="
            "glibc.malloc.hugetlb=0)",
            value=f"{seconds['no_huge_pages']:.1f} s, {peak['no_huge_pages']:.2f} GiB",
            baseline="predict-probs default (huge pages, as the czii executable asks where glibc and the kernel allow)",
            baseline_value=f"{seconds['czii']:.1f} s, {peak['czii']:.2f} GiB",
            ratio=seconds["no_huge_pages"] / seconds["czii"],
            target="(speed-up of the huge pages)",
            ok=True,
        ),
    ]
    return results + _training()


def _stages_row(title: str, stages: dict, command_seconds: float, floor: float) -> Result:
    """Where a prediction's time went, in process, against its floor."""
    return Result(
        benchmark=f"{title}, in process (s): " + ", ".join(f"{name} {stages.get(name, 0.0):.1f}" for name in STAGES),
        value=f"{sum(stages.values()):.1f} s, of which not forward "
        f"{sum(stages.values()) - stages.get('forward', 0.0):.1f} s (the command: {command_seconds:.1f} s)",
        baseline="bare forward over the voxels once",
        baseline_value=f"{floor:.1f} s",
        ratio=stages.get("forward", 0.0) / floor,
        target="(information: the ratio is the forward stage's, the tiles' redundancy)",
        ok=True,
    )


def _training() -> list[Result]:
    import torch

    from benchmarks.bench_train import BATCH, PATCH, interleaved_rates, training_volumes
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.make_labels import centres_from_picks
    from czii_cli.training.config import TrainConfig
    from czii_cli.training.registry import build_network
    from czii_cli.training.training import BatchMaker, Trainer

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    volumes = training_volumes(np.random.default_rng(0))
    centres = [centres_from_picks(v.picks, catalog=DEFAULT_CATALOG, voxel_size=10.0) for v in volumes]
    trainers = {}

    def stepper(precision: str):
        config = TrainConfig(loss=(("ce", 1.0), ("tversky", 0.5)), patch=PATCH, batch_size=BATCH, precision=precision)
        torch.manual_seed(0)
        trainer = Trainer(
            build_network(config.arch, in_channels=1, out_channels=7),
            config=config,
            activation="softmax",
            class_weights=[1.0] + [4.0] * 6,
            device=torch.device("cpu"),
        )
        trainers[precision] = trainer
        batches = BatchMaker(volumes, config=config, n_channels=7, centres=centres)
        rng = np.random.default_rng(0)
        return lambda: trainer.train_step(*batches.batch(rng))

    default, plain = interleaved_rates(stepper("bfloat16"), stepper("float32"), warmup=2, timed=5)
    layout = "channels-last" if trainers["bfloat16"].layout == torch.channels_last_3d else "contiguous"
    return [
        Result(
            benchmark=f"train default recipe (light 64^3 x {BATCH}): patches/s, --precision bfloat16 ({layout})",
            value=f"{default:.2f} patches/s",
            baseline="float32 (precision auto on a CPU), contiguous",
            baseline_value=f"{plain:.2f} patches/s",
            ratio=default / plain,
            target=">= 1.5x",
            ok=default / plain >= 1.5,
        )
    ]


def _simulated_map(path: Path, shape) -> None:
    """The postprocess benchmark's map (a blob per particle, decoys, noise) at ``shape``."""
    from benchmarks import bench_postprocess

    previous = bench_postprocess.SHAPE
    bench_postprocess.SHAPE = tuple(shape)
    try:
        bench_postprocess.build_map(path)
    finally:
        bench_postprocess.SHAPE = previous


def _binned_map(source: Path, target: Path) -> None:
    """``source`` (a probs artifact) binned by 2 channel by channel: the grid of a stride-2 map."""
    from czii_cli.io.artifacts import create_artifact, read_artifact
    from czii_cli.resample import bin_volume, binned_origin, binned_shape

    volume = read_artifact(source)
    meta = volume.meta.evolve(
        voxel_size=volume.meta.voxel_size * 2,
        origin=binned_origin(volume.meta.origin, voxel_size=volume.meta.voxel_size, factor=2),
    )
    shape = (volume.shape[0], *binned_shape(volume.shape[1:], factor=2))
    with create_artifact(target, shape=shape, dtype="float16", meta=meta) as out:
        for channel in range(volume.shape[0]):
            out[channel] = bin_volume(np.asarray(volume.data[channel]), factor=2).astype(np.float16)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_default_model(path: Path, *, output_stride: int) -> None:
    """The default ``czii train`` model (light, 64^3 patch, trained for ``output_stride`` as the plan
    chooses), random weights, head biased to background."""
    import torch

    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.normalize import normalization_method
    from czii_cli.training.checkpoint import ModelFile, save_model
    from czii_cli.training.config import TrainConfig
    from czii_cli.training.registry import build_network, resolve_params

    config = TrainConfig()
    torch.manual_seed(0)
    network = build_network(config.arch, in_channels=1, out_channels=CLASSES)
    with torch.no_grad():
        network.head.bias[0] += 6.0  # a trained net says background almost everywhere
    save_model(
        path,
        ModelFile(
            arch=config.arch,
            arch_params=resolve_params(config.arch),
            classes=["background", *DEFAULT_CATALOG.names],
            catalog=DEFAULT_CATALOG.to_json(),
            target="spheres",
            activation="softmax",
            normalization=normalization_method("zscore"),
            patch_size=list(config.patch),
            voxel_size=10.0,
            train={"config": {"output_stride": output_stride}},
            state_dict=network.state_dict(),
        ),
    )


if __name__ == "__main__":
    start = time.perf_counter()
    for result in run():
        print(result)
    print(f"{time.perf_counter() - start:.0f} s")
