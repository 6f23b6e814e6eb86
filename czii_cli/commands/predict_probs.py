"""Predict per-voxel class probabilities for tomograms with one or more trained models.

--tiling auto (the default) measures how far the network looks (its receptive field):
when that is bounded (convolutions, pooling, BatchNorm), the tomogram is cut into a few
large tiles, each reaching that far beyond the voxels taken from it, sized to --memory
GiB, and the tile centres are stitched without blending: the same map as one pass over
the whole tomogram, each voxel computed about once.  Otherwise (InstanceNorm,
GroupNorm), or with --tiling sliding or --window, a window (the model's patch size, or
--window Z Y X) slides over each tomogram with at least --overlap between neighbours and
windows are blended with Gaussian weights (--overlap and --batch-size apply to these
windows).  The output is a float16 [italic]probs[/italic] artifact whose channels are
the model's classes.  The input
is normalized as the model's training data was (an artifact written by `czii normalize`
is used as is).  --tta averages exactly inverted flips and x-y quarter turns: none,
flips (identity + 3 flips), rot90 (identity + 3 turns) or all (7-way: identity, 3 turns,
3 flips).  Several -m models are averaged on the fly: probabilities, or logits with
--logits.  Memory stays bounded (finished z-ranges stream into the output), so a full
tomogram fits a laptop; the GPU is used when there is one, else every CPU core.
--precision auto runs the networks in float16 autocast on a GPU and in bfloat16 autocast
on a CPU with native bfloat16 (AVX512-BF16 or AMX; up to twice as fast as float32), else
in float32; probabilities are blended in float32 whatever the precision.
--output-stride 2 writes the map at half resolution, from the light net's own grid (it
runs at half resolution inside and skips its final up-sampling): 8x fewer voxels to
activate, write and post-process, twice the voxel size, and picks still in the
tomogram's Å; it needs halo tiles and a light net with stem_stride 2, and auto means 1.
One tomogram
goes to -o OUT or, piped, to stdout as a zip; several (or every run of a copick project
without --run) go to -o DIR as DIR/<run>.zarr, as does one with -o DIR/.

Batches: -j N predicts N tomograms at a time in local processes (the cores are shared
among them); --scheduler ADDRESS sends each tomogram to an existing Dask cluster as one
task, which loads the models and writes its artifact itself, so inputs, models and -o DIR
must be on a filesystem the workers share (see docs/cluster.md).  One progress bar covers
the batch; a tomogram that fails is reported by name, the others go on, and the command
exits 1 at the end.  Artifacts appear under their names only when complete, so
--skip-existing (which skips tomograms whose artifact exists) can rerun a batch that was
killed and redo just what is missing.

-o copick:CONFIG writes the maps into that copick project instead: each class channel
(background excepted) of each run becomes a copick segmentation,
overlay/ExperimentRuns/<run>/Segmentations/<voxel size>_<user>_<session>_<class>.zarr
(--user-id, default czii; --session-id, default 0), which napari-copick lists.  The maps
are staged in a hidden folder of the overlay and moved in when complete;
--skip-existing skips runs whose segmentations all exist.  --keep-maps DIR keeps the czii
maps as well (DIR/<run>.zarr, what `czii postprocess` reads), so picks and maps come from
one prediction.

[bold]Examples[/bold]

  czii predict-probs TS_5_4.mrc -m unet.pt -o TS_5_4.zarr
  czii predict-probs TS_5_4.mrc -m unet.pt > p.zarr && czii postprocess p.zarr
  czii predict-probs project/copick_config.json --tomo-type denoised -m a.pt -m b.pt --tta all -o probs/
  czii predict-probs a.mrc b.mrc -m unet.pt --logits --window 64 128 128 -o probs/
  czii predict-probs tomos/*.mrc -m unet.pt -j 4 --skip-existing -o probs/
  czii predict-probs project/ -m unet.pt --scheduler tcp://head:8786 -o /shared/probs/
  czii predict-probs project/copick_config.json -m unet.pt -o copick:project/copick_config.json --user-id czii
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .batching import Scheduler, SkipExisting
from .common import Jobs, Outputs, Overwrite, Quiet, Run, TomoType, Verbose, VoxelSize

DEFAULT_MEMORY_GIB = 1.75


def command(
    tomograms: Annotated[list[Path], typer.Argument(help="Tomograms: MRC, OME-Zarr, czii artifact or copick project.")],
    model: Annotated[list[Path], typer.Option("-m", "--model", help="Model file; repeat to ensemble.")],
    output: Outputs = None,
    tta: Annotated[str, typer.Option("--tta", help="none, flips, rot90 or all.")] = "none",
    overlap: Annotated[float, typer.Option("--overlap", min=0.0, max=0.95, help="Minimum window overlap.")] = 0.25,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Windows per network call.")] = 1,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[
        str, typer.Option("--precision", help="Network arithmetic: auto, float32 or bfloat16.")
    ] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="Output dtype: float16 or float32.")] = "float16",
    logits: Annotated[bool, typer.Option("--logits", help="Write averaged raw logits, not probabilities.")] = False,
    window: Annotated[
        tuple[int, int, int] | None,
        typer.Option(
            "--window",
            help="Sliding window Z Y X in voxels (default: the model's patch size); a side "
            "longer than the tomogram's is shrunk to it, rounded up to what the network takes.",
            show_default=False,
        ),
    ] = None,
    tiling: Annotated[
        str, typer.Option("--tiling", help="auto, halo (large tiles, stitched) or sliding (overlapping windows).")
    ] = "auto",
    memory: Annotated[
        float, typer.Option("--memory", min=0.05, help="GiB a halo tile may use (network and buffers).")
    ] = DEFAULT_MEMORY_GIB,
    output_stride: Annotated[
        str,
        typer.Option(
            "--output-stride",
            help="auto, 1 (the tomogram's grid) or 2 (half resolution: the light net's own grid, "
            "twice the voxel size; picks stay in the tomogram's Å).",
        ),
    ] = "auto",
    run: Run = None,
    tomo_type: TomoType = None,
    voxel_size: VoxelSize = None,
    jobs: Jobs = 1,
    scheduler: Scheduler = None,
    skip_existing: SkipExisting = False,
    user_id: Annotated[
        str, typer.Option("--user-id", help="With -o copick:CONFIG: the user the maps are written under.")
    ] = "czii",
    session_id: Annotated[
        str, typer.Option("--session-id", help="With -o copick:CONFIG: the session the maps are written under.")
    ] = "0",
    keep_maps: Annotated[
        Path | None,
        typer.Option(
            "--keep-maps",
            help="With -o copick:CONFIG: also keep the czii maps in this folder, one <run>.zarr each.",
            show_default=False,
        ),
    ] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    from ..io.copick import copick_target

    if keep_maps is not None and copick_target(output) is None:
        from ..errors import UsageError

        raise UsageError("--keep-maps goes with -o copick:CONFIG; without it, -o DIR/ keeps the maps")
    if copick_target(output) is not None:
        arguments = dict(locals())
        arguments.pop("copick_target")
        return _predict_into_copick(**arguments)
    import os

    import torch

    from ..console import debug, info, make_progress, set_verbosity, warn
    from ..coords import MODEL_VOXEL_SIZE_WARNING
    from ..errors import UsageError
    from ..io.artifacts import output_is_complete
    from ..io.atomic import is_stdout
    from ..io.tomogram_inputs import find_tomograms, plan_outputs
    from ..io.volumes import VolumeRequest
    from ..predict_probs.job import describe_prediction, predict_jobs, predict_settings, predict_tomogram
    from ..predict_probs.members import load_models, model_bin_factor
    from .batching import absolute, check_batch_options, run_with_progress
    from .options import predict_options

    set_verbosity(quiet=quiet, verbose=verbose)
    stride = predict_options(
        tta=tta, dtype=dtype, device=device, precision=precision, tiling=tiling, output_stride=output_stride
    )
    check_batch_options(
        scheduler=scheduler,
        skip_existing=skip_existing,
        overwrite=overwrite,
        stdin=any(is_stdout(p) for p in tomograms),
    )
    models = load_models(model)
    settings = predict_settings(
        model,
        models,
        window=window,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        device=device,
        dtype=dtype,
        logits=logits,
        precision=precision,
        tiling=tiling,
        memory_budget=memory * 1024**3,
        output_stride=stride,
    )
    found = find_tomograms(tomograms, VolumeRequest(run=run, tomo_type=tomo_type, voxel_size=voxel_size))
    targets = plan_outputs(
        [t.name for t in found],
        output,
        overwrite=overwrite,
        skip_existing=skip_existing,
        sources=[t.volume.source if t.volume is not None else str(t.path) for t in found],
    )
    if is_stdout(targets[0]) and (skip_existing or scheduler is not None):
        raise UsageError("--skip-existing and --scheduler need an output on disk; pass -o OUT or -o DIR/")
    trained = models[0].voxel_size
    for volume in (item.volume for item in found if item.volume is not None):
        factor = model_bin_factor(models, model, volume)
        if factor > 1:
            info(f"{volume.source}: binned by {factor} to the model's {trained:g} Å voxels")
        elif abs(volume.meta.voxel_size - trained) > MODEL_VOXEL_SIZE_WARNING * trained:
            warn(f"{volume.source}: voxel size {volume.meta.voxel_size} Å, the model was trained at {trained} Å")

    def log(result: dict) -> None:
        debug(f"{result['precision']} arithmetic, memory layout per model: {', '.join(result['layouts'])}")
        info(describe_prediction(result, models=len(models), tta=tta))

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if len(found) == 1 and scheduler is None:  # one tomogram: in this process, a bar over its windows
        (item,), (target,) = found, targets
        assert item.volume is not None  # find_tomograms raises the error of a single tomogram it cannot open
        if skip_existing and output_is_complete(Path(target)):
            info(f"skipped {item.name}: output exists")
            return
        with make_progress() as progress:
            task = progress.add_task(item.name, total=None, status="")
            log(
                predict_tomogram(
                    item.volume,
                    target,
                    models=models,
                    networks=[m.build() for m in models],
                    settings=settings,
                    overwrite=overwrite,
                    on_windows=lambda n: progress.advance(task, n),
                    on_plan=lambda n: progress.update(task, total=n),
                )
            )
        return
    place = absolute if scheduler is not None else Path  # Dask workers run elsewhere: absolute paths
    batch = predict_jobs(found, targets, settings=settings, overwrite=overwrite, place=place)
    run_with_progress(
        batch,
        workers=jobs,
        scheduler=scheduler,
        skip_existing=skip_existing,
        description="predict-probs",
        on_done=lambda name, result: log(result),
    )


def _predict_into_copick(
    *,
    output: str,
    user_id: str,
    session_id: str,
    keep_maps: Path | None,
    skip_existing: bool,
    overwrite: bool,
    quiet: bool,
    verbose: bool,
    **options,
) -> None:
    """``-o copick:CONFIG``: predict into a staging folder of the overlay, then write segmentations."""
    import shutil
    import tempfile

    from ..console import info, set_verbosity
    from ..errors import UsageError
    from ..io.artifacts import read_artifact
    from ..io.atomic import atomic_path
    from ..io.copick import copick_target, open_output_project
    from ..io.copick_segmentations import probs_segmentation_names, segmentation_path, write_probs_to_copick
    from ..io.tomogram_inputs import find_tomograms
    from ..io.volumes import VolumeRequest
    from ..predict_probs.members import load_models, model_bin_factor
    from ..predict_probs.stride import resolve_output_stride
    from .options import predict_options

    set_verbosity(quiet=quiet, verbose=verbose)
    requested = predict_options(
        **{key: options[key] for key in ("tta", "dtype", "device", "precision", "tiling", "output_stride")}
    )
    if skip_existing and overwrite:
        raise UsageError("--skip-existing keeps complete outputs and --overwrite replaces them; choose one")
    config = copick_target(output)
    assert config is not None  # only called for a copick: output
    project = open_output_project(config)
    models = load_models(options["model"])
    tiling = "sliding" if options["window"] and options["tiling"] == "auto" else options["tiling"]
    stride = resolve_output_stride(requested, models, options["model"], tiling=tiling)
    classes = models[0].classes
    request = VolumeRequest(run=options["run"], tomo_type=options["tomo_type"], voxel_size=options["voxel_size"])
    found = find_tomograms(options["tomograms"], request)
    runs, todo = project.runs(), []
    for item in found:
        if item.name not in runs:
            raise UsageError(
                f"{item.path}: run {item.name!r} is not in {project.config_path} (runs: {', '.join(runs)})"
            )
        voxel = 10.0  # no tomogram opened for this run: the default spacing
        if item.volume is not None:  # the map's voxels: the tomogram's, binned to the model's grid
            voxel = item.volume.meta.voxel_size * model_bin_factor(models, options["model"], item.volume)
        voxel *= stride  # and binned again at output stride 2
        names = probs_segmentation_names(classes, voxel_size=voxel, user=user_id, session=session_id)
        stores = [segmentation_path(project, item.name, n) for n in names]
        if skip_existing and all(s.exists() for s in stores):
            info(f"skipped {item.name}: its segmentations are in the project")
            continue
        for store in stores:  # with --skip-existing, the stores of a run left incomplete are redone
            if store.exists() and not (overwrite or skip_existing):
                raise UsageError(f"{store}: output exists; pass --overwrite to replace it (or --skip-existing)")
        todo.append(item)
    if not todo:
        return
    if keep_maps is not None:
        if not keep_maps.parent.exists():
            raise UsageError(f"{keep_maps}: the folder {keep_maps.parent} does not exist")
        keep_maps.mkdir(exist_ok=True)
        for item in todo:
            if (keep_maps / f"{item.name}.zarr").exists() and not (overwrite or skip_existing):
                raise UsageError(f"{keep_maps / (item.name + '.zarr')}: output exists; pass --overwrite to replace it")
    project.overlay_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".czii-staging-", dir=project.overlay_root))
    try:
        calls = (
            [{}]
            if len(todo) == len(found)  # every run in one batch, else one call per remaining run
            else [{"tomograms": [item.path], "run": item.request.run} for item in todo]
        )
        for call in calls:
            command(
                **{**options, **call},
                output=f"{staging}/",
                skip_existing=False,
                overwrite=False,
                quiet=quiet,
                verbose=verbose,
                user_id=user_id,
                session_id=session_id,
            )
        for item in todo:
            stores = write_probs_to_copick(
                project,
                read_artifact(staging / f"{item.name}.zarr"),
                run=item.name,
                user=user_id,
                session=session_id,
                overwrite=overwrite or skip_existing,
            )
            info(f"{item.name}: {len(stores)} segmentations -> {stores[0].parent}")
            if keep_maps is not None:
                with atomic_path(keep_maps / f"{item.name}.zarr", overwrite=True) as kept:
                    shutil.move(staging / f"{item.name}.zarr", kept)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
