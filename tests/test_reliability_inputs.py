"""Bad inputs through the CLI: one `czii: error:` line naming the file, the right exit code,
no traceback and nothing written (the input side).

Groups: non-finite values (2), damaged inputs (3), silent zeros and drops (5), sizes and
numbers (6).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from helpers import make_model

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact
from czii_cli.io.copick import config_document
from czii_cli.io.picks import read_picks, run_of_image_name
from czii_cli.io.volumes import write_mrc
from czii_cli.normalize import normalization_stats

torch.set_num_threads(1)

PROBS_CLASSES = ("background", *DEFAULT_CATALOG.names)


def refused(result, code: int, *needles: str) -> str:
    """Assert a clean refusal: exit code, exactly one error line holding every needle, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("czii: error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def nothing_left(folder: Path, *expected: str) -> None:
    """Only the named entries are in ``folder``: no output, no partial, no scratch folder."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


def volume(rng, shape=(16, 16, 16)) -> np.ndarray:
    return (rng.normal(size=shape) * 4 + 20).astype(np.float32)


def write_raw_mrc(path: Path, data: np.ndarray) -> Path:
    """An MRC holding exactly ``data`` (NaN and complex values included), without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = 10.0
    return path


def probs_map(path: Path, *, nan_channel: int | None = None) -> Path:
    maps = np.zeros((len(PROBS_CLASSES), 16, 16, 16), np.float16)
    maps[4, 6:9, 6:9, 6:9] = 0.9
    if nan_channel is not None:
        maps[nan_channel, 0, 0, :3] = np.nan
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run="TS_1", classes=PROBS_CLASSES)
    write_artifact(path, maps, meta)
    return path


