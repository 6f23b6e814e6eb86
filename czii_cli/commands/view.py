"""Draw slices of a tomogram as a PNG, with probabilities, picks and truth on top.

The tomogram is shown in gray (an averaged slab of --slab z-planes, contrast clipped to
the 1-99 percentiles of the shown slices).  --probs overlays a probability map: each
pixel takes its most probable class's colour, more opaque where it is more probable
(background skipped).  --picks and --gt draw circles in the class colours, as large as
the particle's cross-section on the slice; given both, picks are judged with the
competition's matching (a pick within 0.5 x radius of a truth particle of its class):
solid = TP, dashed = FP, dotted = FN (a missed truth particle).  --z auto (default)
draws the --slices slices holding the most particles (truth if given, else picks; the
middle if none).  Axes are in voxels; the title gives the run and voxel size.  Picks
and truth are filtered to the tomogram's run.  -o - writes the PNG to a piped stdout.

[bold]Examples[/bold]

  czii view TS_5_4.zarr --picks pred.csv --gt truth.csv -o TS_5_4.png
  czii view TS_5_4.zarr --probs probs.zarr --slices 3 -o probs.png
  czii view project --run TS_5_4 --tomo-type denoised --gt project --z 92 -o gt.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..catalog import BACKGROUND
from .common import (
    Classes,
    Output,
    Overwrite,
    PredSessionId,
    PredUserId,
    Quiet,
    Run,
    SessionId,
    TomoType,
    UserId,
    VoxelSize,
    pred_selection,
    truth_selection,
)


def command(
    tomogram: Annotated[Path, typer.Argument(help="Tomogram (MRC, OME-Zarr, czii artifact, copick project).")],
    output: Output = None,
    probs: Annotated[
        Path | None, typer.Option("--probs", help="Probability map artifact to overlay.", show_default=False)
    ] = None,
    picks: Annotated[
        Path | None, typer.Option("--picks", help="Predicted picks (CSV or copick).", show_default=False)
    ] = None,
    gt: Annotated[
        Path | None, typer.Option("--gt", help="Ground-truth picks (CSV or copick).", show_default=False)
    ] = None,
    z: Annotated[str, typer.Option("--z", help="'auto', or slice indices separated by commas.")] = "auto",
    slices: Annotated[int, typer.Option("--slices", min=1, help="Panels side by side (with --z auto).")] = 1,
    slab: Annotated[int, typer.Option("--slab", min=1, help="Odd number of z-planes averaged per panel.")] = 5,
    run: Run = None,
    tomo_type: TomoType = None,
    voxel_size: VoxelSize = None,
    classes: Classes = None,
    user_id: UserId = None,
    session_id: SessionId = None,
    pred_user_id: PredUserId = None,
    pred_session_id: PredSessionId = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    from .. import view
    from ..console import info, set_verbosity, warn
    from ..coords import check_czyx
    from ..errors import DataError, UsageError
    from ..io.artifacts import check_same_grid, read_artifact
    from ..io.atomic import check_output
    from ..io.catalog_file import load_catalog
    from ..io.figures import write_png
    from ..io.volumes import VolumeRequest, read_tomogram

    set_verbosity(quiet=quiet)
    to_stdout = output is not None and str(output) == "-"
    if output is None or (to_stdout and sys.stdout.isatty()):
        raise UsageError("pass -o OUT.png (or -o - with stdout piped): a PNG is not written to a terminal")
    if slab % 2 == 0:
        raise UsageError(f"--slab must be odd (the slice is its centre), got {slab}")
    check_output(output, overwrite=overwrite)
    catalog = load_catalog(classes)
    volume = read_tomogram(tomogram, VolumeRequest(run=run, tomo_type=tomo_type, voxel_size=voxel_size))
    meta, depth = volume.meta, volume.spatial_shape[0]
    run_name = meta.run or run
    pick_table = _picks_of_run(picks, run_name, catalog, pred_selection(pred_user_id, pred_session_id))
    truth_table = _picks_of_run(gt, run_name, catalog, truth_selection(user_id, session_id))
    probs_volume = None
    if probs is not None:
        probs_volume = read_artifact(probs)
        check_czyx(probs_volume.meta.axes, source=str(probs))
        check_same_grid(volume, probs_volume)
        if not set(probs_volume.meta.classes) - {BACKGROUND}:
            raise DataError(f"{probs}: no named class channels besides background")
        if probs_volume.meta.extra.get("activation") == "logits":
            warn(f"{probs}: holds logits, not probabilities; the overlay clips them to 0..1")
    particles = truth_table if truth_table is not None else pick_table
    z_indices = _slice_indices(z, slices, depth=depth, particles=particles, meta=meta, catalog=catalog)
    channels = list(probs_volume.meta.classes) if probs_volume is not None else []
    colors = view.class_colors(catalog.names + [c for c in channels if c != BACKGROUND])
    panels = view.build_panels(
        volume.data,
        z_indices=z_indices,
        slab=slab,
        voxel_size=meta.voxel_size,
        catalog=catalog,
        colors=colors,
        origin_zyx=meta.origin,
        probs=None if probs_volume is None else probs_volume.data,
        channel_names=channels,
        picks=pick_table,
        truth=truth_table,
    )
    title = f"{run_name or volume.source}   voxel {meta.voxel_size:g} Å   slab of {slab} planes" + (
        f"   overlay: {probs.name}" if probs is not None else ""
    )
    figure = view.render_slices(
        panels,
        gray_range=view.display_range([p.image for p in panels]),
        colors=colors,
        title=title,
        statuses=view.legend_statuses(has_picks=pick_table is not None, has_truth=truth_table is not None),
    )
    write_png(output, figure, overwrite=overwrite, dpi=view.DPI)
    info(f"drew z = {', '.join(map(str, z_indices))} of {volume.source} -> {'stdout' if to_stdout else output}")


def _picks_of_run(path: Path | None, run: str | None, catalog, selection):
    """Picks of the tomogram's run from ``path`` (None when no file was given)."""
    from ..console import warn
    from ..errors import DataError
    from ..io.picks import read_picks
    from ..picks import check_classes

    if path is None:
        return None
    table = read_picks(path, catalog=catalog, selection=selection)
    check_classes(table, catalog.names, source=str(path))
    if run is None:
        if len(table.experiments) > 1:
            raise DataError(f"{path}: picks of several runs and the tomogram names none; pass --run")
        return table
    of_run = table.where(experiment=run)
    if len(table) and not len(of_run):
        warn(f"{path}: no picks for run {run!r} (it holds {', '.join(table.experiments)}); set the run with --run")
    return of_run


def _slice_indices(z: str, slices: int, *, depth: int, particles, meta, catalog) -> list[int]:
    """The slices to draw: those given with --z, or the busiest ones."""
    from ..errors import UsageError
    from ..picks import Picks
    from ..view import choose_slices, slice_occupancy

    if z == "auto":
        if slices > depth:
            raise UsageError(f"--slices {slices}: the tomogram has only {depth} z-planes")
        counts, area = slice_occupancy(
            particles if particles is not None else Picks.empty(),
            depth=depth,
            voxel_size=meta.voxel_size,
            catalog=catalog,
            origin_z=meta.origin[0],
        )
        return choose_slices(counts, area=area, count=slices)
    try:
        indices = [int(part) for part in z.split(",")]
    except ValueError:
        raise UsageError(f"--z {z!r}: expected 'auto' or slice indices such as 40,92") from None
    if slices not in (1, len(indices)):
        raise UsageError(f"--slices {slices} does not match the {len(indices)} slices given with --z")
    outside = [i for i in indices if not 0 <= i < depth]
    if outside:
        raise UsageError(f"--z {outside[0]}: outside the tomogram's 0..{depth - 1} z-planes")
    return indices
