"""Make synthetic tomograms with their true particle picks, for tests, demos and pre-training.

Each run is a crowded volume of class-specific particle shapes (a hollow apo-ferritin
shell, a two-subunit ribosome, a capsid with bumps, ...) in random orientations, with
off-target proteins and membranes as distractors, imaged through a CTF band pass and a
+-60 degree missing wedge, with noise at --snr (variance of the noise-free tomogram over
that of the noise, over the whole volume).  Particle counts follow the competition's
data (about 180 per 184x630x630 run), scaled with the volume and --density.  --layout
copick writes a copick project (copick_config.json,
static/ExperimentRuns/<run>/VoxelSpacing10.000/denoised.zarr,
overlay/ExperimentRuns/<run>/Picks/curation_0_<particle>.json); mrc writes
train_images/<run>.mrc and train_annotations/<run>.csv; both writes both.  --picks puts
the particles of its runs at its coordinates instead.  The same --seed gives identical
files.  A --shape whose run cannot fit in this machine's memory (about 24 bytes per voxel)
is refused up front.

To make runs that differ as real tomograms do, give ranges LO:HI instead of single
values: each run draws its own SNR (log-uniform), particle contrast, defocus, ice
gradient and distractor rates (uniform), and simulation.json in the output folder
records what every run was made with.  --contrast multiplies the density of the true
particles at the same noise (2: about twice as dark); --ice-gradient makes the noise
grow by that fraction across the field of view; --off-targets and --vesicles multiply
the default rates of off-target proteins and membranes; --gold adds very dark gold
beads (1: about 7 per 184x630x630 run).  With the defaults a run is the same as it
always was.

[bold]Examples[/bold]

  czii simulate sim --runs 4 --shape 96 192 192 --seed 1
  czii simulate sim --runs 7 --layout both --snr 0.05 -f
  czii simulate sim --picks truth.csv --shape 184 630 630
  czii simulate sim --runs 8 --snr 0.04:0.2 --contrast 0.7:2 --defocus 2:5 --ice-gradient 0:0.8 --gold 0:3
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .common import Classes, Overwrite, Quiet, Seed, voxel_size_option

DEFAULT_SNR = 0.1  # mirrors czii_cli.simulate.DEFAULT_SNR, which is not imported at start-up


def _range_option(flag: str, help: str):
    return typer.Option(flag, metavar="X|LO:HI", help=help)


class Layout(str, Enum):
    """Where the runs go: a copick project, competition-style MRC + CSV files, or both."""

    copick = "copick"
    mrc = "mrc"
    both = "both"


def command(
    out: Annotated[Path, typer.Argument(help="Output folder (must not exist unless -f).")],
    runs: Annotated[
        int | None, typer.Option("--runs", min=1, help="Number of runs (default 1).", show_default=False)
    ] = None,
    shape: Annotated[tuple[int, int, int], typer.Option("--shape", metavar="Z Y X", help="Run size in voxels.")] = (
        184,
        630,
        630,
    ),
    seed: Seed = 0,
    layout: Annotated[Layout, typer.Option("--layout", help="Output layout.")] = Layout.copick,
    snr: Annotated[
        str, _range_option("--snr", "Signal variance / noise variance (a range: log-uniform per run).")
    ] = f"{DEFAULT_SNR:g}",
    picks: Annotated[
        Path | None,
        typer.Option(
            "--picks",
            help="Place particles at these picks (any picks file); its runs replace --runs.",
            show_default=False,
        ),
    ] = None,
    voxel_size: Annotated[
        float, typer.Option("--voxel-size", help="Voxel size in Å.", callback=voxel_size_option)
    ] = 10.0,
    density: Annotated[
        float, typer.Option("--density", help="Scale the number of particles and off-target proteins.")
    ] = 1.0,
    contrast: Annotated[
        str, _range_option("--contrast", "Density of the true particles at the same noise (2: twice as dark).")
    ] = "1",
    defocus: Annotated[str, _range_option("--defocus", "Underfocus in µm, drawn uniformly per run.")] = "2.5:4",
    ice_gradient: Annotated[
        str, _range_option("--ice-gradient", "Noise grows by this fraction across the field of view (0: even ice).")
    ] = "0",
    off_targets: Annotated[
        str, _range_option("--off-targets", "Rate of off-target proteins, times the default (0.5 per particle).")
    ] = "1",
    vesicles: Annotated[
        str, _range_option("--vesicles", "Rate of vesicles and membrane sheets, times the default.")
    ] = "1",
    gold: Annotated[str, _range_option("--gold", "Rate of gold beads (1: about 7 per 184x630x630 run).")] = "0",
    classes: Classes = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    from ..console import info, make_progress, set_verbosity
    from ..errors import DataError, UsageError
    from ..io.atomic import check_output
    from ..io.catalog_file import load_catalog
    from ..io.picks import read_picks
    from ..simulate import (
        MIN_SIDE,
        ImagingParameters,
        SimulationRanges,
        check_memory,
        check_positions,
        physical_memory,
    )
    from ..simulate.job import simulate_files

    set_verbosity(quiet=quiet)
    if min(shape) < MIN_SIDE:
        raise UsageError(f"--shape: each side must be at least {MIN_SIDE} voxels, got {' '.join(map(str, shape))}")
    if not 0 < density < float("inf"):
        raise UsageError(f"--density must be a positive number, got {density}")
    if physical_memory():
        try:
            check_memory(shape, available=physical_memory())
        except UsageError as err:
            raise UsageError(f"--shape {' '.join(map(str, shape))}: {err}") from None
    bounds = {}
    for name, flag, text in (
        ("snr", "--snr", snr),
        ("contrast", "--contrast", contrast),
        ("ice_gradient", "--ice-gradient", ice_gradient),
        ("off_targets", "--off-targets", off_targets),
        ("vesicles", "--vesicles", vesicles),
        ("gold", "--gold", gold),
    ):
        bounds[name] = _parse_range(text, flag)
        try:
            SimulationRanges(**{name: bounds[name]})
        except UsageError as err:
            raise UsageError(f"{flag}: {err}") from None
    ranges = SimulationRanges(**bounds)
    defocus_um = _parse_range(defocus, "--defocus")
    if not defocus_um[0] > 0:
        raise UsageError(f"--defocus must be a positive underfocus in µm, got {defocus}")
    imaging = ImagingParameters(defocus_um=defocus_um)
    check_output(out, overwrite=overwrite)
    catalog = load_catalog(classes)
    given = None
    if picks is not None:
        if runs is not None:
            raise UsageError("--runs and --picks exclude each other: the picks file names the runs")
        given = read_picks(picks, catalog=catalog)
        if len(given) == 0:
            raise DataError(f"{picks}: no picks to place")
        try:
            check_positions(given, shape, voxel_size=voxel_size, catalog=catalog)
        except DataError as err:
            raise DataError(f"{picks}: {err}") from None
    names = given.experiments if given is not None else [f"TS_sim_{i}" for i in range(runs or 1)]
    args = {
        "runs": len(names),
        "shape": list(shape),
        "seed": seed,
        "layout": layout.value,
        "snr": snr,
        "voxel_size": voxel_size,
        "density": density,
    }
    with make_progress() as progress:
        task = progress.add_task("simulating", total=len(names), status="")

        def on_run(run: str, summary: str) -> None:
            progress.advance(task)
            info(f"{run}: {summary}")

        simulate_files(
            out,
            names=names,
            shape=shape,
            catalog=catalog,
            seed=seed,
            voxel_size=voxel_size,
            density=density,
            ranges=ranges,
            imaging=imaging,
            layout=layout.value,
            positions=given,
            overwrite=overwrite,
            args=args,
            inputs=[str(p) for p in (picks, classes) if p is not None],
            picks_file=None if picks is None else str(picks),
            catalog_source=str(classes or "the class catalog"),
            on_run=on_run,
        )
    info(f"wrote {len(names)} simulated run(s) to {out} ({layout.value} layout)")


def _parse_range(text: str, flag: str) -> tuple[float, float]:
    """``X`` or ``LO:HI`` as two finite numbers, ``LO <= HI``."""
    import math

    from ..errors import UsageError

    parts = text.split(":")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(parts) not in (1, 2) or len(values) != len(parts) or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{flag} must be a number or a range LO:HI, got {text!r}")
    low, high = values[0], values[-1]
    if low > high:
        raise UsageError(f"{flag} range must have LO <= HI, got {text!r}")
    return low, high