def csv_file(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


PRED = "experiment,particle_type,x,y,z\nTS_1,ribosome,100,200,300\n"


# ----------------------------------------------------------------------------- group 2: NaN and Inf


@pytest.mark.parametrize(
    "spoil, count",
    [
        (lambda d: d.reshape(-1)[:100].fill(np.nan), 100),
        (lambda d: (d.__setitem__(0, np.inf), d.__setitem__(5, -np.inf)), 512),
    ],
    ids=["100-nan", "two-inf-planes"],
)
def test_normalize_refuses_nonfinite_voxels_with_their_count(cli, tmp_path, rng, spoil, count):
    data = volume(rng)
    spoil(data)
    write_raw_mrc(tmp_path / "bad.mrc", data)
    refused(
        cli("normalize", tmp_path / "bad.mrc", "-o", tmp_path / "out.zarr"),
        1,
        "bad.mrc",
        f"{count} of 4096 voxels are not finite",
        "--fill-nonfinite",
    )
    nothing_left(tmp_path, "bad.mrc")


def test_an_all_nan_tomogram_is_refused_even_with_fill(cli, tmp_path):
    write_raw_mrc(tmp_path / "void.mrc", np.full((16, 16, 16), np.nan, np.float32))
    result = cli("normalize", tmp_path / "void.mrc", "--fill-nonfinite", "-o", tmp_path / "out.zarr")
    refused(result, 1, "void.mrc", "no finite voxel (all 4096")
    nothing_left(tmp_path, "void.mrc")


@pytest.mark.parametrize("method", ["zscore", "percentile"])
def test_fill_nonfinite_puts_the_finite_mean_in_their_place_with_a_warning(cli, tmp_path, method):
    data = np.arange(16 * 16 * 16, dtype=np.float32).reshape(16, 16, 16)
    data[0, 0, 0], data[3, 4, 5] = np.nan, np.inf
    write_raw_mrc(tmp_path / "holes.mrc", data)
    result = cli(
        "normalize", tmp_path / "holes.mrc", "--method", method, "--fill-nonfinite", "-o", tmp_path / "out.zarr"
    )
    assert result.exit_code == 0, result.stderr
    finite = np.delete(data.ravel(), [0, 3 * 256 + 4 * 16 + 5]).astype(np.float64)
    assert "replaced 2 non-finite voxels by the finite mean" in result.stderr
    assert "Warning" not in result.stderr and ".py:" not in result.stderr
    out = read_artifact(tmp_path / "out.zarr")
    stats = out.meta.extra["normalization"]
    assert stats["nonfinite"] == 2 and stats["fill"] == pytest.approx(finite.mean())
    normalized = out.load()
    assert np.isfinite(normalized).all()
    if method == "zscore":  # the filled voxels sit exactly at the finite mean: 0 after z-scoring
        assert normalized[0, 0, 0] == pytest.approx(0.0, abs=1e-6) and normalized[3, 4, 5] == pytest.approx(
            0.0, abs=1e-6
        )
        assert stats["mean"] == pytest.approx(finite.mean()) and stats["std"] == pytest.approx(finite.std())
    else:
        low, high = np.percentile(finite.astype(np.float32), [5, 99])
        assert stats["low"] == pytest.approx(low) and stats["high"] == pytest.approx(high)


def test_statistics_skip_nonfinite_values():
    data = np.array([[[1.0, 3.0, np.nan, np.inf, 5.0]]])
    stats = normalization_stats(data, nonfinite="fill")
    assert (stats["mean"], stats["nonfinite"], stats["fill"]) == (3.0, 2, 3.0)
    assert stats["std"] == pytest.approx(math.sqrt(8 / 3))
    clean = normalization_stats(np.array([[[1.0, 3.0, 5.0]]]))
    assert clean["nonfinite"] == 0 and clean["fill"] is None


def test_predict_probs_refuses_nonfinite_tomograms_raw_or_normalized(cli, tmp_path, rng):
    model = make_model(tmp_path / "m.pt")
    data = volume(rng)
    data[2, 3, :7] = np.nan
    write_raw_mrc(tmp_path / "raw.mrc", data)
    refused(
        cli("predict-probs", tmp_path / "raw.mrc", "-m", model, "-o", tmp_path / "p.zarr"),
        1,
        "raw.mrc",
        "7 of 4096 voxels are not finite",
    )
    meta = ArtifactMeta(
        kind="tomogram",
        axes="zyx",
        voxel_size=10.0,
        run="TS_1",
        extra={"normalization": {"method": "zscore", "clip": None}},
    )
    write_artifact(tmp_path / "norm.zarr", data, meta)
    refused(
        cli("predict-probs", tmp_path / "norm.zarr", "-m", model, "-o", tmp_path / "p.zarr"),
        1,
        "norm.zarr",
        "7 of 4096 voxels are not finite",
    )
    nothing_left(tmp_path, "m.pt", "raw.mrc", "norm.zarr")


def test_train_refuses_a_nonfinite_tomogram_naming_it(cli, tmp_path):
    from helpers import TINY, write_mrc_dataset

    (tmp_path / "data").mkdir()
    data = write_mrc_dataset(tmp_path / "data", seed=3)
    spoilt = data / "train_images" / "r2.mrc"
    with mrcfile.mmap(spoilt, mode="r+") as mrc:
        mrc.data[1, 2, :5] = np.inf
    result = cli(
        "train",
        data,
        "-o",
        tmp_path / "model.pt",
        "--classes",
        data / "classes.json",
        *TINY,
        "--max-steps",
        1,
        "--epochs",
        1,
    )
    refused(result, 1, "r2.mrc", "5 of", "voxels are not finite")
    assert not (tmp_path / "model.pt").exists()


def test_postprocess_refuses_a_nonfinite_map_naming_it_and_the_channel(cli, tmp_path):
    probs_map(tmp_path / "p.zarr", nan_channel=2)
    result = cli("postprocess", tmp_path / "p.zarr", "-o", tmp_path / "picks.csv")
    refused(result, 1, "p.zarr")
    assert "p.zarr: channel 'beta-amylase': 3 of 4096 values are not finite" in result.stderr
    nothing_left(tmp_path, "p.zarr")


def test_python_warnings_reach_people_as_one_line_and_numpy_float_warnings_not_at_all(capsys):
    from czii_cli.console import user_warnings

    with user_warnings():
        np.log(np.zeros(2))  # divide by zero
        np.subtract(np.inf, np.inf)  # invalid value
        warnings.warn("the tomogram is\n  upside down", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["warning: the tomogram is upside down (UserWarning)"]


# ----------------------------------------------------------------------------- group 3: damaged inputs


@pytest.fixture
def artifact(cli, tmp_path, rng):
    write_mrc(tmp_path / "t.mrc", volume(rng), voxel_size=10.0)
    assert cli("normalize", tmp_path / "t.mrc", "-o", tmp_path / "t.zarr").exit_code == 0
    return tmp_path / "t.zarr"


def test_a_truncated_chunk_is_one_line_in_normalize_and_predict_probs(cli, tmp_path, artifact):
    chunks = [p for p in (artifact / "data").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunks
    for chunk in chunks:
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 3])
    refused(cli("normalize", artifact, "-o", tmp_path / "again.zarr"), 1, "t.zarr", "damaged data")
    model = make_model(tmp_path / "m.pt")
    refused(cli("predict-probs", artifact, "-m", model, "-o", tmp_path / "p.zarr"), 1, "t.zarr", "damaged data")
    nothing_left(tmp_path, "t.mrc", "t.zarr", "m.pt")


@pytest.mark.parametrize("member", ["zarr.json", "data/zarr.json"])
def test_corrupt_zarr_metadata_is_one_line_in_normalize_and_info(cli, tmp_path, artifact, member):
    (artifact / member).write_text("{not json")
    refused(cli("normalize", artifact, "-o", tmp_path / "again.zarr"), 1, "t.zarr")
    refused(cli("info", artifact), 1, "t.zarr")
    nothing_left(tmp_path, "t.mrc", "t.zarr")


def test_a_corrupt_zarray_of_an_ome_zarr_is_one_line(cli, tmp_path, rng):
    from czii_cli.io.volumes import write_ome_zarr

    write_ome_zarr(tmp_path / "ome.zarr", volume(rng), voxel_size=10.0, levels=1)
    (tmp_path / "ome.zarr" / "0" / ".zarray").write_text("garbage{")
    refused(cli("normalize", tmp_path / "ome.zarr", "-o", tmp_path / "out.zarr"), 1, "ome.zarr", "array '0'")
    refused(cli("info", tmp_path / "ome.zarr"), 1, "ome.zarr", "array '0'")
    nothing_left(tmp_path, "ome.zarr")


def copick_project(root: Path, **changes) -> Path:
    root.mkdir()
    document = config_document("p", DEFAULT_CATALOG.to_json(), root)
    for key, value in changes.items():
        if value is KeyError:
            document.pop(key)
        else:
            document[key] = value
    (root / "copick_config.json").write_text(json.dumps(document))
    (root / "overlay" / "ExperimentRuns" / "TS_1" / "Picks").mkdir(parents=True)
    return root / "copick_config.json"


BAD_CONFIGS = {
    "objects-are-numbers": ({"pickable_objects": [1, 2]}, "pickable_objects entry 1 is not an object"),
    "objects-is-a-number": ({"pickable_objects": 5}, "pickable_objects must be a list"),
    "static-root-is-a-number": ({"static_root": 3}, "static_root must be a path"),
}


@pytest.mark.parametrize("changes, message", list(BAD_CONFIGS.values()), ids=list(BAD_CONFIGS))
def test_a_malformed_copick_config_is_one_line_wherever_it_is_read(cli, tmp_path, changes, message):
    config = copick_project(tmp_path / "proj", **changes)
    probs_map(tmp_path / "p.zarr")
    pred = csv_file(tmp_path / "pred.csv", PRED)
    runs = [
        ("postprocess", tmp_path / "p.zarr", "--classes", config, "-o", tmp_path / "picks.csv"),
        ("simulate", tmp_path / "sim", "--classes", config, "--shape", 16, 16, 16),
        ("info", config),
        ("score", pred, config),
        ("score", pred, pred, "--classes", config),
    ]
    for args in runs:
        refused(cli(*args), 1, str(config), message)
    nothing_left(tmp_path, "proj", "p.zarr", "pred.csv")


def test_nan_in_a_copick_picks_file_is_one_line_in_score(cli, tmp_path):
    config = copick_project(tmp_path / "proj")
    picks = tmp_path / "proj" / "overlay" / "ExperimentRuns" / "TS_1" / "Picks" / "curation_0_ribosome.json"
    picks.write_text(
        '{"pickable_object_name": "ribosome", "run_name": "TS_1", '
        '"points": [{"location": {"x": NaN, "y": 1, "z": 2}}, {"location": {"x": 1, "y": 1, "z": 2}}]}'
    )
    refused(
        cli("score", csv_file(tmp_path / "pred.csv", PRED), config),
        1,
        "curation_0_ribosome.json",
        "1 of 2 points have non-finite coordinates",
    )


def test_a_binary_file_named_csv_in_a_truth_folder_is_one_line(cli, tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "TS_1.csv").write_bytes(bytes(range(256)) * 4)
    refused(
        cli("score", csv_file(tmp_path / "pred.csv", PRED), tmp_path / "gt"), 1, "TS_1.csv", "not a UTF-8 text file"
    )


def spoiled_model(path: Path, source: Path, **changes) -> Path:
    document = torch.load(source, weights_only=True)
    document.update(changes)
    torch.save(document, path)
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"arch_params": {"channels": [8, 16]}}, "the weights do not fit the light network"),
        ({"state_dict": {}}, "holds no weights (empty state_dict)"),
        ({"arch": "nope"}, "unknown architecture 'nope'"),
        ({"arch_params": {"depth": 3}}, "light has no parameter 'depth'"),
        ({"arch_params": "channels"}, "arch_params is a str, expected a dict"),
        ({"normalization": {"method": "median", "clip": None}}, "unknown normalization 'median'"),
        ({"patch_size": [8, 8]}, "patch_size must be three positive integers"),
    ],
    ids=[
        "misfit-weights",
        "empty-state-dict",
        "bad-arch",
        "bad-arch-param",
        "arch-params-not-a-dict",
        "bad-normalization",
        "bad-patch-size",
    ],
)
def test_a_damaged_model_file_is_one_line_naming_it(cli, tmp_path, rng, changes, message):
    model = spoiled_model(tmp_path / "bad.pt", make_model(tmp_path / "m.pt"), **changes)
    write_mrc(tmp_path / "t.mrc", volume(rng), voxel_size=10.0)
    refused(cli("predict-probs", tmp_path / "t.mrc", "-m", model, "-o", tmp_path / "p.zarr"), 1, "bad.pt", message)
    nothing_left(tmp_path, "m.pt", "bad.pt", "t.mrc")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"patch": ["a", "b", "c"]}, "patch must be a list of three whole numbers"),
        ({"patch": [64, 64]}, "patch must be a list of three whole numbers"),
        ({"augment": 3}, "augment must be an object"),
        ({"augment": {"flip": 2.0}}, "augmentation setting flip must lie in [0, 1]"),
        ([1, 2], "training settings must be a JSON object"),
    ],
    ids=["patch-letters", "patch-two-sides", "augment-number", "flip-above-one", "not-an-object"],
)
def test_bad_training_settings_files_are_one_line_naming_the_file(cli, tmp_path, settings, message):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps(settings))
    result = cli("train", tmp_path, "--config", config, "-o", tmp_path / "model.pt")
    code = 1 if isinstance(settings, list) else 2
    refused(result, code, "settings.json", message)
    nothing_left(tmp_path, "settings.json")


