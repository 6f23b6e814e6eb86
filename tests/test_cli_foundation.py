"""`czii normalize`, `czii info`, the root command and the error contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from czii_cli import __version__
from czii_cli.errors import DataError
from czii_cli.io.artifacts import ArtifactMeta, Volume, check_same_grid, read_artifact, write_artifact
from czii_cli.io.picks import write_picks_csv
from czii_cli.io.volumes import write_mrc
from czii_cli.picks import Picks


@pytest.fixture
def mrc(tmp_path, rng):
    data = (rng.normal(size=(20, 16, 12)) * 3 + 7).astype(np.float32)
    write_mrc(tmp_path / "TS_1.mrc", data, voxel_size=10.0)
    return tmp_path / "TS_1.mrc", data


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"czii {__version__}"


def test_normalize_zscore(cli, mrc, tmp_path):
    path, data = mrc
    result = cli("normalize", path, "-o", tmp_path / "n.zarr")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    volume = read_artifact(tmp_path / "n.zarr")
    out = volume.load()
    expected = (data.astype(np.float64) - data.mean(dtype=np.float64)) / data.std(dtype=np.float64)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert volume.meta.kind == "tomogram"
    assert volume.meta.run == "TS_1"
    assert volume.meta.voxel_size == 10.0
    assert volume.meta.extra["normalization"]["method"] == "zscore"
    assert volume.meta.provenance[-1]["command"] == "normalize"


def test_normalize_percentile_to_npy(cli, mrc, tmp_path):
    path, data = mrc
    result = cli("normalize", path, "--method", "percentile", "--clip", "5", "99", "-o", tmp_path / "n.npy")
    assert result.exit_code == 0, result.stderr
    out = read_artifact(tmp_path / "n.npy").load()
    low, high = np.percentile(data, [5, 99])
    np.testing.assert_allclose(out, (np.clip(data, low, high) - low) / (high - low), atol=1e-6)
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)


def test_normalize_streams_zip_to_stdout(cli, mrc, tmp_path):
    path, data = mrc
    result = cli("normalize", path, "-o", "-")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes[:4] == b"PK\x03\x04"
    (tmp_path / "p.zarr").write_bytes(result.stdout_bytes)
    assert read_artifact(tmp_path / "p.zarr").shape == data.shape


def test_normalize_refuses_to_overwrite_and_writes_nothing_on_error(cli, mrc, tmp_path):
    path, _ = mrc
    assert cli("normalize", path, "-o", tmp_path / "n.zarr").exit_code == 0
    result = cli("normalize", path, "-o", tmp_path / "n.zarr")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"czii: error: {tmp_path / 'n.zarr'}: output exists; pass --overwrite to replace it"
    assert cli("normalize", path, "-o", tmp_path / "n.zarr", "-f").exit_code == 0


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "no such file or directory"),
        (lambda d: (d / "in.mrc").write_bytes(b"garbage" * 10), "not a readable MRC file"),
        (lambda d: (d / "in.mrc").mkdir() or (d / "in.mrc" / "zarr.json").write_text("{"), "not a readable zarr store"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_1(cli, tmp_path, setup, message):
    setup(tmp_path)
    result = cli("normalize", tmp_path / "in.mrc", "-o", tmp_path / "out.zarr")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"czii: error: {tmp_path / 'in.mrc'}") and message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.zarr").exists()


def test_usage_errors_exit_2(cli, mrc, tmp_path):
    path, _ = mrc
    result = cli("normalize", path, "--method", "minmax", "-o", tmp_path / "x.zarr")
    assert result.exit_code == 2
    assert "unknown normalization 'minmax'" in result.stderr
    result = cli("normalize", path, "--clip", "9", "1", "-o", tmp_path / "x.zarr")
    assert result.exit_code == 2
    assert not (tmp_path / "x.zarr").exists()


def test_shape_and_voxel_size_mismatch_messages():
    meta = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0)
    a = Volume(np.zeros((2, 3, 4)), meta, "a.zarr")
    with pytest.raises(DataError, match=r"b.zarr: shape \(2, 3, 5\) does not match a.zarr \(2, 3, 4\)"):
        check_same_grid(a, Volume(np.zeros((2, 3, 5)), meta, "b.zarr"))
    with pytest.raises(DataError, match="b.zarr: voxel size 12.0 Å does not match a.zarr 10.0 Å"):
        check_same_grid(a, Volume(np.zeros((2, 3, 4)), meta.evolve(voxel_size=12.0), "b.zarr"))


def test_voxel_sizes_match_within_a_tenth_of_a_percent():
    meta = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0)
    a = Volume(np.zeros((2, 3, 4)), meta, "a.zarr")
    check_same_grid(a, Volume(np.zeros((2, 3, 4)), meta.evolve(voxel_size=10.01), "b.zarr"))
    with pytest.raises(DataError, match="b.zarr: voxel size 10.012 Å does not match a.zarr 10.0 Å"):
        check_same_grid(a, Volume(np.zeros((2, 3, 4)), meta.evolve(voxel_size=10.012), "b.zarr"))


@pytest.mark.parametrize("command", ["normalize", "view"])
def test_a_probability_map_is_not_a_tomogram(cli, tmp_path, command):
    probs = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, classes=("background", "ribosome"))
    write_artifact(tmp_path / "p.zarr", np.zeros((2, 4, 4, 4), np.float16), probs)
    result = cli(command, tmp_path / "p.zarr", "-o", tmp_path / "out.png")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"czii: error: {tmp_path / 'p.zarr'}: expected a single-channel zyx tomogram, found axes 'czyx'"
    ]
    assert not (tmp_path / "out.png").exists()


def test_info_json_on_volume_picks_and_project(cli, mrc, tmp_path):
    path, data = mrc
    described = json.loads(cli("info", path, "--json").stdout)
    assert described["kind"] == "tomogram" and described["shape"] == list(data.shape)
    assert described["voxel_size"] == 10.0
    write_picks_csv(tmp_path / "p.csv", Picks.from_points("TS_1", "ribosome", [[1, 2, 3], [4, 5, 6]]))
    described = json.loads(cli("info", tmp_path / "p.csv", "--json").stdout)
    assert described["counts"] == {"TS_1": {"ribosome": 2}}
    probs = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, classes=("background", "ribosome"), run="TS_1")
    write_artifact(tmp_path / "p.zarr", np.zeros((2, 4, 4, 4), np.float16), probs)
    described = json.loads(cli("info", tmp_path / "p.zarr", "--json").stdout)
    assert described["classes"] == ["background", "ribosome"] and described["dtype"] == "float16"


def test_info_table_goes_to_stderr(cli, mrc):
    path, _ = mrc
    result = cli("info", path)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "tomogram" in result.stderr


def test_info_missing_file(cli, tmp_path):
    result = cli("info", tmp_path / "nope.zarr")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"czii: error: {tmp_path / 'nope.zarr'}: no such file or directory"


def test_track_adds_its_bar_to_a_given_display():
    from rich.progress import Progress

    from czii_cli.console import track

    progress = Progress(disable=True)
    assert list(track(["a", "b", "c"], description="loading runs", total=3, progress=progress)) == ["a", "b", "c"]
    (task,) = progress.tasks
    assert (task.description, task.completed, task.total) == ("loading runs", 3, 3)
    assert list(track(iter([1, 2]), description="own bar")) == [1, 2]


def test_the_output_errors_survive_pickling_and_read_as_flags_on_the_command_line(cli, mrc, tmp_path):
    import pickle

    from czii_cli.errors import NoOutputError, OutputExistsError

    err = pickle.loads(pickle.dumps(OutputExistsError("a.zarr", note=" (raced)")))
    assert (type(err), err.path, err.note, str(err)) == (
        OutputExistsError,
        "a.zarr",
        " (raced)",
        "a.zarr: output exists; not replaced unless overwrite is set (raced)",
    )
    assert str(pickle.loads(pickle.dumps(NoOutputError()))) == str(NoOutputError())
    path, _ = mrc
    (tmp_path / "n.npy").write_bytes(b"")
    result = cli("normalize", path, "-o", tmp_path / "n.npy")
    assert (result.exit_code, result.stderr.splitlines()) == (
        2,
        [f"czii: error: {tmp_path / 'n.npy'}: output exists; pass --overwrite to replace it"],
    )
