"""The default recipe, configured from the data and the device before the first step.

Like nnU-Net's plans, a training run first takes a fingerprint of its data (voxel size,
volume shapes, particle radii in voxels, particles per class) and then chooses the
settings the user left open.  Every choice carries its reason; the plan is printed and
stored in the model file (``train["plan"]``), and any setting given by the user, as a
flag or in a configuration file, is kept as given and marked so.

What the plan decides:

* ``bin``: the working resolution (tomograms binned by 1 or 2 before training, see
  :func:`choose_bin`); every other choice is made on the binned grid;
* ``epochs``: with a time budget and no step limit, train until the budget is spent
  (the learning rate follows the time used), instead of stopping at the default steps;
* ``patch``: at least twice the largest particle's diameter (so a crop holds it whole
  with context around), a multiple of the network's down-sampling, at most the smallest
  training volume; larger on a GPU;
* ``batch_size``: 2 patches on a CPU, 4 on a GPU;
* ``class_weights``: cross-entropy weight per class, the target's particle weight scaled
  by the square root of how much smaller the class's training blob is than the largest
  one, so small particles (apo-ferritin, beta-amylase) are not drowned by the large ones
  that fill most foreground voxels;
* ``precision``: with a time budget on a CPU with native bfloat16, bfloat16 autocast
  (measured faster and bit-reproducible, see :func:`choose_precision`), else float32; on a
  GPU mixed precision;
* ``arch`` and ``arch_params``: the light net, and with a time budget its width from
  :data:`LIGHT_WIDTHS` by the steps the budget buys at each width's measured rate (see
  :func:`choose_width`);
* ``output_stride``: the grid of the model's maps, at which validation rounds tune its
  thresholds and ``predict-probs`` predicts by default (see :func:`choose_output_stride`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..catalog import Catalog
from ..errors import ConfigError
from ..make_labels import TargetSpec
from ..resample import binned_shape
from .config import DEFAULT_PARTICLE_WEIGHT, ClassWeights, TrainConfig
from .light import output_strides
from .registry import resolve_params

UNBOUNDED_EPOCHS = 1_000_000  # a time budget ends the run long before
MAX_WEIGHT_GAIN = 4.0  # the smallest class's weight is at most this many times the largest's
GPU_PATCH_SIDE = 96
CPU_PATCH_SIDE = 64


@dataclass(frozen=True)
class DataFingerprint:
    """What the plan knows of the training data.

    Attributes
    ----------
    voxel_size : float
        Å per voxel.
    shapes : tuple of (Z, Y, X)
        Training volume shapes in voxels.
    radii_voxels : dict of str to float
        Particle radius of each class in voxels.
    blob_radii_voxels : dict of str to float
        Radius of each class's training target (sphere or heatmap) in voxels.
    counts : dict of str to int
        Training particles per class.
    """

    voxel_size: float
    shapes: tuple[tuple[int, int, int], ...]
    radii_voxels: dict[str, float]
    blob_radii_voxels: dict[str, float]
    counts: dict[str, int]

    def binned(self, factor: int) -> DataFingerprint:
        """The fingerprint of the same data binned by ``factor`` (partial blocks kept).

        Examples
        --------
        >>> from czii_cli.catalog import DEFAULT_CATALOG
        >>> f = fingerprint_of([(184, 630, 631)], {}, catalog=DEFAULT_CATALOG, spec=TargetSpec(), voxel_size=10.0)
        >>> b = f.binned(2)
        >>> b.voxel_size, b.shapes, b.radii_voxels["ribosome"]
        (20.0, ((92, 315, 316),), 7.5)
        """
        if factor == 1:
            return self
        return DataFingerprint(
            voxel_size=self.voxel_size * factor,
            shapes=tuple(binned_shape(shape, factor=factor) for shape in self.shapes),
            radii_voxels={name: radius / factor for name, radius in self.radii_voxels.items()},
            blob_radii_voxels={name: radius / factor for name, radius in self.blob_radii_voxels.items()},
            counts=dict(self.counts),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "voxel_size": self.voxel_size,
            "shapes": [list(s) for s in self.shapes],
            "radii_voxels": {k: round(v, 3) for k, v in self.radii_voxels.items()},
            "blob_radii_voxels": {k: round(v, 3) for k, v in self.blob_radii_voxels.items()},
            "counts": dict(self.counts),
        }


@dataclass(frozen=True)
class Choice:
    """One setting of the plan: its value, and why (``given`` when the user set it)."""

    setting: str
    value: object
    reason: str
    given: bool = False


@dataclass(frozen=True)
class TrainPlan:
    """The chosen settings of a run, with the fingerprint they were chosen from."""

    fingerprint: DataFingerprint
    device: str
    choices: tuple[Choice, ...]

    def apply(self, config: TrainConfig) -> TrainConfig:
        """``config`` with every chosen (not user-given) setting replaced."""
        return config.evolve(**{c.setting: c.value for c in self.choices if not c.given})

    def lines(self) -> list[str]:
        """The plan for people, one line per setting."""
        return [f"{c.setting} = {_shown(c.value)}: {c.reason}" for c in self.choices]

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint.to_json(),
            "device": self.device,
            "choices": [
                {"setting": c.setting, "value": _plain(c.value), "reason": c.reason, "given": c.given}
                for c in self.choices
            ],
        }


def _plain(value: object) -> object:
    if isinstance(value, ClassWeights):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return list(value) if isinstance(value, tuple) else value


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}={_listed(item)}" for key, item in value.items()) or "(registry defaults)"
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _listed(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def fingerprint_of(
    shapes: Sequence[Sequence[int]], counts: Mapping[str, int], *, catalog: Catalog, spec: TargetSpec, voxel_size: float
) -> DataFingerprint:
    """The fingerprint of training volumes of ``shapes`` holding ``counts`` particles per class.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> f = fingerprint_of([(96, 192, 192)], {"ribosome": 3}, catalog=DEFAULT_CATALOG, spec=TargetSpec(),
    ...                    voxel_size=10.0)
    >>> f.radii_voxels["ribosome"], f.blob_radii_voxels["apo-ferritin"], f.counts["apo-ferritin"]
    (15.0, 3.0, 0)
    """
    radii = {c.name: c.radius / voxel_size for c in catalog}
    blobs = {name: radius * spec.scale_of(name) for name, radius in radii.items()}
    # Training volumes are zyx, so each shape is three sides long.
    zyx_shapes = cast(tuple[tuple[int, int, int], ...], tuple(tuple(int(s) for s in shape) for shape in shapes))
    return DataFingerprint(
        voxel_size=float(voxel_size),
        shapes=zyx_shapes,
        radii_voxels=radii,
        blob_radii_voxels=blobs,
        counts={c.name: int(counts.get(c.name, 0)) for c in catalog},
    )


def plan_training(
    fingerprint: DataFingerprint,
    *,
    config: TrainConfig,
    given: Collection[str],
    device: str,
    multiple: int,
    target: str,
    native_bfloat16: bool = False,
    initial_params: Mapping[str, Any] | None = None,
) -> TrainPlan:
    """Choose the open settings of a run from its data and device.

    Parameters
    ----------
    fingerprint : DataFingerprint
    config : TrainConfig
        The settings so far (defaults, configuration file and flags).
    given : collection of str
        Settings the user gave; the plan keeps them.
    device : str
        ``cpu`` or ``cuda``.
    multiple : int
        The network's required patch-side multiple.
    target : str
        ``spheres``, ``heatmap`` or ``points``.
    native_bfloat16 : bool
        Whether the CPU computes bfloat16 in hardware
        (:func:`czii_cli.predict_probs.runner.native_bfloat16`).
    initial_params : mapping, optional
        The network parameters of the model whose weights start the run (same
        architecture): the plan keeps its width, so every weight loads.

    Returns
    -------
    TrainPlan

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> f = fingerprint_of([(96, 192, 192)], {}, catalog=DEFAULT_CATALOG, spec=TargetSpec(), voxel_size=10.0)
    >>> plan = plan_training(f, config=TrainConfig(max_time=600.0), given={"max_time"}, device="cpu", multiple=8,
    ...                      target="spheres")
    >>> [c.setting for c in plan.choices]
    ['bin', 'epochs', 'patch', 'batch_size', 'class_weights', 'precision', 'arch', 'arch_params', 'output_stride']
    >>> plan.apply(TrainConfig(max_time=600.0)).patch
    (64, 64, 64)
    """
    given = set(given)
    binning = choose_bin(fingerprint, config=config, given=given, device=device)
    working = fingerprint.binned(int(binning.value))  # type: ignore[call-overload]
    patch = _patch(working, config, given, device=device, multiple=multiple)
    batch_size = _batch_size(config, given, device=device)
    arch = _arch(config, given, device=device)
    precision = choose_precision(
        config, given=given, device=device, native_bfloat16=native_bfloat16, arch=str(arch.value)
    )
    sized = config.evolve(patch=patch.value, batch_size=batch_size.value, arch=arch.value, precision=precision.value)
    choices = [
        binning,
        _epochs(config, given),
        patch,
        batch_size,
        _class_weights(working, config, given, target=target),
        precision,
        arch,
    ]
    width = choose_width(sized, given=given, device=device, initial_params=initial_params)
    choices += [width, choose_output_stride(config, given=given, arch=str(arch.value), arch_params=width.value)]
    return TrainPlan(fingerprint=fingerprint, device=device, choices=tuple(choices))


AUTO_BIN = 1
"""What ``bin = auto`` chooses, from ``make bench-accuracy`` runs of bin 1 against bin 2."""
AUTO_BIN_REASON = (
    "full resolution: bin 2 did not pay reliably in make bench-accuracy on a CPU (unseen F4 0.54 "
    "against 0.81 at 600 s, 0.80 against 0.89 at 1200 s); bin 2 is opt-in"
)


def choose_bin(fingerprint: DataFingerprint, *, config: TrainConfig, given: Collection[str], device: str) -> Choice:
    """The working resolution: the user's ``bin``, else :data:`AUTO_BIN` (measured, see its reason).

    Parameters
    ----------
    fingerprint : DataFingerprint
        The data at its own resolution.
    config : TrainConfig
        ``bin`` is ``auto`` (the plan chooses), 1 or 2.
    given : collection of str
        Settings the user gave.
    device : str
        ``cpu`` or ``cuda``.

    Returns
    -------
    Choice
        ``bin`` as an int; the reason names the working voxel size and the smallest radius.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> f = fingerprint_of([(96, 192, 192)], {}, catalog=DEFAULT_CATALOG, spec=TargetSpec(), voxel_size=10.0)
    >>> choice = choose_bin(f, config=TrainConfig(bin=2), given={"bin"}, device="cpu")
    >>> choice.value, choice.given, choice.reason
    (2, True, 'given: work at 20 Å voxels (smallest radius 3 voxels)')
    """
    if config.bin != "auto" and "bin" in given:
        factor = int(config.bin)
        return Choice("bin", factor, f"given: {_working(fingerprint, factor)}", given=True)
    if config.bin != "auto":  # set by a configuration file without being marked given
        factor = int(config.bin)
        return Choice("bin", factor, f"set: {_working(fingerprint, factor)}")
    return Choice("bin", AUTO_BIN, f"{AUTO_BIN_REASON} ({device}); {_working(fingerprint, AUTO_BIN)}")


def _working(fingerprint: DataFingerprint, factor: int) -> str:
    smallest = min(fingerprint.radii_voxels.values(), default=0.0) / factor
    return f"work at {fingerprint.voxel_size * factor:g} Å voxels (smallest radius {smallest:.3g} voxels)"


def _epochs(config: TrainConfig, given: set[str]) -> Choice:
    if "epochs" in given:
        return Choice("epochs", config.epochs, "given", given=True)
    if config.max_time is None:
        return Choice("epochs", config.epochs, "no time budget: the default number of rounds")
    if "max_steps" in given:
        return Choice("epochs", config.epochs, "a step limit is given: the default rounds, capped by it")
    return Choice(
        "epochs",
        UNBOUNDED_EPOCHS,
        f"a time budget of {config.max_time:g} s: train until it is spent (the learning rate follows it)",
    )


def _patch(fingerprint: DataFingerprint, config: TrainConfig, given: set[str], *, device: str, multiple: int) -> Choice:
    if "patch" in given:
        return Choice("patch", tuple(config.patch), "given", given=True)
    diameter = 2 * max(fingerprint.radii_voxels.values(), default=0.0)
    preferred = GPU_PATCH_SIDE if device == "cuda" else CPU_PATCH_SIDE
    side = max(preferred, _round_up(2 * diameter, multiple))
    smallest = np.min(np.array(fingerprint.shapes), axis=0) if fingerprint.shapes else np.array([side] * 3)
    patch = tuple(int(max(multiple, min(side, (int(s) // multiple) * multiple))) for s in smallest)
    return Choice(
        "patch",
        patch,
        f"twice the largest particle diameter ({diameter:.0f} voxels) and at least "
        f"{preferred} on {device}, within the smallest volume ({' '.join(map(str, smallest))})",
    )


def _batch_size(config: TrainConfig, given: set[str], *, device: str) -> Choice:
    if "batch_size" in given:
        return Choice("batch_size", config.batch_size, "given", given=True)
    size = 4 if device == "cuda" else 2
    return Choice("batch_size", size, f"{size} patches per step on {device}")


def _class_weights(fingerprint: DataFingerprint, config: TrainConfig, given: set[str], *, target: str) -> Choice:
    if "class_weights" in given:
        return Choice("class_weights", config.class_weights, "given", given=True)
    base = DEFAULT_PARTICLE_WEIGHT[target]
    volumes = {name: _blob_voxels(radius) for name, radius in fingerprint.blob_radii_voxels.items()}
    largest = max(volumes.values(), default=1.0)
    weights = {
        name: float(f"{base * min(MAX_WEIGHT_GAIN, math.sqrt(largest / volume)):.3g}")
        for name, volume in volumes.items()
    }
    return Choice(
        "class_weights",
        ClassWeights.from_mapping(weights),
        f"particle weight {base:g} times sqrt(largest blob / class blob volume), "
        f"at most x{MAX_WEIGHT_GAIN:g}: small particles weigh as much as large ones",
    )


def _blob_voxels(radius: float) -> float:
    return max(4.0 / 3.0 * math.pi * radius**3, 1.0)


def _round_up(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


LIGHT_WIDTHS: tuple[tuple[int, int, int], ...] = ((16, 24, 32), (24, 32, 48), (32, 48, 64))
"""Channels per level of the light net that the plan chooses among, narrowest first."""
DEFAULT_LIGHT_WIDTH = (24, 32, 48)
"""The registry's light width: what a run without a time budget trains."""
REFERENCE_PATCH = (64, 64, 64)
LIGHT_RATES: dict[str, dict[tuple[int, int, int], float]] = {
    "float32": {(16, 24, 32): 10.81, (24, 32, 48): 6.16, (32, 48, 64): 4.99},
    "bfloat16": {(16, 24, 32): 14.01, (24, 32, 48): 9.43, (32, 48, 64): 6.49},
}
"""Training patches per second of each width at :data:`REFERENCE_PATCH`, batch 2, on the
reference CPU (2 cores with AVX512-BF16), by precision.  The default width's are the
default recipe's rates from ``make bench-perf`` on the idle machine; the other widths'
are scaled from them by the ratios of their CPU seconds per step, measured alternated in
one process on one thread (``CZII_BENCH_CLOCK=process python -m benchmarks.bench_train
plan``: per CPU second, float32 7.42 / 4.23 / 3.43 and bfloat16 11.07 / 7.45 / 5.13
patches, narrowest first)."""
CPU_WIDTHS: tuple[tuple[int, int, int], ...] = LIGHT_WIDTHS[:2]
"""The widths a CPU run chooses among.  At equal compute (``python -m
benchmarks.bench_learning curves``, what 500 default-width bfloat16 steps cost) the widest
scored validation F4 0.727 at its last round (tuned 0.845) against the default's 0.828
(0.831): no clear win at 1.45x the cost per step, so it is left to GPUs."""
MIN_STEPS = 1000
"""Steps a time budget must buy for a width to be chosen.  ``make demo`` (360 s) with the
default width in float32 ran 1008 steps and scored validation F4 0.94 and unseen 0.867;
the same demo with the narrow 16-24-32 in bfloat16 (1400 steps) scored validation 0.97 but
unseen 0.773 (beta-galactosidase 1 of 3).  With fewer steps than this the narrowest width
learnt more in the same compute: at 500 default-width bfloat16 steps' worth (``python -m
benchmarks.bench_learning curves``) it scored validation F4 0.888 at its last round (best
0.938) against the default's 0.828 (best 0.831)."""
BFLOAT16_REPRODUCIBLE = True
"""Two seeded runs in bfloat16 (channels-last) gave bit-identical weights on the reference
CPU (``python -m benchmarks.bench_train plan``, and two ``czii train`` runs)."""
BFLOAT16_MIN_GAIN = 1.2
"""bfloat16 is chosen only when it measured at least this many times faster than float32."""


