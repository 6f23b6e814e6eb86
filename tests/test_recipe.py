"""The training plan: choices from the data and device, user settings kept, recorded in the model file."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import train

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.errors import ConfigError
from czii_cli.make_labels import TargetSpec
from czii_cli.training import recipe
from czii_cli.training.checkpoint import load_model_file
from czii_cli.training.config import ClassWeights, TrainConfig
from czii_cli.training.recipe import UNBOUNDED_EPOCHS, fingerprint_of, plan_training

torch.set_num_threads(1)


def plan_for(shapes, *, config=TrainConfig(), given=(), device="cpu", native_bfloat16=False):
    fingerprint = fingerprint_of(
        shapes, {"ribosome": 4, "apo-ferritin": 1}, catalog=DEFAULT_CATALOG, spec=TargetSpec(), voxel_size=10.0
    )
    return plan_training(
        fingerprint,
        config=config,
        given=given,
        device=device,
        multiple=8,
        target="spheres",
        native_bfloat16=native_bfloat16,
    )


def chosen(plan) -> dict:
    return {c.setting: c.value for c in plan.choices}


def test_class_weights_follow_the_blob_volumes():
    # spheres of 0.5 r: radii 3, 3.25, 4.5, 7.5, 6.5 and 6.75 voxels; the ribosome's is the largest
    weights = chosen(plan_for([(96, 192, 192)]))["class_weights"]
    assert str(weights) == (
        "apo-ferritin=15.8,beta-amylase=14,beta-galactosidase=8.61,ribosome=4,"
        "thyroglobulin=4.96,virus-like-particle=4.68"
    )
    # the gain is capped: a tiny class weighs at most four times the largest
    fingerprint = fingerprint_of(
        [(64, 64, 64)], {}, catalog=DEFAULT_CATALOG, spec=TargetSpec(radius_scale=0.05), voxel_size=10.0
    )
    fingerprint = fingerprint.__class__(
        **{**fingerprint.__dict__, "blob_radii_voxels": {"ribosome": 8.0, "apo-ferritin": 0.5}}
    )
    plan = plan_training(fingerprint, config=TrainConfig(), given=(), device="cpu", multiple=8, target="spheres")
    assert chosen(plan)["class_weights"] == ClassWeights(named=(("ribosome", 4.0), ("apo-ferritin", 16.0)))


def test_patch_and_batch_follow_particles_volumes_and_device():
    assert chosen(plan_for([(184, 630, 630)]))["patch"] == (64, 64, 64)
    assert chosen(plan_for([(184, 630, 630)], device="cuda"))["patch"] == (96, 96, 96)
    assert chosen(plan_for([(184, 630, 630)], device="cuda"))["batch_size"] == 4
    # the smallest volume bounds each side, rounded down to the network's multiple
    assert chosen(plan_for([(184, 630, 630), (43, 200, 60)]))["patch"] == (40, 64, 56)
    assert chosen(plan_for([(96, 192, 192)]))["batch_size"] == 2


def test_a_time_budget_binds_unless_steps_are_limited():
    assert chosen(plan_for([(96, 192, 192)], config=TrainConfig(max_time=60.0)))["epochs"] == UNBOUNDED_EPOCHS
    limited = plan_for([(96, 192, 192)], config=TrainConfig(max_time=60.0, max_steps=5), given={"max_steps"})
    assert chosen(limited)["epochs"] == TrainConfig().epochs
    assert chosen(plan_for([(96, 192, 192)]))["epochs"] == TrainConfig().epochs


def test_given_settings_are_kept_and_marked():
    config = TrainConfig(
        patch=(32, 32, 32),
        batch_size=3,
        class_weights=ClassWeights(particle=8.0),
        epochs=2,
        bin=1,
        max_time=900.0,
        precision="float32",
        arch="light",
        arch_params={"channels": [8, 16]},
        output_stride=1,
    )
    given = {
        "patch",
        "batch_size",
        "class_weights",
        "epochs",
        "bin",
        "precision",
        "arch",
        "arch_params",
        "output_stride",
    }
    plan = plan_for([(96, 192, 192)], config=config, given=given, native_bfloat16=True)
    assert all(c.given and c.reason.startswith("given") for c in plan.choices)
    assert plan.apply(config) == config
    assert plan.lines()[2] == "patch = 32 32 32: given"
    assert plan.lines()[5:] == [
        "precision = float32: given",
        "arch = light: given",
        "arch_params = channels=8,16: given",
        "output_stride = 1: given",
    ]


BUDGET = {"max_time"}


def test_bfloat16_is_chosen_with_a_budget_on_a_cpu_that_has_it():
    budget = TrainConfig(max_time=600.0)
    native = plan_for([(96, 192, 192)], config=budget, given=BUDGET, native_bfloat16=True)
    assert chosen(native)["precision"] == "bfloat16" and native.apply(budget).precision == "bfloat16"
    fast, exact = recipe.LIGHT_RATES["bfloat16"][(24, 32, 48)], recipe.LIGHT_RATES["float32"][(24, 32, 48)]
    assert native.choices[5].reason == (
        f"native bfloat16 on this CPU: autocast, channels-last, {fast / exact:.2f}x the steps "
        f"({fast:g} against {exact:g} patches/s in float32 on the reference CPU), bit-reproducible under the seed"
    )
    emulated = plan_for([(96, 192, 192)], config=budget, given=BUDGET, native_bfloat16=False)
    assert (chosen(emulated)["precision"], emulated.choices[5].reason) == (
        "float32",
        "this CPU has no native bfloat16: emulated, it is slower than float32",
    )
    # without a budget the run is a number of steps: bfloat16 would buy nothing
    assert chosen(plan_for([(96, 192, 192)], native_bfloat16=True))["precision"] == "float32"
    assert chosen(plan_for([(96, 192, 192)], config=budget, given=BUDGET, device="cuda"))["precision"] == "auto"
    # other networks were not measured in bfloat16; their width is the registry's
    unet = plan_for(
        [(96, 192, 192)],
        config=TrainConfig(max_time=600.0, arch="unet"),
        given={"max_time", "arch"},
        native_bfloat16=True,
    )
    assert chosen(unet)["precision"] == "float32" and chosen(unet)["arch_params"] == {}
    assert unet.lines()[5:] == [
        "precision = float32: unet: float32 (bfloat16 training was measured on the light net)",
        "arch = unet: given",
        "arch_params = (registry defaults): unet: the registry's defaults (the plan sizes the light net)",
        "output_stride = 1: unet gives its maps at full resolution only",
    ]


def test_bfloat16_is_not_chosen_where_it_did_not_pay(monkeypatch):
    monkeypatch.setitem(recipe.LIGHT_RATES, "bfloat16", {**recipe.LIGHT_RATES["float32"], (24, 32, 48): 7.0})
    monkeypatch.setitem(recipe.LIGHT_RATES, "float32", {**recipe.LIGHT_RATES["float32"], (24, 32, 48): 6.0})
    plan = plan_for([(96, 192, 192)], config=TrainConfig(max_time=600.0), given=BUDGET, native_bfloat16=True)
    assert plan.lines()[5] == (
        "precision = float32: bfloat16 did not pay: 7 against 6 patches/s in float32 on the reference CPU"
    )


@pytest.mark.parametrize(
    ("max_time", "patch", "steps", "width"),
    [
        (100.0, (64, 64, 64), (500, 250, 100), (16, 24, 32)),  # none reaches 1000 steps: the narrowest
        (300.0, (64, 64, 64), (1500, 750, 300), (16, 24, 32)),
        (500.0, (64, 64, 64), (2500, 1250, 500), (24, 32, 48)),
        (1000.0, (64, 64, 64), (5000, 2500, 1000), (32, 48, 64)),
        (500.0, (32, 64, 64), (5000, 2500, 1000), (32, 48, 64)),  # half the voxels: twice the steps
    ],
)
def test_the_width_is_the_widest_that_gets_enough_steps_within_the_budget(monkeypatch, max_time, patch, steps, width):
    rates = {(16, 24, 32): 10.0, (24, 32, 48): 5.0, (32, 48, 64): 2.0}
    monkeypatch.setattr(recipe, "LIGHT_RATES", {"float32": rates, "bfloat16": rates})
    monkeypatch.setattr(recipe, "MIN_STEPS", 1000)
    monkeypatch.setattr(recipe, "CPU_WIDTHS", recipe.LIGHT_WIDTHS)
    config = TrainConfig(max_time=max_time, patch=patch)
    plan = plan_for([(96, 192, 192)], config=config, given={"max_time", "patch"})
    assert chosen(plan)["arch_params"] == {"channels": list(width)}
    assert plan.apply(config).arch_params == {"channels": list(width)}
    rule = "none gets 1000, so the narrowest" if max_time == 100.0 else "the widest"
    assert plan.choices[7].reason == (
        f"{rule} of the light widths whose float32 rate on the reference CPU buys at least 1000 steps of "
        f"2 x {'x'.join(map(str, patch))} in {max_time:g} s (16,24,32: 10 patches/s, {steps[0]} steps; "
        f"24,32,48: 5 patches/s, {steps[1]} steps; 32,48,64: 2 patches/s, {steps[2]} steps)"
    )


def test_the_width_without_a_budget_on_a_gpu_and_when_set():
    assert chosen(plan_for([(96, 192, 192)]))["arch_params"] == {"channels": [24, 32, 48]}
    assert plan_for([(96, 192, 192)]).lines()[6:8] == [
        "arch = light: the light net (stride-2 stem, computes at half resolution) on cpu",
        "arch_params = channels=24,32,48: no time budget: the default width",
    ]
    assert chosen(plan_for([(96, 192, 192)], device="cuda"))["arch_params"] == {"channels": [32, 48, 64]}
    config = TrainConfig(max_time=60.0, arch_params={"channels": [8, 16]}, precision="bfloat16")
    plan = plan_for([(96, 192, 192)], config=config, given=BUDGET, native_bfloat16=False)
    assert plan.lines()[5:8] == [
        "precision = bfloat16: set",
        "arch = light: the light net (stride-2 stem, computes at half resolution) on cpu",
        "arch_params = channels=8,16: set",
    ]


def test_the_plan_is_printed_and_recorded_in_the_model(cli, mrc_dataset, tmp_path):  # noqa: F811
    result = train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "1")
    assert result.exit_code == 0, result.stderr
    recorded = load_model_file(tmp_path / "m.pt").train["plan"]
    assert recorded["device"] == "cpu"
    assert recorded["fingerprint"]["shapes"] == [[16, 32, 32]] * 3 and recorded["fingerprint"]["voxel_size"] == 10.0
    by_setting = {c["setting"]: c for c in recorded["choices"]}
    assert by_setting["patch"] == {"setting": "patch", "value": [16, 16, 16], "reason": "given", "given": True}
    assert by_setting["class_weights"]["given"] is False
    # the weights the run trained with are the plan's: small (r 1.5 voxels) gains sqrt((2.5 / 1.5) ** 3)
    assert by_setting["class_weights"]["value"] == "small=8.61,large=4"
    assert load_model_file(tmp_path / "m.pt").train["class_weights"] == pytest.approx([1.0, 8.61, 4.0])
    assert "plan: class_weights = small=8.61,large=4: particle weight 4" in result.stderr
    # no time budget: float32 and the given width
    assert by_setting["precision"] == {
        "setting": "precision",
        "value": "float32",
        "reason": "no time budget: exact float32 (bfloat16 buys steps, not accuracy)",
        "given": False,
    }
    assert by_setting["arch_params"] == {
        "setting": "arch_params",
        "value": {"channels": [4, 8]},
        "reason": "given",
        "given": True,
    }
    assert [c["setting"] for c in recorded["choices"]][5:] == ["precision", "arch", "arch_params", "output_stride"]
    described = json.loads(cli("info", tmp_path / "m.pt", "--json").stdout)
    assert described["train"]["plan"]["choices"] == recorded["choices"]
    assert "plan: precision = float32: no time budget" in result.stderr


def test_a_budgeted_run_trains_in_the_planned_bfloat16_the_same_under_its_seed(cli, mrc_dataset, tmp_path, monkeypatch):  # noqa: F811
    from czii_cli.predict_probs import runner

    monkeypatch.setattr(runner, "native_bfloat16", lambda: True)
    runs = []
    for name in ("a", "b"):
        # two steps, both within the warm-up: the learning rate does not follow the clock yet
        result = train(
            cli, mrc_dataset, tmp_path / f"{name}.pt", "--max-time", "600", "--max-steps", "2", "--seed", "5"
        )
        assert result.exit_code == 0, result.stderr
        runs.append(load_model_file(tmp_path / f"{name}.pt"))
    a, b = runs
    assert a.train["config"]["precision"] == "bfloat16"
    assert {c["setting"]: c["value"] for c in a.train["plan"]["choices"]}["precision"] == "bfloat16"
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.train["plan"] == b.train["plan"]


def test_a_planned_validated_run_is_deterministic_under_its_seed(cli, mrc_dataset, tmp_path):  # noqa: F811
    runs = []
    for name in ("a", "b"):
        result = train(
            cli,
            mrc_dataset,
            tmp_path / f"{name}.pt",
            "--max-steps",
            "2",
            "--steps-per-epoch",
            "1",
            "--val-runs",
            "r3",
            "--seed",
            "5",
        )
        assert result.exit_code == 0, result.stderr
        runs.append(load_model_file(tmp_path / f"{name}.pt"))
    a, b = runs
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    for key in ("plan", "best_tuned", "best_fixed", "best_step", "class_weights", "config"):
        assert a.train[key] == b.train[key], key


def test_auto_bin_is_full_resolution_and_says_why():
    plan = plan_for([(96, 192, 192)])
    binning = plan.choices[0]
    assert (binning.setting, binning.value, binning.given) == ("bin", 1, False)
    assert binning.reason.startswith("full resolution: bin 2 did not pay reliably in make bench-accuracy")
    assert binning.reason.endswith("(cpu); work at 10 Å voxels (smallest radius 6 voxels)")
    assert plan.apply(TrainConfig()).bin == 1


def test_a_given_bin_plans_the_rest_on_the_binned_grid():
    config = TrainConfig(bin=2)
    plan = plan_for([(96, 192, 192)], config=config, given={"bin"})
    assert plan.lines()[0] == "bin = 2: given: work at 20 Å voxels (smallest radius 3 voxels)"
    # binned volumes are 48 x 96 x 96: the CPU patch of 64 fits in y and x, z is bounded by the volume
    assert chosen(plan)["patch"] == (48, 64, 64)
    assert "largest particle diameter (15 voxels)" in plan.choices[2].reason
    # blob volumes all shrink 8 times: the same weights as at full resolution
    assert chosen(plan)["class_weights"] == chosen(plan_for([(96, 192, 192)]))["class_weights"]
    assert plan.to_json()["choices"][0] == {
        "setting": "bin",
        "value": 2,
        "reason": plan.choices[0].reason,
        "given": True,
    }
    assert plan.to_json()["fingerprint"]["voxel_size"] == 10.0  # the data as given


def test_a_run_at_bin_2_records_the_binned_voxel_size(cli, mrc_dataset, tmp_path):  # noqa: F811
    result = train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "1", "--patch", "8", "8", "8", "--bin", "2")
    assert result.exit_code == 0, result.stderr
    model = load_model_file(tmp_path / "m.pt")
    assert model.voxel_size == 20.0 and model.patch_size == [8, 8, 8]
    assert model.train["config"]["bin"] == 2
    assert model.train["plan"]["choices"][0]["value"] == 2
    assert "plan: bin = 2: given: work at 20 Å voxels (smallest radius 1.5 voxels)" in result.stderr
    default = train(cli, mrc_dataset, tmp_path / "d.pt", "--max-steps", "1")
    assert default.exit_code == 0, default.stderr
    assert load_model_file(tmp_path / "d.pt").voxel_size == 10.0
    assert load_model_file(tmp_path / "d.pt").train["config"]["bin"] == 1


@pytest.mark.parametrize(("value", "shown"), [("3", "3"), ("half", "'half'"), ("0", "0")])
def test_a_bad_bin_is_one_usage_error(cli, mrc_dataset, tmp_path, value, shown):  # noqa: F811
    result = train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "1", "--bin", value)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"czii: error: training setting 'bin' must be auto, 1 or 2, got {shown}"]
    assert "Traceback" not in result.stderr and not (tmp_path / "m.pt").exists()


def test_a_bin_in_a_configuration_file_is_checked(cli, mrc_dataset, tmp_path):  # noqa: F811
    (tmp_path / "c.json").write_text('{"bin": 4}')
    result = train(cli, mrc_dataset, tmp_path / "m.pt", "--max-steps", "1", "--config", tmp_path / "c.json")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"czii: error: {tmp_path / 'c.json'}: training setting 'bin' must be auto, 1 or 2, got 4"
    ]


def test_initial_weights_keep_their_width_whatever_the_budget():
    fingerprint = fingerprint_of([(96, 192, 192)], {}, catalog=DEFAULT_CATALOG, spec=TargetSpec(), voxel_size=10.0)
    initial = {"channels": [16, 24, 32], "stem_stride": 2}
    plan = plan_training(
        fingerprint,
        config=TrainConfig(max_time=5000.0),
        given=BUDGET,
        device="cpu",
        multiple=8,
        target="spheres",
        initial_params=initial,
    )
    assert (
        plan.lines()[7]
        == "arch_params = channels=16,24,32 stem_stride=2: those of the initial weights, so every weight loads"
    )
    assert plan.apply(TrainConfig(max_time=5000.0)).arch_params == initial


def test_the_plans_default_width_is_the_registrys_and_every_width_has_rates():
    from czii_cli.training.registry import DEFAULT_PARAMS

    assert list(recipe.DEFAULT_LIGHT_WIDTH) == DEFAULT_PARAMS["light"]["channels"]
    assert recipe.DEFAULT_LIGHT_WIDTH in recipe.LIGHT_WIDTHS
    assert all(set(rates) == set(recipe.LIGHT_WIDTHS) for rates in recipe.LIGHT_RATES.values())


@pytest.mark.parametrize(
    ("max_time", "width"), [(150.0, [16, 24, 32]), (300.0, [24, 32, 48]), (600.0, [24, 32, 48]), (5000.0, [24, 32, 48])]
)
def test_a_cpu_budget_trains_the_narrow_width_when_short_and_never_the_widest(max_time, width):
    # bfloat16 at 9.43 patches/s: 707 steps in 150 s (under 1000), 1414 in 300 s
    config = TrainConfig(max_time=max_time)
    plan = plan_for([(96, 192, 192)], config=config, given=BUDGET, native_bfloat16=True)
    assert chosen(plan)["arch_params"] == {"channels": width}
    assert chosen(plan_for([(96, 192, 192)], config=config, given=BUDGET, device="cuda"))["arch_params"] == {
        "channels": [32, 48, 64]
    }


def test_the_output_stride_is_chosen_for_nets_that_can_give_it_and_kept_when_given():
    shapes = [(96, 192, 192)]
    light = chosen(plan_for(shapes))
    assert light["output_stride"] == recipe.AUTO_OUTPUT_STRIDE
    unet = plan_for(shapes, config=TrainConfig(arch="unet"), given={"arch"}).choices[-1]
    assert (unet.value, unet.reason) == (1, "unet gives its maps at full resolution only")
    stem_one = plan_for(shapes, config=TrainConfig(arch_params={"stem_stride": 1}), given={"arch_params"})
    assert stem_one.choices[-1].value == 1
    given = plan_for(shapes, config=TrainConfig(output_stride=2), given={"output_stride"}).choices[-1]
    assert (given.value, given.reason, given.given) == (2, "given", True)
    assert plan_for(shapes, config=TrainConfig(output_stride=2)).choices[-1].reason == "set"
    with pytest.raises(ConfigError, match="training setting 'output_stride' 2 needs a light net with stem_stride 2"):
        plan_for(shapes, config=TrainConfig(arch="unet", output_stride=2), given={"arch", "output_stride"})


def test_a_run_validated_at_output_stride_two_records_it_for_predict_probs(cli, mrc_dataset, tmp_path):  # noqa: F811
    from czii_cli.predict_probs.stride import resolve_output_stride

    options = ("--max-steps", "1", "--val-runs", "r3", "--output-stride", "2")
    result = train(cli, mrc_dataset, tmp_path / "m.pt", *options)
    assert result.exit_code == 0, result.stderr
    model = load_model_file(tmp_path / "m.pt")
    assert model.train["config"]["output_stride"] == 2
    assert "plan: output_stride = 2: given" in result.stderr
    assert resolve_output_stride("auto", [model], ["m.pt"]) == 2
    bad = train(cli, mrc_dataset, tmp_path / "b.pt", "--max-steps", "1", "--output-stride", "4")
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        "czii: error: training setting 'output_stride' must be auto, 1 or 2, got 4"
    ]
