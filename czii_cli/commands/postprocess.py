"""Turn probability maps into particle picks: a submission CSV with a score column.

Each input is one experiment: a [italic]probs[/italic] or [italic]heatmap[/italic] artifact
(zarr directory, zarr zip, as streamed by predict-probs, .npy with its sidecar, or '-' for
stdin); its run name, else the file stem, is the experiment.  Every class channel except
background is thresholded and turned into picks by one method: [bold]cc[/bold] (connected
components, weighted centroids), [bold]peaks[/bold] (max-pool non-maximum suppression),
[bold]watershed[/bold] (splits touching particles), [bold]dbscan[/bold] (clusters voxels or
component centroids) or [bold]kl-fit[/bold] (fits particle templates, then re-centres them
on the component boundary).  Thresholds: one number, per class, or both
(--threshold 0.1,ribosome=0.2; unlisted classes take 0.15), and/or the file `czii tune`
writes (--thresholds; --threshold entries override it).  Radii come from --classes, else
the map's own catalog, else the six competition classes.  The score column (peak or mean
probability, see the method) is what `czii tune` cuts on.  The CSV goes to -o or stdout.

[bold]Examples[/bold]

  czii postprocess probs.zarr -o picks.csv
  czii predict-probs a.mrc -m unet.pt > p.zarr; czii postprocess p.zarr
  czii postprocess maps/*.zarr --method watershed --threshold 0.1,ribosome=0.2 -j 4 -o picks.csv
  czii postprocess p.zarr --method kl-fit --thresholds thresholds.json > picks.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Classes, Jobs, Output, Overwrite, Quiet, Seed, Verbose, VoxelSize

METHOD = "Method options (each applies to the methods named)"
BACKGROUND = "background"


def _option(flag: str, help: str):
    return typer.Option(flag, help=help, show_default=False, rich_help_panel=METHOD)


def command(
    probs: Annotated[list[Path], typer.Argument(help="Probability maps, one experiment each ('-' reads stdin).")],
    output: Output = None,
    method: Annotated[str, typer.Option("--method", help="cc, peaks, watershed, dbscan or kl-fit.")] = "cc",
    threshold: Annotated[
        str | None, typer.Option("--threshold", help="0.15, ribosome=0.2,apo-ferritin=0.1 or 0.1,ribosome=0.2.")
    ] = None,
    thresholds: Annotated[Path | None, typer.Option("--thresholds", help="Thresholds JSON from czii tune.")] = None,
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
    seed: Seed = 0,
    classes: Classes = None,
    voxel_size: VoxelSize = None,
    jobs: Jobs = 1,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    from ..batch import Job
    from ..console import info, set_verbosity, warn
    from ..errors import UsageError
    from ..io.artifacts import stdin_to_tempfile
    from ..io.atomic import check_output, is_stdout
    from ..io.picks import write_picks_csv
    from ..picks import concat
    from ..postprocess import check_method_options, option_names
    from .batching import run_with_progress

    set_verbosity(quiet=quiet, verbose=verbose)
    given = {"connectivity": connectivity, "radius_scale": radius_scale, "min_size_fraction": min_size_fraction,
             "min_size": min_size, "sigma": sigma, "footprint": footprint, "nms_distance": nms_distance,
             "marker_distance": marker_distance, "eps_scale": eps_scale, "points": points, "template": template,
             "overlap": overlap}
    options = {name: value for name, value in given.items() if value is not None}
    for name in options:
        if name not in option_names(method):
            raise UsageError(f"--{name.replace('_', '-')} does not apply to --method {method}")
    if "seed" in option_names(method):
        options["seed"] = seed
    check_method_options(method, options)
    if sum(str(p) == "-" for p in probs) > 1 or len(set(map(str, probs))) != len(probs):
        raise UsageError("each input, '-' (stdin) included, may be given only once")
    target = "-" if output is None or is_stdout(output) else output
    check_output(Path(target), overwrite=overwrite)
    default, per_class = _threshold_table(threshold, thresholds)
    inputs = [(str(p), stdin_to_tempfile() if str(p) == "-" else p) for p in probs]
    for name, path in inputs:  # fail fast, before any work, on a bad input or class name
        _, catalog, _ = open_probs(path, name=name, classes=classes, voxel_size=voxel_size)
        _check_names(per_class, catalog, threshold, thresholds)
    settings = {"method": method, "default": default, "per_class": per_class, "classes": classes,
                "voxel_size": voxel_size, "options": options}
    batch = [Job(name, None, picks_of_input, {"path": path, "name": name, **settings}) for name, path in inputs]
    report = run_with_progress(batch, workers=jobs, scheduler=None, skip_existing=False, description="postprocess")
    results = [report.results[name] for name, _ in inputs]
    for (name, _), found in zip(inputs, results):
        info(f"{name}: {len(found)} picks")
    runs = [found.experiments for found in results if len(found)]
    if len({run for names in runs for run in names}) < len(runs):
        warn("several inputs share an experiment name; their picks are merged")
    picks = concat(results).sorted()
    write_picks_csv(target, picks, overwrite=overwrite)
    info(f"{len(picks)} picks from {len(inputs)} input(s) ({method}) -> {'stdout' if target == '-' else target}")


def _threshold_table(spec: str | None, path: Path | None) -> tuple[float, dict[str, float]]:
    """The default threshold and the per-class ones from --thresholds, then --threshold."""
    from ..io.thresholds import read_thresholds
    from ..postprocess.common import DEFAULT_THRESHOLD, parse_threshold_spec

    per_class = read_thresholds(path) if path is not None else {}
    default = None
    if spec is not None:
        default, overrides = parse_threshold_spec(spec)
        per_class.update(overrides)
    return (DEFAULT_THRESHOLD if default is None else default), per_class


def _check_names(per_class: dict, catalog, spec: str | None, path: Path | None) -> None:
    from ..errors import UsageError

    unknown = sorted(set(per_class) - set(catalog.names))
    if unknown:
        source = f"--threshold {spec!r}" if spec is not None else str(path)
        raise UsageError(f"{source}: unknown class {unknown[0]!r} (known: {', '.join(catalog.names)})")


def open_probs(path: Path, *, name: str, classes: Path | None, voxel_size: float | None):
    """Open one probability map lazily: (volume, catalog, experiment name)."""
    from ..catalog import DEFAULT_CATALOG, catalog_from_mapping
    from ..errors import DataError
    from ..io.catalog_file import load_catalog
    from ..io.volumes import VolumeRequest, read_volume

    volume = read_volume(path, VolumeRequest(voxel_size=voxel_size))
    meta = volume.meta
    if meta.kind not in ("probs", "heatmap") or meta.axes != "czyx":
        raise DataError(f"{name}: expected a probs or heatmap artifact with axes czyx, found {meta.kind} {meta.axes}")
    if classes is not None:
        catalog = load_catalog(classes)
    elif "catalog" in meta.extra:
        catalog = catalog_from_mapping(meta.extra["catalog"], source=name)
    else:
        catalog = DEFAULT_CATALOG
    if len(meta.classes) != volume.shape[0]:
        raise DataError(f"{name}: {len(meta.classes)} channel names for {volume.shape[0]} channels")
    for channel in meta.classes:
        if channel != BACKGROUND and channel not in catalog.names:
            raise DataError(f"{name}: channel {channel!r} is not a known class (known: {', '.join(catalog.names)})")
    run = meta.run or ("stdin" if name == "-" else Path(name).stem)
    return volume, catalog, run


def picks_of_input(
    path: Path, *, name: str, method: str, default: float, per_class: dict, classes: Path | None,
    voxel_size: float | None, options: dict,
):
    """Picks of one probability map (the batch job; runs in a worker with -j)."""
    from ..postprocess import extract_picks

    volume, catalog, run = open_probs(path, name=name, classes=classes, voxel_size=voxel_size)
    names = list(volume.meta.classes)
    return extract_picks(
        volume.data, classes=names, catalog=catalog, method=method,
        thresholds={c: per_class.get(c, default) for c in names}, voxel_size=volume.meta.voxel_size,
        origin_zyx=volume.meta.origin, run=run, **options,
    )
