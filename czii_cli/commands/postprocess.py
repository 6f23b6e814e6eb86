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

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..catalog import BACKGROUND
from .batching import Scheduler, SkipExisting
from .common import Classes, Jobs, Outputs, Overwrite, Quiet, Seed, Verbose, VoxelSize

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..picks import Picks

METHOD = "Method options (each applies to the methods named)"


def _option(flag: str, help: str):
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
    from ..batch import Job
    from ..console import info, set_verbosity, warn
    from ..errors import DataError, UsageError
    from ..io.artifacts import stdin_to_tempfile
    from ..io.atomic import check_output, is_stdout
    from ..io.catalog_file import load_catalog
    from ..io.copick import copick_target
    from ..io.outputs import output_folder
    from ..io.picks import write_picks_csv
    from ..io.thresholds import read_thresholds
    from ..picks import concat
    from ..postprocess import check_method_options, option_names
    from .batching import absolute, check_batch_options, run_with_progress

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
    options = {name: value for name, value in given.items() if value is not None}
    for name in options:
        if name not in option_names(method):
            raise UsageError(f"--{name.replace('_', '-')} does not apply to --method {method}")
    if "seed" in option_names(method):
        options["seed"] = seed
    check_method_options(method, options)
    if sum(str(p) == "-" for p in probs) > 1 or len(set(map(str, probs))) != len(probs):
        raise UsageError("each input, '-' (stdin) included, may be given only once")
    check_batch_options(
        scheduler=scheduler, skip_existing=skip_existing, overwrite=overwrite, stdin=any(is_stdout(p) for p in probs)
    )
    project_path = copick_target(output)
    folder = None if project_path is not None else output_folder(output)
    target = "-" if output is None or is_stdout(output) else Path(output)
    if folder is None and project_path is None and skip_existing:  # one merged CSV: written once every input is done
        if is_stdout(target):
            raise UsageError("--skip-existing needs an output on disk; pass -o FILE or -o DIR/")
        if target.exists():
            info(f"skipped {len(probs)} input(s): {target} exists")
            return
    if project_path is not None:
        pass
    elif folder is None:
        check_output(target, overwrite=overwrite)
    elif not folder.parent.exists():
        raise UsageError(f"{output}: the folder {folder.parent} does not exist")
    default, per_class = _threshold_table(threshold)
    cutoffs = read_thresholds(thresholds) if thresholds is not None else {}
    catalog = None if classes is None else load_catalog(classes)
    inputs = [(str(p), stdin_to_tempfile() if str(p) == "-" else p) for p in probs]
    experiments, channels, recorded = {}, {}, {}
    for name, path in inputs:  # fail fast on a bad class name; an unreadable input fails as its own job
        try:
            volume, known, experiments[name] = open_probs(path, name=name, catalog=catalog, voxel_size=voxel_size)
            channels[name] = [c for c in volume.meta.classes if c != BACKGROUND]
            if threshold is None and thresholds is None:
                recorded[name] = _recorded_thresholds(volume, name=name, method=method)
        except DataError:
            if len(inputs) == 1 or project_path is not None:
                raise
            experiments[name] = experiment_of(name)
            continue
        _check_names(per_class, known, f"--threshold {threshold!r}")
        _check_names(cutoffs, known, str(thresholds))
    place = absolute if scheduler is not None else Path  # Dask workers run elsewhere: absolute paths
    common = {"method": method, "catalog": catalog, "voxel_size": voxel_size, "options": options}
    given = {"default": default, "per_class": per_class, "cutoffs": cutoffs}

    def settings_of(name: str) -> dict:
        tuned = recorded.get(name)
        if tuned is None:
            return {**common, **given}
        return {
            **common,
            "default": tuned.default_threshold,
            "per_class": tuned.pick_thresholds,
            "cutoffs": tuned.cutoffs,
        }

    if project_path is not None:
        _write_into_copick(
            inputs,
            project_path,
            experiments=experiments,
            channels=channels,
            user=user_id,
            session=session_id,
            settings_of=settings_of,
            place=place,
            jobs=jobs,
            scheduler=scheduler,
            skip_existing=skip_existing,
            overwrite=overwrite,
        )
        return
    if folder is not None:
        targets = _plan_csvs(folder, experiments, overwrite=overwrite or skip_existing)
        batch = [
            Job(
                name,
                place(targets[name]),
                write_picks_of_input,
                {
                    "path": place(path),
                    "name": name,
                    "output": place(targets[name]),
                    "overwrite": overwrite,
                    **settings_of(name),
                },
            )
            for name, path in inputs
        ]
        run_with_progress(
            batch,
            workers=jobs,
            scheduler=scheduler,
            skip_existing=skip_existing,
            description="postprocess",
            on_done=lambda name, count: info(f"{name}: {count} picks -> {targets[name]}"),
        )
        return
    batch = [
        Job(name, None, picks_of_input, {"path": place(path), "name": name, **settings_of(name)})
        for name, path in inputs
    ]
    report = run_with_progress(
        batch,
        workers=jobs,
        scheduler=scheduler,
        skip_existing=False,
        description="postprocess",
        on_done=lambda name, found: info(f"{name}: {len(found)} picks"),
    )
    results = [report.results[name] for name, _ in inputs]
    runs = [found.experiments for found in results if len(found)]
    if len({run for names in runs for run in names}) < len(runs):
        warn("several inputs share an experiment name; their picks are merged")
    picks = concat(results).sorted()
    write_picks_csv(target, picks, overwrite=overwrite)
    info(f"{len(picks)} picks from {len(inputs)} input(s) ({method}) -> {'stdout' if target == '-' else target}")


