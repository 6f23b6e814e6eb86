"""The simulate stage: simulated runs written as a project folder that appears only when complete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Catalog
from ..io.atomic import atomic_path
from ..io.names import check_file_name
from ..io.simulation_files import (
    SimulationLayout,
    write_copick_config,
    write_simulated_run,
    write_simulation_marker,
    write_simulation_provenance,
)
from ..picks import Picks
from . import simulate_run
from .imaging import ImagingParameters
from .variation import SimulationRanges, parameter_rng


def simulate_files(
    out: Path,
    *,
    names: Sequence[str],
    shape: Sequence[int],
    catalog: Catalog,
    seed: int = 0,
    voxel_size: float = 10.0,
    density: float = 1.0,
    ranges: SimulationRanges | None = None,
    imaging: ImagingParameters | None = None,
    layout: SimulationLayout = "copick",
    positions: Picks | None = None,
    overwrite: bool = False,
    args: dict[str, Any] | None = None,
    inputs: Sequence[str] = (),
    picks_file: str | None = None,
    catalog_source: str = "the class catalog",
    on_run: Callable[[str, str], None] | None = None,
) -> Path:
    """Simulate the runs ``names`` into the project folder ``out``.

    Run ``i`` draws from ``np.random.SeedSequence([seed, i])`` and its conditions from
    ``ranges`` (:func:`~czii_cli.simulate.variation.parameter_rng`), so the same seed gives
    identical files.

    Parameters
    ----------
    out : Path
        The folder; it appears only when every run is written.
    names : sequence of str
        The runs; they become folder and file names, so each is checked first.
    shape : sequence of 3 int
        Each run's shape (z, y, x) in voxels.
    catalog : Catalog
        The particle classes; their names become file names too.
    seed, voxel_size, density : int, float, float
        The seed, Å per voxel and the particle-count scale.
    ranges, imaging : optional
        Per-run condition ranges and the imaging model; default: the defaults.
    layout : {"copick", "mrc", "both"}
        Where the files go (:func:`czii_cli.io.simulation_files.write_simulated_run`).
    positions : Picks, optional
        Particles to place instead of random ones, per run (Å).
    overwrite : bool
        Replace an existing czii folder at ``out``.
    args, inputs : optional
        The settings and input files recorded in the folder's provenance.
    picks_file : str, optional
        The file ``positions`` and ``names`` came from: recorded, and named when a run
        name is not a safe file name.
    catalog_source : str
        What an error names when a class name is not a safe file name.
    on_run : callable, optional
        Called with each run's name and summary once it is simulated.

    Returns
    -------
    Path
        ``out``.
    """
    ranges = ranges if ranges is not None else SimulationRanges()
    imaging = imaging if imaging is not None else ImagingParameters()
    for run in names:
        check_file_name(run, source=picks_file or "the run names", what="run name")
    for name in catalog.names:
        check_file_name(name, source=catalog_source, what="particle name")
    provenance: dict[str, Any] = {
        "command": "simulate",
        "seed": seed,
        "shape": list(shape),
        "voxel_size": voxel_size,
        "density": density,
        "picks": picks_file,
        "ranges": {**ranges.to_json(), "defocus_um": list(imaging.defocus_um)},
        "runs": {},
    }
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        write_simulation_marker(tmp, args or {}, inputs=list(inputs))
        for index, run in enumerate(names):
            sim = simulate_run(
                shape,
                catalog=catalog,
                voxel_size=voxel_size,
                rng=np.random.default_rng(np.random.SeedSequence([seed, index])),
                positions=None if positions is None else positions.where(experiment=run),
                density_scale=density,
                run=run,
                imaging=imaging,
                conditions=ranges.draw(parameter_rng(seed, index)),
            )
            write_simulated_run(tmp, run, sim.tomogram, sim.picks, layout=layout, voxel_size=voxel_size)
            provenance["runs"][run] = sim.provenance()
            if on_run is not None:
                on_run(run, sim.summary())
        if layout != "mrc":
            write_copick_config(tmp, catalog, final=out)
        write_simulation_provenance(tmp, provenance)
    return out
