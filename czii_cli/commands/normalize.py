"""Normalize a tomogram's intensities, as the competition's top solutions did.

[bold]zscore[/bold] subtracts the tomogram's mean and divides by its standard deviation
(--clip LO HI then clips the result to LO..HI standard deviations); [bold]robust[/bold]
subtracts the median and divides by 1.4826 x the median absolute deviation, so a few
very dark objects (gold, vesicles) cannot skew it, then clips to -5..5 (or --clip);
[bold]percentile[/bold] clips to the LO..HI percentiles (default 5 99) and scales to 0..1.  The input is any
readable volume (MRC, OME-Zarr, czii artifact, or a copick project with --run and
--tomo-type); the output is a czii [italic]tomogram[/italic] artifact whose metadata keeps
the voxel size, run, the statistics used and the provenance.

Statistics are taken over finite voxels only.  A tomogram with NaN or infinite voxels is
refused (the error gives their count) unless --fill-nonfinite replaces them by the mean
of the finite voxels, with a warning.

[bold]Examples[/bold]

  czii normalize TS_5_4.mrc -o TS_5_4.zarr
  czii normalize project/copick_config.json --run TS_5_4 --tomo-type denoised -o TS_5_4.zarr
  czii normalize a.mrc --method percentile --clip 5 99 -o a.npy
  czii normalize gold.mrc --method robust -o gold.zarr
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..io.outputs import artifact_target
from .common import Output, Overwrite, Preview, Quiet, Run, TomoType, VoxelSize


def command(
    tomogram: Annotated[Path, typer.Argument(help="Input volume (MRC, OME-Zarr, czii artifact, copick project, '-').")],
    output: Output = None,
    method: Annotated[str, typer.Option("--method", help="zscore, robust or percentile.")] = "zscore",
    clip: Annotated[
        tuple[float, float] | None,
        typer.Option(
            "--clip",
            help="zscore: clip to LO..HI std; percentile: LO HI percentiles (default 5 99).",
            show_default=False,
        ),
    ] = None,
    run: Run = None,
    tomo_type: TomoType = None,
    voxel_size: VoxelSize = None,
    preview: Preview = False,
    fill_nonfinite: Annotated[
        bool,
        typer.Option(
            "--fill-nonfinite",
            help="Replace NaN and infinite voxels by the mean of the finite ones (default: refuse such a tomogram).",
        ),
    ] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    from ..console import info, set_verbosity, warn
    from ..errors import NonFiniteError
    from ..io.volumes import VolumeRequest
    from ..normalize import normalization_method, normalize_file

    set_verbosity(quiet=quiet)
    spec = normalization_method(method, clip)
    target = artifact_target(output)
    try:
        done = normalize_file(
            tomogram,
            target,
            method=spec["method"],
            clip=spec["clip"],
            request=VolumeRequest(run=run, tomo_type=tomo_type, voxel_size=voxel_size),
            fill_nonfinite=fill_nonfinite,
            preview=preview,
            overwrite=overwrite,
        )
    except NonFiniteError as err:
        hint = "" if err.count == err.total else "; pass --fill-nonfinite to replace them by the finite mean"
        raise NonFiniteError(f"{err}{hint}", count=err.count, total=err.total) from None
    stats = done.stats
    if stats["nonfinite"]:
        warn(f"{done.source}: replaced {stats['nonfinite']} non-finite voxels by the finite mean {stats['fill']:.6g}")
    info(f"normalized {done.source} ({'x'.join(map(str, done.shape))}, {spec['method']}) -> {target}")
