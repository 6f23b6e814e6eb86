"""Paint training targets from picks on a tomogram's voxel grid.

[bold]spheres[/bold] (default) writes a uint8 label map (0 background, i for the i-th class
in label order) with a ball of radius scale x class radius per particle; where balls
overlap, the nearest centre wins.  [bold]heatmap[/bold] writes one float16 Gaussian channel
per class (czyx), sigma = scale x radius / 2 voxels unless --sigma fixes it; overlaps take
the maximum.  [bold]points[/bold] marks the voxel at each centre, optionally dilated to a
(2N+1)^3 cube with --dilate N.  The output has the shape, voxel size, origin and run of
--like (any readable volume); picks of other runs are ignored.  The artifact records the
classes, the target settings, the picks used and its provenance, so [italic]czii train[/italic]
can use it directly.

From a copick project, the picks of --user-id / --session-id are painted (default:
curation, else the single user present).  -o copick:CONFIG writes the target into that
project as a copick segmentation of the run instead: a multilabel map
overlay/ExperimentRuns/<run>/Segmentations/<voxel size>_<user>_<session>_<spheres|points>-multilabel.zarr
(voxel = class label), or one <class> segmentation per heatmap channel, under
--out-user-id (default czii) and --out-session-id (default 0).

[bold]Examples[/bold]

  czii make-labels picks.csv --like TS_5_4.zarr -o TS_5_4.labels.zarr
  czii make-labels project/ --like TS_5_4.zarr --radius-scale 0.5,ribosome=0.33 -o TS_5_4.labels.zarr
  czii make-labels picks.csv --like TS_5_4.mrc --target heatmap --sigma 3 -o TS_5_4.heat.zarr
  czii make-labels picks.csv --like TS_5_4.mrc --target points --dilate 1 -o TS_5_4.points.zarr
  czii make-labels project/ --like project/ --run TS_5_4 --user-id curation -o copick:project/copick_config.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..io.outputs import artifact_target
from .common import Output, Overwrite, Preview, Quiet, Run, SessionId, TomoType, UserId, VoxelSize, truth_selection


def command(
    picks_path: Annotated[Path, typer.Argument(metavar="PICKS", help="Picks: CSV, copick project or overlay, '-'.")],
    like: Annotated[Path, typer.Option("--like", help="Tomogram whose grid the labels take (any readable volume).")],
    output: Output = None,
    target: Annotated[str, typer.Option("--target", help="spheres, heatmap or points.")] = "spheres",
    radius_scale: Annotated[
        str, typer.Option("--radius-scale", help="Fraction of the class radius: 0.5, or 0.5,ribosome=0.33,...")
    ] = "0.5",
    sigma: Annotated[
        float | None,
        typer.Option("--sigma", help="Heatmap sigma in voxels (default scale x radius / 2).", show_default=False),
    ] = None,
    dilate: Annotated[int, typer.Option("--dilate", help="Points: dilate each centre to a (2N+1)^3 cube.")] = 0,
    classes: Annotated[
        Path | None,
        typer.Option(
            "--classes",
            help="Particle catalog (copick config or JSON class list). Default: the copick "
            "project's own classes when PICKS is one, else the six competition classes.",
            show_default=False,
        ),
    ] = None,
    run: Run = None,
    tomo_type: TomoType = None,
    voxel_size: VoxelSize = None,
    user_id: UserId = None,
    session_id: SessionId = None,
    out_user_id: Annotated[
        str, typer.Option("--out-user-id", help="With -o copick:CONFIG: the user the segmentation is written under.")
    ] = "czii",
    out_session_id: Annotated[str, typer.Option("--out-session-id", help="With -o copick:CONFIG: its session.")] = "0",
    preview: Preview = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    from ..console import info, set_verbosity
    from ..errors import DataError
    from ..io import copick
    from ..io.catalog_file import load_catalog
    from ..io.volumes import VolumeRequest
    from ..make_labels import PicksOfOtherRunsError, TargetSpec, make_labels_file
    from .options import radius_scale_option

    set_verbosity(quiet=quiet)
    own_classes = picks_path if str(picks_path) != "-" and copick.find_config(picks_path) else None
    catalog = load_catalog(classes or own_classes)
    default_scale, class_scales = radius_scale_option(radius_scale, catalog=catalog)
    spec = TargetSpec(target, radius_scale=default_scale, class_scales=class_scales, sigma=sigma, dilate=dilate)
    project_path = copick.copick_target(output)
    destination = artifact_target(output) if project_path is None else None
    try:
        done = make_labels_file(
            picks_path,
            like,
            destination,
            spec=spec,
            catalog=catalog,
            request=VolumeRequest(run=run, tomo_type=tomo_type, voxel_size=voxel_size),
            selection=truth_selection(user_id, session_id),
            project=project_path,
            user=out_user_id,
            session=out_session_id,
            preview=preview,
            overwrite=overwrite,
        )
    except PicksOfOtherRunsError as err:
        raise DataError(f"{err}; name the tomogram's run with --run") from None
    written = ", ".join(Path(s).name for s in done.outputs) if project_path is not None else done.outputs[0]
    grid = "x".join(map(str, done.shape))
    info(f"{spec.kind}: {done.picks} picks of run {done.run} on a {grid} grid -> {written}")