def choose_precision(
    config: TrainConfig, *, given: Collection[str], device: str, native_bfloat16: bool, arch: str
) -> Choice:
    """The arithmetic of the training step: bfloat16 where it was measured to pay, else float32.

    bfloat16 is chosen on a CPU with native bfloat16, for the light net, with a time
    budget (where its speed buys steps), when :data:`LIGHT_RATES` say it is at least
    :data:`BFLOAT16_MIN_GAIN` times faster and it is :data:`BFLOAT16_REPRODUCIBLE`.

    Parameters
    ----------
    config : TrainConfig
        ``precision`` is ``auto`` (the plan chooses) unless set.
    given : collection of str
        Settings the user gave.
    device : str
        ``cpu`` or ``cuda``.
    native_bfloat16 : bool
        Whether the CPU computes bfloat16 in hardware.
    arch : str
        The network the run trains.

    Returns
    -------
    Choice
        ``precision``: ``float32``, ``bfloat16``, or ``auto`` on a GPU (mixed precision).

    Examples
    --------
    >>> choose_precision(TrainConfig(max_time=600.0), given=(), device="cpu", native_bfloat16=False,
    ...                  arch="light").value
    'float32'
    """
    if "precision" in given:
        return Choice("precision", config.precision, "given", given=True)
    if config.precision != "auto":
        return Choice("precision", config.precision, "set")
    if device == "cuda":
        return Choice(
            "precision", "auto", "mixed precision on a GPU: bfloat16 where it has it, else float16 with a loss scaler"
        )
    if config.max_time is None:
        return Choice("precision", "float32", "no time budget: exact float32 (bfloat16 buys steps, not accuracy)")
    if arch != "light":
        return Choice("precision", "float32", f"{arch}: float32 (bfloat16 training was measured on the light net)")
    if not native_bfloat16:
        return Choice("precision", "float32", "this CPU has no native bfloat16: emulated, it is slower than float32")
    fast, exact = LIGHT_RATES["bfloat16"][DEFAULT_LIGHT_WIDTH], LIGHT_RATES["float32"][DEFAULT_LIGHT_WIDTH]
    measured = f"{fast:g} against {exact:g} patches/s in float32 on the reference CPU"
    if fast < BFLOAT16_MIN_GAIN * exact or not BFLOAT16_REPRODUCIBLE:
        return Choice("precision", "float32", f"bfloat16 did not pay: {measured}")
    return Choice(
        "precision",
        "bfloat16",
        f"native bfloat16 on this CPU: autocast, channels-last, {fast / exact:.2f}x the steps ({measured}), "
        "bit-reproducible under the seed",
    )


