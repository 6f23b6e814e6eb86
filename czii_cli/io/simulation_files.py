"""The files of a simulated project: tomograms and picks per run, config, marker, provenance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import __version__
from .artifacts import provenance_entry
from .atomic import MARKER
from .copick import config_document
from .picks import write_annotation_csv, write_copick_picks
from .volumes import write_json, write_mrc, write_ome_zarr

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..picks import Picks

SimulationLayout = Literal["copick", "mrc", "both"]
"""Where runs go: a copick project, competition-style MRC + CSV files, or both."""
LAYOUTS: tuple[SimulationLayout, ...] = ("copick", "mrc", "both")
TOMO_TYPE = "denoised"
"""The copick tomogram type of simulated tomograms."""
PROVENANCE_FILE = "simulation.json"
"""What every run was made with, in the project folder."""


def write_simulated_run(
    root: Path,
    run: str,
    tomogram: Any,
    picks: Picks,
    *,
    layout: SimulationLayout,
    voxel_size: float,
) -> None:
    """Write one run's tomogram and true picks under ``root`` in ``layout``.

    Parameters
    ----------
    root : Path
        The project folder.
    run : str
        The run's name, already checked to be a safe file name.
    tomogram : ndarray, shape (Z, Y, X)
        The simulated tomogram.
    picks : Picks
        Its true particles, in Å.
    layout : {"copick", "mrc", "both"}
        Where the files go.
    voxel_size : float
        Å per voxel.
    """
    if layout != "mrc":
        spacing = root / "static" / "ExperimentRuns" / run / f"VoxelSpacing{voxel_size:.3f}"
        write_ome_zarr(spacing / f"{TOMO_TYPE}.zarr", tomogram, voxel_size=voxel_size)
        (root / "overlay" / "ExperimentRuns" / run / "Picks").mkdir(parents=True, exist_ok=True)
        write_copick_picks(root / "overlay", picks, user="curation", session="0")
    if layout != "copick":
        (root / "train_images").mkdir(exist_ok=True)
        (root / "train_annotations").mkdir(exist_ok=True)
        write_mrc(root / "train_images" / f"{run}.mrc", tomogram, voxel_size=voxel_size)
        write_annotation_csv(root / "train_annotations" / f"{run}.csv", picks)


def write_simulation_marker(root: Path, args: dict[str, Any], *, inputs: list[str]) -> None:
    """The hidden file that marks the folder as czii's (so that it may be replaced), with provenance."""
    entry = provenance_entry("simulate", args, inputs)
    write_json(root / MARKER, {"czii": {"kind": "simulation", "provenance": [entry]}})


def write_copick_config(root: Path, catalog: Catalog, *, final: Path) -> None:
    """The project's copick config, pointing at ``final``, where the project will be once in place."""
    write_json(root / "copick_config.json", config_document(final.name, catalog.to_json(), final))


def write_simulation_provenance(root: Path, document: dict[str, Any]) -> None:
    """:data:`PROVENANCE_FILE`: the seed, the ranges and every run's draw, with czii's version."""
    write_json(root / PROVENANCE_FILE, {**document, "version": __version__})
