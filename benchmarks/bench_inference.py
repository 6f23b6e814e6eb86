"""Sliding-window inference on a CPU: throughput against MONAI, overhead, peak memory.

1. Throughput on 96x320x320 with MONAI's UNet (32,64,128,128), strides (2,2,1), one
   residual unit (58 kFLOP per voxel), 96^3 windows, overlap 0.25, batch 1, softmax
   output: czii's ``predict_volume`` against MONAI's ``sliding_window_inference``
   (Gaussian blending) followed by a softmax, and against the bare network forward over
   the same 25 windows.  Each is run twice, interleaved, and the best time kept.
2. A full-size 184x630x630 tomogram with a 7-class output through the real command
   (``czii predict-probs``: MRC in, normalization, zarr out) with a cheap net (``light``
   with one level of 4 channels), in a fresh process for its peak RSS and time; the
   baseline is MONAI's ``sliding_window_inference`` with the same net, window and
   overlap, in memory, followed by a softmax and a save, in a fresh process too.  Both
   run twice, interleaved: best time, highest peak.

On 2 shared cores the whole benchmark takes 3 to 10 minutes, depending on the load.
"""

from __future__ import annotations

import tempfile
import time
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
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""

MONAI = """
import json, os, time
import mrcfile, numpy as np, torch
from monai.inferers import sliding_window_inference
from czii_cli.models.checkpoint import load_model_file
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
        spatial_dims=3, in_channels=1, out_channels=CLASSES, channels=(32, 64, 128, 128), strides=(2, 2, 1),
        num_res_units=1,
    ).eval()


def _throughput() -> list[Result]:
    import os

    import torch
    from monai.inferers import sliding_window_inference

    from czii_cli.inference import Tiling, predict_volume
    from czii_cli.inference.runner import NetworkRunner

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    network = _reference_unet()
    volume = np.random.default_rng(0).normal(size=THROUGHPUT_SHAPE).astype(np.float32)
    tensor = torch.from_numpy(volume)[None, None]
    tiling = Tiling.plan(THROUGHPUT_SHAPE, WINDOW, overlap=OVERLAP)
    windows = [tensor[:, :, :, y : y + WINDOW[1], x : x + WINDOW[2]] for y, x in tiling.plane_windows()]
    runner = NetworkRunner(network, device=torch.device("cpu"))

    def monai() -> None:
        with torch.inference_mode():
            torch.softmax(sliding_window_inference(tensor, WINDOW, 1, network, overlap=OVERLAP, mode="gaussian"), 1)

    def czii() -> None:
        predict_volume(network, volume, patch_size=WINDOW, overlap=OVERLAP, batch_size=1)

    def bare() -> None:
        with torch.inference_mode(), runner:
            for window in windows:
                runner(window)

    with torch.inference_mode():
        network(windows[0])  # warm-up
    best = {"monai": float("inf"), "czii": float("inf"), "bare": float("inf")}
    for _ in range(2):
        for name, function in (("monai", monai), ("czii", czii), ("bare", bare)):
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    shape = "x".join(map(str, THROUGHPUT_SHAPE))
    speedup = best["monai"] / best["czii"]
    overhead = best["czii"] / best["bare"]
    return [
        Result(
            benchmark=f"predict {shape}, UNet(32,64,128,128), 96^3, overlap 0.25: throughput",
            value=f"{best['czii']:.1f} s",
            baseline="MONAI sliding_window_inference (gaussian) + softmax",
            baseline_value=f"{best['monai']:.1f} s",
            ratio=speedup,
            target=">= 1.3x",
            ok=speedup >= 1.3,
        ),
        Result(
            benchmark=f"predict {shape}, UNet: time / bare forward of its {tiling.count} windows",
            value=f"{best['czii']:.1f} s",
            baseline=f"bare forward, {runner.layout} layout",
            baseline_value=f"{best['bare']:.1f} s",
            ratio=overhead,
            target="<= 1.15x",
            ok=overhead <= 1.15,
        ),
    ]


def _full_size() -> list[Result]:
    from czii_cli.io.volumes import write_mrc

    with tempfile.TemporaryDirectory(prefix="czii-bench-") as tmp:
        mrc, model = Path(tmp) / "TS_full.mrc", Path(tmp) / "light.pt"
        write_mrc(mrc, np.random.default_rng(0).normal(size=FULL_SHAPE).astype(np.float32), voxel_size=10.0)
        _write_light_model(model)
        monai = MONAI.format(model=str(model), mrc=str(mrc), window=WINDOW, overlap=OVERLAP,
                             out=str(Path(tmp) / "monai.npy"))
        czii = CZII.format(args=["predict-probs", str(mrc), "-m", str(model), "--overlap", str(OVERLAP), "-o",
                                 str(Path(tmp) / "p.zarr"), "-f", "-q"])
        runs = {"monai": [], "czii": []}
        for _ in range(2):  # interleaved, best time and worst memory of each
            runs["monai"].append(run_isolated(monai))
            runs["czii"].append(run_isolated(czii))
    baseline = {"seconds": min(r["seconds"] for r in runs["monai"]),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs["monai"])}
    measured = {"seconds": min(r["seconds"] for r in runs["czii"]),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs["czii"])}
    shape = "x".join(map(str, FULL_SHAPE))
    peak, baseline_peak = measured["peak_rss_bytes"] / GIB, baseline["peak_rss_bytes"] / GIB
    speedup = baseline["seconds"] / measured["seconds"]
    return [
        Result(
            benchmark=f"predict-probs {shape}, {CLASSES} classes, light net: peak RSS",
            value=f"{peak:.2f} GiB",
            baseline="MONAI sliding_window_inference in memory",
            baseline_value=f"{baseline_peak:.2f} GiB",
            ratio=peak / baseline_peak,
            target="< 3 GiB",
            ok=peak < 3.0,
        ),
        Result(
            benchmark=f"predict-probs {shape}, light net: throughput",
            value=f"{measured['seconds']:.1f} s",
            baseline="MONAI sliding_window_inference + softmax + save",
            baseline_value=f"{baseline['seconds']:.1f} s",
            ratio=speedup,
            target=">= 1.3x",
            ok=speedup >= 1.3,
        ),
    ]


def _write_light_model(path: Path) -> None:
    import torch

    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.models.checkpoint import ModelFile, save_model
    from czii_cli.models.registry import build_network
    from czii_cli.normalize import normalization_method

    torch.manual_seed(0)
    params = {"channels": [4]}
    network = build_network("light", in_channels=1, out_channels=CLASSES, params=params)
    save_model(path, ModelFile(
        arch="light", arch_params=params, classes=["background", *DEFAULT_CATALOG.names],
        catalog=DEFAULT_CATALOG.to_json(), target="spheres", activation="softmax",
        normalization=normalization_method("zscore"), patch_size=list(WINDOW), voxel_size=10.0,
        state_dict=network.state_dict(),
    ))