# ----------------------------------------------------------------------------- group 5: silent zeros and drops


@pytest.mark.parametrize("objects", [KeyError, [], None], ids=["missing", "empty", "null"])
def test_score_against_a_config_without_classes_is_an_error_not_zero(cli, tmp_path, objects):
    config = copick_project(tmp_path / "proj", pickable_objects=objects)
    result = cli("score", csv_file(tmp_path / "pred.csv", PRED), config)
    refused(result, 1, str(config), "names no particle classes")
    assert result.stdout == ""


def test_score_warns_when_no_experiment_of_pred_is_in_gt(cli, tmp_path):
    pred = csv_file(tmp_path / "pred.csv", PRED + "TS_3,ribosome,1,2,3\n")
    gt = csv_file(tmp_path / "gt.csv", "experiment,particle_type,x,y,z\nTS_2,ribosome,100,200,300\n")
    result = cli("score", pred, gt)
    assert result.exit_code == 0 and result.stdout.strip() == "0.000000"
    assert "no experiment of" in result.stderr and "pred.csv has TS_1, TS_3" in result.stderr
    assert "gt.csv has TS_2" in result.stderr
    overlapping = cli("score", pred, csv_file(tmp_path / "gt1.csv", PRED))
    assert overlapping.exit_code == 0 and "warning" not in overlapping.stderr


