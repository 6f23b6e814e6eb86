"""Builders shared by several test modules: tiny model files and a tiny training set.

Test modules import them with ``from helpers import ...`` (pytest puts ``tests/`` on
``sys.path``, as it does for ``plain_metric`` and ``batch_jobs``).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from czii_cli.catalog import DEFAULT_CATALOG, Catalog, ParticleClass
from czii_cli.io.picks import write_picks_csv
from czii_cli.io.volumes import write_mrc
from czii_cli.normalize import normalization_method
from czii_cli.picks import Picks, concat
from czii_cli.training.checkpoint import ModelFile, save_model
from czii_cli.training.registry import build_network

MODEL_CLASSES = ["background", *DEFAULT_CATALOG.names]
"""Channels of the model files :func:`make_model` writes by default."""


def make_model(path, *, seed=0, classes=MODEL_CLASSES, activation="softmax", normalization=("zscore", None)):
    """Write a tiny ``light`` model file (8^3 patches, 10 Å voxels) with seeded weights."""
    torch.manual_seed(seed)
    params = {"channels": [4, 8]}
    network = build_network("light", in_channels=1, out_channels=len(classes), params=params)
    for module in network.modules():  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model = ModelFile(
        arch="light",
        arch_params=params,
        classes=list(classes),
        catalog=DEFAULT_CATALOG.to_json(),
        target="spheres",
        activation=activation,
        normalization=normalization_method(*normalization),
        patch_size=[8, 8, 8],
        voxel_size=10.0,
        state_dict=network.state_dict(),
    )
    save_model(path, model)
    return path


CATALOG = Catalog((ParticleClass("small", 30.0, 1.0, 1), ParticleClass("large", 50.0, 2.0, 2)))
"""Classes of the tiny training set."""
SHAPE = (16, 32, 32)
RUNS = ("r1", "r2", "r3")
SMALL_PATCH = ["--patch", "16", "16", "16", "--batch-size", "1"]
"""``czii train`` options for one 16^3 patch per step."""
TINY = ["--arch-param", "channels=[4,8]", *SMALL_PATCH]
"""``czii train`` options for a tiny light net."""


def simulate_run(run: str, rng: np.random.Generator) -> tuple[np.ndarray, Picks]:
    """Bright balls of the class radius in noise, two per class."""
    data = rng.normal(size=SHAPE).astype(np.float32)
    grid = np.indices(SHAPE).reshape(3, -1).T
    parts = []
    for cls in CATALOG:
        centres = rng.uniform([4, 6, 6], [12, 26, 26], size=(2, 3))
        for c in centres:
            inside = np.linalg.norm(grid - c, axis=1) <= cls.radius / 10
            data.reshape(-1)[inside] += 3.0
        parts.append(Picks.from_points(run, cls.name, centres[:, ::-1] * 10.0))
    return data, concat(parts)


def write_mrc_dataset(root, *, seed: int):
    """train_images/*.mrc, train_annotations/*.csv and classes.json of the tiny runs."""
    (root / "train_images").mkdir()
    (root / "train_annotations").mkdir()
    rng = np.random.default_rng(seed)
    for run in RUNS:
        data, picks = simulate_run(run, rng)
        write_mrc(root / "train_images" / f"{run}.mrc", data, voxel_size=10.0)
        write_picks_csv(root / "train_annotations" / f"{run}.csv", picks)
    (root / "classes.json").write_text(json.dumps({"classes": CATALOG.to_json()}))
    return root


def train(cli, data, out, *args):
    """Train the tiny light net on the MRC + CSV dataset."""
    return cli("train", data, "-o", out, "--classes", data / "classes.json", *TINY, *args)
