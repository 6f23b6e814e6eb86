"""Settings of a training run, with their defaults in one place (no torch import).

:class:`TrainConfig` is what ``czii train`` resolves from its flags and ``--config`` file
and stores in every model file; :class:`AugmentConfig` the augmentation part of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..class_values import parse_class_values
from ..errors import ConfigError, UsageError
from ..tune import DEFAULT_RULE, check_rule

SOFTMAX_LOSSES = ("ce", "dice", "dicece", "tversky", "focaltversky")
SIGMOID_LOSSES = ("bce", "mse", "dice", "dicece", "tversky", "focaltversky")
LOSSES = tuple(dict.fromkeys(SOFTMAX_LOSSES + SIGMOID_LOSSES))

LossSpec = tuple[tuple[str, float], ...]
"""A loss as ``(name, weight)`` terms, summed: ``(("ce", 1.0), ("tversky", 0.5))``."""


def check_loss(terms: Sequence[tuple[str, float]]) -> LossSpec:
    """``terms`` as a :data:`LossSpec`: known names, finite weights; else a :class:`ConfigError`.

    Examples
    --------
    >>> check_loss([("ce", 1), ("tversky", 0.5)])
    (('ce', 1.0), ('tversky', 0.5))
    """
    checked = []
    for term in terms:
        if not isinstance(term, (tuple, list)) or len(term) != 2 or not isinstance(term[0], str):
            raise ConfigError(f"training setting 'loss': expected (name, weight) pairs, got {term!r}")
        name, weight = term
        if name not in LOSSES:
            raise ConfigError(f"training setting 'loss': unknown loss {name!r} (choose from {', '.join(LOSSES)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError(f"training setting 'loss': weight of {name!r} must be a finite number, got {weight!r}")
        checked.append((name, float(weight)))
    return tuple(checked)


def loss_text(terms: LossSpec) -> str:
    """The loss as people read it (and as model files store it): ``ce:1,tversky:0.5``.

    Examples
    --------
    >>> loss_text((("ce", 1.0), ("tversky", 0.5)))
    'ce:1,tversky:0.5'
    """
    return ",".join(f"{name}:{number_text(weight)}" for name, weight in terms)


def number_text(value: float) -> str:
    """A number as its shortest exact text, whole numbers without a decimal point.

    Examples
    --------
    >>> number_text(4.0), number_text(8.61), number_text(1e-05)
    ('4', '8.61', '1e-05')
    """
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


@dataclass(frozen=True)
class ClassWeights:
    """Loss weights of the output channels (``ce``, and ``bce`` for particle channels).

    Attributes
    ----------
    particle : float or None
        The weight of every particle class not named; None: the target's default
        (:data:`DEFAULT_PARTICLE_WEIGHT`).
    named : tuple of (str, float)
        Weights of single channels, ``background`` included (background defaults to 1).

    Examples
    --------
    >>> weights = ClassWeights(particle=256.0)
    >>> weights.per_channel(["background", "a", "b"], default_particle=4.0)
    [1.0, 256.0, 256.0]
    >>> ClassWeights(named=(("b", 2.0), ("background", 0.5))).per_channel(["background", "a", "b"], default_particle=4)
    [0.5, 4.0, 2.0]
    >>> str(ClassWeights(particle=8.0, named=(("ribosome", 2.5),)))
    '8,ribosome=2.5'
    """

    particle: float | None = None
    named: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        values = [] if self.particle is None else [self.particle]
        values += [weight for _, weight in self.named]
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"class weights: weights must be finite and >= 0, got {value!r}")
        names = [name for name, _ in self.named]
        if len(set(names)) != len(names) or not all(isinstance(name, str) and name for name in names):
            raise ConfigError(f"class weights: expected each class named once, got {names}")

    @classmethod
    def from_mapping(cls, named: Mapping[str, float], *, particle: float | None = None) -> ClassWeights:
        """Weights from ``{channel: weight}`` (in its order) and an optional particle weight."""
        return cls(None if particle is None else float(particle), tuple((k, float(v)) for k, v in named.items()))

    def per_channel(self, channels: Sequence[str], *, default_particle: float) -> list[float]:
        """One weight per output channel; a named class that is not a channel is a :class:`ConfigError`."""
        named = dict(self.named)
        unknown = sorted(set(named) - set(channels))
        if unknown:
            raise ConfigError(f"class weights: unknown class {unknown[0]!r} (known: {', '.join(channels)})")
        particle = float(default_particle) if self.particle is None else self.particle
        return [named.get(c, 1.0 if c == "background" else particle) for c in channels]

    def __str__(self) -> str:
        """``8,ribosome=2.5``: the weights as people read them (and as model files store them)."""
        parts = [] if self.particle is None else [number_text(self.particle)]
        return ",".join(parts + [f"{name}={number_text(weight)}" for name, weight in self.named])


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (0 disables one).

    Attributes
    ----------
    flip : float
        Probability of flipping each axis.
    rot90 : bool
        Rotate by a random multiple of 90 degrees in x-y.
    rotate_degrees : float
        Largest rotation about z in degrees; applied with probability ``rotate_p``.
    rotate_p : float
    scale, shift : float
        Intensity is multiplied by ``U(1 - scale, 1 + scale)`` and shifted by
        ``U(-shift, shift)`` (units of the normalized image).
    contrast : float
        Largest contrast factor: with probability ``contrast_p`` the image is multiplied
        by a log-uniform factor in ``[1 / contrast, contrast]`` (tomograms of another
        session, microscope or crowding show particles up to about twice as dark, or
        half as dark, in units of their own standard deviation).
    contrast_p : float
    gamma : float
        With probability ``gamma_p`` the patch, rescaled to [0, 1], is raised to the
        power ``exp(U(-gamma, gamma))`` and mapped back to its mean and spread.
    gamma_p : float
    blur : float
        Largest Gaussian blur in voxels, applied with probability ``blur_p`` (defocus and
        resolution vary between tomograms); the patch keeps its mean and spread.
    blur_p : float
    ctf_p : float
        Probability of a CTF-like ripple (:func:`~czii_cli.training.augment.ctf_modulation`):
        the spectrum multiplied by ``cos(pi / 2 * (k / k0)^2)``, its first zero ``k0``
        drawn from ``U(ctf_zero, 0.5)`` cycles per voxel, so that fine detail is damped or
        inverted as a CTF at another defocus would.  0 disables it.
    ctf_zero : float
        Lowest first zero of the ripple, in cycles per voxel, in (0, 0.5].
    noise : float
        Largest standard deviation of added Gaussian noise, applied with probability
        ``noise_p``; the patch is then rescaled to its former spread, as a noisier
        tomogram looks after its own normalization (particles fainter).
    noise_p : float
        Off by default: the spectral noise below does its work better.
    spectral_noise : float
        Largest standard deviation (relative to the patch's) of added noise that has the
        patch's own power spectrum, applied with probability ``spectral_noise_p``; the
        patch is then rescaled to its former spread.  A tomogram's noise passed through
        the CTF band pass and the missing wedge as its signal did, so noise shaped like
        the patch lowers the SNR as another tomogram's would, where white noise adds fine
        grain that the band pass would have removed.  0 disables it.  Instead of white
        noise it raised unseen F4 in ``make bench-accuracy`` (two 1200 s runs against two
        of the white-noise default: unseen 0.973 against 0.921, noisy 0.733 against 0.680).
    spectral_noise_p : float
    lowpass_gain : float
        With probability ``lowpass_p`` the patch's low-pass band (a Gaussian of
        ``lowpass_sigma`` voxels, where particles live and little of the noise does) is
        added again with a gain drawn from ``U(0, lowpass_gain)``, and the patch rescaled
        to its former spread: particles darker at the same noise, as in a tomogram of
        higher SNR or stronger particle contrast after its own normalization.  0 disables it.
    lowpass_p : float
    lowpass_sigma : float
    particle_gain : float
        With probability ``particle_gain_p`` the particles alone are made darker: the
        patch's fine low-pass (a Gaussian of 1 voxel) is added again, with a gain drawn
        from ``U(0, particle_gain)``, where the target marks particles (its foreground,
        widened by a Gaussian of ``particle_sigma`` voxels), and the patch rescaled to its
        former spread: particles darker against the same noise and the same other
        content, as in a tomogram of stronger particle contrast.  0 disables it.
    particle_gain_p : float
    particle_sigma : float
    mixup_p : float
        Probability that a sample is blended with another sample of its batch.
    mixup_alpha : float
        Beta(alpha, alpha) distribution of the blend factor.
    """

    flip: float = 0.5
    rot90: bool = True
    rotate_degrees: float = 10.0
    rotate_p: float = 0.3
    scale: float = 0.1
    shift: float = 0.1
    contrast: float = 2.0
    contrast_p: float = 0.5
    gamma: float = 0.4
    gamma_p: float = 0.3
    blur: float = 1.5
    blur_p: float = 0.3
    ctf_p: float = 0.0
    ctf_zero: float = 0.25
    noise: float = 1.3
    noise_p: float = 0.0
    spectral_noise: float = 1.5
    spectral_noise_p: float = 0.5
    lowpass_gain: float = 2.0
    lowpass_p: float = 0.5
    lowpass_sigma: float = 2.0
    particle_gain: float = 2.0
    particle_gain_p: float = 0.5
    particle_sigma: float = 2.0
    mixup_p: float = 0.0
    mixup_alpha: float = 0.4

    def rotation_margin(self, patch_yx: tuple[int, int]) -> int:
        """Extra voxels to crop on each side in y and x so a rotated patch has no empty corners."""
        if self.rotate_p <= 0 or self.rotate_degrees <= 0:
            return 0
        angle = math.radians(min(self.rotate_degrees, 45.0))
        half = max(patch_yx) / 2.0
        return math.ceil(half * (math.cos(angle) + math.sin(angle)) - half) + 1


