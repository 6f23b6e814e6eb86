"""Turn probability maps into particle picks: a submission CSV with a score column.

Each input is one experiment: a [italic]probs[/italic] or [italic]heatmap[/italic] artifact
(zarr directory, zarr zip, as streamed by predict-probs, .npy with its sidecar, or '-' for
stdin); its run name, else the file stem, is the experiment.  Every class channel except
background is thresholded and turned into picks by one method: [bold]cc[/bold] (connected
components, weighted centroids), [bold]peaks[/bold] (max-pool non-maximum suppression),
[bold]watershed[/bold] (splits touching particles), [bold]dbscan[/bold] (clusters voxels or
component centroids) or [bold]kl-fit[/bold] (fits particle templates, then re-centres them
on the component boundary).  --threshold binarizes the map: one number, per class, or both
(--threshold 0.1,ribosome=0.2; unlisted classes take 0.15).  The score column (peak or mean
probability, see the method) is what `czii tune` cuts on, and --thresholds applies the
per-class score cutoffs it writes to the picks; make the picks you tune and the picks you
cut with the same method and --threshold.  Given neither, a map made by predict-probs
applies the per-class thresholds and cutoffs its model tuned on its validation runs
(`czii info MAP` shows them; they hold for the method they were tuned with, cc by
default, and other methods use 0.15).  Radii come from --classes, else the map's own
catalog, else the six competition classes.

The picks of all inputs go to one CSV, -o FILE or stdout; with -o DIR/ (or an existing
folder) each input gets its own, DIR/<experiment>.csv.  -j N works on N inputs at a time
in local processes; --scheduler ADDRESS sends each input to an existing Dask cluster as
one task (with -o DIR/ the workers write the CSVs themselves, so it must be on a
filesystem they share; see docs/cluster.md).  An input that fails is reported by name
and the others go on; the command then exits 1, writing the per-input CSVs of the others
but no merged CSV.  --skip-existing skips inputs whose DIR/<experiment>.csv exists; with
one merged CSV it skips the whole command when that CSV exists (it is written only once
every input is done).  Outputs appear under their names only when complete.

-o copick:CONFIG writes the picks into that copick project instead, as copick names
them: one file per run and class, overlay/ExperimentRuns/<run>/Picks/<user>_<session>_<class>.json
(--user-id, default czii; --session-id, default 0), locations in Å with each pick's
score; a class without picks gets an empty file.  The run is the map's own and must be
in the project.  --skip-existing skips inputs whose files all exist; --overwrite
replaces them.

[bold]Examples[/bold]

  czii postprocess probs.zarr -o picks.csv
  czii predict-probs a.mrc -m unet.pt > p.zarr; czii postprocess p.zarr
  czii postprocess maps/*.zarr --method watershed --threshold 0.1,ribosome=0.2 -j 4 -o picks.csv
  czii postprocess val.zarr --threshold 0.1 -o val.csv; czii tune val.csv truth/ -o cutoffs.json
  czii postprocess p.zarr --threshold 0.1 --thresholds cutoffs.json > picks.csv
  czii postprocess probs/*.zarr --scheduler tcp://head:8786 --skip-existing -o /shared/picks/
  czii postprocess probs/*.zarr -o copick:project/copick_config.json --user-id czii --session-id 0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .batching import Scheduler, SkipExisting, absolute, run_with_progress
from .common import Classes, Jobs, Outputs, Overwrite, Quiet, Seed, Verbose, VoxelSize

if TYPE_CHECKING:
    from ..pick_settings import PickSettings
    from ..postprocess.job import PickJob, ProbsMap

METHOD = "Method options (each applies to the methods named)"


def _option(flag: str, help: str) -> Any:
    return typer.Option(flag, help=help, show_default=False, rich_help_panel=METHOD)


def command(
    probs: Annotated[list[Path], typer.Argument(help="Probability maps, one experiment each ('-' reads stdin).")],
    output: Outputs = None,
    method: Annotated[str, typer.Option("--method", help="cc, peaks, watershed, dbscan or kl-fit.")] = "cc",
    threshold: Annotated[
        str | None, typer.Option("--threshold", help="0.15, ribosome=0.2,apo-ferritin=0.1 or 0.1,ribosome=0.2.")
    ] = None,
    thresholds: Annotated[
        Path | None, typer.Option("--thresholds", help="Per-class score cutoffs: the JSON czii tune writes.")
    ] = None,
    connectivity: Annotated[int | None, _option("--connectivity", "6, 18 or 26 (all but peaks; default 26).")] = None,
    radius_scale: Annotated[
        float | None, _option("--radius-scale", "Blob radius / particle radius (all; default 0.5).")
    ] = None,
    min_size_fraction: Annotated[
        float | None, _option("--min-size-fraction", "Min size / blob-sphere volume (all but peaks; 1/7).")
    ] = None,
    min_size: Annotated[int | None, _option("--min-size", "Min size in voxels; overrides the fraction.")] = None,
    sigma: Annotated[float | None, _option("--sigma", "peaks: Gaussian blur in voxels before peak finding.")] = None,
    footprint: Annotated[str | None, _option("--footprint", "peaks: cube (default) or ball.")] = None,
    nms_distance: Annotated[
        float | None, _option("--nms-distance", "peaks: drop peaks this many radii from a stronger one.")
    ] = None,
    marker_distance: Annotated[
        float | None, _option("--marker-distance", "watershed: min marker distance in blob radii (0.75).")
    ] = None,
    eps_scale: Annotated[
        float | None, _option("--eps-scale", "dbscan: eps / particle radius (0.25 voxels, 0.5 centroids).")
    ] = None,
    points: Annotated[str | None, _option("--points", "dbscan: voxels (default) or centroids.")] = None,
    template: Annotated[str | None, _option("--template", "kl-fit: ball (default) or gaussian.")] = None,
    overlap: Annotated[float | None, _option("--overlap", "kl-fit: stop at centres this many diameters apart.")] = None,
    user_id: Annotated[
        str, typer.Option("--user-id", help="With -o copick:CONFIG: the user the picks are written under.")
    ] = "czii",
    session_id: Annotated[
        str, typer.Option("--session-id", help="With -o copick:CONFIG: the session the picks are written under.")
    ] = "0",
    seed: Seed = 0,
    classes: Classes = None,
    voxel_size: VoxelSize = None,
    jobs: Jobs = 1,
    scheduler: Scheduler = None,
    skip_existing: SkipExisting = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    from ..console import set_verbosity
    from ..errors import UsageError
    from ..io.atomic import is_stdout
    from .batching import check_batch_options
    from .options import postprocess_options

    set_verbosity(quiet=quiet, verbose=verbose)
    given = {
        "connectivity": connectivity,
        "radius_scale": radius_scale,
        "min_size_fraction": min_size_fraction,
        "min_size": min_size,
        "sigma": sigma,
        "footprint": footprint,
        "nms_distance": nms_distance,
        "marker_distance": marker_distance,
        "eps_scale": eps_scale,
        "points": points,
        "template": template,
        "overlap": overlap,
    }
    options = postprocess_options(method, given, seed=seed)
    if sum(str(p) == "-" for p in probs) > 1 or len(set(map(str, probs))) != len(probs):
        raise UsageError("each input, '-' (stdin) included, may be given only once")
    check_batch_options(
        scheduler=scheduler, skip_existing=skip_existing, overwrite=overwrite, stdin=any(is_stdout(p) for p in probs)
    )
    destination = _destination(output, count=len(probs), skip_existing=skip_existing, overwrite=overwrite)
    if destination is None:
        return
    kind, where = destination
    inputs = _open_inputs(
        probs,
        method=method,
        options=options,
        threshold=threshold,
        thresholds=thresholds,
        classes=classes,
        voxel_size=voxel_size,
        strict=kind == "copick",
    )
    if kind == "copick":
        _into_copick(
            inputs,
            where,
            user=user_id,
            session=session_id,
            jobs=jobs,
            scheduler=scheduler,
            skip_existing=skip_existing,
            overwrite=overwrite,
        )
    elif kind == "folder":
        _into_folder(
            inputs, Path(where), jobs=jobs, scheduler=scheduler, skip_existing=skip_existing, overwrite=overwrite
        )
    else:
        _into_one_csv(inputs, where, method=method, jobs=jobs, scheduler=scheduler, overwrite=overwrite)


@dataclass(frozen=True)
class _Input:
    """One input: as given, the file it is read from, the map opened (None if it failed) and its job."""

    name: str
    path: Path
    opened: ProbsMap | None
    job: PickJob

    @property
    def experiment(self) -> str:
        from ..postprocess.job import experiment_of

        return self.opened.experiment if self.opened is not None else experiment_of(self.name)

    def source(self, *, in_process: bool, remote: bool) -> Path | ProbsMap:
        """What its job reads: the map opened here when the job runs here, else its path."""
        if in_process and self.opened is not None:
            return self.opened
        return Path(absolute(self.path)) if remote else self.path


def _destination(
    output: str | None, *, count: int, skip_existing: bool, overwrite: bool
) -> tuple[str, Path | str] | None:
    """Where the picks go: ``("copick", CONFIG)``, ``("folder", DIR)`` or ``("csv", FILE or "-")``.

    None when ``--skip-existing`` finds the one merged CSV written already.
    """
    from ..console import info
    from ..errors import UsageError
    from ..io.atomic import check_output, is_stdout
    from ..io.copick import copick_target
    from ..io.outputs import output_folder

    project_path = copick_target(output)
    if project_path is not None:
        return "copick", project_path
    folder = output_folder(output)
    if folder is not None:
        if not folder.parent.exists():
            raise UsageError(f"{output}: the folder {folder.parent} does not exist")
        return "folder", folder
    target: Path | str = "-" if output is None or is_stdout(output) else Path(output)
    if skip_existing:  # one merged CSV: written once every input is done
        if is_stdout(target):
            raise UsageError("--skip-existing needs an output on disk; pass -o FILE or -o DIR/")
        if Path(target).exists():
            info(f"skipped {count} input(s): {target} exists")
            return None
    check_output(Path(target), overwrite=overwrite)
    return "csv", target


def _open_inputs(
    probs: list[Path],
    *,
    method: str,
    options: dict[str, object],
    threshold: str | None,
    thresholds: Path | None,
    classes: Path | None,
    voxel_size: float | None,
    strict: bool,
) -> list[_Input]:
    """Open every input once and settle its pick settings: the flags', else the map's own.

    A bad class name fails fast; an unreadable input fails as its own job, unless it is
    the only one or ``strict``.
    """
    from ..errors import DataError
    from ..io.artifacts import stdin_to_tempfile
    from ..io.catalog_file import load_catalog
    from ..io.thresholds import read_thresholds
    from ..pick_settings import PickSettings
    from ..postprocess.job import PickJob, check_class_names, open_probs
    from .options import threshold_option

    default, per_class = threshold_option(threshold)
    cutoffs = read_thresholds(thresholds) if thresholds is not None else {}
    catalog = None if classes is None else load_catalog(classes)
    given = PickSettings(method=method, default_threshold=default, pick_thresholds=per_class, cutoffs=cutoffs)
    inputs = [(str(p), stdin_to_tempfile() if str(p) == "-" else p) for p in probs]
    found = []
    for name, path in inputs:
        settings = given
        try:
            opened = open_probs(path, name=name, catalog=catalog, voxel_size=voxel_size)
            if threshold is None and thresholds is None:
                settings = _recorded(opened, method=method) or given
        except DataError:
            if len(inputs) == 1 or strict:
                raise
            opened = None
        found.append(_Input(name, path, opened, PickJob(settings, options, catalog=catalog, voxel_size=voxel_size)))
        if opened is not None:
            check_class_names(per_class, opened.catalog, source=f"--threshold {threshold!r}")
            check_class_names(cutoffs, opened.catalog, source=str(thresholds))
    return found


def _recorded(probs: ProbsMap, *, method: str) -> PickSettings | None:
    """The pick thresholds a map records (from its model's validation), if they suit ``method``."""
    from ..console import info
    from ..postprocess.job import tuned_settings

    tuned = tuned_settings(probs)
    if tuned is None:
        return None
    if tuned.method != method:
        info(
            f"{probs.name}: its thresholds were tuned for --method {tuned.method}; --method {method} uses the defaults"
        )
        return None
    info(f"{probs.name}: thresholds recorded in the map: {tuned.describe()}")
    return tuned


def _into_one_csv(
    inputs: list[_Input], target: Path | str, *, method: str, jobs: int, scheduler: str | None, overwrite: bool
) -> None:
    """The picks of all inputs, merged into one CSV (or stdout) once every input is done."""
    from ..batch import Job
    from ..console import info, warn
    from ..io.picks import write_picks_csv
    from ..postprocess.job import merged_picks, picks_job

    here = _in_process(inputs, jobs=jobs, scheduler=scheduler)
    batch = [
        Job(
            item.name,
            None,
            picks_job,
            {"probs": item.source(in_process=here, remote=scheduler is not None), "name": item.name, "job": item.job},
        )
        for item in inputs
    ]
    report = run_with_progress(
        batch,
        workers=jobs,
        scheduler=scheduler,
        skip_existing=False,
        description="postprocess",
        on_done=lambda name, found: info(f"{name}: {len(found)} picks"),
    )
    picks, shared = merged_picks([report.results[item.name] for item in inputs])
    if shared:
        warn("several inputs share an experiment name; their picks are merged")
    write_picks_csv(target, picks, overwrite=overwrite)
    info(f"{len(picks)} picks from {len(inputs)} input(s) ({method}) -> {'stdout' if target == '-' else target}")


def _into_folder(
    inputs: list[_Input], folder: Path, *, jobs: int, scheduler: str | None, skip_existing: bool, overwrite: bool
) -> None:
    """One CSV per input, DIR/<experiment>.csv, written by its job."""
    from ..batch import Job
    from ..console import info
    from ..io.outputs import plan_folder
    from ..postprocess.job import csv_job

    targets = plan_folder(
        folder,
        [item.experiment for item in inputs],
        suffix=".csv",
        sources=[item.name for item in inputs],
        overwrite=overwrite or skip_existing,
        what="experiment (run name)",
        collision="several inputs are experiment {name!r}; their CSVs in {folder} would collide",
    )
    remote = scheduler is not None
    here = _in_process(inputs, jobs=jobs, scheduler=scheduler)
    place = absolute if remote else Path
    batch = [
        Job(
            item.name,
            Path(place(target)),
            csv_job,
            {
                "probs": item.source(in_process=here, remote=remote),
                "name": item.name,
                "output": place(target),
                "job": item.job,
                "overwrite": overwrite,
            },
        )
        for item, target in zip(inputs, targets)
    ]
    written = {item.name: target for item, target in zip(inputs, targets)}
    run_with_progress(
        batch,
        workers=jobs,
        scheduler=scheduler,
        skip_existing=skip_existing,
        description="postprocess",
        on_done=lambda name, count: info(f"{name}: {count} picks -> {written[name]}"),
    )


def _into_copick(
    inputs: list[_Input],
    project_path: Path | str,
    *,
    user: str,
    session: str,
    jobs: int,
    scheduler: str | None,
    skip_existing: bool,
    overwrite: bool,
) -> None:
    """``-o copick:CONFIG``: each input writes its run's picks files into the project."""
    from ..batch import Job
    from ..console import info
    from ..errors import OutputExistsError
    from ..io.copick import open_output_project
    from ..postprocess.job import copick_job, plan_copick

    project = open_output_project(Path(project_path))
    by_name = {item.name: item for item in inputs}
    try:
        todo, done = plan_copick(
            project,
            [item.opened for item in inputs if item.opened is not None],
            user=user,
            session=session,
            skip_existing=skip_existing,
            overwrite=overwrite,
        )
    except OutputExistsError as err:
        raise OutputExistsError(err.path, note=" (or --skip-existing)") from None
    for probs in done:
        info(f"skipped {probs.name}: its picks are in the project")
    remote = scheduler is not None
    here = _in_process(inputs, jobs=jobs, scheduler=scheduler)
    batch = [
        Job(
            probs.name,
            None,
            copick_job,
            {
                "probs": by_name[probs.name].source(in_process=here, remote=remote),
                "name": probs.name,
                "project": Path(absolute(project.config_path)) if remote else project.config_path,
                "run": probs.experiment,
                "user": user,
                "session": session,
                "job": by_name[probs.name].job,
                "overwrite": overwrite or skip_existing,
            },
        )
        for probs in todo
    ]
    if not batch:
        return
    runs = {probs.name: probs.experiment for probs in todo}
    run_with_progress(
        batch,
        workers=jobs,
        scheduler=scheduler,
        skip_existing=False,
        description="postprocess",
        on_done=lambda name, count: info(
            f"{name}: {count} picks -> {project.config_path} ({user}/{session}, run {runs[name]})"
        ),
    )


def _in_process(inputs: list[_Input], *, jobs: int, scheduler: str | None) -> bool:
    """Whether the jobs run in this process, so that they can take the maps opened here."""
    return scheduler is None and (jobs == 1 or len(inputs) == 1)
