"""Predict per-voxel class probabilities for tomograms with one or more trained models.

A window (the model's patch size, or --window Z Y X) slides over each tomogram with at
least --overlap between neighbours; windows are blended with Gaussian weights into a
float16 [italic]probs[/italic] artifact whose channels are the model's classes.  The input
is normalized as the model's training data was (an artifact written by `czii normalize`
is used as is).  --tta averages exactly inverted flips and x-y quarter turns: none,
flips (identity + 3 flips), rot90 (identity + 3 turns) or all (7-way: identity, 3 turns,
3 flips).  Several -m models are averaged on the fly: probabilities, or logits with
--logits.  Memory stays bounded (finished z-ranges stream into the output), so a full
tomogram fits a laptop; the GPU is used when there is one (fp16 autocast), else every CPU
core.  One tomogram goes to -o OUT or, piped, to stdout as a zip; several (or every run of
a copick project without --run) go to -o DIR as DIR/<run>.zarr.

[bold]Examples[/bold]

  czii predict-probs TS_5_4.mrc -m unet.pt -o TS_5_4.zarr
  czii predict-probs TS_5_4.mrc -m unet.pt > p.zarr && czii postprocess p.zarr
  czii predict-probs project/copick_config.json --tomo-type denoised -m a.pt -m b.pt --tta all -o probs/
  czii predict-probs a.mrc b.mrc -m unet.pt --logits --window 64 128 128 -o probs/
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Output, Overwrite, Quiet, Run, TomoType, Verbose, VoxelSize


def command(
    tomograms: Annotated[list[Path], typer.Argument(help="Tomograms: MRC, OME-Zarr, czii artifact or copick project.")],
    model: Annotated[list[Path], typer.Option("-m", "--model", help="Model file; repeat to ensemble.")],
    output: Output = None,
    tta: Annotated[str, typer.Option("--tta", help="none, flips, rot90 or all.")] = "none",
    overlap: Annotated[float, typer.Option("--overlap", min=0.0, max=0.95, help="Minimum window overlap.")] = 0.25,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Windows per network call.")] = 1,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="Output dtype: float16 or float32.")] = "float16",
    logits: Annotated[bool, typer.Option("--logits", help="Write averaged raw logits, not probabilities.")] = False,
    window: Annotated[
        tuple[int, int, int] | None,
        typer.Option("--window", help="Window Z Y X in voxels (default: the model's patch size).", show_default=False),
    ] = None,
    run: Run = None,
    tomo_type: TomoType = None,
    voxel_size: VoxelSize = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    import os

    import torch

    from ..console import debug, info, make_progress, set_verbosity, warn
    from ..errors import DataError, UsageError
    from ..inference import Tiling, predict_into, resolve_device, tta_transforms
    from ..inference.models import choose_window, load_models, members_for
    from ..io.artifacts import create_artifact
    from ..io.volumes import VolumeRequest
    from ..inference.io import plan_outputs, read_tomograms

    set_verbosity(quiet=quiet, verbose=verbose)
    tta_transforms(tta)
    if dtype not in ("float16", "float32"):
        raise UsageError(f"--dtype must be float16 or float32, got {dtype!r}")
    torch_device = resolve_device(device)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    models = load_models(model)
    chosen_window = choose_window(models, model, window)
    volumes = read_tomograms(tomograms, VolumeRequest(run=run, tomo_type=tomo_type, voxel_size=voxel_size))
    targets = plan_outputs(volumes, output, overwrite=overwrite)
    networks = [m.build() for m in models]
    activation = "logits" if logits else models[0].activation
    for volume, target in zip(volumes, targets):
        if abs(volume.meta.voxel_size - models[0].voxel_size) > 0.05 * models[0].voxel_size:
            warn(f"{volume.source}: voxel size {volume.meta.voxel_size} Å, the model was trained at "
                 f"{models[0].voxel_size} Å")
        members, normalization = members_for(networks, models, volume)
        extra = {"activation": activation, "catalog": models[0].catalog, "tta": tta,
                 "models": [{"path": str(p), "arch": m.arch, "target": m.target} for p, m in zip(model, models)]}
        if logits:
            extra["logits_of"] = models[0].activation
        args = {"tta": tta, "overlap": overlap, "window": list(chosen_window), "batch_size": batch_size,
                "device": str(torch_device), "dtype": dtype, "logits": logits, "normalization": normalization}
        meta = volume.meta.evolve(kind="probs", axes="czyx", classes=tuple(models[0].classes), extra=extra)
        meta = meta.with_step("predict-probs", args=args, inputs=[volume.source, *map(str, model)])
        count = Tiling.plan(volume.shape, chosen_window, overlap=overlap).count
        shape = (len(models[0].classes), *volume.shape)
        with make_progress() as progress, create_artifact(
            target, shape=shape, dtype=dtype, meta=meta, overwrite=overwrite
        ) as out:
            task = progress.add_task(str(volume.meta.run), total=count, status="")
            try:
                report = predict_into(
                    members, volume.data, lambda channels: out, patch_size=chosen_window, overlap=overlap,
                    batch_size=batch_size, tta=tta, activation=activation, device=torch_device,
                    on_windows=lambda n: progress.advance(task, n),
                )
            except torch.cuda.OutOfMemoryError:
                raise DataError(f"{volume.source}: out of GPU memory; try a smaller --batch-size or --window") from None
        debug(f"memory layout per model: {', '.join(report['layouts'])}")
        destination = "stdout" if str(target) == "-" else target
        info(f"{volume.source}: {count} windows x {len(models)} model(s) x {tta} TTA -> {destination}")