def _write_into_copick(
    inputs,
    project_path: Path,
    *,
    experiments: dict,
    channels: dict,
    user: str,
    session: str,
    settings_of,
    place,
    jobs: int,
    scheduler: str | None,
    skip_existing: bool,
    overwrite: bool,
) -> None:
    """``-o copick:CONFIG``: each input writes its run's picks files into the project."""
    from ..batch import Job
    from ..console import info
    from ..errors import DataError, UsageError
    from ..io.copick import open_output_project
    from ..io.picks import copick_picks_targets
    from .batching import run_with_progress

    project = open_output_project(project_path)
    runs = project.runs()
    targets = {}
    for name, _ in inputs:
        run = experiments[name]
        if run not in runs:
            raise DataError(f"{name}: run {run!r} is not in {project.config_path} (runs: {', '.join(runs)})")
        targets[name] = copick_picks_targets(project, run=run, particles=channels[name], user=user, session=session)
    runs_given = list(experiments.values())
    repeated = sorted({run for run in runs_given if runs_given.count(run) > 1})
    if repeated:
        raise UsageError(f"several inputs are run {repeated[0]!r}; their picks in {project.config_path} would collide")
    todo = []
    for name, path in inputs:
        if skip_existing and all(t.exists() for t in targets[name]):
            info(f"skipped {name}: its picks are in the project")
            continue
        if not (overwrite or skip_existing):  # with --skip-existing, a run left incomplete is redone
            for t in targets[name]:
                if t.exists():
                    raise UsageError(f"{t}: output exists; pass --overwrite to replace it (or --skip-existing)")
        todo.append((name, path))
    batch = [
        Job(
            name,
            None,
            write_picks_to_copick,
            {
                "path": place(path),
                "name": name,
                "project": place(project.config_path),
                "run": experiments[name],
                "user": user,
                "session": session,
                "overwrite": overwrite or skip_existing,
                **settings_of(name),
            },
        )
        for name, path in todo
    ]
    if not batch:
        return
    run_with_progress(
        batch,
        workers=jobs,
        scheduler=scheduler,
        skip_existing=False,
        description="postprocess",
        on_done=lambda name, count: info(
            f"{name}: {count} picks -> {project.config_path} ({user}/{session}, run {experiments[name]})"
        ),
    )


def _plan_csvs(folder: Path, experiments: dict[str, str], *, overwrite: bool) -> dict[str, Path]:
    """DIR/<experiment>.csv for each input; two inputs of one experiment are a UsageError, an
    experiment that is no plain file name (``../x``) a DataError naming its input."""
    from ..errors import UsageError
    from ..io.atomic import check_output
    from ..io.names import file_in_folder

    names = list(experiments.values())
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"several inputs are experiment {repeated[0]!r}; their CSVs in {folder} would collide")
    targets = {
        name: file_in_folder(folder, experiment, ".csv", source=name, what="experiment (run name)")
        for name, experiment in experiments.items()
    }
    folder.mkdir(exist_ok=True)
    for target in targets.values():
        check_output(target, overwrite=overwrite)
    return targets


def _recorded_thresholds(volume, *, name: str, method: str):
    """The pick thresholds a map records (from its model's validation), if they suit ``method``."""
    from ..console import info
    from ..pick_settings import recorded_settings

    tuned = recorded_settings(volume.meta.extra, source=name)
    if tuned is None:
        return None
    if tuned.method != method:
        info(f"{name}: its thresholds were tuned for --method {tuned.method}; --method {method} uses the defaults")
        return None
    info(f"{name}: thresholds recorded in the map: {tuned.describe()}")
    return tuned


def _threshold_table(spec: str | None) -> tuple[float, dict[str, float]]:
    """The default binarization threshold and the per-class ones, from --threshold."""
    from ..postprocess.common import DEFAULT_THRESHOLD, parse_threshold_spec

    if spec is None:
        return DEFAULT_THRESHOLD, {}
    default, per_class = parse_threshold_spec(spec)
    return (DEFAULT_THRESHOLD if default is None else default), per_class


def _check_names(per_class: dict, catalog, source: str) -> None:
    from ..errors import UsageError

    unknown = sorted(set(per_class) - set(catalog.names))
    if unknown:
        raise UsageError(f"{source}: unknown class {unknown[0]!r} (known: {', '.join(catalog.names)})")


