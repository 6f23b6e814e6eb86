"""The czii model file: a self-describing, safe torch checkpoint.

``{"format": "czii-model", "version": 1, "arch", "arch_params", "classes", "catalog",
"target", "activation", "normalization", "patch_size", "voxel_size", "train",
"state_dict"}``.  It holds only tensors and plain Python data, so it loads with
``torch.load(path, weights_only=True)``; a file that would need to run code to load is
refused.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import DataError
from ..io.atomic import atomic_path, refuse_partial
from .registry import build_network

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
    """

    arch: str
    arch_params: dict
    classes: list[str]
    catalog: list[dict]
    target: str
    activation: str
    normalization: dict
    patch_size: list[int]
    voxel_size: float
    train: dict = field(default_factory=dict)
    state_dict: dict = field(default_factory=dict)
    in_channels: int = 1

    def to_checkpoint(self) -> dict:
        """The plain dict that is saved."""
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    def build(self) -> nn.Module:
        """The network with its weights loaded, in eval mode."""
        network = build_network(
            self.arch, in_channels=self.in_channels, out_channels=len(self.classes), params=self.arch_params
        )
        network.load_state_dict(self.state_dict)
        return network.eval()


def save_model(path: Path, model: ModelFile, *, overwrite: bool = False) -> None:
    """Write a model file atomically.

    Written through an unbuffered Python file, so that a full or read-only disk is an
    OSError (reported with the file's name), not a RuntimeError from torch's own writer.
    """
    with atomic_path(Path(path), overwrite=overwrite) as tmp:
        with open(tmp, "wb", buffering=0) as handle:
            torch.save(model.to_checkpoint(), handle)


def load_checkpoint(path: Path) -> dict:
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
    """Load and validate a model file (``torch.load(weights_only=True)``)."""
    document = load_checkpoint(path)
    fields = {k: v for k, v in document.items() if k not in ("format", "version")}
    try:
        return ModelFile(**fields)
    except TypeError as err:
        raise DataError(f"{path}: malformed model file ({err})") from None
