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
from typing import Any, cast

import numpy as np
from torch import nn

from ..coords import MODEL_VOXEL_SIZE_WARNING, same_voxel_size
from ..errors import DataError, NonFiniteError, UsageError
from ..io.artifacts import Volume
from ..normalize import apply_normalization, count_nonfinite, normalization_stats
from ..resample import bin_volume, binned_origin
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
    fitted = tuple(min(int(w), math.ceil(int(s) / multiple) * multiple) for w, s in zip(window, shape))
    # Callers pass a zyx window and a zyx shape, so the pairs are three.
    return cast(tuple[int, int, int], fitted)


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


def model_bin_factor(models: Sequence[ModelFile], paths: Sequence[Path | str], volume: Volume) -> int:
    """By how much ``volume`` must be binned to reach the models' voxel size.

    1 when the models' voxel size is the tomogram's, or off it by at most
    :data:`~czii_cli.coords.MODEL_VOXEL_SIZE_WARNING` either way (predicted as is);
    ``k`` when it is ``k`` times the tomogram's (:func:`~czii_cli.coords.same_voxel_size`),
    which all models must then share.  A model coarser than the tomogram by any other
    ratio is a :class:`DataError` naming both files and voxel sizes.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> tomogram = SimpleNamespace(meta=SimpleNamespace(voxel_size=10.0), source="t.mrc")
    >>> model_bin_factor([SimpleNamespace(voxel_size=20.0)], [Path("m.pt")], tomogram)
    2
    >>> model_bin_factor([SimpleNamespace(voxel_size=10.012)], [Path("m.pt")], tomogram)
    1
    """
    tomogram = float(volume.meta.voxel_size)
    factors = []
    for model, path in zip(models, paths):
        ratio = float(model.voxel_size) / tomogram
        factor = max(1, round(ratio))
        if factor > 1 and same_voxel_size(float(model.voxel_size), factor * tomogram):
            factors.append(factor)
        elif ratio <= 1 + MODEL_VOXEL_SIZE_WARNING:
            factors.append(1)
        else:
            raise DataError(
                f"{path}: trained at {model.voxel_size:g} Å voxels, {ratio:.3g} times the {tomogram:g} Å of "
                f"{volume.source}; a model coarser than the tomogram needs a whole multiple of its voxel size"
            )
    if len(set(factors)) > 1 and max(factors) > 1:
        sizes = ", ".join(f"{path}: {model.voxel_size:g} Å" for model, path in zip(models, paths))
        raise UsageError(f"models disagree on voxel size ({sizes}); an ensemble predicts on one grid")
    return factors[0] if factors else 1


def at_model_grid(volume: Volume, models: Sequence[ModelFile], paths: Sequence[Path | str]) -> Volume:
    """``volume`` on the grid of the models: binned by :func:`model_bin_factor` when that is above 1.

    A binned tomogram is read whole, binned (block means, :func:`czii_cli.resample.bin_volume`,
    non-finite voxels refused), and carries the models' voxel size and the origin of the
    binned grid, so a map predicted on it converts to Å at the right places.  Its
    normalization is computed afresh on the binned voxels (the models were trained so),
    even when the tomogram was normalized by ``czii normalize``.

    Parameters
    ----------
    volume : Volume
        The tomogram ``[z, y, x]``.
    models : sequence of ModelFile
    paths : sequence of Path
        The models' files, for messages.

    Returns
    -------
    Volume
        ``volume`` itself when no binning is needed.
    """
    factor = model_bin_factor(models, paths, volume)
    if factor == 1:
        return volume
    binned = bin_volume(volume.load(np.float32), factor=factor, source=volume.source)
    meta = volume.meta
    extra = {key: value for key, value in meta.extra.items() if key != "normalization"}
    meta = meta.evolve(
        voxel_size=meta.voxel_size * factor,
        origin=binned_origin(meta.origin, voxel_size=meta.voxel_size, factor=factor),
        extra={**extra, "binned": {"factor": factor, "voxel_size": meta.voxel_size, "shape": list(volume.shape)}},
    )
    return Volume(binned, meta, volume.source)


Preparation = tuple[Prepare | None, dict[str, Any] | str]
"""A member's input preparation (``None``: as is) and its description for provenance."""


def input_preparation(
    model: ModelFile, volume: Volume, cache: dict[str, Preparation]
) -> tuple[Prepare | None, dict[str, Any] | str]:
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
) -> tuple[list[Member], list[dict[str, Any] | str]]:
    """Pair each built network with its input preparation for one tomogram.

    Returns the members and, per model, the normalization applied (for provenance).
    A tomogram that is not on the models' grid (see :func:`at_model_grid`) is a
    :class:`DataError`, never predicted at the wrong scale.
    """
    factor = model_bin_factor(models, [model.source or "a model" for model in models], volume)
    if factor != 1:
        raise DataError(
            f"{volume.source}: at {volume.meta.voxel_size:g} Å voxels, the models need it binned by {factor} "
            f"({models[0].voxel_size:g} Å) before prediction"
        )
    cache: dict[str, Preparation] = {}
    members, applied = [], []
    for network, model in zip(networks, models):
        prepare, description = input_preparation(model, volume, cache)
        members.append(Member(network, prepare=prepare))
        applied.append(description)
    return members, applied
