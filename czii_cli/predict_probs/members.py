"""From model files to ensemble members: agreement checks, window choice, input normalization.

Model files load only through :func:`czii_cli.training.checkpoint.load_model_file`
(``torch.load(weights_only=True)``), so a file that would run code is refused before
anything in it runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from torch import nn

from ..errors import DataError, NonFiniteError, UsageError
from ..io.artifacts import Volume
from ..normalize import apply_normalization, count_nonfinite, normalization_stats
from ..training.checkpoint import ModelFile, load_model_file
from ..training.registry import patch_multiple
from .predict import Member, Prepare


def load_models(paths: Sequence[Path]) -> list[ModelFile]:
    """Load model files that can be ensembled: same classes, same activation, one input channel."""
    models = [load_model_file(path) for path in paths]
    first, first_path = models[0], paths[0]
    for model, path in zip(models, paths):
        if model.in_channels != 1:
            raise DataError(f"{path}: the model takes {model.in_channels} input channels; tomograms have 1")
        if list(model.classes) != list(first.classes):
            raise UsageError(
                f"models disagree on classes: {first_path} has {list(first.classes)}, {path} has {list(model.classes)}"
            )
        if model.activation != first.activation:
            raise UsageError(
                f"models disagree on activation: {first_path} is {first.activation}, {path} is {model.activation}"
            )
    return models


def choose_window(models: Sequence[ModelFile], paths: Sequence[Path], window: Sequence[int] | None) -> tuple[int, ...]:
    """``window`` if given, else the first model's patch size; every model must accept it."""
    chosen = tuple(int(v) for v in (window if window else models[0].patch_size))
    if len(chosen) != 3 or min(chosen) < 1:
        raise UsageError(f"window needs three positive sizes (z y x), got {chosen}")
    for model, path in zip(models, paths):
        multiple = patch_multiple(model.arch, model.arch_params)
        if any(side % multiple for side in chosen):
            raise UsageError(
                f"{path}: window {'x'.join(map(str, chosen))} is not a multiple of {multiple}, "
                f"which the {model.arch} network needs; choose another window"
            )
    return chosen


def fit_window(window: Sequence[int], shape: Sequence[int], *, multiple: int = 1) -> tuple[int, int, int]:
    """Shrink a window to the volume, rounded up to the multiple the networks need.

    A window larger than the volume only adds padding (and memory: a 1024^3 window
    on a 32x64x64 volume needs tens of GB); no side is made smaller than the volume's
    side rounded up to ``multiple``.

    Examples
    --------
    >>> fit_window((1024, 1024, 1024), (32, 60, 64), multiple=8)
    (32, 64, 64)
    >>> fit_window((64, 64, 64), (100, 100, 100), multiple=8)
    (64, 64, 64)
    """
    multiple = max(1, int(multiple))
    return tuple(min(int(w), math.ceil(int(s) / multiple) * multiple) for w, s in zip(window, shape))


def window_multiple(models: Sequence[ModelFile]) -> int:
    """The smallest side every model's network accepts as a multiple."""
    return math.lcm(*(patch_multiple(model.arch, model.arch_params) for model in models))


def check_finite_volume(volume: Volume) -> None:
    """Refuse a tomogram with NaN or infinite voxels, naming it and the count."""
    bad, total = count_nonfinite(volume.data)
    if bad:
        raise NonFiniteError(
            f"{volume.source}: {bad} of {total} voxels are not finite (NaN or infinite)", count=bad, total=total
        )


def input_preparation(model: ModelFile, volume: Volume, cache: dict) -> tuple[Prepare | None, dict | str]:
    """How to bring ``volume`` to the model's input scale, and a description of it.

    An already-normalized tomogram artifact (``extra["normalization"]``) and a model
    that records no normalization get the volume as is (described as ``"as-is"``).
    Otherwise the model's method is applied with statistics over this whole tomogram,
    computed once per method and shared through ``cache`` by the models that use the
    same method (described by the statistics).
    Non-finite voxels are refused (:class:`NonFiniteError`): in the statistics pass,
    or, for a volume used as is, by one scan shared through ``cache``.
    """
    if "normalization" in volume.meta.extra or not model.normalization:
        if "as-is" not in cache:
            check_finite_volume(volume)
            cache["as-is"] = (None, "as-is")
        return cache["as-is"]
    spec = model.normalization
    key = json.dumps(spec, sort_keys=True)
    if key not in cache:
        try:
            stats = normalization_stats(volume.data, method=spec["method"], clip=spec.get("clip"), source=volume.source)
        except (KeyError, TypeError) as err:
            raise DataError(f"malformed normalization in a model file: {spec!r} ({err!r})") from None
        cache[key] = (partial(apply_normalization, stats=stats), stats)
    return cache[key]


def members_for(
    networks: Sequence[nn.Module], models: Sequence[ModelFile], volume: Volume
) -> tuple[list[Member], list[dict | str]]:
    """Pair each built network with its input preparation for one tomogram.

    Returns the members and, per model, the normalization applied (for provenance).
    """
    cache: dict = {}
    members, applied = [], []
    for network, model in zip(networks, models):
        prepare, description = input_preparation(model, volume, cache)
        members.append(Member(network, prepare=prepare))
        applied.append(description)
    return members, applied
