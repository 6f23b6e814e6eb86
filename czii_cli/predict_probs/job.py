"""One tomogram into one probability map: the unit of work of ``predict-probs``.

:func:`predict_tomogram` predicts an opened tomogram with loaded networks (the serial
command calls it with a per-window progress callback); :func:`predict_job` is the
batch job around it, a top-level function of plain, picklable arguments that opens the
tomogram and loads the models itself, so it runs the same in this process, in a local
worker process or as a task on a Dask worker.  The artifact is written atomically: it
appears under its name only when complete.  The map's metadata carries the pick
thresholds its model tuned (:mod:`czii_cli.pick_settings`) when the models agree on them,
so ``postprocess`` configures itself from the map.

At output stride 2 (:mod:`czii_cli.predict_probs.stride`) the map lies on the tomogram's
grid binned by 2: its shape is :func:`czii_cli.resample.binned_shape`, its voxel size
twice the tomogram's and its origin :func:`czii_cli.resample.binned_origin`, so the Å of
every later stage stay those of the tomogram.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..batch import Job
from ..errors import DataError, UsageError
from ..io.artifacts import Volume, create_artifact
from ..io.atomic import is_stdout
from ..io.tomogram_inputs import TomogramInput
from ..io.volumes import VolumeRequest, read_tomogram
from ..pick_settings import KEY as PICK_SETTINGS_KEY
from ..pick_settings import common_settings, from_training_summary
from ..resample import binned_origin, binned_shape
from ..training.checkpoint import ModelFile
from .members import at_model_grid, choose_window, fit_window, load_models, members_for, window_multiple
from .predict import FixedOutput, predict_into
from .runner import PRECISIONS, resolve_device, resolve_precision
from .stitch import DEFAULT_MEMORY_BUDGET
from .stride import OutputStride, resolve_output_stride


@dataclass(frozen=True)
class PredictSettings:
    """The resolved options of one ``predict-probs`` run, the same for every tomogram.

    Attributes
    ----------
    models : tuple of Path
        Model files, averaged as an ensemble.
    window : tuple of 3 int
        Window shape (z, y, x) in voxels; each tomogram shrinks it to its own shape
        (see :func:`czii_cli.predict_probs.members.fit_window`).
    overlap : float
        Minimum overlap between neighbouring windows, fraction of the window.
    batch_size : int
        Windows per network call.
    tta : str
        ``none``, ``flips``, ``rot90`` or ``all``.
    device : str
        ``auto``, ``cpu`` or ``cuda``, resolved where the tomogram is predicted.
    dtype : str
        Output dtype, ``float16`` or ``float32``.
    logits : bool
        Write averaged raw logits instead of probabilities.
    precision : str
        ``auto``, ``float32`` or ``bfloat16``, resolved where the tomogram is predicted
        (see :func:`czii_cli.predict_probs.runner.resolve_precision`).
    tiling : str
        ``auto``, ``halo`` or ``sliding`` (see :func:`czii_cli.predict_probs.predict.predict_into`);
        ``window`` and ``overlap`` apply to ``sliding``.
    memory_budget : float
        Bytes a halo tile may use.
    output_stride : int
        1: the map on the tomogram's grid (the models' grid when they are binned to it);
        2: on that grid binned by 2, from the networks' half-resolution logits
        (:mod:`czii_cli.predict_probs.stride`).  Resolved: never ``auto``.
    """

    models: tuple[Path, ...]
    window: tuple[int, int, int]
    overlap: float = 0.25
    batch_size: int = 1
    tta: str = "none"
    device: str = "auto"
    dtype: str = "float16"
    logits: bool = False
    precision: str = "auto"
    tiling: str = "auto"
    memory_budget: float = DEFAULT_MEMORY_BUDGET
    output_stride: int = 1


def predict_settings(
    paths: Sequence[Path],
    models: Sequence[ModelFile],
    *,
    window: Sequence[int] | None = None,
    overlap: float = 0.25,
    batch_size: int = 1,
    tta: str = "none",
    device: str = "auto",
    dtype: str = "float16",
    logits: bool = False,
    precision: str = "auto",
    tiling: str = "auto",
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    output_stride: OutputStride = "auto",
) -> PredictSettings:
    """The settings of a prediction with the model files ``paths``, loaded as ``models``.

    The window is ``window``, else the first model's patch size, and every network must
    take it; an explicit window with tiling ``auto`` asks for sliding windows.
    ``output_stride`` (``auto``, 1 or 2) is resolved with the tiling
    (:func:`czii_cli.predict_probs.stride.resolve_output_stride`).  The other parameters
    are the fields of :class:`PredictSettings`.

    Raises
    ------
    UsageError
        A window that is not three positive sizes, or that a network does not take;
        output stride 2 with a model that cannot give it (naming its file) or with
        sliding windows.
    """
    z, y, x = choose_window(models, paths, window)
    tiling = "sliding" if window and tiling == "auto" else tiling
    return PredictSettings(
        models=tuple(paths),
        window=(z, y, x),
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        device=device,
        dtype=dtype,
        logits=logits,
        precision=precision,
        tiling=tiling,
        memory_budget=memory_budget,
        output_stride=resolve_output_stride(output_stride, models, paths, tiling=tiling),
    )


def predict_tomogram(
    volume: Volume,
    target: Path | str,
    *,
    models: Sequence[ModelFile],
    networks: Sequence[torch.nn.Module],
    settings: PredictSettings,
    overwrite: bool = False,
    on_windows: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Predict one tomogram into a probs artifact at ``target``.

    Parameters
    ----------
    volume : Volume
        The tomogram, ``[z, y, x]``, raw or normalized by ``czii normalize``; binned first
        to the models' grid when they were trained at a whole multiple of its voxel size
        (:func:`czii_cli.predict_probs.members.at_model_grid`), so the map has their voxels.
    target : path or "-"
        The artifact (see :func:`czii_cli.io.artifacts.create_artifact`); ``-`` streams
        a zip to stdout.
    models, networks : sequences
        The loaded model files (:func:`czii_cli.predict_probs.members.load_models`) and the
        networks built from them, in the order of ``settings.models``.
    settings : PredictSettings
        How to predict.
    overwrite : bool
        Replace an existing artifact.
    on_windows : callable, optional
        Called with the number of windows finished after each batch (for progress).
    on_plan : callable, optional
        Called with the number of windows (or tiles) once they are planned.

    Returns
    -------
    dict
        ``source``, ``target`` (``stdout`` when streamed), ``tiling``, ``output_stride``,
        ``windows``, ``window``, ``halo``, ``layouts`` (the memory layout per network) and
        ``precision`` (the networks' arithmetic).
    """
    volume = at_model_grid(volume, models, settings.models)
    device = resolve_device(settings.device)
    window = fit_window(settings.window, volume.spatial_shape, multiple=window_multiple(models))
    activation = "logits" if settings.logits else models[0].activation
    members, normalization = members_for(networks, models, volume)
    extra: dict[str, Any] = {
        "activation": activation,
        "catalog": models[0].catalog,
        "tta": settings.tta,
        "models": [{"path": str(p), "arch": m.arch, "target": m.target} for p, m in zip(settings.models, models)],
    }
    if settings.logits:
        extra["logits_of"] = models[0].activation
    else:
        tuned = common_settings([from_training_summary(m.train, model=str(p)) for p, m in zip(settings.models, models)])
        if tuned is not None:
            extra[PICK_SETTINGS_KEY] = tuned.to_json()
    args = {
        "tta": settings.tta,
        "overlap": settings.overlap,
        "window": list(window),
        "batch_size": settings.batch_size,
        "device": str(device),
        "precision": resolve_precision(settings.precision, device),
        "dtype": settings.dtype,
        "logits": settings.logits,
        "normalization": normalization,
        "tiling": settings.tiling,
        "memory_budget": settings.memory_budget,
        "output_stride": settings.output_stride,
    }
    stride = settings.output_stride
    grid: dict[str, Any] = {}
    if stride != 1:
        extra["output_stride"] = {"stride": stride, "voxel_size": volume.meta.voxel_size, "shape": list(volume.shape)}
        origin = binned_origin(volume.meta.origin, voxel_size=volume.meta.voxel_size, factor=stride)
        grid = {"voxel_size": volume.meta.voxel_size * stride, "origin": origin}
    meta = volume.meta.evolve(kind="probs", axes="czyx", classes=tuple(models[0].classes), extra=extra, **grid)
    meta = meta.with_step("predict-probs", args=args, inputs=[volume.source, *map(str, settings.models)])
    shape = (len(models[0].classes), *binned_shape(volume.shape, factor=stride))
    with create_artifact(target, shape=shape, dtype=settings.dtype, meta=meta, overwrite=overwrite) as out:
        try:
            report = predict_into(
                members,
                volume.data,
                FixedOutput(out),
                patch_size=window,
                overlap=settings.overlap,
                batch_size=settings.batch_size,
                tta=settings.tta,
                activation=activation,
                device=device,
                on_windows=on_windows,
                precision=settings.precision,
                tiling=settings.tiling,
                multiple=window_multiple(models),
                memory_budget=settings.memory_budget,
                on_plan=on_plan,
                output_stride=stride,
            )
        except torch.cuda.OutOfMemoryError:
            raise DataError(f"{volume.source}: out of GPU memory; try a smaller batch size or window") from None
    return {
        "source": volume.source,
        "target": "stdout" if is_stdout(target) else str(target),
        **{
            key: report[key] for key in ("tiling", "output_stride", "windows", "window", "halo", "layouts", "precision")
        },
    }


