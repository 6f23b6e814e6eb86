"""Decisions a training run makes before its first step.

Which classes and target, which runs validate (named runs or fold K of N, split by
experiment), which output channels and activation, how initial weights are loaded, and
what the model file will say about itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..catalog import BACKGROUND, DEFAULT_CATALOG, Catalog
from ..coords import same_voxel_size
from ..errors import ConfigError, DataError
from ..make_labels import TargetSpec
from .checkpoint import ModelFile
from .config import TrainConfig
from .dataset import RunSource, TrainingVolume, label_spec_of
from .registry import patch_multiple, resolve_params


def split_runs(
    runs: Sequence[str], *, val_runs: Sequence[str] = (), fold: tuple[int, int] | None = None
) -> tuple[list[str], list[str]]:
    """Split experiments into training and validation runs.

    ``fold=(K, N)`` validates on every N-th run of the sorted names, starting at K.

    Examples
    --------
    >>> split_runs(["a", "b", "c", "d", "e"], fold=(1, 2))
    (['a', 'c', 'e'], ['b', 'd'])
    >>> split_runs(["a", "b"], val_runs=["b"])
    (['a'], ['b'])
    """
    ordered = sorted(runs)
    if val_runs and fold is not None:
        raise ConfigError("give validation runs or a fold, not both")
    unknown = sorted(set(val_runs) - set(ordered))
    if unknown:
        raise ConfigError(f"validation runs: unknown run {unknown[0]!r} (runs: {', '.join(ordered)})")
    if fold is not None:
        k, n = fold
        validation = ordered[k::n]
    else:
        validation = [r for r in ordered if r in set(val_runs)]
    training = [r for r in ordered if r not in set(validation)]
    if not training:
        raise ConfigError("no runs left for training after the validation split")
    return training, validation


def resolve_catalog(sources: Sequence[RunSource], override: Catalog | None) -> Catalog:
    """``--classes`` if given, else the classes the data declares, else the default six."""
    if override is not None:
        return override
    declared = [s.catalog for s in sources if s.catalog is not None]
    return declared[0] if declared else DEFAULT_CATALOG


def resolve_spec(sources: Sequence[RunSource], requested: TargetSpec | None) -> TargetSpec:
    """The target asked for, else the one the label artifacts record, else spheres at 0.5 r."""
    if requested is not None:
        return requested
    for source in sources:
        recorded = label_spec_of(source)
        if recorded is not None:
            return recorded
    return TargetSpec()


def output_channels(catalog: Catalog, target: str) -> tuple[list[str], str]:
    """Output channel names and activation: softmax with background for label maps, sigmoid for heatmaps.

    Examples
    --------
    >>> output_channels(DEFAULT_CATALOG, "points")[0][:2], output_channels(DEFAULT_CATALOG, "heatmap")[1]
    (['background', 'apo-ferritin'], 'sigmoid')
    """
    if target == "heatmap":
        return list(catalog.names), "sigmoid"
    return [BACKGROUND, *catalog.names], "softmax"


def check_patch(config: TrainConfig) -> None:
    """Patch sides must suit the architecture's down-sampling."""
    multiple = patch_multiple(config.arch, config.arch_params)
    for name, patch in (("patch", config.patch), ("val_patch", config.val_patch)):
        if patch is not None and any(side % multiple for side in patch):
            sides = " ".join(map(str, patch))
            raise ConfigError(f"{name} {sides}: sides must be multiples of {multiple} for {config.arch}")


def common_normalization(volumes: Sequence[TrainingVolume]) -> dict[str, Any]:
    """The one normalization all volumes used; mixing methods is a :class:`DataError`."""
    methods = {json.dumps(v.normalization, sort_keys=True): v for v in volumes}
    if len(methods) > 1:
        listed = "; ".join(f"{v.source}: {v.normalization}" for v in methods.values())
        raise DataError(f"training tomograms were normalized differently ({listed})")
    return volumes[0].normalization


def common_voxel_size(volumes: Sequence[TrainingVolume]) -> float:
    """The voxel size all volumes share (:func:`~czii_cli.coords.same_voxel_size`), else a DataError."""
    first = volumes[0]
    for volume in volumes[1:]:
        if not same_voxel_size(volume.voxel_size, first.voxel_size):
            raise DataError(
                f"{volume.source}: voxel size {volume.voxel_size} Å differs from {first.source} ({first.voxel_size} Å)"
            )
    return first.voxel_size


def load_initial_weights(network: nn.Module, model: ModelFile, *, arch: str, source: str) -> list[str]:
    """Load ``--init`` weights: same architecture, tensors of another shape are skipped.

    Returns one line per skipped or missing tensor group, for the user.
    """
    if model.arch != arch:
        raise ConfigError(f"{source}: initial weights: a {model.arch} model cannot initialise a {arch} network")
    own = network.state_dict()
    usable = {k: v for k, v in model.state_dict.items() if k in own and own[k].shape == v.shape}
    mismatched = sorted(k for k in model.state_dict if k in own and own[k].shape != model.state_dict[k].shape)
    result = network.load_state_dict(usable, strict=False)
    notes = []
    if mismatched:
        notes.append(f"shape differs, kept the new initialisation: {', '.join(mismatched)}")
    missing = sorted(set(result.missing_keys) - set(mismatched))
    if missing:
        notes.append(f"not in {source}: {', '.join(missing)}")
    unexpected = sorted(k for k in model.state_dict if k not in own)
    if unexpected:
        notes.append(f"ignored, not in the network: {', '.join(unexpected)}")
    return notes


def model_template(
    config: TrainConfig,
    *,
    catalog: Catalog,
    spec: TargetSpec,
    normalization: dict[str, Any],
    voxel_size: float,
    train_runs: Sequence[str],
    val_runs: Sequence[str],
    class_weights: Sequence[float],
) -> ModelFile:
    """The model file of this run without weights; ``train`` holds the run's settings."""
    channels, activation = output_channels(catalog, spec.kind)
    return ModelFile(
        arch=config.arch,
        arch_params=resolve_params(config.arch, config.arch_params),
        classes=channels,
        catalog=catalog.to_json(),
        target=spec.kind,
        activation=activation,
        normalization=dict(normalization),
        patch_size=list(config.patch),
        voxel_size=float(voxel_size),
        train={
            "config": config.to_json(),
            "target": spec.to_json(),
            "train_runs": list(train_runs),
            "val_runs": list(val_runs),
            "class_weights": [float(w) for w in class_weights],
            "seed": config.seed,
            "torch": str(torch.__version__),
        },
    )
