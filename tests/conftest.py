"""Shared fixtures: tiny volumes and a CLI runner."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_mrc_dataset
from typer.testing import CliRunner

from czii_cli.main import app


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_volume(rng) -> np.ndarray:
    """A 6x8x10 float32 volume, distinct along each axis so axis mix-ups show."""
    return rng.normal(size=(6, 8, 10)).astype(np.float32)


@pytest.fixture
def cli():
    """Invoke the czii CLI in-process; returns click's Result (stdout and stderr apart)."""
    runner = CliRunner()

    def invoke(*args: str, input: bytes | str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return invoke


@pytest.fixture(scope="module")
def mrc_dataset(tmp_path_factory):
    """The tiny training set of :mod:`helpers` (three MRC runs with CSV picks), once per module."""
    return write_mrc_dataset(tmp_path_factory.mktemp("mrc"), seed=7)