SELECT_SCORES = ("tuned", "fixed")
PRECISIONS = ("auto", "float32", "bfloat16")
DEFAULT_LOSS: dict[str, LossSpec] = {
    "spheres": (("ce", 1.0), ("tversky", 0.5)),
    "points": (("ce", 1.0),),
    "heatmap": (("bce", 1.0),),
}
DEFAULT_PARTICLE_WEIGHT = {"spheres": 4.0, "points": 256.0, "heatmap": 8.0}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (the defaults of ``czii train``).

    Attributes
    ----------
    arch, arch_params : network name and parameter overrides (see the registry); unless
        set, a run's plan chooses them (the light net, its width from the time budget:
        :func:`czii_cli.training.recipe.choose_width`).
    loss : LossSpec
        ``(name, weight)`` terms (``(("ce", 1.0), ("tversky", 0.5))``); empty picks the
        target's default.  Stored in JSON as text, ``ce:1,tversky:0.5``.
    class_weights : ClassWeights
        ``ce``/``bce`` weights: one for every particle class, and/or per channel
        (``background`` included); empty picks the target's default (particles 4 for
        spheres, 256 for points, 8 for heatmaps; background 1).  Stored in JSON as
        text, ``256`` or ``background=1,ribosome=2``.
    patch : (Z, Y, X)
        Training crop in voxels.
    batch_size, epochs, steps_per_epoch : an epoch is ``steps_per_epoch`` optimizer
        steps, followed by a validation round.
    max_steps : int or None
        Stop after this many steps in all (caps ``epochs * steps_per_epoch``).
    max_time : float or None
        Time budget in seconds, validation included: training stops early enough for the
        final validation round, and the learning-rate decay follows the time used.
    lr, weight_decay, warmup_steps, grad_clip : AdamW, linear warm-up then cosine decay
        to 1 % of ``lr``, gradient-norm clipping.
    ema_decay : float
        EMA of the weights (0 disables it); saved models hold the EMA weights.
    balanced, jitter : fraction of class-balanced crops; particle offset from the crop
        centre as a fraction of half the patch.
    augment : AugmentConfig
    normalization : dict
        ``{"method", "clip"}`` for tomograms that are not normalized yet.
    val_overlap, val_threshold, val_patch : sliding-window overlap, pick threshold and
        window of validation rounds (default window: the largest of at most 4 M voxels,
        see :func:`czii_cli.training.validation.validation_window`).
    val_candidate_thresholds : tuple of float
        Pick thresholds, besides ``val_threshold``, of the candidates whose per-class
        score cutoffs each validation round tunes; each class takes the one that tunes
        best (see :func:`czii_cli.training.validation.validate_round`).  The default spans
        where the best one moves while a network trains: early on, connected components
        at a low threshold merge a whole tomogram into one; later a small class may only
        be found at 0.02 to 0.05.  Each costs one more picking pass; empty: tune cutoffs
        at ``val_threshold`` only.
    threshold_rule : {"robust", "best"}
        How validation rounds tune per-class score cutoffs (:func:`czii_cli.tune.best_cutoff`):
        ``robust`` chooses cutoffs that carry over to unseen tomograms, ``best`` the exact
        optimum on the validation runs.  The kept checkpoint's cutoffs and pick thresholds
        go into the model file, and from there into every probability map it predicts.
    select : {"tuned", "fixed"}
        The validation score that keeps the best checkpoint: F-beta at tuned cutoffs or
        at ``val_threshold``.
    bin : "auto" or int
        Working resolution: tomograms (and their targets, painted again from the picks)
        are binned by this factor (block means, :mod:`czii_cli.resample`) before
        training, and the model's voxel size is the binned one; ``auto`` lets the plan
        choose (:mod:`czii_cli.training.recipe`).
    precision : {"auto", "float32", "bfloat16"}
        Arithmetic of the training step: ``auto`` lets the plan choose (mixed precision on
        a GPU; on a CPU bfloat16 with a time budget where the CPU has native bfloat16,
        else float32: :func:`czii_cli.training.recipe.choose_precision`); left ``auto``
        outside a plan, it is mixed on a GPU and float32 on a CPU (see
        :func:`czii_cli.training.training.training_precision`).
    seed : int
    output_stride : "auto" or int
        Grid of the maps the model is meant to give (``predict-probs --output-stride``
        resolves ``auto`` to it): 1, the model's voxels; 2, a light net's own
        half-resolution grid (``stem_stride=2``).  Validation rounds predict at it, so the
        thresholds they tune are those of such maps; ``auto`` lets the plan choose
        (:func:`czii_cli.training.recipe.choose_output_stride`).
    """

    arch: str = "light"
    arch_params: dict[str, Any] = field(default_factory=dict)
    loss: LossSpec = ()
    class_weights: ClassWeights = field(default_factory=ClassWeights)
    patch: tuple[int, int, int] = (64, 64, 64)
    batch_size: int = 2
    epochs: int = 10
    steps_per_epoch: int = 50
    max_steps: int | None = None
    max_time: float | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    grad_clip: float = 1.0
    ema_decay: float = 0.99
    balanced: float = 0.8
    jitter: float = 0.75
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    normalization: dict[str, Any] = field(default_factory=lambda: {"method": "zscore", "clip": None})
    val_overlap: float = 0.25
    val_threshold: float = 0.15
    val_patch: tuple[int, int, int] | None = None
    val_candidate_thresholds: tuple[float, ...] = (0.05, 0.02)
    threshold_rule: str = DEFAULT_RULE
    select: str = "tuned"
    precision: str = "auto"
    seed: int = 0
    bin: int | str = "auto"
    output_stride: int | str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", check_loss(self.loss))
        if not isinstance(self.class_weights, ClassWeights):
            raise ConfigError(f"training setting 'class_weights' must be ClassWeights, got {self.class_weights!r}")
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ConfigError(f"training setting 'patch' needs three positive sizes, got {self.patch}")
        for name in ("batch_size", "epochs", "steps_per_epoch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training setting {name!r} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"training setting 'max_steps' must be >= 1, got {self.max_steps}")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"training setting 'lr' must be positive, got {self.lr}")
        if self.max_time is not None and not 0 < self.max_time < math.inf:
            raise ConfigError(f"max_time (time budget in seconds) must be a positive number, got {self.max_time}")
        for name, low in (("weight_decay", 0.0), ("grad_clip", 0.0)):
            value = getattr(self, name)
            if not low <= value < math.inf:
                raise ConfigError(f"{name} must be a finite number >= {low:g}, got {value}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must lie in [0, 1], got {self.jitter}")
        if not 0 <= self.val_overlap < 1:
            raise ConfigError(f"val_overlap must lie in [0, 1), got {self.val_overlap}")
        check_augment(self.augment)
        if not 0 <= self.balanced <= 1:
            raise ConfigError(f"balanced crop fraction must lie in [0, 1], got {self.balanced}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"EMA decay must lie in [0, 1), got {self.ema_decay}")
        check_rule(self.threshold_rule)
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"training setting 'precision' must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.select not in SELECT_SCORES:
            raise ConfigError(
                f"training setting 'select' must be one of {', '.join(SELECT_SCORES)}, got {self.select!r}"
            )
        check_factor_setting(self.bin, setting="bin")
        check_factor_setting(self.output_stride, setting="output_stride")
        if not all(0 < value <= 1 for value in (self.val_threshold, *self.val_candidate_thresholds)):
            raise ConfigError(
                f"validation pick thresholds must lie in (0, 1], got {self.val_threshold} and "
                f"{list(self.val_candidate_thresholds)}"
            )

    @property
    def total_steps(self) -> int:
        """Steps of the whole run: ``epochs * steps_per_epoch``, capped by ``max_steps``."""
        planned = self.epochs * self.steps_per_epoch
        return planned if self.max_steps is None else min(planned, self.max_steps)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (stored in model files and provenance); loss and class weights as text."""
        document: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        document["loss"] = loss_text(self.loss)
        document["class_weights"] = str(self.class_weights)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """Build a config from JSON (a configuration file or a checkpoint); unknown keys are errors.

        ``loss`` and ``class_weights`` may be their stored text (:meth:`to_json`) or
        already typed (a :data:`LossSpec` or list of pairs, a :class:`ClassWeights`).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(document) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown training setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        values = dict(document)
        if isinstance(values.get("loss"), str):
            values["loss"] = _stored_loss(values["loss"], source=source)
        elif isinstance(values.get("loss"), (list, tuple)):
            values["loss"] = tuple(tuple(term) if isinstance(term, list) else term for term in values["loss"])
        if isinstance(values.get("class_weights"), str):
            values["class_weights"] = _stored_class_weights(values["class_weights"], source=source)
        if "augment" in values:
            if not isinstance(values["augment"], dict):
                raise ConfigError(f"{source}: augment must be an object of augmentation settings")
            augment_known = {f.name for f in fields(AugmentConfig)}
            extra = sorted(set(values["augment"]) - augment_known)
            if extra:
                raise ConfigError(f"{source}: unknown augmentation setting {extra[0]!r}")
            values["augment"] = AugmentConfig(**values["augment"])
        for key in ("patch", "val_patch"):
            if values.get(key) is not None:
                values[key] = _int_triple(values[key], key=key, source=source)
        if "val_candidate_thresholds" in values:
            try:
                values["val_candidate_thresholds"] = tuple(float(v) for v in values["val_candidate_thresholds"])
            except (TypeError, ValueError):
                raise ConfigError(f"{source}: val_candidate_thresholds must be a list of numbers") from None
        try:
            return cls(**values)
        except UsageError as err:
            if source == "flags" or str(err).startswith(f"{source}:"):
                raise
            raise ConfigError(f"{source}: {err}") from None
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: malformed training settings ({err})") from None

    def evolve(self, **changes: Any) -> TrainConfig:
        """A copy with some settings replaced."""
        return replace(self, **changes)


def _stored_loss(text: str, *, source: str) -> LossSpec:
    """The loss of a model file or settings document, stored as ``ce:1,tversky:0.5``."""
    terms = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            name, _, weight = item.partition(":")
            try:
                terms.append((name.strip().lower(), float(weight) if weight.strip() else 1.0))
            except ValueError:
                raise ConfigError(f"{source}: training setting 'loss': {item!r} is not NAME:WEIGHT") from None
    try:
        return check_loss(terms)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _stored_class_weights(text: str, *, source: str) -> ClassWeights:
    """The class weights of a model file or settings document, stored as ``8,ribosome=2``."""
    try:
        particle, named = parse_class_values(text, setting="class_weights")
        return ClassWeights.from_mapping(named, particle=particle)
    except UsageError as err:
        raise ConfigError(f"{source}: {err}") from None


def _int_triple(value: object, *, key: str, source: str) -> tuple[int, int, int]:
    """Three whole numbers (Z, Y, X) from a JSON list; anything else is a ConfigError naming the key."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ConfigError(f"{source}: {key} must be a list of three whole numbers (Z, Y, X), got {value!r}")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer() for v in value
    ):
        raise ConfigError(f"{source}: {key} must be a list of three whole numbers (Z, Y, X), got {value!r}")
    z, y, x = (int(v) for v in value)
    return z, y, x


