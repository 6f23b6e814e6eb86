"""The variation between tomograms: ranges of conditions, and one run's draw from them.

Real tomograms differ from one dataset, or one microscope session, to the next: in SNR,
in how dark the particles are against the background, in defocus, in ice thickness
across the field of view, and in how many distractors (off-target proteins, vesicles,
gold fiducials) they hold.  :class:`SimulationRanges` states a range for each;
:meth:`SimulationRanges.draw` picks one value of each for one run, from a generator of
its own, so a set of runs made with one seed spans the ranges reproducibly.

:class:`RunConditions` is what one run was made with; its default is the simulator's
historical single setting, and a run simulated with it is identical to one simulated
before these options existed.

* ``snr``: filtered-signal variance over filtered-noise variance, with the signal taken
  at contrast 1 and without gold (see :mod:`.imaging`); drawn log-uniformly.
* ``contrast``: multiplies the density of the true particles (not of off-target
  proteins, membranes or gold) after the noise level is set, so 2 makes the particles
  about twice as dark, in z-score units, at the same noise; drawn uniformly.
* ``ice_gradient``: the noise amplitude grows linearly by this fraction across the
  field of view, in a random direction of the x-y plane (see
  :func:`.imaging.ice_profile`); 0 is uniform ice; drawn uniformly in ``[0, 2)``.
* ``off_targets``, ``vesicles``: multipliers of the default rates of off-target
  proteins and of membranes (vesicles and sheets); drawn uniformly.
* ``gold``: multiplier of the reference rate of gold beads (``GOLD_PER_CUBIC_MICRON``,
  about 7 in a 184x630x630 run of 10 Å voxels); 0 (the default) puts none; drawn
  uniformly.

The defocus range lives in :class:`.imaging.ImagingParameters` and is drawn with the
run's own generator, as it always was.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UsageError

DEFAULT_SNR = 0.1
MAX_ICE_GRADIENT = 2.0  # at 2 the thin edge would have no noise at all

Range = tuple[float, float]


@dataclass(frozen=True)
class RunConditions:
    """The conditions one run is simulated with (see the module docstring for units)."""

    snr: float = DEFAULT_SNR
    contrast: float = 1.0
    ice_gradient: float = 0.0
    ice_direction_deg: float = 0.0
    off_targets: float = 1.0
    vesicles: float = 1.0
    gold: float = 0.0

    def __post_init__(self) -> None:
        positive = {"snr": self.snr, "contrast": self.contrast}
        for name, value in positive.items():
            if not 0 < value < math.inf:
                raise UsageError(f"simulation {name} must be a positive number, got {value}")
        rates = {"off_targets": self.off_targets, "vesicles": self.vesicles, "gold": self.gold}
        for name, value in rates.items():
            if not 0 <= value < math.inf:
                raise UsageError(f"simulation {name} rate must be a non-negative number, got {value}")
        if not 0 <= self.ice_gradient < MAX_ICE_GRADIENT:
            raise UsageError(f"simulation ice_gradient must be in [0, {MAX_ICE_GRADIENT:g}), got {self.ice_gradient}")
        if not math.isfinite(self.ice_direction_deg):
            raise UsageError(f"simulation ice_direction_deg must be finite, got {self.ice_direction_deg}")

    def to_json(self) -> dict[str, float]:
        """Plain numbers, for provenance."""
        return {key: float(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class SimulationRanges:
    """Ranges ``(low, high)`` of the per-run conditions; ``low == high`` fixes a value.

    Examples
    --------
    >>> ranges = SimulationRanges(snr=(0.05, 0.2), contrast=(1.0, 2.0))
    >>> a = ranges.draw(np.random.default_rng(0))
    >>> 0.05 <= a.snr <= 0.2 and 1.0 <= a.contrast <= 2.0 and a.gold == 0.0
    True
    >>> a == ranges.draw(np.random.default_rng(0))
    True
    >>> SimulationRanges().draw(np.random.default_rng(5)) == RunConditions()
    True
    """

    snr: Range = (DEFAULT_SNR, DEFAULT_SNR)
    contrast: Range = (1.0, 1.0)
    ice_gradient: Range = (0.0, 0.0)
    off_targets: Range = (1.0, 1.0)
    vesicles: Range = (1.0, 1.0)
    gold: Range = (0.0, 0.0)

    def __post_init__(self) -> None:
        for name, (low, high) in asdict(self).items():
            if not low <= high:
                raise UsageError(f"simulation {name} range must have low <= high, got {low}:{high}")
            # The ends must be valid conditions themselves.
            RunConditions(**{name: low})
            RunConditions(**{name: high})

    def draw(self, rng: np.random.Generator) -> RunConditions:
        """One run's conditions; every field is drawn (in a fixed order) whether fixed or not.

        SNR is log-uniform (it spans decades), the others uniform; a fixed range returns
        its value exactly.  The ice direction is uniform in [0, 360) degrees when the ice
        has a gradient, else 0.
        """
        snr = _log_uniform(rng, self.snr)
        contrast = _uniform(rng, self.contrast)
        gradient = _uniform(rng, self.ice_gradient)
        direction = float(rng.uniform(0.0, 360.0))
        off_targets = _uniform(rng, self.off_targets)
        vesicles = _uniform(rng, self.vesicles)
        gold = _uniform(rng, self.gold)
        return RunConditions(
            snr=snr,
            contrast=contrast,
            ice_gradient=gradient,
            ice_direction_deg=direction if gradient > 0 else 0.0,
            off_targets=off_targets,
            vesicles=vesicles,
            gold=gold,
        )

    def to_json(self) -> dict[str, list[float]]:
        """Plain lists, for provenance."""
        return {key: [float(low), float(high)] for key, (low, high) in asdict(self).items()}


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    low, high = bounds
    value = float(rng.uniform(low, high))
    return float(low) if low == high else value


def _log_uniform(rng: np.random.Generator, bounds: Range) -> float:
    low, high = bounds
    value = float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(low) if low == high else min(max(value, low), high)


def parameter_rng(seed: int, index: int) -> np.random.Generator:
    """The generator a run's conditions are drawn from: separate from the one that builds it.

    Drawing the conditions apart keeps the particles, distractors and noise of run
    ``index`` under ``seed`` the same whatever the ranges are.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, index, 1]))