def _arch(config: TrainConfig, given: set[str], *, device: str) -> Choice:
    if "arch" in given:
        return Choice("arch", config.arch, "given", given=True)
    if config.arch != "light":
        return Choice("arch", config.arch, "set")
    return Choice("arch", "light", f"the light net (stride-2 stem, computes at half resolution) on {device}")


def steps_within(max_time: float, *, rate: float, patch: Sequence[int], batch_size: int) -> int:
    """Training steps ``max_time`` seconds buy at ``rate`` patches/s of :data:`REFERENCE_PATCH`.

    The rate is scaled by the patch's voxels and divided by the batch size; validation
    rounds are not counted.

    Examples
    --------
    >>> steps_within(100.0, rate=6.0, patch=(32, 64, 64), batch_size=4)
    300
    """
    reference = math.prod(REFERENCE_PATCH) / math.prod(patch)
    return int(max_time * rate * reference / batch_size)


def choose_width(
    config: TrainConfig, *, given: Collection[str], device: str, initial_params: Mapping[str, Any] | None = None
) -> Choice:
    """The light net's channels: the widest of :data:`CPU_WIDTHS` that gets enough steps.

    With a time budget on a CPU the plan takes the widest of :data:`CPU_WIDTHS` whose rate
    (:data:`LIGHT_RATES`, in the run's precision) buys at least :data:`MIN_STEPS` steps
    of the run's patch and batch (:func:`steps_within`), else the narrowest; without a
    budget the registry's :data:`DEFAULT_LIGHT_WIDTH`; on a GPU the widest of
    :data:`LIGHT_WIDTHS` (not measured there).

    Parameters
    ----------
    config : TrainConfig
        The run so far: its ``arch``, ``arch_params``, ``patch``, ``batch_size``,
        ``precision`` and ``max_time`` (the plan's choices applied).
    given : collection of str
        Settings the user gave.
    device : str
        ``cpu`` or ``cuda``.
    initial_params : mapping, optional
        The parameters of the model whose weights start the run: kept as they are.

    Returns
    -------
    Choice
        ``arch_params``: ``{"channels": [...]}`` for the light net, ``{}`` (the registry's
        defaults) for another network.

    Examples
    --------
    >>> choose_width(TrainConfig(), given=(), device="cpu").value
    {'channels': [24, 32, 48]}
    """
    if "arch_params" in given:
        return Choice("arch_params", dict(config.arch_params), "given", given=True)
    if config.arch_params:
        return Choice("arch_params", dict(config.arch_params), "set")
    if initial_params is not None:
        return Choice("arch_params", dict(initial_params), "those of the initial weights, so every weight loads")
    if config.arch != "light":
        return Choice("arch_params", {}, f"{config.arch}: the registry's defaults (the plan sizes the light net)")
    if device == "cuda":
        widest = LIGHT_WIDTHS[-1]
        return Choice("arch_params", {"channels": list(widest)}, "the widest light width on a GPU (not measured)")
    if config.max_time is None:
        return Choice("arch_params", {"channels": list(DEFAULT_LIGHT_WIDTH)}, "no time budget: the default width")
    precision = "bfloat16" if config.precision == "bfloat16" else "float32"
    rates = LIGHT_RATES[precision]
    budget = config.max_time
    steps = {
        w: steps_within(budget, rate=rates[w], patch=config.patch, batch_size=config.batch_size) for w in CPU_WIDTHS
    }
    enough = [width for width in CPU_WIDTHS if steps[width] >= MIN_STEPS]
    width = enough[-1] if enough else CPU_WIDTHS[0]
    estimates = "; ".join(f"{_listed(w)}: {rates[w]:g} patches/s, {steps[w]} steps" for w in CPU_WIDTHS)
    batch = f"{config.batch_size} x {'x'.join(map(str, config.patch))}"
    rule = "the widest" if enough else f"none gets {MIN_STEPS}, so the narrowest"
    return Choice(
        "arch_params",
        {"channels": list(width)},
        f"{rule} of the light widths whose {precision} rate on the reference CPU buys at least {MIN_STEPS} steps "
        f"of {batch} in {config.max_time:g} s ({estimates})",
    )


