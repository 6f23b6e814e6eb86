"""Reliability of outputs: names from data, full and read-only disks, stdout, consent, partials.

Faults are injected by patching how files are opened for writing under the output
folder (tests run as root, for whom a read-only ``chmod`` blocks nothing): a full disk
lets files be created but fails every write with ENOSPC; a read-only disk fails every
open for writing and every mkdir with EROFS.  Each writing command must then exit 1
with exactly one ``czii: error:`` line naming the output and the problem, no
traceback, nothing left in the output folder and nothing changed elsewhere.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.errors import DataError, UsageError
from czii_cli.io import artifacts
from czii_cli.io.artifacts import ArtifactMeta, create_artifact, output_is_complete, read_artifact, write_artifact
from czii_cli.io.atomic import atomic_path, is_partial_name
from czii_cli.io.names import file_in_folder, name_problem
from czii_cli.io.picks import write_copick_picks, write_picks_csv
from czii_cli.io.volumes import write_mrc
from czii_cli.normalize import normalization_method
from czii_cli.picks import Picks, concat
from czii_cli.training.checkpoint import ModelFile, save_model
from czii_cli.training.registry import build_network

torch.set_num_threads(1)

PROB_CLASSES = ("background", "apo-ferritin", "ribosome")
TRAIN_CLASSES = {
    "classes": [
        {"name": "small", "radius": 30.0, "weight": 1, "label": 1},
        {"name": "large", "radius": 50.0, "weight": 1, "label": 2},
    ]
}


# ----------------------------------------------------------------------------- inputs


def probs_map(shift: int = 0) -> np.ndarray:
    """An apo-ferritin ball and a ribosome ball (as in the postprocess tests)."""
    z, y, x = np.indices((16, 24, 32))
    probs = np.zeros((3, 16, 24, 32), np.float16)
    probs[1][(z - 8) ** 2 + (y - 10) ** 2 + (x - 6 - shift) ** 2 <= 9] = 0.5
    probs[2][(z - 8) ** 2 + (y - 12) ** 2 + (x - 22) ** 2 <= 36] = 0.75
    return probs


def save_probs(path: Path, *, run: str = "TS_a") -> Path:
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run=run, classes=PROB_CLASSES)
    write_artifact(path, probs_map(), meta)
    return path


def save_tomogram(path: Path, *, run: str) -> Path:
    data = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)
    write_artifact(path, data, ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0, run=run))
    return path


def make_model(path: Path) -> Path:
    torch.manual_seed(0)
    params = {"channels": [4, 8]}
    network = build_network("light", in_channels=1, out_channels=len(PROB_CLASSES), params=params)
    save_model(
        path,
        ModelFile(
            arch="light",
            arch_params=params,
            classes=list(PROB_CLASSES),
            catalog=DEFAULT_CATALOG.to_json(),
            target="spheres",
            activation="softmax",
            normalization=normalization_method("zscore", None),
            patch_size=[8, 8, 8],
            voxel_size=10.0,
            state_dict=network.state_dict(),
        ),
    )
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Every input the writing commands need, in one read-only-by-convention folder."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(3)
    write_mrc(root / "TS_1.mrc", (rng.normal(size=(16, 24, 32)) * 4 + 20).astype(np.float32), voxel_size=10.0)
    save_probs(root / "probs.zarr")
    save_probs(root / "probs_b.zarr")
    picks = concat(
        [
            Picks.from_points(
                "TS_1", "ribosome", np.array([[100.0, 120.0, 80.0], [200.0, 100.0, 60.0]]), score=np.array([0.9, 0.4])
            ),
            Picks.from_points("TS_1", "apo-ferritin", np.array([[60.0, 100.0, 80.0]]), score=np.array([0.7])),
        ]
    )
    write_picks_csv(root / "picks.csv", picks)
    write_picks_csv(root / "truth.csv", picks.where(particle_type="ribosome"))
    make_model(root / "m.pt")
    data = root / "train"
    (data / "train_images").mkdir(parents=True)
    (data / "train_annotations").mkdir()
    volume = rng.normal(size=(24, 32, 32)).astype(np.float32)
    write_mrc(data / "train_images" / "r1.mrc", volume, voxel_size=10.0)
    write_picks_csv(
        data / "train_annotations" / "r1.csv",
        concat(
            [
                Picks.from_points("r1", "small", np.array([[100.0, 100.0, 100.0]])),
                Picks.from_points("r1", "large", np.array([[200.0, 200.0, 120.0]])),
            ]
        ),
    )
    (root / "classes.json").write_text(json.dumps(TRAIN_CLASSES))
    return {p.name: p for p in root.iterdir()}


def listing(folder: Path) -> dict[str, float]:
    """Every path under ``folder`` (hidden ones included) with its modification time."""
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*")}


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("czii: error:")]


def assert_one_error(result, code: int, *words: str) -> str:
    """Exit ``code``, exactly one error line holding every word, no traceback; returns the line."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    return lines[0]


