"""The pre-trained model shipped in the package: found by name, safe to load, its recipe recorded."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import SMALL_PATCH

from czii_cli.errors import UsageError
from czii_cli.pretrained import NAMES, model_path
from czii_cli.training.checkpoint import load_model_file

torch.set_num_threads(1)

COMPETITION = ["apo-ferritin", "beta-amylase", "beta-galactosidase", "ribosome", "thyroglobulin", "virus-like-particle"]


def test_every_shipped_model_is_a_small_model_file_with_its_commands_recorded():
    for name in NAMES:
        path = model_path(f"builtin:{name}")
        assert path.stat().st_size < 5 * 2**20
        model = load_model_file(path)  # weights_only: refuses anything but plain data
        assert model.arch == "light" and model.classes == ["background", *COMPETITION]
        assert model.voxel_size == 10.0
        commands = model.train["recipe"]["commands"]
        assert commands[0].startswith("czii simulate sim --runs 10 ")
        assert "--snr 0.03:0.3" in commands[0]
        assert commands[-1].startswith("czii train sim -o light-sim.pt ") and "--max-steps 3000" in commands[-1]
        assert model.arch_params == {"channels": [24, 32, 48], "stem_stride": 2}
        model.build()  # every weight fits the network (strict load)


def test_an_unknown_builtin_name_is_a_usage_error_listing_the_shipped_ones():
    with pytest.raises(UsageError, match=r"unknown built-in model 'nope' \(built in: light-sim\)"):
        model_path("builtin:nope")
    with pytest.raises(UsageError):
        model_path("builtin:../light-sim")  # never a path


def test_info_describes_a_builtin_model_with_its_recipe(cli):
    result = cli("info", "builtin:light-sim", "--json")
    assert result.exit_code == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["arch"] == "light"
    assert described["train"]["recipe"]["commands"][-1].startswith("czii train sim")


def test_train_starts_from_a_builtin_model_at_its_width(cli, mrc_dataset, tmp_path):
    options = ["--classes", mrc_dataset / "classes.json", *SMALL_PATCH, "--max-steps", "1"]
    result = cli("train", mrc_dataset, "-o", tmp_path / "tuned.pt", *options, "--init", "builtin:light-sim")
    assert result.exit_code == 0, result.stderr
    # two classes here, seven there: only the head starts anew
    assert "--init: shape differs, kept the new initialisation: head.bias, head.weight" in result.stderr
    tuned, shipped = load_model_file(tmp_path / "tuned.pt"), load_model_file(model_path("builtin:light-sim"))
    assert tuned.arch_params == shipped.arch_params == {"channels": [24, 32, 48], "stem_stride": 2}


def test_train_refuses_an_unknown_builtin_model(cli, mrc_dataset, tmp_path):
    result = cli("train", mrc_dataset, "-o", tmp_path / "m.pt", "--init", "builtin:nope")
    assert result.exit_code == 2
    assert "unknown built-in model 'nope'" in result.stderr
    assert not (tmp_path / "m.pt").exists()
