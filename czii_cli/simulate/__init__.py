"""Synthetic tomograms with their truth, for tests, demos and pre-training.

One run is built in three steps, each in its own module:

1. :mod:`.placement`: how many particles of each class (scaled from the real data) and
   where, without overlaps, plus off-target proteins that are not in the truth;
2. :mod:`.shapes` and :mod:`.membranes`: a density map of class-specific particle
   templates in random orientations, off-target blobs, vesicles and membrane sheets;
3. :mod:`.imaging`: CTF band pass, missing wedge and noise at a chosen SNR.

:func:`simulate_run` is pure: arrays and picks in, arrays and picks out.  Runs are made
independent by giving each its own generator, e.g.
``np.random.default_rng(np.random.SeedSequence([seed, run_index]))``.

:mod:`.variation` describes the conditions that vary between runs (SNR, particle
contrast, defocus, ice gradient, distractor rates) and draws them from ranges.

The default SNR (0.1, see :mod:`.imaging` for the definition) was chosen by eye and by
training: at the real particle density the ribosomes and capsids are plain, the small
proteins faint among noise blobs and off-target proteins, and the ~0.3 M-parameter
:class:`czii_cli.training.light.LightUNet` trained for ~10 CPU minutes on three
96x192x192 runs (~290 steps of two 48^3 crops) reached F4 of 0.52-0.67, depending on
the threshold, on a fourth run (8 particles: a small, noisy check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..catalog import Catalog
from ..coords import angstrom_to_voxel, voxel_to_angstrom
from ..errors import DataError, UsageError
from ..picks import Picks
from .imaging import ImagingParameters, filtered_variance, form_image, ice_profile
from .membranes import random_membranes, render_membrane
from .placement import ExclusionSampler, draw_gold_radii, draw_off_target_radii, expected_counts, place_random
from .shapes import class_template, gold_bead, random_blob, random_rotation, render_template
from .variation import DEFAULT_SNR, RunConditions, SimulationRanges, parameter_rng

__all__ = [
    "DEFAULT_SNR",
    "MIN_SIDE",
    "ImagingParameters",
    "RunConditions",
    "SimulatedRun",
    "SimulationRanges",
    "check_positions",
    "parameter_rng",
    "simulate_run",
]
MIN_SIDE = 16  # voxels per side at least: smaller runs hold hardly a particle
# Peak memory of one run: about 19 bytes per voxel measured (float32 density and image,
# their complex half-spectra, noise); 24 leaves room for writing the files.
BYTES_PER_VOXEL = 24


def memory_estimate(shape: Sequence[int]) -> int:
    """Bytes of memory one simulated run of ``shape`` voxels needs at its peak (an estimate).

    Examples
    --------
    >>> round(memory_estimate((184, 630, 630)) / 2**30, 2)
    1.63
    """
    return int(np.prod([int(s) for s in shape], dtype=object)) * BYTES_PER_VOXEL


def check_memory(shape: Sequence[int], *, available: int) -> None:
    """Refuse a run that cannot fit in ``available`` bytes, naming the estimate.

    Raises
    ------
    UsageError
        When :func:`memory_estimate` exceeds ``available``.
    """
    needed = memory_estimate(shape)
    if needed > available:
        raise UsageError(
            f"a {'x'.join(str(int(s)) for s in shape)} run needs about {format_bytes(needed)} of memory; "
            f"this machine has {format_bytes(available)}"
        )


def physical_memory() -> int:
    """Bytes of physical memory of this machine (0 when the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def format_bytes(count: int) -> str:
    """A byte count in binary units.

    Examples
    --------
    >>> format_bytes(3 * 2**30), format_bytes(512)
    ('3.0 GiB', '512 B')
    """
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


@dataclass(frozen=True)
class SimulatedRun:
    """One simulated run.

    Attributes
    ----------
    run : str
        Experiment name.
    tomogram : ndarray, float32, [z, y, x]
        The imaged volume, zero mean and unit variance.
    picks : Picks
        The true particles (centres in Å, sorted); off-target proteins are not in it.
    off_targets : int
        Number of off-target proteins drawn into the volume.
    membranes : int
        Number of vesicles and membrane sheets.
    defocus_um : float
        Underfocus used for the CTF.
    conditions : RunConditions
        SNR, contrast, ice gradient and distractor rates the run was made with.
    gold_beads : int
        Number of gold beads drawn into the volume.
    """

    run: str
    tomogram: np.ndarray
    picks: Picks
    off_targets: int
    membranes: int
    defocus_um: float
    conditions: RunConditions = field(default_factory=RunConditions)
    gold_beads: int = 0

    def summary(self) -> str:
        """One line for logs: particle counts per class, the distractors and the conditions."""
        counts = ", ".join(f"{name} {len(self.picks.where(particle_type=name))}" for name in self.picks.particle_types)
        c = self.conditions
        extra = f", contrast {c.contrast:.2f}" if c.contrast != 1.0 else ""
        extra += f", ice gradient {c.ice_gradient:.2f}" if c.ice_gradient > 0 else ""
        gold = f", {self.gold_beads} gold" if self.gold_beads else ""
        return (
            f"{len(self.picks)} particles ({counts or 'none'}), {self.off_targets} off-target, "
            f"{self.membranes} membranes{gold}, defocus {self.defocus_um:.2f} µm, SNR {c.snr:.3g}{extra}"
        )

    def provenance(self) -> dict[str, Any]:
        """What the run was made with, as plain data: conditions, defocus and counts."""
        return {
            **self.conditions.to_json(),
            "defocus_um": float(self.defocus_um),
            "particles": len(self.picks),
            "off_target_proteins": int(self.off_targets),
            "membranes": int(self.membranes),
            "gold_beads": int(self.gold_beads),
        }


def check_positions(positions: Picks, shape_zyx: Sequence[int], *, voxel_size: float, catalog: Catalog) -> None:
    """Raise a :class:`DataError` for a pick of an unknown class or outside the volume.

    Inside means ``0 <= coordinate < side * voxel_size`` Å along each axis.
    """
    unknown = sorted(set(positions.particle_type.tolist()) - set(catalog.names))
    if unknown:
        raise DataError(f"unknown particle class {unknown[0]!r} (known: {', '.join(catalog.names)})")
    voxels = angstrom_to_voxel(positions.xyz, voxel_size=voxel_size)
    outside = np.flatnonzero(np.any((voxels < 0) | (voxels >= np.asarray(shape_zyx)), axis=1))
    if len(outside):
        i = outside[0]
        x, y, z = positions.xyz[i]
        extent = " x ".join(f"{s * voxel_size:g}" for s in shape_zyx[::-1])
        raise DataError(
            f"{len(outside)} pick(s) lie outside the volume, e.g. {positions.particle_type[i]} "
            f"at x={x:g} y={y:g} z={z:g} Å in run {positions.experiment[i]} (volume x, y, z: {extent} Å)"
        )


def simulate_run(
    shape_zyx: Sequence[int],
    *,
    catalog: Catalog,
    voxel_size: float,
    rng: np.random.Generator,
    snr: float | None = None,
    positions: Picks | None = None,
    density_scale: float = 1.0,
    run: str = "TS_sim_0",
    imaging: ImagingParameters = ImagingParameters(),
    conditions: RunConditions = RunConditions(),
) -> SimulatedRun:
    """Simulate one tomogram and its true particle picks.

    Parameters
    ----------
    shape_zyx : sequence of 3 ints
        Volume size in voxels (each side at least ``MIN_SIDE``).
    catalog : Catalog
        Particle classes; known names get their own shapes, others a globule of their radius.
    voxel_size : float
        Å per voxel.
    rng : numpy Generator
        The only source of randomness: the same generator state gives the same run.
    snr : float, optional
        Signal variance over noise variance in the output (see :mod:`.imaging`); a
        shortcut that replaces ``conditions.snr``.
    positions : Picks, optional
        Place these particles (centres in Å, classes from the catalog) instead of random
        ones; orientations stay random.  All rows are used, whatever their experiment.
    density_scale : float
        Multiplies the number of random particles and off-target proteins.
    run : str
        Experiment name of the returned picks.
    imaging : ImagingParameters
        Microscope settings; the defocus is drawn from its range with ``rng``.
    conditions : RunConditions
        SNR, particle contrast, ice gradient and distractor rates of this run (see
        :mod:`.variation`); the default is the historical single setting.

    Returns
    -------
    SimulatedRun

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> sim = simulate_run((32, 64, 64), catalog=DEFAULT_CATALOG, voxel_size=10.0,
    ...                    rng=np.random.default_rng(0), density_scale=20)
    >>> sim.tomogram.shape, sim.tomogram.dtype.name
    ((32, 64, 64), 'float32')
    >>> len(sim.picks) > 0
    True
    """
    shape = tuple(int(s) for s in shape_zyx)
    if len(shape) != 3 or min(shape) < MIN_SIDE:
        raise UsageError(f"volume shape must be 3 sides of at least {MIN_SIDE} voxels, got {shape}")
    if snr is not None:
        if not snr > 0:
            raise UsageError(f"SNR must be positive, got {snr}")
        conditions = replace(conditions, snr=float(snr))
    membranes = random_membranes(shape, voxel_size=voxel_size, rng=rng, rate_scale=conditions.vesicles)
    sampler = ExclusionSampler(shape, membranes=membranes, rng=rng)
    radius_of = {c.name: c.radius / voxel_size for c in catalog}
    expected = expected_counts(catalog, shape, voxel_size=voxel_size, density_scale=density_scale)
    if positions is None:
        drawn = [name for name, mean in expected.items() for _ in range(rng.poisson(mean))]
        placed, centres = place_random(sampler, [radius_of[n] for n in drawn])
        names = [drawn[i] for i in placed]
        xyz = np.round(voxel_to_angstrom(centres, voxel_size=voxel_size), 3)
    else:
        check_positions(positions, shape, voxel_size=voxel_size, catalog=catalog)
        names, xyz = list(positions.particle_type), positions.xyz
        for name, centre in zip(names, angstrom_to_voxel(xyz, voxel_size=voxel_size)):
            sampler.add(centre, radius_of[name])
    centres = angstrom_to_voxel(xyz, voxel_size=voxel_size)
    blob_radii = draw_off_target_radii(
        sum(expected.values()), voxel_size=voxel_size, rng=rng, rate_scale=conditions.off_targets
    )
    placed, blob_centres = place_random(sampler, blob_radii)
    blob_radii = blob_radii[placed]
    gold_radii, gold_centres = np.empty(0), np.empty((0, 3))
    if conditions.gold > 0:
        gold_radii = draw_gold_radii(shape, voxel_size=voxel_size, rng=rng, rate_scale=conditions.gold)
        placed, gold_centres = place_random(sampler, gold_radii)
        gold_radii = gold_radii[placed]

    density = np.zeros(shape, dtype=np.float32)
    separate = conditions.contrast != 1.0 or len(gold_radii) > 0
    particles = np.zeros(shape, dtype=np.float32) if separate else density
    for membrane in membranes:
        render_membrane(density, membrane)
    for name, centre in zip(names, centres):
        rotation = random_rotation(rng)
        render_template(particles, class_template(name), centre_zyx=centre, radius=radius_of[name], rotation=rotation)
    for radius, centre in zip(blob_radii, blob_centres):
        rotation = random_rotation(rng)
        render_template(density, random_blob(rng), centre_zyx=centre, radius=radius, rotation=rotation)

    defocus = float(rng.uniform(*imaging.defocus_um))
    reference = None
    if particles is not density:
        # The noise is set by the ordinary content (contrast 1, no gold), so darker
        # particles and gold beads stand out of the same noise.
        density += particles
        reference = filtered_variance(density, voxel_size=voxel_size, defocus_um=defocus, parameters=imaging)
        if conditions.contrast != 1.0:
            particles *= np.float32(conditions.contrast - 1.0)
            density += particles
        del particles
        for radius, centre in zip(gold_radii, gold_centres):
            render_template(density, gold_bead(), centre_zyx=centre, radius=radius, rotation=np.eye(3))
    profile = None
    if conditions.ice_gradient > 0:
        profile = ice_profile(shape, gradient=conditions.ice_gradient, direction_deg=conditions.ice_direction_deg)
    tomogram = form_image(
        density,
        voxel_size=voxel_size,
        snr=conditions.snr,
        rng=rng,
        defocus_um=defocus,
        parameters=imaging,
        signal_variance=reference,
        noise_profile=profile,
    )
    del density
    tomogram -= tomogram.mean(dtype=np.float64)
    tomogram /= tomogram.std(dtype=np.float64)

    picks = Picks(np.full(len(names), run, dtype=object), np.array(names, dtype=object), xyz).sorted()
    return SimulatedRun(
        run,
        tomogram,
        picks,
        len(blob_centres),
        len(membranes),
        defocus,
        conditions=conditions,
        gold_beads=len(gold_centres),
    )