ANNOTATIONS = {
    "image-name-with-extension": ("10440", "TS_1.mrc", "annotations.csv"),
    "image-name-bare": ("10440", "TS_1", "annotations.csv"),
    "dataset-id-is-the-run": ("TS_1", "tomogram.rec", "TS_1.csv"),
}


def annotation_folder(root: Path, dataset: str, image: str, name: str) -> Path:
    root.mkdir()
    csv_file(
        root / name,
        f"dataset_id,image_name,x,y,z,label\n{dataset},{image},100,200,300,4\n{dataset},{image},80,80,80,1\n",
    )
    return root


def test_the_run_of_an_image_name_drops_a_volume_extension():
    names = ["TS_5_4.mrc", "TS_5_4", "TS_5_4.rec", "TS_5_4.MAP", "TS_5_4.zarr", "runs/TS_5_4.mrc", "TS_5.4"]
    assert [run_of_image_name(n) for n in names] == ["TS_5_4"] * 6 + ["TS_5.4"]


@pytest.mark.parametrize("dataset, image, name", list(ANNOTATIONS.values()), ids=list(ANNOTATIONS))
def test_annotation_csvs_name_their_run_in_score_make_labels_and_view(cli, tmp_path, rng, dataset, image, name):
    truth = annotation_folder(tmp_path / "gt", dataset, image, name)
    assert read_picks(truth).experiments == ["TS_1"]
    pred = csv_file(tmp_path / "pred.csv", PRED + "TS_1,apo-ferritin,80,80,80\n")
    score = cli("score", pred, truth)  # both found: F4 = 1 for ribosome and apo-ferritin, weights 1 + 1 of 7
    assert score.exit_code == 0 and score.stdout.strip() == "0.285714", score.stderr
    write_mrc(tmp_path / "TS_1.mrc", volume(rng, (40, 40, 40)), voxel_size=10.0)
    labels = cli("make-labels", truth / name, "--like", tmp_path / "TS_1.mrc", "-o", tmp_path / "labels.zarr")
    assert labels.exit_code == 0, labels.stderr
    painted = read_artifact(tmp_path / "labels.zarr").load()
    assert painted[30, 20, 10] == DEFAULT_CATALOG.get("ribosome").label
    assert painted[8, 8, 8] == DEFAULT_CATALOG.get("apo-ferritin").label
    view = cli("view", tmp_path / "TS_1.mrc", "--gt", truth, "-o", tmp_path / "view.png")
    assert view.exit_code == 0 and "warning" not in view.stderr, view.stderr