def predict_job(
    path: Path, *, request: VolumeRequest, target: Path | str, settings: PredictSettings, overwrite: bool = False
) -> dict[str, Any]:
    """Open a tomogram, load the models and predict it into ``target`` (the batch job).

    Parameters
    ----------
    path : Path
        A tomogram file or a copick project.
    request : VolumeRequest
        Which run and tomogram type to read, and any voxel-size override.
    target : path
        Where the artifact goes; it appears there only when complete.
    settings : PredictSettings
        How to predict; its model paths must be readable where the job runs.
    overwrite : bool
        Replace an existing artifact.

    Returns
    -------
    dict
        As :func:`predict_tomogram`.
    """
    models = load_models(settings.models)
    networks = [model.build() for model in models]
    volume = read_tomogram(path, request)
    return predict_tomogram(volume, target, models=models, networks=networks, settings=settings, overwrite=overwrite)


def predict_jobs(
    inputs: Sequence[TomogramInput],
    targets: Sequence[Path | str],
    *,
    settings: PredictSettings,
    overwrite: bool = False,
    place: Callable[[Path], Path] = Path,
) -> list[Job]:
    """One batch job (:func:`predict_job`) per tomogram, into its planned target.

    Parameters
    ----------
    inputs : sequence of TomogramInput
        The tomograms (:func:`czii_cli.io.tomogram_inputs.find_tomograms`).
    targets : sequence of path
        Their outputs, in the same order (:func:`czii_cli.io.tomogram_inputs.plan_outputs`).
    settings : PredictSettings
        How to predict.
    overwrite : bool
        Replace existing outputs.
    place : callable
        Applied to every path a job carries: ``Path`` for local workers, an absolute path
        for Dask workers that run elsewhere.
    """
    placed = replace(settings, models=tuple(place(Path(model)) for model in settings.models))
    return [
        Job(
            item.name,
            place(Path(target)),
            predict_job,
            {
                "path": place(item.path),
                "request": item.request,
                "target": place(Path(target)),
                "settings": placed,
                "overwrite": overwrite,
            },
        )
        for item, target in zip(inputs, targets)
    ]


