"""Sliding-window inference on a CPU: throughput against MONAI, overhead, peak memory.

czii runs twice in each part: with its default ``--precision auto`` (bfloat16 autocast
on a CPU with native bfloat16, else float32) and with ``--precision float32``.  MONAI
always runs in float32, as its ``sliding_window_inference`` does by default.  So the
rows say which comparison they make: czii default against MONAI float32 (what the
throughput target is stated on), czii float32 against MONAI float32 (the same
arithmetic), and czii against the bare forward in the same precision (the overhead).

1. Throughput on 96x320x320 with MONAI's UNet (32,64,128,128), strides (2,2,1), one
   residual unit (58 kFLOP per voxel), 96^3 windows, overlap 0.25, batch 1, softmax
   output: czii's ``predict_volume`` against MONAI's ``sliding_window_inference``
   (Gaussian blending) followed by a softmax, and against the bare network forward over
   the same 25 windows (``NetworkRunner``, layout already chosen, same precision).
   Each is run three times, interleaved, and the best time kept.
2. A full-size 184x630x630 tomogram with a 7-class output through the real command
   (``czii predict-probs``: MRC in, normalization, zarr out) with a cheap net (``light``
   with one level of 4 channels), in a fresh process for its peak RSS and time; the
   baseline is MONAI's ``sliding_window_inference`` with the same net, window and
   overlap, in memory, followed by a softmax and a save, in a fresh process too.  All
   run twice, interleaved, each writing a new output (the previous one is deleted
   first, off the clock): best time, highest peak (over both czii precisions).

On 2 shared cores the whole benchmark takes 5 to 15 minutes, depending on the load.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.common import GIB, Result, run_isolated

THROUGHPUT_SHAPE = (96, 320, 320)
FULL_SHAPE = (184, 630, 630)
WINDOW = (96, 96, 96)
OVERLAP = 0.25
CLASSES = 7

CZII = """
import json, time
import torch  # imported before the clock starts, as in the MONAI run
from czii_cli.main import app
start = time.perf_counter()
app({args!r}, standalone_mode=False)
seconds = time.perf_counter() - start
from czii_cli.predict_probs import resolve_precision
print(json.dumps({{"seconds": seconds, "precision": resolve_precision("auto", torch.device("cpu"))}}))
"""

MONAI = """
import json, os, time
import mrcfile, numpy as np, torch
from monai.inferers import sliding_window_inference
from czii_cli.training.checkpoint import load_model_file
from czii_cli.normalize import normalize
torch.set_num_threads(len(os.sched_getaffinity(0)))
network = load_model_file({model!r}).build()
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


def run() -> list[Result]:
    return _throughput() + _full_size()


def _reference_unet():
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=CLASSES,
        channels=(32, 64, 128, 128),
        strides=(2, 2, 1),
        num_res_units=1,
    ).eval()


def _throughput() -> list[Result]:
    import os

    import torch
    from monai.inferers import sliding_window_inference

    from czii_cli.predict_probs import Tiling, predict_volume, resolve_precision
    from czii_cli.predict_probs.runner import NetworkRunner

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    network = _reference_unet()
    volume = np.random.default_rng(0).normal(size=THROUGHPUT_SHAPE).astype(np.float32)
    tensor = torch.from_numpy(volume)[None, None]
    tiling = Tiling.plan(THROUGHPUT_SHAPE, WINDOW, overlap=OVERLAP)
    windows = [tensor[:, :, :, y : y + WINDOW[1], x : x + WINDOW[2]] for y, x in tiling.plane_windows()]
    default = resolve_precision("auto", torch.device("cpu"))
    precisions = sorted({default, "float32"})
    runners = {p: NetworkRunner(network, device=torch.device("cpu"), precision=p) for p in precisions}

    def monai() -> None:
        with torch.inference_mode():
            torch.softmax(sliding_window_inference(tensor, WINDOW, 1, network, overlap=OVERLAP, mode="gaussian"), 1)

    def czii(precision: str) -> None:
        predict_volume(network, volume, patch_size=WINDOW, overlap=OVERLAP, batch_size=1, precision=precision)

    def bare(precision: str) -> None:
        runner = runners[precision]
        with torch.inference_mode(), runner:
            for window in windows:
                runner(window)

    cases = {"monai": monai}
    for precision in precisions:
        cases[f"czii {precision}"] = partial(czii, precision)
        cases[f"bare {precision}"] = partial(bare, precision)
    with torch.inference_mode():
        network(windows[0])  # warm-up
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(3):
        for name, function in cases.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    shape = "x".join(map(str, THROUGHPUT_SHAPE))
    task = f"predict {shape}, UNet(32,64,128,128), 96^3, overlap 0.25"
    monai_baseline = "MONAI sliding_window_inference float32 (gaussian) + softmax"
    results = []
    for precision, label in ((default, f"czii default ({default})"), ("float32", "czii --precision float32")):
        speedup = best["monai"] / best[f"czii {precision}"]
        results.append(
            Result(
                benchmark=f"{task}: throughput, {label}",
                value=f"{best[f'czii {precision}']:.1f} s",
                baseline=monai_baseline,
                baseline_value=f"{best['monai']:.1f} s",
                ratio=speedup,
                target=">= 1.3x" if precision == default else ">= 0.95x (same arithmetic)",
                ok=speedup >= (1.3 if precision == default else 0.95),
            )
        )
    for precision in precisions:
        label = f"czii default ({default})" if precision == default else "czii float32"
        overhead = best[f"czii {precision}"] / best[f"bare {precision}"]
        results.append(
            Result(
                benchmark=f"{task}: {label} time / bare forward of its {tiling.count} windows",
                value=f"{best[f'czii {precision}']:.1f} s",
                baseline=f"bare {precision} forward, {runners[precision].layout} layout",
                baseline_value=f"{best[f'bare {precision}']:.1f} s",
                ratio=overhead,
                target="<= 1.15x",
                ok=overhead <= 1.15,
            )
        )
    return results


