"""`czii train` under torchrun: two gloo processes on the CPU train one ordinary model file."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SHAPE, TINY, write_mrc_dataset

from czii_cli.predict_probs import predict_volume
from czii_cli.training.checkpoint import load_model_file

CZII = Path(sys.executable).with_name("czii")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_mrc_dataset(tmp_path_factory.mktemp("ddp"), seed=11)


def torchrun_command(*args) -> list[str]:
    """``torchrun --standalone --nproc-per-node 2 --no-python czii train ARGS``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--no-python",
        str(CZII),
        "train",
        *map(str, args),
    ]


def tiny(data: Path, out: Path, *args) -> list:
    """Arguments that train the tiny light net on the CPU."""
    return [data, "-o", out, "--classes", data / "classes.json", "--device", "cpu", *TINY, *args]


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_command(*args), env=ONE_THREAD, capture_output=True, text=True, timeout=180)


def test_two_gloo_processes_train_a_model_that_loads_and_predicts(cli, dataset, tmp_path):
    out = tmp_path / "ddp.pt"
    args = ["--max-steps", "2", "--steps-per-epoch", "1", "--val-runs", "r3", "--max-time", "600"]
    result = torchrun(*tiny(dataset, out, *args))
    assert result.returncode == 0, result.stderr
    assert "2 processes x batch 1 = global batch 2" in result.stderr
    assert result.stderr.count("done: 2 steps") == 1  # rank 0 alone logs

    model = load_model_file(out)  # torch.load(weights_only=True)
    assert not any(key.startswith("module.") for key in model.state_dict)
    assert model.train["best_step"] in (1, 2) and model.train["val_runs"] == ["r3"]
    probs = predict_volume(
        model.build(), np.zeros(SHAPE, np.float32), patch_size=model.patch_size, activation=model.activation
    )
    assert probs.shape == (3, *SHAPE)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-4)
    with open(tmp_path / "ddp.metrics.csv") as handle:
        assert [row["step"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert (tmp_path / "ddp.curves.png").exists()

    resume = torch.load(tmp_path / "ddp.last.pt", weights_only=True)["train"]["resume"]
    assert resume["step"] == 2
    assert len(resume["rank_rngs"]) == 1  # rank 1's patch stream, next to rank 0's "rng"
    assert resume["rank_rngs"][0]["numpy"] != resume["rng"]["numpy"]
    assert torchrun(*tiny(dataset, tmp_path / "again.pt", *args)).returncode == 0
    again = torch.load(tmp_path / "again.last.pt", weights_only=True)["train"]["resume"]
    assert all(torch.equal(resume["ema"][k], again["ema"][k]) for k in resume["ema"])  # same seed, same weights

    result = cli("train", dataset, "-o", out, "--resume", tmp_path / "ddp.last.pt", "--max-steps", "3")
    assert result.exit_code == 0, result.stderr
    assert "saved by 2 process(es) and continues on 1" in result.stderr
    assert load_model_file(tmp_path / "ddp.last.pt").train["steps"] == 3


def test_ctrl_c_stops_every_rank_at_the_same_step_and_saves(dataset, tmp_path):
    out = tmp_path / "cut.pt"
    command = torchrun_command(*tiny(dataset, out, "--max-steps", 100000, "--steps-per-epoch", 2, "--val-runs", "r3"))
    # A new session, so the interrupt reaches torchrun and both ranks, as a terminal's Ctrl-C does.
    process = subprocess.Popen(command, env=ONE_THREAD, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "cut.metrics.csv").exists():  # the first round is done
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no round within 120 s"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0
    assert stderr.count("czii: error: interrupted") == 2, stderr
    resume = torch.load(tmp_path / "cut.last.pt", weights_only=True)["train"]["resume"]
    assert resume["step"] >= 2 and len(resume["rank_rngs"]) == 1
    assert [row["step"] for row in resume["record"]["history"]] == list(range(2, resume["step"] + 1, 2))

    result = torchrun(
        dataset, "-o", out, "--device", "cpu", "--resume", tmp_path / "cut.last.pt", "--max-steps", resume["step"] + 1
    )
    assert result.returncode == 0, result.stderr
    assert "continues on" not in result.stderr  # every rank got its own stream back
    assert torch.load(tmp_path / "cut.last.pt", weights_only=True)["train"]["steps"] == resume["step"] + 1


@pytest.mark.parametrize(
    "env, message",
    [
        ({"WORLD_SIZE": "two"}, "torchrun environment is not numeric"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "torchrun environment is inconsistent (RANK=2, WORLD_SIZE=2"),
    ],
)
def test_a_broken_torchrun_environment_is_a_usage_error(cli, dataset, tmp_path, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = cli("train", dataset, "-o", tmp_path / "m.pt", "--max-steps", "1")
    assert result.exit_code == 2
    assert message in result.stderr
