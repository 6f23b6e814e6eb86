"""``czii train``'s option text becomes typed settings once; model files keep storing them as before."""

from __future__ import annotations

import json

import pytest
import torch

from czii_cli.commands.train_options import (
    parse_arch_params,
    parse_class_weights,
    parse_fold,
    parse_loss,
    typed_settings,
)
from czii_cli.errors import ConfigError, UsageError
from czii_cli.training.checkpoint import ModelFile, load_model_file, save_model
from czii_cli.training.config import DEFAULT_LOSS, ClassWeights, TrainConfig, loss_text


def test_loss_text_becomes_name_weight_pairs():
    assert parse_loss("ce:1, tversky:0.5") == (("ce", 1.0), ("tversky", 0.5))
    assert parse_loss("DiceCE") == (("dicece", 1.0),)
    assert parse_loss("") == ()
    assert loss_text(parse_loss("ce:1,tversky:0.5")) == "ce:1,tversky:0.5"
    assert [loss_text(spec) for spec in DEFAULT_LOSS.values()] == ["ce:1,tversky:0.5", "ce:1", "bce:1"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("ce:x", "loss: weight of 'ce' is not a number: 'x'"),
        ("l1:1", "loss: unknown loss 'l1' (choose from ce, dice, dicece, tversky, focaltversky, bce, mse)"),
        (",", "loss: no loss given"),
    ],
)
def test_bad_loss_text_is_a_usage_error(text, message):
    with pytest.raises(UsageError) as caught:
        parse_loss(text)
    assert str(caught.value) == message


def test_class_weight_text_becomes_typed_weights_per_channel():
    weights = parse_class_weights("b=2,background=0.5")
    assert weights == ClassWeights(named=(("b", 2.0), ("background", 0.5)))
    assert weights.per_channel(["background", "a", "b"], default_particle=4.0) == [0.5, 4.0, 2.0]
    assert parse_class_weights("256").per_channel(["background", "a"], default_particle=4.0) == [1.0, 256.0]
    assert parse_class_weights("").per_channel(["background", "a"], default_particle=8.0) == [1.0, 8.0]
    assert str(parse_class_weights("8, ribosome=2.5")) == "8,ribosome=2.5"
    with pytest.raises(UsageError, match=r"^class weights: weights must be >= 0, got 'a=-1'$"):
        parse_class_weights("a=-1")
    with pytest.raises(ConfigError, match=r"^class weights: unknown class 'huge' \(known: background, a\)$"):
        parse_class_weights("huge=3").per_channel(["background", "a"], default_particle=4.0)
    with pytest.raises(ConfigError, match="weights must be finite and >= 0"):
        ClassWeights(particle=-1.0)


def test_fold_and_architecture_parameters():
    assert parse_fold("1/4") == (1, 4)
    for text in ("3/3", "x/2", "1"):
        with pytest.raises(UsageError, match=f"fold '{text}'"):
            parse_fold(text)
    assert parse_arch_params(["channels=[8, 16]", "backbone=resnet10"]) == {"channels": [8, 16], "backbone": "resnet10"}
    with pytest.raises(UsageError, match="architecture parameter 'oops': expected KEY=VALUE"):
        parse_arch_params(["oops"])


def test_the_config_holds_typed_values_and_refuses_text():
    config = TrainConfig(loss=[("ce", 1)], class_weights=ClassWeights(particle=256.0))
    assert config.loss == (("ce", 1.0),) and isinstance(config.loss[0][1], float)
    with pytest.raises(ConfigError, match="'class_weights' must be ClassWeights"):
        TrainConfig(class_weights="256")
    with pytest.raises(ConfigError, match="expected \\(name, weight\\) pairs"):
        TrainConfig(loss="ce:1")
    with pytest.raises(ConfigError, match="unknown loss 'l1'"):
        TrainConfig(loss=(("l1", 1.0),))


def test_stored_form_is_the_text_and_reads_back_to_the_same_config():
    config = TrainConfig(
        loss=(("ce", 1.0), ("tversky", 0.5)),
        class_weights=ClassWeights(particle=4.0, named=(("background", 0.5), ("ribosome", 8.61))),
        arch_params={"channels": [4, 8]},
    )
    document = config.to_json()
    assert document["loss"] == "ce:1,tversky:0.5"
    assert document["class_weights"] == "4,background=0.5,ribosome=8.61"
    assert json.loads(json.dumps(document)) == document
    assert TrainConfig.from_json(document) == config
    assert TrainConfig().to_json()["loss"] == "" and TrainConfig().to_json()["class_weights"] == ""


def test_a_model_file_written_before_typed_settings_still_loads(tmp_path):
    """Older files stored the flag text as given: spaces, omitted weights, ``256.0``."""
    stored = {**TrainConfig().to_json(), "loss": "CE, tversky:0.5", "class_weights": "256.0,background=2"}
    model = ModelFile(
        arch="light",
        arch_params={},
        classes=["background", "a"],
        catalog=[{"name": "a", "radius": 60.0, "weight": 1.0, "label": 1}],
        target="spheres",
        activation="softmax",
        normalization={"method": "zscore", "clip": None},
        patch_size=[16, 16, 16],
        voxel_size=10.0,
        train={"config": stored},
        state_dict={"w": torch.zeros(1)},
    )
    save_model(tmp_path / "old.pt", model)
    config = TrainConfig.from_json(load_model_file(tmp_path / "old.pt").train["config"], source="old.pt")
    assert config.loss == (("ce", 1.0), ("tversky", 0.5))
    assert config.class_weights == ClassWeights(particle=256.0, named=(("background", 2.0),))
    assert config.to_json()["loss"] == "ce:1,tversky:0.5"
    with pytest.raises(ConfigError, match=r"^old.pt: training setting 'loss': 'ce:x' is not NAME:WEIGHT$"):
        TrainConfig.from_json({"loss": "ce:x"}, source="old.pt")


def test_config_file_text_is_parsed_like_the_flags():
    assert typed_settings({"loss": "ce", "class_weights": "b=2", "epochs": 3}) == {
        "loss": (("ce", 1.0),),
        "class_weights": ClassWeights(named=(("b", 2.0),)),
        "epochs": 3,
    }


def test_a_bad_loss_in_a_config_file_is_one_error_line(cli, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"loss": "ce:x"}))
    result = cli("train", tmp_path, "-o", tmp_path / "m.pt", "--config", settings)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["czii: error: loss: weight of 'ce' is not a number: 'x'"]
    assert "Traceback" not in result.stderr and not (tmp_path / "m.pt").exists()