def test_a_byte_order_mark_before_the_header_is_ignored(cli, tmp_path):
    pred = csv_file(tmp_path / "pred.csv", "\ufeff" + PRED, encoding="utf-8")
    assert pred.read_bytes().startswith(b"\xef\xbb\xbf")
    result = cli("score", pred, csv_file(tmp_path / "gt.csv", PRED))  # the ribosome found: weight 1 of 7
    assert result.exit_code == 0 and result.stdout.strip() == "0.142857", result.stderr
    piped = cli("score", "-", tmp_path / "gt.csv", input="\ufeff" + PRED)
    assert piped.exit_code == 0 and piped.stdout.strip() == "0.142857", piped.stderr


def test_a_complex_mrc_is_refused_not_cut_to_its_real_part(cli, tmp_path, rng):
    data = volume(rng)
    write_raw_mrc(tmp_path / "c.mrc", (data + 1j * data).astype(np.complex64))
    refused(cli("normalize", tmp_path / "c.mrc", "-o", tmp_path / "out.zarr"), 1, "c.mrc", "complex64", "not real")
    refused(cli("info", tmp_path / "c.mrc"), 1, "c.mrc", "complex64")
    nothing_left(tmp_path, "c.mrc")


# ----------------------------------------------------------------------------- group 6: sizes and numbers


