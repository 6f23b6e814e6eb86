"""Normalize a tomogram's intensities, as the competition's top solutions did.

[bold]zscore[/bold] subtracts the tomogram's mean and divides by its standard deviation
(--clip LO HI then clips the result to LO..HI standard deviations); [bold]percentile[/bold]
clips to the LO..HI percentiles (default 5 99) and scales to 0..1.  The input is any
readable volume (MRC, OME-Zarr, czii artifact, or a copick project with --run and
--tomo-type); the output is a czii [italic]tomogram[/italic] artifact whose metadata keeps
the voxel size, run, the statistics used and the provenance.

[bold]Examples[/bold]

  czii normalize TS_5_4.mrc -o TS_5_4.zarr
  czii normalize project/copick_config.json --run TS_5_4 --tomo-type denoised -o TS_5_4.zarr
  czii normalize a.mrc --method percentile --clip 5 99 -o a.npy
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Output, Overwrite, Preview, Quiet, Run, TomoType, VoxelSize
from .output import artifact_target


def command(
    tomogram: Annotated[Path, typer.Argument(help="Input volume (MRC, OME-Zarr, czii artifact, copick project, '-').")],
    output: Output = None,
    method: Annotated[str, typer.Option("--method", help="zscore or percentile.")] = "zscore",
    clip: Annotated[
        tuple[float, float] | None,
        typer.Option("--clip", help="zscore: clip to LO..HI std; percentile: LO HI percentiles (default 5 99).",
                     show_default=False),
    ] = None,
    run: Run = None,
    tomo_type: TomoType = None,
    voxel_size: VoxelSize = None,
    preview: Preview = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    from ..console import info, set_verbosity
    from ..io.artifacts import create_artifact
    from ..io.volumes import VolumeRequest, read_volume
    from ..normalize import apply_normalization, normalization_method, normalization_stats

    set_verbosity(quiet=quiet)
    spec = normalization_method(method, clip)
    target = artifact_target(output)
    volume = read_volume(tomogram, VolumeRequest(run=run, tomo_type=tomo_type, voxel_size=voxel_size))
    if volume.meta.axes != "zyx":
        from ..errors import DataError

        raise DataError(f"{tomogram}: expected a single-channel zyx volume, found axes {volume.meta.axes!r}")
    stats = normalization_stats(volume.data, method=spec["method"], clip=spec["clip"])
    meta = volume.meta.evolve(kind="tomogram", extra={**volume.meta.extra, "normalization": stats})
    meta = meta.with_step("normalize", args=spec, inputs=[volume.source])
    slab = 64  # the artifact's chunk depth: each chunk is written once
    with create_artifact(target, shape=volume.shape, dtype="float32", meta=meta, overwrite=overwrite,
                         preview=preview) as out:
        for start in range(0, volume.shape[0], slab):
            out[start : start + slab] = apply_normalization(volume.data[start : start + slab], stats)
    info(f"normalized {volume.source} ({'x'.join(map(str, volume.shape))}, {spec['method']}) -> {target}")
