"""The czii model file: a self-describing, safe torch checkpoint.

``{"format": "czii-model", "version": 1, "arch", "arch_params", "classes", "catalog",
"target", "activation", "normalization", "patch_size", "voxel_size", "train",
"state_dict"}``.  It holds only tensors and plain Python data, so it loads with
``torch.load(path, weights_only=True)``; a file that would need to run code to load is
refused.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DataError, UsageError
from ..io.atomic import atomic_path, refuse_partial
from .registry import build_network, resolve_params

FORMAT = "czii-model"
VERSION = 1


@dataclass
class ModelFile:
    """Everything ``predict-probs`` needs besides the tomogram.

    Attributes
    ----------
    arch, arch_params : network name and its resolved parameters.
    classes : list of str
        Output channel names in order (``background`` first for softmax models).
    catalog : list of dict
        The particle catalog the model was trained with (name, radius, weight, label).
    target : str
        ``spheres``, ``heatmap`` or ``points``.
    activation : str
        ``softmax`` or ``sigmoid``.
    normalization : dict
        How input tomograms were normalized (see :mod:`czii_cli.normalize`).
    patch_size : list of int
        Training patch (z, y, x) in voxels; the default inference window.
    voxel_size : float
        Voxel size (Å) of the training data.
    train : dict
        Summary of the training run (steps, best validation score, seed, ...).
    state_dict : dict of tensors
    source : str
        The file it was loaded from, for error messages (not saved).
    """

    arch: str
    arch_params: dict[str, Any]
    classes: list[str]
    catalog: list[dict[str, Any]]
    target: str
    activation: str
    normalization: dict[str, Any]
    patch_size: list[int]
    voxel_size: float
    train: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    in_channels: int = 1
    source: str = field(default="", compare=False, repr=False)

    def to_checkpoint(self) -> dict[str, Any]:
        """The plain dict that is saved."""
        document = {"format": FORMAT, "version": VERSION, **asdict(self)}
        document.pop("source")
        return document

    def build(self) -> nn.Module:
        """The network with its weights loaded, in eval mode.

        Weights that do not fit the network described by ``arch`` and ``arch_params``
        (or no weights at all) are a :class:`DataError` naming the model file.
        """
        source = self.source or "model file"
        if not self.state_dict:
            raise DataError(f"{source}: the model file holds no weights (empty state_dict)")
        try:
            network = build_network(
                self.arch, in_channels=self.in_channels, out_channels=len(self.classes), params=self.arch_params
            )
        except UsageError as err:
            raise DataError(f"{source}: {err}") from None
        try:
            network.load_state_dict(self.state_dict)
        except (RuntimeError, TypeError, KeyError, AttributeError) as err:
            first = str(err).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else (first[0] if first else "")
            raise DataError(
                f"{source}: the weights do not fit the {self.arch} network of its arch_params "
                f"{self.arch_params} ({detail[:200]})"
            ) from None
        return network.eval()


def save_model(path: Path, model: ModelFile, *, overwrite: bool = False) -> None:
    """Write a model file atomically.

    Written through an unbuffered Python file, so that a full or read-only disk is an
    OSError (reported with the file's name), not a RuntimeError from torch's own writer.
    """
    with atomic_path(Path(path), overwrite=overwrite) as tmp:
        with open(tmp, "wb", buffering=0) as handle:
            torch.save(model.to_checkpoint(), handle)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict safely; anything but plain data is refused."""
    path = Path(path)
    refuse_partial(path)
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise DataError(f"{path}: refused: the model file holds objects that could run code ({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise DataError(f"{path}: not a readable model file ({type(err).__name__}: {err})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DataError(f"{path}: not a czii model file (no format: {FORMAT!r})")
    if int(document.get("version", 0)) > VERSION:
        raise DataError(f"{path}: written by a newer czii (model version {document['version']})")
    return document


def load_model_file(path: Path) -> ModelFile:
    """Load and validate a model file (``torch.load(weights_only=True)``).

    Every field is checked for its type, and the architecture, its parameters and the
    normalization method for known values, so a damaged file is one :class:`DataError`
    naming it (the weights are checked when the network is built, :meth:`ModelFile.build`).
    """
    document = load_checkpoint(path)
    values = {k: v for k, v in document.items() if k not in ("format", "version", "source")}
    try:
        model = ModelFile(**values, source=str(path))
    except TypeError as err:
        raise DataError(f"{path}: malformed model file ({err})") from None
    check_model_fields(model, source=str(path))
    return model


def check_model_fields(model: ModelFile, *, source: str) -> None:
    """Raise a :class:`DataError` naming ``source`` for a field of the wrong type or value."""
    from ..normalize import normalization_method

    expected = {
        "arch": str,
        "arch_params": dict,
        "classes": list,
        "catalog": list,
        "target": str,
        "activation": str,
        "normalization": dict,
        "patch_size": list,
        "train": dict,
        "state_dict": dict,
        "in_channels": int,
    }
    for item in fields(ModelFile):
        kind = expected.get(item.name)
        value = getattr(model, item.name)
        if kind is list and isinstance(value, tuple):
            continue
        if kind is not None and not isinstance(value, kind):
            raise DataError(
                f"{source}: malformed model file: {item.name} is a {type(value).__name__}, expected a {kind.__name__}"
            )
    if not model.classes or not all(isinstance(name, str) for name in model.classes):
        raise DataError(f"{source}: malformed model file: classes must be a non-empty list of names")
    if len(model.patch_size) != 3 or not all(isinstance(v, int) and v > 0 for v in model.patch_size):
        raise DataError(
            f"{source}: malformed model file: patch_size must be three positive integers, got {model.patch_size!r}"
        )
    if not isinstance(model.voxel_size, (int, float)) or not (math.isfinite(model.voxel_size) and model.voxel_size > 0):
        raise DataError(
            f"{source}: malformed model file: voxel_size must be a positive number of Å, got {model.voxel_size!r}"
        )
    if model.activation not in ("softmax", "sigmoid"):
        raise DataError(f"{source}: malformed model file: unknown activation {model.activation!r}")
    try:
        resolve_params(model.arch, model.arch_params)
        if model.normalization:
            method: Any = model.normalization.get("method")  # as read from the file; validated by the call
            normalization_method(method, model.normalization.get("clip"))
    except UsageError as err:
        raise DataError(f"{source}: {err}") from None
    except (TypeError, ValueError) as err:
        raise DataError(f"{source}: malformed normalization {model.normalization!r} ({err})") from None