def _full_size() -> list[Result]:
    from czii_cli.io.volumes import write_mrc

    with tempfile.TemporaryDirectory(prefix="czii-bench-") as tmp:
        mrc, model = Path(tmp) / "TS_full.mrc", Path(tmp) / "light.pt"
        write_mrc(mrc, np.random.default_rng(0).normal(size=FULL_SHAPE).astype(np.float32), voxel_size=10.0)
        _write_light_model(model)
        outputs = {"monai": Path(tmp) / "monai.npy", "auto": Path(tmp) / "p.zarr", "float32": Path(tmp) / "p.zarr"}
        codes = {
            "monai": MONAI.format(
                model=str(model), mrc=str(mrc), window=WINDOW, overlap=OVERLAP, out=str(outputs["monai"])
            )
        }
        for precision in ("auto", "float32"):
            codes[precision] = CZII.format(
                args=[
                    "predict-probs",
                    str(mrc),
                    "-m",
                    str(model),
                    "--overlap",
                    str(OVERLAP),
                    "--precision",
                    precision,
                    "-o",
                    str(outputs[precision]),
                    "-q",
                ]
            )
        runs = {name: [] for name in codes}
        for _ in range(2):  # interleaved, best time and worst memory of each
            for name, code in codes.items():
                _remove(outputs[name])  # each run writes afresh: replacing an artifact costs deleting it
                runs[name].append(run_isolated(code))
    seconds = {name: min(r["seconds"] for r in found) for name, found in runs.items()}
    peak = max(r["peak_rss_bytes"] for name in ("auto", "float32") for r in runs[name]) / GIB
    baseline_peak = max(r["peak_rss_bytes"] for r in runs["monai"]) / GIB
    shape = "x".join(map(str, FULL_SHAPE))
    default = runs["auto"][0]["precision"]
    results = [
        Result(
            benchmark=f"predict-probs {shape}, {CLASSES} classes, light net: peak RSS (both precisions)",
            value=f"{peak:.2f} GiB",
            baseline="MONAI sliding_window_inference in memory",
            baseline_value=f"{baseline_peak:.2f} GiB",
            ratio=peak / baseline_peak,
            target="< 3 GiB",
            ok=peak < 3.0,
        ),
    ]
    for name, label in (("auto", f"czii default ({default})"), ("float32", "czii --precision float32")):
        speedup = seconds["monai"] / seconds[name]
        results.append(
            Result(
                benchmark=f"predict-probs {shape}, light net: throughput, {label}",
                value=f"{seconds[name]:.1f} s",
                baseline="MONAI sliding_window_inference float32 + softmax + save",
                baseline_value=f"{seconds['monai']:.1f} s",
                ratio=speedup,
                target=">= 1.3x" if name == "auto" else ">= 0.95x (same arithmetic)",
                ok=speedup >= (1.3 if name == "auto" else 0.95),
            )
        )
    return results


def _remove(path: Path) -> None:
    """Delete a file or a directory tree, if there."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _write_light_model(path: Path) -> None:
    import torch

    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.normalize import normalization_method
    from czii_cli.training.checkpoint import ModelFile, save_model
    from czii_cli.training.registry import build_network

    torch.manual_seed(0)
    params = {"channels": [4]}
    network = build_network("light", in_channels=1, out_channels=CLASSES, params=params)
    save_model(
        path,
        ModelFile(
            arch="light",
            arch_params=params,
            classes=["background", *DEFAULT_CATALOG.names],
            catalog=DEFAULT_CATALOG.to_json(),
            target="spheres",
            activation="softmax",
            normalization=normalization_method("zscore"),
            patch_size=list(WINDOW),
            voxel_size=10.0,
            state_dict=network.state_dict(),
        ),
    )