def test_a_window_larger_than_the_tomogram_is_fitted_to_it(cli, tmp_path, rng):
    model = make_model(tmp_path / "m.pt")  # the light net takes multiples of 4
    write_mrc(tmp_path / "t.mrc", volume(rng, (10, 12, 14)), voxel_size=10.0)
    result = cli("predict-probs", tmp_path / "t.mrc", "-m", model, "--window", 64, 64, 64, "-o", tmp_path / "p.zarr")
    assert result.exit_code == 0, result.stderr
    assert "1 window of 12x12x16" in result.stderr
    args = read_artifact(tmp_path / "p.zarr").meta.provenance[-1]["args"]
    assert args["window"] == [12, 12, 16]


def test_simulate_refuses_a_shape_that_cannot_fit_naming_the_estimate(cli, tmp_path):
    result = cli("simulate", tmp_path / "sim", "--shape", 100000, 100000, 100000)
    refused(result, 2, "--shape 100000 100000 100000", "needs about 21.3 PiB of memory")
    nothing_left(tmp_path)


def test_the_memory_check_compares_the_estimate_with_what_is_available():
    from czii_cli.errors import UsageError
    from czii_cli.simulate import check_memory, memory_estimate

    assert memory_estimate((10, 20, 30)) == 6000 * 24
    check_memory((10, 20, 30), available=6000 * 24)
    with pytest.raises(UsageError, match=r"a 10x20x30 run needs about 140.6 KiB of memory; this machine has 1.0 KiB"):
        check_memory((10, 20, 30), available=1024)


@pytest.mark.parametrize("value", ["0", "nan", "-10", "inf"])
def test_an_invalid_voxel_size_is_called_invalid_in_every_command(cli, tmp_path, rng, value):
    write_mrc(tmp_path / "t.mrc", volume(rng), voxel_size=10.0)
    probs_map(tmp_path / "p.zarr")
    pred = csv_file(tmp_path / "pred.csv", PRED)
    runs = [
        ("normalize", tmp_path / "t.mrc", "-o", tmp_path / "out.zarr"),
        ("simulate", tmp_path / "sim", "--shape", 16, 16, 16),
        ("make-labels", pred, "--like", tmp_path / "t.mrc", "-o", tmp_path / "labels.zarr"),
        ("postprocess", tmp_path / "p.zarr", "-o", tmp_path / "picks.csv"),
        ("predict-probs", tmp_path / "t.mrc", "-m", tmp_path / "absent.pt", "-o", tmp_path / "out.zarr"),
        ("view", tmp_path / "t.mrc", "-o", tmp_path / "v.png"),
    ]
    for args in runs:
        line = refused(cli(*args, "--voxel-size", value), 2, "--voxel-size", "invalid voxel size")
        assert "no voxel size recorded" not in line
    nothing_left(tmp_path, "t.mrc", "p.zarr", "pred.csv")


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--max-time", "-5", "max_time"),
        ("--max-time", "nan", "max_time"),
        ("--max-time", "0", "max_time"),
        ("--lr", "nan", "training setting 'lr' must be positive"),
        ("--lr", "inf", "training setting 'lr' must be positive"),
    ],
)
def test_train_refuses_negative_or_nonfinite_numbers_before_reading_data(cli, tmp_path, flag, value, message):
    result = cli("train", tmp_path / "absent", flag, value, "-o", tmp_path / "model.pt")
    refused(result, 2, message, value if value != "inf" else "inf")
    nothing_left(tmp_path)