# ----------------------------------------------------------------------------- fault injection


class FullFile:
    """A file opened on a full disk: it exists, but every write fails with ENOSPC."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def writelines(self, lines):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()

    def __iter__(self):
        return iter(self._handle)


def fail_writes(monkeypatch, root: Path, code: int) -> None:
    """Make writing under ``root`` fail as on a full disk (ENOSPC) or a read-only one (EROFS)."""
    real_open, real_mkdir = builtins.open, os.mkdir
    root = Path(root).absolute()

    def under(path) -> bool:
        if isinstance(path, int):
            return False
        return Path(os.fsdecode(path)).absolute().is_relative_to(root)

    def fake_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and under(file):
            if code == errno.EROFS:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(file))
            return FullFile(real_open(file, mode, *args, **kwargs))
        return real_open(file, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if code == errno.EROFS and under(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    def fake_fallocate(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "posix_fallocate", fake_fallocate)


TINY_TRAIN = ["--arch-param", "channels=[4,8]", "--patch", "16", "16", "16", "--batch-size", "1", "--max-steps", "1"]


def writing_commands(i: dict[str, Path], out: Path) -> dict[str, tuple[list, Path]]:
    """Each writing command with its arguments, and the output it names."""
    return {
        "normalize-zarr": (["normalize", i["TS_1.mrc"], "-o", out / "t.zarr"], out / "t.zarr"),
        "normalize-zip": (["normalize", i["TS_1.mrc"], "-o", out / "t.zip"], out / "t.zip"),
        "normalize-npy": (["normalize", i["TS_1.mrc"], "-o", out / "t.npy"], out / "t.npy"),
        "make-labels": (["make-labels", i["picks.csv"], "--like", i["TS_1.mrc"], "-o", out / "l.zarr"], out / "l.zarr"),
        "predict-probs-file": (["predict-probs", i["TS_1.mrc"], "-m", i["m.pt"], "-o", out / "p.zarr"], out / "p.zarr"),
        "predict-probs-folder": (["predict-probs", i["TS_1.mrc"], "-m", i["m.pt"], "-o", f"{out}/"], out / "TS_1.zarr"),
        "postprocess-file": (["postprocess", i["probs.zarr"], "-o", out / "picks.csv"], out / "picks.csv"),
        "postprocess-folder": (["postprocess", i["probs.zarr"], "-o", f"{out}/"], out / "TS_a.csv"),
        "ensemble": (["ensemble", i["probs.zarr"], i["probs_b.zarr"], "-o", out / "e.zarr"], out / "e.zarr"),
        "tune": (["tune", i["picks.csv"], i["truth.csv"], "-o", out / "cut.json"], out / "cut.json"),
        "simulate": (["simulate", out / "sim", "--shape", 32, 64, 64, "-q"], out / "sim"),
        "view": (["view", i["TS_1.mrc"], "-o", out / "v.png"], out / "v.png"),
        "train": (["train", i["train"], "-o", out / "m.pt", "--classes", i["classes.json"], *TINY_TRAIN], out / "m.pt"),
    }


COMMANDS = [
    "normalize-zarr",
    "normalize-zip",
    "normalize-npy",
    "make-labels",
    "predict-probs-file",
    "predict-probs-folder",
    "postprocess-file",
    "postprocess-folder",
    "ensemble",
    "tune",
    "simulate",
    "view",
    "train",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_writing_command_succeeds_without_faults(cli, inputs, tmp_path, command):
    """The baseline of the fault tests: the same command lines work on a healthy disk."""
    out = tmp_path / "out"
    out.mkdir()
    args, target = writing_commands(inputs, out)[command]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert os.path.lexists(target)
    assert not [p for p in out.iterdir() if is_partial_name(p)]


@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_or_read_only_disk_is_one_line_and_leaves_nothing(cli, inputs, tmp_path, monkeypatch, command, fault):
    out = tmp_path / "out"
    out.mkdir()
    args, target = writing_commands(inputs, out)[command]
    before = listing(inputs["TS_1.mrc"].parent)
    fail_writes(monkeypatch, out, fault)
    result = cli(*args)
    monkeypatch.undo()
    assert_one_error(result, 1, os.strerror(fault), str(target) if "folder" not in command else str(out))
    assert list(out.iterdir()) == [], "nothing left behind, hidden partials included"
    assert listing(inputs["TS_1.mrc"].parent) == before, "inputs untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "nothing written beside the output folder"


def test_train_checks_its_output_folder_before_training(cli, inputs, tmp_path, monkeypatch):
    from czii_cli.training.training import Trainer

    steps = []
    original = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self, *a, **k: steps.append(1) or original(self, *a, **k))
    args, _ = writing_commands(inputs, tmp_path)["train"]
    fail_writes(monkeypatch, tmp_path, errno.EROFS)
    result = cli(*args)
    assert_one_error(result, 1, "m.pt", "cannot write to", "Read-only file system")
    assert steps == [], "no step trained on a disk the model cannot be saved to"


def test_npy_output_space_is_reserved_up_front(tmp_path, monkeypatch):
    """A memory-mapped .npy on a full disk fails with ENOSPC at creation, not SIGBUS at the first write."""
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(1 << 20)
    assert os.stat(sparse).st_blocks * 512 < 1 << 20
    artifacts._preallocate(sparse)
    assert os.stat(sparse).st_blocks * 512 >= 1 << 20
    monkeypatch.setattr(
        os,
        "posix_fallocate",
        lambda fd, offset, length: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))),
    )
    meta = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0)
    with pytest.raises(DataError, match=r"t\.npy: cannot write: No space left on device"):
        with create_artifact(tmp_path / "t.npy", shape=(4, 4, 4), dtype="float32", meta=meta):
            raise AssertionError("not reached: the space is checked before the data is written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sparse"]


# ----------------------------------------------------------------------------- stdout


CZII = [sys.executable, "-c", "from czii_cli.main import run; run()"]


def run_czii(*args, stdout=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*CZII, *map(str, args)], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout)


@pytest.mark.parametrize("command", ["score", "postprocess", "predict-probs"])
def test_a_full_stdout_is_one_line_exit_1(inputs, command):
    args = {
        "score": ["score", inputs["picks.csv"], inputs["truth.csv"]],
        "postprocess": ["postprocess", inputs["probs.zarr"]],
        "predict-probs": ["predict-probs", inputs["TS_1.mrc"], "-m", inputs["m.pt"]],
    }[command]
    with open("/dev/full", "w") as full:
        result = run_czii(*args, stdout=full)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "czii: error: stdout: cannot write: No space left on device", result.stderr
    assert len([line for line in lines if line.startswith("czii: error:")]) == 1
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


@pytest.mark.parametrize("command", ["score", "predict-probs"])
def test_a_closed_pipe_is_reported_as_such(inputs, command):
    args = {
        "score": ["score", inputs["picks.csv"], inputs["truth.csv"]],
        "predict-probs": ["predict-probs", inputs["TS_1.mrc"], "-m", inputs["m.pt"]],
    }[command]
    process = subprocess.Popen([*CZII, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the first byte (`| head -c 0`)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith("czii: error: stdout: cannot write: broken pipe"), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


# ----------------------------------------------------------------------------- odd outputs


def test_dot_as_output_is_refused_and_leaves_nothing(cli, inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["-f"]):
        result = cli("normalize", inputs["TS_1.mrc"], "-o", ".", *extra)
        assert_one_error(result, 2, "names a folder, not an output")
        assert list(tmp_path.iterdir()) == []


def test_the_working_folder_is_never_replaced(cli, inputs, tmp_path, monkeypatch):
    out = tmp_path / "t.zarr"
    assert cli("normalize", inputs["TS_1.mrc"], "-o", out).exit_code == 0
    monkeypatch.chdir(out)
    result = cli("normalize", inputs["TS_1.mrc"], "-o", out, "-f")
    assert_one_error(result, 2, "holds the working folder")
    assert read_artifact(out).meta.kind == "tomogram"


def test_a_dangling_symlink_output_is_an_existing_output(cli, inputs, tmp_path):
    link = tmp_path / "t.zarr"
    link.symlink_to(tmp_path / "elsewhere" / "victim.zarr")
    result = cli("normalize", inputs["TS_1.mrc"], "-o", link)
    assert_one_error(result, 2, "output exists")
    assert link.is_symlink()
    assert cli("normalize", inputs["TS_1.mrc"], "-o", link, "-f").exit_code == 0
    assert not link.is_symlink() and read_artifact(link).meta.kind == "tomogram"
    assert not (tmp_path / "elsewhere").exists(), "the link is replaced, its target never created"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.zarr"]


# ----------------------------------------------------------------------------- group 1: names from data


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../escaped", "path separator"),
        ("/abs/victim", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'.' or '..'"),
        (".", "'.' or '..'"),
        ("", "empty"),
        ("TS\x00x", "NUL"),
        ("TS\nx", "control"),
        ("TS\x1b[2J", "control"),
        ("x" * 201, "longer than 200 bytes"),
        (".p.zarr.partial-1-deadbeef", "temporary"),
        (7, "not text"),
    ],
)
def test_bad_run_names_are_refused(name, problem):
    assert problem in name_problem(name)
    with pytest.raises(DataError, match=r"^in\.zarr: the run name .* cannot name an output file"):
        file_in_folder(Path("out"), name, ".csv", source="in.zarr")


@pytest.mark.parametrize("name", ["TS_5_4", "TS 5", "run-1.b", "é" * 100, "x" * 200])
def test_ordinary_run_names_are_accepted(name):
    assert name_problem(name) is None
    assert file_in_folder(Path("out"), name, ".csv", source="in.zarr") == Path("out") / f"{name}.csv"


@pytest.mark.parametrize("run", ["../escaped", "ABSOLUTE"])
def test_postprocess_folder_output_never_escapes(cli, tmp_path, run):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    run = str(victim) if run == "ABSOLUTE" else run
    source = save_probs(tmp_path / "in.zarr", run=run)
    before = listing(tmp_path)
    result = cli("postprocess", source, "-o", f"{tmp_path}/pp/", "-f")
    line = assert_one_error(result, 1, str(source), repr(run), "cannot name an output file")
    assert "--" not in line
    assert listing(tmp_path) == before and victim.read_text() == "precious"


def test_predict_probs_folder_output_never_escapes(cli, inputs, tmp_path):
    source = save_tomogram(tmp_path / "tomo.zarr", run="../escaped")
    before = listing(tmp_path)
    result = cli("predict-probs", source, "-m", inputs["m.pt"], "-o", f"{tmp_path}/probs/")
    assert_one_error(result, 1, str(source), "'../escaped'", "path separator")
    assert listing(tmp_path) == before


def test_simulate_refuses_run_names_that_are_no_file_names(cli, tmp_path):
    truth = tmp_path / "truth.csv"
    write_picks_csv(truth, Picks.from_points("../up", "ribosome", np.array([[300.0, 300.0, 150.0]])))
    result = cli("simulate", tmp_path / "sim", "--picks", truth, "--shape", 32, 64, 64)
    assert_one_error(result, 1, str(truth), "'../up'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth.csv"]


def test_copick_picks_writer_refuses_escaping_runs(tmp_path):
    picks = Picks.from_points("../../x", "ribosome", np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(DataError, match="cannot name an output file"):
        write_copick_picks(tmp_path / "overlay", picks)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- group 4: consent


def test_overwrite_never_replaces_a_folder_czii_did_not_write(cli, inputs, tmp_path):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    result = cli("normalize", inputs["TS_1.mrc"], "-o", user, "-f")
    assert_one_error(result, 2, str(user), "a folder that czii did not write")
    assert (user / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["userdir"]


def test_overwrite_replaces_an_artifact_or_a_file(cli, inputs, tmp_path):
    zarr_out, npy_out = tmp_path / "t.zarr", tmp_path / "t.npy"
    save_probs(zarr_out)
    npy_out.write_text("an old file")
    for out in (zarr_out, npy_out):
        assert cli("normalize", inputs["TS_1.mrc"], "-o", out, "-f").exit_code == 0
        assert read_artifact(out).meta.kind == "tomogram"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npy", "t.npy.json", "t.zarr"]


def test_an_output_created_meanwhile_by_another_run_is_not_replaced(cli, inputs, tmp_path, monkeypatch):
    import czii_cli.normalize as normalize

    out = tmp_path / "t.zarr"
    real = normalize.apply_normalization

    def other_run_finishes_first(*args, **kwargs):
        if not out.exists():
            save_probs(out, run="other")
        return real(*args, **kwargs)

    monkeypatch.setattr(normalize, "apply_normalization", other_run_finishes_first)
    result = cli("normalize", inputs["TS_1.mrc"], "-o", out)
    assert_one_error(result, 2, str(out), "another run created it while this one was writing")
    assert read_artifact(out).meta.run == "other", "the other run's output is kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.zarr"], "and this run's partial removed"
    result = cli("normalize", inputs["TS_1.mrc"], "-o", out, "-f")
    assert result.exit_code == 0 and read_artifact(out).meta.kind == "tomogram"


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_the_final_rename_is_exclusive(tmp_path, kind):
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="another run created it"):
        with atomic_path(out, overwrite=False) as tmp:
            (tmp.mkdir() if kind == "folder" else tmp.write_text("mine"))
            out.mkdir() if kind == "folder" else out.write_text("theirs")
    assert out.is_dir() if kind == "folder" else out.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_train_resume_under_a_new_name_honours_existing_outputs(cli, inputs, tmp_path):
    args, _ = writing_commands(inputs, tmp_path)["train"]
    assert cli(*args).exit_code == 0
    precious = tmp_path / "precious.pt"
    precious.write_text("not a model")
    (tmp_path / "precious.metrics.csv").write_text("mine")
    resume = ["--resume", tmp_path / "m.last.pt"]
    result = cli("train", inputs["train"], "-o", precious, *resume)
    assert_one_error(result, 2, str(precious), "output exists")
    assert precious.read_text() == "not a model" and (tmp_path / "precious.metrics.csv").read_text() == "mine"
    again = cli("train", inputs["train"], "-o", tmp_path / "m.pt", *resume)  # in place, nothing left to train
    assert again.exit_code == 0, again.stderr
    assert "not written" in again.stderr and f"-> {tmp_path / 'm.pt'}" not in again.stderr


# ----------------------------------------------------------------------------- group 7: partials


def test_skip_existing_skips_only_complete_outputs(tmp_path):
    csv_ok, empty_csv, no_newline = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    csv_ok.write_text("id,experiment,particle_type,x,y,z\n")
    empty_csv.write_text("")
    no_newline.write_text("id,experiment,particle_type,x,y")
    empty_dir = tmp_path / "d.zarr"
    empty_dir.mkdir()
    artifact = save_probs(tmp_path / "e.zarr")
    zipped = save_probs(tmp_path / "e.zip")
    npy = save_probs(tmp_path / "f.npy")
    orphan = tmp_path / "g.npy"
    shutil.copy(npy, orphan)  # without its sidecar
    complete = {
        p.name: output_is_complete(p)
        for p in (csv_ok, empty_csv, no_newline, empty_dir, artifact, zipped, npy, orphan, tmp_path / "missing.csv")
    }
    assert complete == {
        "a.csv": True,
        "b.csv": False,
        "c.csv": False,
        "d.zarr": False,
        "e.zarr": True,
        "e.zip": True,
        "f.npy": True,
        "g.npy": False,
        "missing.csv": False,
    }


def test_skip_existing_does_not_skip_an_empty_folder_or_csv(cli, inputs, tmp_path):
    (tmp_path / "TS_1.zarr").mkdir()
    result = cli("predict-probs", inputs["TS_1.mrc"], "-m", inputs["m.pt"], "-o", f"{tmp_path}/", "--skip-existing")
    assert_one_error(result, 2, "a folder that czii did not write")
    assert "skipped" not in result.stderr and list((tmp_path / "TS_1.zarr").iterdir()) == []
    picks = tmp_path / "picks"
    picks.mkdir()
    (picks / "TS_a.csv").write_text("")
    result = cli("postprocess", inputs["probs.zarr"], "-o", f"{picks}/", "--skip-existing")
    assert "skipped" not in result.stderr and result.exit_code == 1
    assert (picks / "TS_a.csv").read_text() == "", "not replaced without consent either"


def test_a_zip_is_built_under_hidden_names_only(inputs, tmp_path, monkeypatch, cli):
    seen = []
    real = artifacts._zip_directory

    def interrupted(source, destination):
        seen.extend(p.name for p in tmp_path.iterdir())
        real(source, destination)
        raise KeyboardInterrupt  # killed at the end of the zip write

    monkeypatch.setattr(artifacts, "_zip_directory", interrupted)
    result = cli("normalize", inputs["TS_1.mrc"], "-o", tmp_path / "t.zip")
    assert result.exit_code == 130
    assert seen and all(is_partial_name(name) for name in seen), seen
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def partials(tmp_path) -> tuple[Path, Path]:
    """A hidden partial as a killed run leaves it, and a visible copy of one (still flagged incomplete)."""
    hidden, visible = tmp_path / ".p.zarr.partial-999-deadbeef", tmp_path / "copy.zarr"
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run="TS_a", classes=PROB_CLASSES)
    with create_artifact(tmp_path / "p.zarr", shape=(3, 16, 24, 32), dtype="float16", meta=meta) as out:
        out[...] = probs_map()
        (tmp,) = [p for p in tmp_path.iterdir() if is_partial_name(p)]
        shutil.copytree(tmp, hidden)
        shutil.copytree(tmp, visible)
    assert read_artifact(tmp_path / "p.zarr").meta.run == "TS_a", "the finished one is complete"
    return hidden, visible


@pytest.mark.parametrize("command", ["postprocess", "info", "make-labels"])
def test_partial_outputs_are_refused_when_named(cli, inputs, tmp_path, partials, command):
    for partial, why in zip(partials, ("the temporary of an unfinished czii output", "an incomplete artifact")):
        args = {
            "postprocess": ["postprocess", partial],
            "info": ["info", partial],
            "make-labels": ["make-labels", inputs["picks.csv"], "--like", partial, "-o", tmp_path / "l.zarr"],
        }
        result = cli(*args[command])
        assert_one_error(result, 1, str(partial), why)
    assert not (tmp_path / "l.zarr").exists()


def test_partial_picks_and_model_files_are_refused_when_named(cli, inputs, tmp_path):
    picks, model = tmp_path / ".pred.csv.partial-77-0badc0de", tmp_path / ".m.pt.partial-77-0badc0de"
    shutil.copy(inputs["picks.csv"], picks)
    shutil.copy(inputs["m.pt"], model)
    assert_one_error(cli("score", picks, inputs["truth.csv"]), 1, str(picks), "unfinished czii output")
    assert_one_error(cli("info", model), 1, str(model), "unfinished czii output")
    assert_one_error(
        cli("predict-probs", inputs["TS_1.mrc"], "-m", model, "-o", tmp_path / "p.zarr"),
        1,
        str(model),
        "unfinished czii output",
    )