BIN_FACTORS = (1, 2)


def check_factor_setting(value: object, *, setting: str) -> None:
    """``auto`` or one of :data:`BIN_FACTORS` (1 or 2); else a UsageError naming ``setting``."""
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value not in BIN_FACTORS:
        raise UsageError(f"training setting {setting!r} must be auto, 1 or 2, got {value!r}")


def parse_factor_setting(text: str, *, setting: str) -> int | str:
    """The setting ``setting`` (``bin`` or ``output_stride``) from its text: ``auto``, ``1`` or ``2``.

    Examples
    --------
    >>> parse_factor_setting("2", setting="bin"), parse_factor_setting("auto", setting="output_stride")
    (2, 'auto')
    """
    value: int | str = text.strip().lower()
    if value != "auto":
        try:
            value = int(value)
        except ValueError:
            raise UsageError(f"training setting {setting!r} must be auto, 1 or 2, got {text!r}") from None
    check_factor_setting(value, setting=setting)
    return value


def check_augment(augment: AugmentConfig) -> None:
    """Probabilities in [0, 1], ranges finite and non-negative; else a ConfigError naming the setting."""
    for item in fields(AugmentConfig):
        value = getattr(augment, item.name)
        if item.name == "rot90":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"augmentation setting {item.name} must be a number, got {value!r}")
        top = 1.0 if item.name == "flip" or item.name.endswith("_p") else math.inf
        if not 0 <= value <= top or not math.isfinite(value):
            raise ConfigError(f"augmentation setting {item.name} must lie in [0, {top:g}], got {value}")
    if not 0 < augment.ctf_zero <= 0.5:
        zero = augment.ctf_zero
        raise ConfigError(f"augmentation setting ctf_zero must lie in (0, 0.5] cycles per voxel, got {zero}")