def experiment_of(name: str, run: str | None = None) -> str:
    """An input's experiment: its run, else its file stem (``stdin`` for ``-``).

    Examples
    --------
    >>> experiment_of("maps/TS_5_4.zarr"), experiment_of("-"), experiment_of("p.zarr", "TS_6_4")
    ('TS_5_4', 'stdin', 'TS_6_4')
    """
    return run or ("stdin" if name == "-" else Path(name).stem)


def open_probs(path: Path, *, name: str, catalog: Catalog | None, voxel_size: float | None):
    """Open one probability map lazily: (volume, catalog, experiment name).

    The catalog is ``catalog`` if given, else the map's own, else the six competition classes.
    """
    from ..catalog import DEFAULT_CATALOG, catalog_from_mapping
    from ..errors import DataError
    from ..io.volumes import VolumeRequest, read_volume

    volume = read_volume(path, VolumeRequest(voxel_size=voxel_size))
    meta = volume.meta
    if meta.kind not in ("probs", "heatmap") or meta.axes != "czyx":
        raise DataError(f"{name}: expected a probs or heatmap artifact with axes czyx, found {meta.kind} {meta.axes}")
    if catalog is None:
        catalog = (
            catalog_from_mapping(meta.extra["catalog"], source=name) if "catalog" in meta.extra else DEFAULT_CATALOG
        )
    if len(meta.classes) != volume.shape[0]:
        raise DataError(f"{name}: {len(meta.classes)} channel names for {volume.shape[0]} channels")
    for channel in meta.classes:
        if channel != BACKGROUND and channel not in catalog.names:
            raise DataError(f"{name}: channel {channel!r} is not a known class (known: {', '.join(catalog.names)})")
    return volume, catalog, experiment_of(name, meta.run)


def picks_of_input(
    path: Path,
    *,
    name: str,
    method: str,
    default: float,
    per_class: dict,
    cutoffs: dict,
    catalog: Catalog | None,
    voxel_size: float | None,
    options: dict,
) -> Picks:
    """Picks of one probability map (the batch job for one merged CSV).

    Parameters
    ----------
    path : Path
        The map: a probs or heatmap artifact.
    name : str
        The input as given (for messages; ``-`` names stdin).
    method, options :
        The postprocessing method and its options (:func:`czii_cli.postprocess.extract_picks`).
    default, per_class :
        The binarization threshold of classes not in ``per_class``, and those of the classes in it.
    cutoffs : dict
        Per-class minimum pick score (from ``czii tune``); classes not in it keep every pick.
    catalog : Catalog, optional
        Particle classes (radii); default: the map's own, else the competition's.
    voxel_size : float, optional
        Overrides the map's voxel size.
    """
    from ..errors import NonFiniteError
    from ..postprocess import extract_picks
    from ..tune import apply_thresholds

    volume, catalog, run = open_probs(path, name=name, catalog=catalog, voxel_size=voxel_size)
    names = list(volume.meta.classes)
    try:
        picks = extract_picks(
            volume.data,
            classes=names,
            catalog=catalog,
            method=method,
            thresholds={c: per_class.get(c, default) for c in names},
            voxel_size=volume.meta.voxel_size,
            origin_zyx=volume.meta.origin,
            run=run,
            **options,
        )
    except NonFiniteError as err:
        raise NonFiniteError(f"{name}: {err}", count=err.count, total=err.total) from None
    return apply_thresholds(picks, cutoffs) if cutoffs else picks


def write_picks_of_input(path: Path, *, output: Path, overwrite: bool = False, **settings) -> int:
    """Write the picks of one probability map to its own CSV (the batch job for ``-o DIR/``).

    ``settings`` are those of :func:`picks_of_input`; the CSV appears at ``output`` only
    when complete.  Returns the number of picks.
    """
    from ..io.picks import write_picks_csv

    picks = picks_of_input(path, **settings).sorted()
    write_picks_csv(output, picks, overwrite=overwrite)
    return len(picks)


def write_picks_to_copick(
    path: Path, *, project: Path, run: str, user: str, session: str, overwrite: bool = False, **settings
) -> int:
    """Write the picks of one probability map into a copick project (the batch job for ``-o copick:``).

    One ``<user>_<session>_<class>.json`` per class channel of the map (background
    excepted), see :func:`czii_cli.io.picks.write_run_to_copick`.  Returns the number of picks.
    """
    from ..io.copick import open_project
    from ..io.picks import write_run_to_copick

    volume, _, _ = open_probs(
        path, name=settings["name"], catalog=settings["catalog"], voxel_size=settings["voxel_size"]
    )
    particles = [c for c in volume.meta.classes if c != BACKGROUND]
    picks = picks_of_input(path, **settings).sorted()
    write_run_to_copick(
        open_project(project),
        picks,
        run=run,
        particles=particles,
        user=user,
        session=session,
        voxel_spacing=volume.meta.voxel_size,
        overwrite=overwrite,
    )
    return len(picks)
