"""Train a 3D segmentation network on tomograms with particle picks.

DATA is one or more of: a folder of artifact pairs from [italic]normalize[/italic] and
[italic]make-labels[/italic] (a tomogram and a labels/heatmap artifact paired by their run,
e.g. TS_5_4.zarr + TS_5_4.labels.zarr); a copick project; a folder with train_images/*.mrc
and train_annotations/*.csv.  Copick and MRC data are normalized and labelled on the fly.
Architectures: light (~0.3 M parameters, the CPU default), unet, segresnet, dynunet (MONAI),
flexunet (FlexibleUNet, resnet/efficientnet encoders, random init).  Training uses
class-balanced random crops, flips, x-y rot90, small z rotations, intensity, blur, noise and low-pass gain
augmentation, AdamW with warm-up and cosine decay, gradient clipping, an EMA of the weights
and AMP on a GPU.  After every epoch the held-out runs (--val-runs or --fold K/N) are
predicted, picked (connected components) and scored with the competition metric twice: at
the fixed threshold 0.15, and at per-class thresholds tuned on those runs, which judges each
checkpoint at its own best thresholds: every class takes the best score cutoff (as
[italic]czii tune[/italic] finds it) on its candidates picked at 0.15, 0.05 or 0.02, whichever
scores best, so the tuned score is never below the fixed one.  MODEL keeps the weights with the
best tuned score (--select fixed: the best fixed score); its training summary ([italic]czii
info MODEL[/italic]) holds both scores and the tuned thresholds of that round (best_tuned:
pick_thresholds for [italic]czii postprocess --threshold[/italic], and a thresholds file for
--thresholds).  Validation predicts at the model's output stride (--output-stride; 2: the light
net's half-resolution grid, with halo tiles), so those thresholds are tuned on the maps that
[italic]predict-probs[/italic] writes for the model by default.
MODEL.last.pt holds everything --resume needs (also written on Ctrl-C), MODEL.metrics.csv and
MODEL.curves.png the history of both scores.  --resume MODEL.last.pt with -o MODEL continues
in place; under another -o name, existing files there are kept unless -f.  The output folder
is checked to be writable before training starts.  Defaults: see --config (a JSON of the same
settings; val_threshold and val_candidate_thresholds set the pick thresholds).

--init builtin:light-sim starts from the light net shipped with czii, pre-trained on broad
simulated data (SNR 0.03-0.3, contrast, defocus and ice varied; [italic]czii info
builtin:light-sim[/italic] shows the commands that made it): for 10 Å tomograms of the six
competition classes it learns faster and holds up better on unseen, noisier tomograms.

Several GPUs: start the same command under torchrun, e.g. [italic]torchrun --nproc-per-node 4
--no-python czii train sim/ -o light.pt[/italic].  Each process trains on its own GPU
(cuda:LOCAL_RANK, NCCL; gloo on the CPU) through DistributedDataParallel and draws its own
patches (seed + rank), so the global batch is --batch-size x processes; steps, epochs and
the learning rate are not rescaled.  Only rank 0 validates, logs and writes files, and the
model file is the same kind as from one process.  One process, with or without torchrun,
trains exactly as without it.

[bold]Examples[/bold]

  czii train sim/ -o light.pt --val-runs TS_sim_3 --max-time 600
  czii train sim/ -o light.pt --val-runs TS_sim_3 --select fixed
  czii train labelled/ -o unet.pt --arch unet --loss ce:1,tversky:0.5 --fold 0/7
  czii train train/ -o pts.pt --target points --class-weights 256 --arch flexunet --patch 96 96 96
  czii train sim/ -o tuned.pt --init pretrained.pt --lr 3e-4
  czii train sim/ -o light.pt --val-runs TS_sim_3 --max-time 1200 --init builtin:light-sim
  czii train sim/ -o light.pt --resume light.last.pt --max-steps 2000
  torchrun --nproc-per-node 4 --no-python czii train sim/ -o unet.pt --arch unet --val-runs TS_sim_3
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..training.config import TrainConfig
from .common import Classes, Output, Overwrite, Quiet, SessionId, TomoType, UserId, Verbose, truth_selection

if TYPE_CHECKING:
    from rich.progress import TaskID

    from ..training.metrics import MetricsRow
    from ..training.session import RunRecord

Opt = typer.Option
DEFAULTS = TrainConfig()


def command(
    data: Annotated[list[Path], typer.Argument(help="Artifact folders, copick projects or MRC+CSV folders.")],
    output: Output = None,
    config_file: Annotated[Path | None, Opt("--config", help="JSON file of training settings.")] = None,
    arch: Annotated[
        str | None, Opt("--arch", help="light, unet, segresnet, dynunet or flexunet.", show_default=DEFAULTS.arch)
    ] = None,
    arch_param: Annotated[
        list[str] | None,
        Opt(
            "--arch-param",
            help="KEY=JSON network override, repeatable, e.g. channels=[16,24,32].",
            show_default="the plan's light width",
        ),
    ] = None,
    loss: Annotated[
        str | None,
        Opt(
            "--loss",
            help="ce, dice, dicece, tversky, focaltversky, bce, mse with weights, e.g. ce:1,tversky:0.5.",
            show_default="by target",
        ),
    ] = None,
    class_weights: Annotated[
        str | None,
        Opt("--class-weights", help="ce/bce weights: 256, or background=1,ribosome=2.", show_default="by target"),
    ] = None,
    target: Annotated[
        str | None, Opt("--target", help="spheres, heatmap or points (labelled on the fly).", show_default="spheres")
    ] = None,
    radius_scale: Annotated[
        str | None,
        Opt("--radius-scale", help="Sphere/heatmap radius fraction: 0.5 or 0.5,CLASS=X,...", show_default="0.5"),
    ] = None,
    sigma: Annotated[float | None, Opt("--sigma", help="Fixed heatmap sigma in voxels.")] = None,
    dilate: Annotated[int | None, Opt("--dilate", help="Points: cube half-width in voxels.")] = None,
    patch: Annotated[
        tuple[int, int, int] | None, Opt("--patch", help="Crop Z Y X.", show_default=" ".join(map(str, DEFAULTS.patch)))
    ] = None,
    batch_size: Annotated[
        int | None,
        Opt(
            "--batch-size", help="Patches per step (per process under torchrun).", show_default=str(DEFAULTS.batch_size)
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        Opt("--epochs", help="Rounds of steps, each followed by validation.", show_default=str(DEFAULTS.epochs)),
    ] = None,
    steps_per_epoch: Annotated[int | None, Opt("--steps-per-epoch", show_default=str(DEFAULTS.steps_per_epoch))] = None,
    max_steps: Annotated[int | None, Opt("--max-steps", help="Stop after this many steps in all.")] = None,
    max_time: Annotated[float | None, Opt("--max-time", help="Time budget in seconds, validation included.")] = None,
    lr: Annotated[float | None, Opt("--lr", help="Peak learning rate.", show_default=str(DEFAULTS.lr))] = None,
    val_runs: Annotated[str | None, Opt("--val-runs", help="Comma-separated runs to validate on.")] = None,
    fold: Annotated[str | None, Opt("--fold", help="K/N: validate on every N-th run from the K-th (sorted).")] = None,
    select: Annotated[
        str | None,
        Opt(
            "--select",
            help="Keep the checkpoint with the best validation F4 at tuned "
            "thresholds (tuned) or at the fixed threshold (fixed).",
            show_default=DEFAULTS.select,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        Opt("--seed", help="Random seed; the same seed gives the same weights.", show_default=str(DEFAULTS.seed)),
    ] = None,
    device: Annotated[str, Opt("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[
        str | None,
        Opt(
            "--precision",
            help="Training arithmetic: auto (the plan chooses: GPU mixed; CPU bfloat16 with --max-time "
            "where the CPU has native bfloat16, else float32), float32 or bfloat16.",
            show_default=DEFAULTS.precision,
        ),
    ] = None,
    bin_factor: Annotated[
        str | None,
        Opt(
            "--bin",
            help="Working resolution: auto (the plan chooses), 1 or 2 (tomograms binned by 2).",
            show_default="auto",
        ),
    ] = None,
    output_stride: Annotated[
        str | None,
        Opt(
            "--output-stride",
            help="Grid of the model's maps, where validation tunes its thresholds and predict-probs predicts: "
            "auto (the plan chooses), 1 or 2 (a light net's half-resolution grid).",
            show_default="auto",
        ),
    ] = None,
    init: Annotated[
        Path | None,
        Opt("--init", help="Start from this model's weights (same arch): a model file, or builtin:light-sim."),
    ] = None,
    resume: Annotated[Path | None, Opt("--resume", help="Continue the run saved in this .last.pt file.")] = None,
    classes: Classes = None,
    tomo_type: TomoType = None,
    user_id: UserId = None,
    session_id: SessionId = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:

    from ..console import info, make_progress, set_verbosity, track
    from ..errors import UsageError
    from ..io.atomic import check_output, check_writable
    from ..io.catalog_file import load_catalog
    from ..io.settings_file import read_settings
    from ..make_labels import DEFAULT_RADIUS_SCALE, TargetSpec
    from ..predict_probs import resolve_device
    from ..pretrained import model_path
    from ..training.checkpoint import load_model_file
    from ..training.config import parse_factor_setting
    from ..training.dataset import find_runs
    from ..training.distributed import World, process_group
    from ..training.launch import TrainRequest, launch
    from ..training.session import OutputPaths
    from .options import radius_scale_option
    from .train_options import parse_arch_params, parse_class_weights, parse_fold, parse_loss, typed_settings

    world = World.from_env()
    set_verbosity(quiet=quiet or not world.is_main, verbose=verbose and world.is_main)
    if output is None or str(output) == "-":
        raise UsageError("train writes a model file: pass -o MODEL.pt")
    paths = OutputPaths.beside(output)
    if resume is not None and any(_same_file(resume, path) for path in paths.all()):  # in place: its own files
        check_writable(paths.model.parent, output=paths.model)
    else:  # a new run, or one continued under new names: existing files are not replaced without -f
        for path in paths.all():
            check_output(path, overwrite=overwrite)
    settings = read_settings(config_file) if config_file is not None else {}
    flags = {
        "arch": arch,
        "loss": parse_loss(loss) if loss is not None else None,
        "class_weights": parse_class_weights(class_weights) if class_weights is not None else None,
        "patch": patch,
        "batch_size": batch_size,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "max_steps": max_steps,
        "max_time": max_time,
        "lr": lr,
        "select": select,
        "seed": seed,
        "precision": precision,
        "arch_params": parse_arch_params(arch_param) if arch_param else None,
        "bin": parse_factor_setting(bin_factor, setting="bin") if bin_factor is not None else None,
        "output_stride": (
            parse_factor_setting(output_stride, setting="output_stride") if output_stride is not None else None
        ),
    }
    given = {k: v for k, v in flags.items() if v is not None}
    config = TrainConfig.from_json({**typed_settings(settings), **given}, source=str(config_file or "flags"))
    catalog = load_catalog(classes) if classes is not None else None
    spec = None
    if any(v is not None for v in (target, radius_scale, sigma, dilate)):
        default_scale, scales = radius_scale_option(radius_scale) if radius_scale else (DEFAULT_RADIUS_SCALE, {})
        spec = TargetSpec(
            target or "spheres", radius_scale=default_scale, class_scales=scales, sigma=sigma, dilate=dilate or 0
        )
    if init is not None and resume is not None:
        raise UsageError("--init starts a new run and --resume continues one: give only one")
    with process_group(world, resolve_device(device)) as rank_device:
        request = TrainRequest(
            sources=find_runs(
                data, tomo_type=tomo_type, catalog=catalog, selection=truth_selection(user_id, session_id)
            ),
            paths=paths,
            config=config,
            device=rank_device,
            spec=spec,
            catalog=catalog,
            val_runs=[r.strip() for r in (val_runs or "").split(",") if r.strip()],
            fold=parse_fold(fold) if fold else None,
            init=load_model_file(model_path(init)) if init else None,
            init_source=str(init or ""),
            resume=load_model_file(resume) if resume else None,
            resume_source=str(resume or ""),
            resume_limits={**settings, **given} if resume else {},
            world=world,
            given=frozenset(settings) | frozenset(given),
        )
        with make_progress() as progress:
            tasks: dict[str, TaskID] = {}
            record = launch(
                request,
                log=info,
                track_loading=lambda sources: track(
                    sources, description="loading runs", total=len(sources), progress=progress
                ),
                on_start=lambda first, total: tasks.update(
                    train=progress.add_task("training", total=total, completed=first, status="")
                ),
                on_step=lambda step, status: progress.update(tasks["train"], completed=step, status=status),
                on_round=lambda row: info(_round_line(row)),
                on_note=lambda parameter, text: info(f"--{parameter}: {text}"),
            )
    steps = record.history[-1].step if record.history else 0
    if record.model_written:
        info(f"done: {steps} steps, {_kept(record)} -> {paths.model}")
    else:
        info(
            f"done: {steps} steps, no better checkpoint than the resumed run's ({_kept(record)}); "
            f"{paths.model} not written, the last state is in {paths.last}"
        )


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name one file (both resolved)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _kept(record: RunRecord) -> str:
    """Which checkpoint MODEL holds, with both of its validation scores."""
    if record.best_step is None:
        return "no validation, kept the last step"
    row = next(row for row in record.history if row.step == record.best_step)
    tuned = "-" if row.tuned_score is None else f"{row.tuned_score:.4f}"
    return f"kept step {record.best_step} (val F4 fixed {row.val_score:.4f}, tuned {tuned})"


def _round_line(row: MetricsRow) -> str:
    """``step S: loss L val F4 fixed F, tuned T (fixed/tuned: class f/t ...)``."""
    loss = "-" if row.train_loss is None else f"{row.train_loss:.4f}"
    if row.val_score is None:
        return f"step {row.step}: loss {loss}"
    scores = " ".join(f"{name} {s.fbeta:.2f}/{s.tuned_fbeta:.2f}" for name, s in row.per_class.items())
    return (
        f"step {row.step}: loss {loss} val F4 fixed {row.val_score:.4f}, tuned {row.tuned_score:.4f} "
        f"(fixed/tuned: {scores})"
    )