AUTO_OUTPUT_STRIDE = 2
"""What the plan chooses for a net that can give stride 2 (a light net with a stride-2 stem)."""
AUTO_OUTPUT_STRIDE_REASON = (
    "the light net's own half-resolution grid, thresholds tuned there: in make bench-accuracy (two 1200 s "
    "models) F4 on the three unseen sets was the same or higher than at stride 1 (full size 0.792 against "
    "0.780, 0.796 against 0.791), and a full tomogram predicts and picks about 1.9x faster"
)


def choose_output_stride(config: TrainConfig, *, given: Collection[str], arch: str, arch_params: object) -> Choice:
    """The grid of the model's maps: 2 (the net's own half-resolution grid) or 1.

    Stride 2 is only possible for a light net with ``stem_stride=2``; validation rounds
    predict at the chosen stride, so the tuned thresholds are those of its maps, and
    ``predict-probs --output-stride auto`` predicts at it.

    Parameters
    ----------
    config : TrainConfig
        ``output_stride`` is ``auto`` (the plan chooses) unless set.
    given : collection of str
        Settings the user gave.
    arch : str
        The network the run trains.
    arch_params : mapping
        Its parameters as the plan chose them (registry defaults fill the rest).

    Returns
    -------
    Choice
        ``output_stride``: 1 or 2.

    Raises
    ------
    ConfigError
        Stride 2 asked for a network that cannot give it.

    Examples
    --------
    >>> choose_output_stride(TrainConfig(arch="unet"), given=(), arch="unet", arch_params={}).value
    1
    """
    params = resolve_params(arch, dict(cast(Mapping[str, Any], arch_params)))
    able = output_strides(int(params["stem_stride"])) if arch == "light" else (1,)
    if config.output_stride != "auto":
        if config.output_stride not in able:
            raise ConfigError(
                f"training setting 'output_stride' {config.output_stride} needs a light net with stem_stride 2; "
                f"this run trains {arch} with {params}"
            )
        source = "given" if "output_stride" in given else "set"
        return Choice("output_stride", config.output_stride, source, given=source == "given")
    if 2 not in able:
        return Choice("output_stride", 1, f"{arch} gives its maps at full resolution only")
    return Choice("output_stride", AUTO_OUTPUT_STRIDE, AUTO_OUTPUT_STRIDE_REASON)