def describe_prediction(result: dict[str, Any], *, models: int, tta: str) -> str:
    """One line on what a prediction computed: tiles or windows, their size, models and TTA.

    Examples
    --------
    >>> describe_prediction(
    ...     {"source": "t.mrc", "target": "p.zarr", "tiling": "halo", "windows": 4,
    ...      "window": [184, 376, 376], "halo": [56, 56, 56]}, models=1, tta="flips")
    't.mrc: 4 tiles (halo 56x56x56) of 184x376x376 x 1 model(s) x flips TTA -> p.zarr'
    """
    kind = "window" if result["tiling"] == "sliding" else "tile"
    kind += "" if result["windows"] == 1 else "s"
    if result["tiling"] == "halo":
        kind += f" (halo {'x'.join(map(str, result['halo']))})"
    shape = "x".join(map(str, result["window"]))
    run = f"{result['windows']} {kind} of {shape} x {models} model(s) x {tta} TTA"
    if result.get("output_stride", 1) != 1:
        run += f" at output stride {result['output_stride']}"
    return f"{result['source']}: {run} -> {result['target']}"


def predict_file(
    tomogram: Path,
    output: Path | str,
    *,
    models: Sequence[Path],
    request: VolumeRequest | None = None,
    window: Sequence[int] | None = None,
    overlap: float = 0.25,
    batch_size: int = 1,
    tta: str = "none",
    device: str = "auto",
    dtype: str = "float16",
    logits: bool = False,
    precision: str = "auto",
    tiling: str = "auto",
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    output_stride: OutputStride = "auto",
    overwrite: bool = False,
    on_windows: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Predict one tomogram file with one or more model files into a probs artifact.

    Parameters
    ----------
    tomogram : Path
        A tomogram: MRC, OME-Zarr, czii artifact, or a copick project (``request``
        names the run and tomogram type).
    output : Path or "-"
        The artifact; ``-`` streams a zip to stdout.  It appears only when complete.
    models : sequence of Path
        Model files, averaged as an ensemble; they must share classes and activation.
    request : VolumeRequest, optional
        Run, tomogram type and voxel-size override to read ``tomogram`` with.
    window : sequence of 3 int, optional
        Window (z, y, x) in voxels; default: the first model's patch size.  Given, the
        tiling ``auto`` means sliding windows.
    overlap, batch_size, tta, device, dtype, logits, precision, tiling, memory_budget :
        As the fields of :class:`PredictSettings`.
    output_stride : {"auto", 1, 2}
        As for :func:`predict_settings`.
    overwrite : bool
        Replace an existing ``output``.
    on_windows, on_plan : callable, optional
        Progress callbacks, as for :func:`predict_tomogram`.

    Returns
    -------
    dict
        As :func:`predict_tomogram`: ``target``, ``tiling``, ``windows`` and more.

    Raises
    ------
    UsageError
        An unknown TTA set, device, precision, dtype, tiling or output stride; a window
        the networks do not take; output stride 2 for a model that cannot give it; an
        existing output without ``overwrite``.
    DataError
        An unreadable tomogram or model file.
    """
    from .predict import TILINGS
    from .tta import TTA_SETS

    for value, choices, what in (
        (tta, TTA_SETS, "tta"),
        (dtype, ("float16", "float32"), "dtype"),
        (precision, PRECISIONS, "precision"),
        (tiling, TILINGS, "tiling"),
    ):
        if value not in choices:
            raise UsageError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    loaded = load_models(models)
    settings = predict_settings(
        models,
        loaded,
        window=window,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        device=device,
        dtype=dtype,
        logits=logits,
        precision=precision,
        tiling=tiling,
        memory_budget=memory_budget,
        output_stride=output_stride,
    )
    volume = read_tomogram(tomogram, request or VolumeRequest())
    networks = [model.build() for model in loaded]
    return predict_tomogram(
        volume,
        output,
        models=loaded,
        networks=networks,
        settings=settings,
        overwrite=overwrite,
        on_windows=on_windows,
        on_plan=on_plan,
    )
