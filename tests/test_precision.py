"""Training arithmetic: TrainConfig.precision, czii train --precision, layouts and saved weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY, write_mrc_dataset

from czii_cli.errors import UsageError
from czii_cli.training.checkpoint import load_model_file
from czii_cli.training.config import TrainConfig
from czii_cli.training.registry import build_network
from czii_cli.training.training import Trainer, one_hot, training_precision

torch.set_num_threads(1)


def make_trainer(precision: str, arch: str = "light", params=None) -> Trainer:
    config = TrainConfig(loss=(("ce", 1.0),), patch=(8, 8, 8), warmup_steps=1, precision=precision)
    torch.manual_seed(0)
    network = build_network(arch, in_channels=1, out_channels=2, params=params or {"channels": [4, 8]})
    return Trainer(network, config=config, activation="softmax", class_weights=[1, 4], device=torch.device("cpu"))


def batch():
    images = np.random.default_rng(0).normal(size=(2, 1, 8, 8, 8)).astype(np.float32)
    targets = one_hot((images[:, 0] > 0).astype(np.uint8), 2).transpose(1, 0, 2, 3, 4).copy()
    return images, targets


def test_auto_is_float32_on_a_cpu_and_mixed_on_a_gpu(monkeypatch):
    assert training_precision("auto", torch.device("cpu")) == "float32"
    assert training_precision("bfloat16", torch.device("cpu")) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert training_precision("auto", torch.device("cuda")) == "float16"
    with pytest.raises(UsageError, match="precision"):
        TrainConfig(precision="half")


def test_float32_training_is_reproducible_and_bfloat16_runs_channels_last_with_contiguous_weights():
    images, targets = batch()
    first, second = make_trainer("auto"), make_trainer("auto")
    assert first.amp_dtype is None and first.layout == torch.contiguous_format
    for trainer in (first, second):
        for _ in range(2):
            trainer.train_step(images, targets)
    for key, value in first.weights().items():
        torch.testing.assert_close(second.weights()[key], value, rtol=0, atol=0)
    mixed = make_trainer("bfloat16")
    assert mixed.amp_dtype == torch.bfloat16 and mixed.layout == torch.channels_last_3d
    loss = mixed.train_step(images, targets)
    assert np.isfinite(loss)
    conv = next(k for k, v in mixed.weights().items() if v.ndim == 5)
    assert mixed.weights()[conv].is_contiguous()
    assert mixed.state()["network"][conv].is_contiguous()


def test_bfloat16_keeps_instance_norm_nets_contiguous():
    params = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
    assert make_trainer("bfloat16", "unet", params).layout == torch.contiguous_format


def test_train_records_the_precision_and_refuses_an_unknown_one(cli, tmp_path):
    (tmp_path / "data").mkdir()
    data = write_mrc_dataset(tmp_path / "data", seed=1)
    common = ["--classes", data / "classes.json", *TINY, "--max-steps", "2", "-q"]
    result = cli("train", data, "-o", tmp_path / "m.pt", "--precision", "bfloat16", *common)
    assert result.exit_code == 0, result.stderr
    assert load_model_file(tmp_path / "m.pt").train["config"]["precision"] == "bfloat16"
    bad = cli("train", data, "-o", tmp_path / "n.pt", "--precision", "half", *common)
    assert bad.exit_code == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("czii: error:") and "'precision'" in lines[0]
    assert not (tmp_path / "n.pt").exists()
