"""The pre-trained model shipped with czii: names, the packaged file, ``train --init builtin:NAME``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch
from helpers import write_mrc_dataset

import czii_cli
from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.errors import UsageError
from czii_cli.training.checkpoint import ModelFile, load_model_file
from czii_cli.training.pretrained import (
    builtin_names,
    builtin_path,
    is_builtin,
    resolve_model_reference,
    with_recipe,
)

NAME = "light-sim"
PACKAGE_DIR = Path(czii_cli.__file__).parent / "pretrained"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_mrc_dataset(tmp_path_factory.mktemp("mrc"), seed=3)


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("czii: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_the_shipped_names_are_the_files_of_the_package_folder():
    assert builtin_names() == sorted(p.stem for p in PACKAGE_DIR.glob("*.pt"))
    assert NAME in builtin_names()
    assert builtin_path(NAME) == PACKAGE_DIR / f"{NAME}.pt"
    assert builtin_path(NAME).is_file()


@pytest.mark.parametrize("name", ["nope", f"../pretrained/{NAME}", f"{NAME}/..", "..", f"/{NAME}", "", f"{NAME}.pt"])
def test_unknown_or_path_like_names_are_refused_with_the_list(name):
    with pytest.raises(UsageError) as caught:
        builtin_path(name, parameter="init")
    listed = ", ".join("builtin:" + n for n in builtin_names())
    assert str(caught.value) == f"init builtin:{name}: no such built-in model (built-in models: {listed})"


def test_references_resolve_to_the_package_or_stay_paths(tmp_path):
    assert is_builtin(f"builtin:{NAME}") and not is_builtin(tmp_path / "m.pt")
    assert resolve_model_reference(f"builtin:{NAME}") == PACKAGE_DIR / f"{NAME}.pt"
    assert resolve_model_reference(tmp_path / "builtin.pt") == tmp_path / "builtin.pt"


def test_with_recipe_records_commands_and_keeps_the_summary():
    model = ModelFile("light", {}, ["background"], [], "spheres", "softmax", {}, [8, 8, 8], 10.0, train={"seed": 3})
    recorded = with_recipe(model, commands=["czii simulate sim --seed 1", "czii train sim -o m.pt"], version="9.9")
    assert recorded.train == {
        "seed": 3,
        "recipe": {"commands": ["czii simulate sim --seed 1", "czii train sim -o m.pt"], "czii_version": "9.9"},
    }
    assert model.train == {"seed": 3}  # the input is not changed


def test_the_packaged_model_loads_weights_only_and_records_how_it_was_made():
    path = builtin_path(NAME)
    document = torch.load(path, map_location="cpu", weights_only=True)
    assert document["format"] == "czii-model"
    model = load_model_file(path)
    assert model.arch == "light" and model.classes == ["background", *DEFAULT_CATALOG.names]
    assert (model.target, model.activation, model.voxel_size) == ("spheres", "softmax", 10.0)
    assert path.stat().st_size < 4 * 1024**2
    recipe = model.train["recipe"]
    assert recipe["czii_version"]
    commands = [shlex.split(line) for line in recipe["commands"]]
    assert [c[:2] for c in commands] == [["czii", "simulate"], ["czii", "train"]]
    simulate, train = commands
    assert simulate[simulate.index("--seed") + 1] == "100"
    # the recorded training command is the one whose settings the file holds
    config = model.train["config"]
    assert int(train[train.index("--max-steps") + 1]) == config["max_steps"]
    assert int(train[train.index("--seed") + 1]) == config["seed"]
    assert train[train.index("-o") + 1] == f"{NAME}.pt"


def test_info_shows_the_recorded_commands(cli):
    result = cli("info", builtin_path(NAME), "--json")
    assert result.exit_code == 0, result.stderr
    recipe = json.loads(result.stdout)["train"]["recipe"]
    assert recipe == load_model_file(builtin_path(NAME)).train["recipe"]


def test_train_init_builtin_starts_from_the_packaged_weights(cli, dataset, tmp_path):
    out = tmp_path / "tuned.pt"
    result = cli(
        "train",
        dataset,
        "-o",
        out,
        "--classes",
        dataset / "classes.json",
        "--patch",
        "16",
        "16",
        "16",
        "--batch-size",
        "1",
        "--max-steps",
        "1",
        "--lr",
        "1e-12",
        "--init",
        f"builtin:{NAME}",
    )
    assert result.exit_code == 0, result.stderr
    # two particle classes here, six in the packaged model: only the head starts afresh
    assert "--init: shape differs, kept the new initialisation: head.bias, head.weight" in result.stderr
    packaged, tuned = load_model_file(builtin_path(NAME)).state_dict, load_model_file(out).state_dict
    convolutions = [k for k, v in packaged.items() if v.ndim == 5 and not k.startswith("head.")]
    assert len(convolutions) >= 4
    for key in convolutions:  # one step at a learning rate of 1e-12 leaves them where they started
        torch.testing.assert_close(tuned[key], packaged[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["nope", f"../pretrained/{NAME}"])
def test_train_init_unknown_builtin_is_one_error_line(cli, dataset, tmp_path, name):
    classes = dataset / "classes.json"
    result = cli("train", dataset, "-o", tmp_path / "m.pt", "--classes", classes, "--init", f"builtin:{name}")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line == (
        f"czii: error: init builtin:{name}: no such built-in model "
        f"(built-in models: {', '.join('builtin:' + n for n in builtin_names())})"
    )
    assert not list(tmp_path.iterdir())
