"""copick projects: picks and segmentations written back, users and sessions told apart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.errors import UsageError
from czii_cli.io import copick
from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact
from czii_cli.io.copick import GROUND_TRUTH, PicksFile, PicksSelection, select_picks_files
from czii_cli.io.copick_segmentations import SegmentationName, list_segmentations, read_segmentation
from czii_cli.io.picks import read_picks, write_copick_picks
from czii_cli.io.volumes import write_ome_zarr
from czii_cli.picks import Picks, concat
from czii_cli.training.dataset import find_runs

CLASSES = ("background", "apo-ferritin", "ribosome")
IDENTITY = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("czii: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def make_project(root: Path, runs=("TS_a", "TS_b"), shape=(16, 24, 32), truth: Picks | None = None) -> Path:
    """A copick project with a tomogram per run and, optionally, curated picks."""
    rng = np.random.default_rng(3)
    for run in runs:
        write_ome_zarr(
            root / "static" / "ExperimentRuns" / run / "VoxelSpacing10.000" / "denoised.zarr",
            rng.normal(size=shape).astype(np.float32),
            voxel_size=10.0,
            levels=1,
        )
    config = root / "copick_config.json"
    config.write_text(json.dumps(copick.config_document("t", DEFAULT_CATALOG.to_json(), root)))
    if truth is not None:
        write_copick_picks(root / "overlay", truth, user="curation", session="0")
    return config


def probs_map() -> np.ndarray:
    """An apo-ferritin ball at voxel (8, 10, 6) and a ribosome ball at (8, 12, 22)."""
    z, y, x = np.indices((16, 24, 32))
    probs = np.zeros((3, 16, 24, 32), np.float16)
    probs[1][(z - 8) ** 2 + (y - 10) ** 2 + (x - 6) ** 2 <= 9] = 0.5
    probs[2][(z - 8) ** 2 + (y - 12) ** 2 + (x - 22) ** 2 <= 36] = 0.75
    return probs


def save_probs(path: Path, run: str) -> Path:
    write_artifact(
        path, probs_map(), ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run=run, classes=CLASSES)
    )
    return path


# ----------------------------------------------------------------------------- picks out


def test_postprocess_writes_picks_into_the_project_as_copick_names_and_shapes_them(cli, tmp_path):
    config = make_project(tmp_path / "p")
    maps = [save_probs(tmp_path / f"{run}.zarr", run) for run in ("TS_a", "TS_b")]
    result = cli("postprocess", *maps, "-o", f"copick:{config}", "--user-id", "czii", "--session-id", "7")
    assert result.exit_code == 0, result.stderr
    picks_dir = tmp_path / "p/overlay/ExperimentRuns/TS_a/Picks"
    assert sorted(p.name for p in picks_dir.iterdir()) == ["czii_7_apo-ferritin.json", "czii_7_ribosome.json"]
    document = json.loads((picks_dir / "czii_7_ribosome.json").read_text())
    assert set(document) == {
        "pickable_object_name",
        "user_id",
        "session_id",
        "run_name",
        "voxel_spacing",
        "unit",
        "points",
        "trust_orientation",
    }
    assert (
        document["pickable_object_name"],
        document["user_id"],
        document["session_id"],
        document["run_name"],
        document["voxel_spacing"],
        document["unit"],
    ) == ("ribosome", "czii", "7", "TS_a", 10.0, "angstrom")
    assert document["points"] == [
        {"location": {"x": 220.0, "y": 120.0, "z": 80.0}, "transformation_": IDENTITY, "instance_id": 0, "score": 0.75}
    ]
    # read back by czii: the same picks as the CSV form gives
    csv = cli("postprocess", *maps)
    back = read_picks(config, selection=PicksSelection(user_id="czii"))
    assert back.experiment.tolist() == ["TS_a", "TS_a", "TS_b", "TS_b"]
    np.testing.assert_array_equal(back.sorted().xyz, [[60, 100, 80], [220, 120, 80]] * 2)
    assert back.sorted().score.tolist() == [0.5, 0.75, 0.5, 0.75]
    assert csv.stdout.count("\n") == 5


def test_copick_picks_outputs_keep_existing_files_and_skip_complete_runs(cli, tmp_path):
    config = make_project(tmp_path / "p")
    probs = save_probs(tmp_path / "TS_a.zarr", "TS_a")
    assert cli("postprocess", probs, "-o", f"copick:{config}").exit_code == 0
    target = tmp_path / "p/overlay/ExperimentRuns/TS_a/Picks/czii_0_ribosome.json"
    target.write_text(json.dumps({**json.loads(target.read_text()), "points": []}))
    again = cli("postprocess", probs, "-o", f"copick:{config}")
    assert again.exit_code == 2 and "output exists; pass --overwrite" in one_error_line(again)
    skipped = cli("postprocess", probs, "-o", f"copick:{config}", "--skip-existing")
    assert skipped.exit_code == 0 and json.loads(target.read_text())["points"] == []
    (tmp_path / "p/overlay/ExperimentRuns/TS_a/Picks/czii_0_apo-ferritin.json").unlink()  # an incomplete run is redone
    redone = cli("postprocess", probs, "-o", f"copick:{config}", "--skip-existing")
    assert redone.exit_code == 0 and len(json.loads(target.read_text())["points"]) == 1
    assert cli("postprocess", probs, "-o", f"copick:{config}", "-f").exit_code == 0
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no partial files left


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--user-id", "a_b"], 2, "user_id 'a_b' may not contain '_'"),
        (["--session-id", "*"], 2, "session_id '*' may not contain '*'"),
        (["--user-id", "../x"], 1, "user_id '../x' cannot be a file or folder name"),
    ],
)
def test_bad_writer_identities_are_refused_before_anything_is_written(cli, tmp_path, args, code, message):
    config = make_project(tmp_path / "p")
    result = cli("postprocess", save_probs(tmp_path / "TS_a.zarr", "TS_a"), "-o", f"copick:{config}", *args)
    assert result.exit_code == code and message in one_error_line(result)
    assert not (tmp_path / "p/overlay").exists()


def test_a_run_missing_from_the_project_or_a_missing_project_is_an_error(cli, tmp_path):
    config = make_project(tmp_path / "p")
    result = cli("postprocess", save_probs(tmp_path / "TS_z.zarr", "TS_z"), "-o", f"copick:{config}")
    assert result.exit_code == 1 and "run 'TS_z' is not in" in one_error_line(result)
    result = cli("postprocess", tmp_path / "TS_z.zarr", "-o", f"copick:{tmp_path / 'nothing'}")
    assert result.exit_code == 2 and "not a copick project to write into" in one_error_line(result)


# ----------------------------------------------------------------------------- picks in


def entry(user: str, session: str, particle: str = "ribosome") -> PicksFile:
    return PicksFile(Path(f"{user}_{session}_{particle}.json"), user, session, particle)


def users(files) -> list[tuple[str, str]]:
    return [(f.user_id, f.session_id) for f in files]


def test_default_selection_prefers_curation_then_the_single_user():
    files = [entry("curation", "0"), entry("czii", "0"), entry("octopi", "1")]
    assert users(select_picks_files(files, GROUND_TRUTH, source="p")) == [("curation", "0")]
    assert users(select_picks_files(files[1:2], GROUND_TRUTH, source="p")) == [("czii", "0")]
    assert users(select_picks_files(files, PicksSelection(user_id="*i"), source="p")) == [
        ("czii", "0"),
        ("octopi", "1"),
    ]
    assert users(select_picks_files(files, PicksSelection(session_id="1"), source="p")) == [("octopi", "1")]
    with pytest.raises(UsageError) as error:
        select_picks_files(files[1:], GROUND_TRUTH, source="p")
    assert str(error.value) == (
        "p: no 'curation' picks and picks of several users; choose with user_id / session_id "
        "(users and sessions found: czii (session 0), octopi (session 1))"
    )
    with pytest.raises(UsageError, match=r"p: no picks of user 'x' \(users and sessions found: curation"):
        select_picks_files(files, PicksSelection(user_id="x"), source="p")
    with pytest.raises(UsageError, match="user 'curation' has several sessions \\(0, 1\\)"):
        select_picks_files([entry("curation", "0"), entry("curation", "1")], GROUND_TRUTH, source="p")
    not_truth = PicksSelection(prefer=None)
    with pytest.raises(UsageError, match="picks of several users"):
        select_picks_files(files, not_truth, source="p")


def test_picks_files_are_described_by_content_then_name(tmp_path):
    picks_dir = tmp_path / "Picks"
    picks_dir.mkdir()
    (picks_dir / "ribosome.json").write_text(json.dumps({"points": []}))  # competition download: curation / 0
    (picks_dir / "my_user_7_beta-amylase.json").write_text(
        json.dumps(copick.picks_document("TS_1", "beta-amylase", [[1, 2, 3]], user="my_user", session="7"))
    )
    (picks_dir / "octopi_2_thyroglobulin.json").write_text("{}")
    found = {(f.user_id, f.session_id, f.particle) for f in copick.picks_files_in(picks_dir)}
    assert found == {("curation", "0", "ribosome"), ("my_user", "7", "beta-amylase"), ("octopi", "2", "thyroglobulin")}


@pytest.fixture
def two_users(tmp_path):
    """A project holding curated picks and, far from them, czii's predictions under czii/0."""
    truth = concat(
        [
            Picks.from_points("TS_a", "ribosome", [[100.0, 100.0, 80.0]]),
            Picks.from_points("TS_b", "apo-ferritin", [[60.0, 100.0, 80.0]]),
        ]
    )
    config = make_project(tmp_path / "p", truth=truth)
    predictions = concat(
        [
            Picks.from_points("TS_a", "ribosome", [[300.0, 200.0, 80.0]], score=[0.9]),
            Picks.from_points("TS_a", "thyroglobulin", [[200.0, 100.0, 40.0]], score=[0.4]),
        ]
    )
    write_copick_picks(tmp_path / "p/overlay", predictions, user="czii", session="0")
    return config, truth, predictions


def test_predictions_in_the_project_never_leak_into_training_or_scoring(cli, two_users, tmp_path):
    config, truth, predictions = two_users
    sources = {source.run: source for source in find_runs([config])}
    assert concat(s.picks for s in sources.values()).sorted().xyz.tolist() == truth.sorted().xyz.tolist()
    labels = cli("make-labels", config, "--like", config, "--run", "TS_a", "-o", tmp_path / "a.labels.zarr")
    assert labels.exit_code == 0, labels.stderr
    assert read_artifact(tmp_path / "a.labels.zarr").meta.extra["picks"]["thyroglobulin"] == []
    # the truth against itself: apo-ferritin and ribosome perfect, (1 + 1) / 7; czii's predictions miss everything
    assert cli("score", config, config, "--pred-user-id", "curation").stdout.strip() == "0.285714"
    scored = cli("score", config, config, "--pred-user-id", "czii", "--format", "json")
    assert scored.exit_code == 0, scored.stderr
    per_class = json.loads(scored.stdout)["classes"]
    assert (per_class["ribosome"]["tp"], per_class["ribosome"]["fp"], per_class["ribosome"]["fn"]) == (0, 1, 1)
    assert (per_class["thyroglobulin"]["fp"], per_class["apo-ferritin"]["fn"]) == (1, 1)
    ambiguous = cli("score", config, config)
    assert ambiguous.exit_code == 2
    assert (
        "choose with --pred-user-id / --pred-session-id (users and sessions found: curation (session 0), "
        "czii (session 0))" in one_error_line(ambiguous)
    )
    tuned = cli("tune", config, config, "--pred-user-id", "czii", "--user-id", "curation", "-o", tmp_path / "t.json")
    assert tuned.exit_code == 0, tuned.stderr


def test_selection_flags_reach_every_reader(cli, two_users, tmp_path):
    config, truth, predictions = two_users
    # czii's picks as the ground truth, explicitly: now they are the targets
    sources = find_runs([config], selection=PicksSelection(user_id="czii"))
    assert [s.run for s in sources] == ["TS_a"] and len(sources[0].picks) == 2
    none = cli(
        "make-labels", config, "--like", config, "--run", "TS_a", "--user-id", "nobody", "-o", tmp_path / "x.zarr"
    )
    assert none.exit_code == 2 and "no picks of user 'nobody'" in one_error_line(none)
    view = cli(
        "view",
        config,
        "--run",
        "TS_a",
        "--gt",
        config,
        "--picks",
        config,
        "--pred-user-id",
        "czii",
        "-o",
        tmp_path / "v.png",
    )
    assert view.exit_code == 0, view.stderr
    train = cli("train", config, "-o", tmp_path / "m.pt", "--user-id", "nobody", "--max-steps", "1")
    assert train.exit_code == 2 and "no picks of user 'nobody'" in one_error_line(train)


def test_info_lists_picks_per_user_and_session(cli, two_users):
    config, _, _ = two_users
    result = cli("info", config, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["picks"] == {
        "curation/0": {"TS_a": {"ribosome": 1}, "TS_b": {"apo-ferritin": 1}},
        "czii/0": {"TS_a": {"ribosome": 1, "thyroglobulin": 1}},
    }
    only = cli("info", config.parent / "overlay", "--json", "--user-id", "cz*")
    assert json.loads(only.stdout)["picks"] == {"czii/0": {"TS_a": {"ribosome": 1, "thyroglobulin": 1}}}
    missing = cli("info", config, "--user-id", "nobody")
    assert missing.exit_code == 2 and "users and sessions found: curation/0, czii/0" in one_error_line(missing)


# ----------------------------------------------------------------------------- segmentations


def test_predict_probs_writes_each_class_map_as_a_copick_segmentation(cli, tmp_path):
    from helpers import make_model

    config = make_project(tmp_path / "p", shape=(8, 12, 10))
    model = make_model(tmp_path / "m.pt", classes=CLASSES)
    plain = cli("predict-probs", config, "-m", model, "-o", tmp_path / "probs/")
    assert plain.exit_code == 0, plain.stderr
    result = cli(
        "predict-probs",
        config,
        "-m",
        model,
        "-o",
        f"copick:{config}",
        "--user-id",
        "czii",
        "--session-id",
        "3",
        "--keep-maps",
        tmp_path / "kept",
    )
    assert result.exit_code == 0, result.stderr
    for run in ("TS_a", "TS_b"):  # one prediction gives the project's segmentations and czii's maps
        np.testing.assert_array_equal(
            read_artifact(tmp_path / "kept" / f"{run}.zarr").load(),
            read_artifact(tmp_path / "probs" / f"{run}.zarr").load(),
        )
    project = copick.open_project(config)
    for run in ("TS_a", "TS_b"):
        found = list_segmentations(project, run)
        assert [s.store_name() for s in found] == ["10.000_czii_3_apo-ferritin.zarr", "10.000_czii_3_ribosome.zarr"]
        expected = read_artifact(tmp_path / "probs" / f"{run}.zarr").load()
        for channel, name in enumerate(found, start=1):
            volume = read_segmentation(project, run, name)
            np.testing.assert_array_equal(volume.load(), expected[channel])
            assert (volume.meta.kind, volume.meta.classes, volume.meta.run, volume.meta.voxel_size) == (
                "probs",
                (name.name,),
                run,
                10.0,
            )
        store = project.segmentations_dir(run) / found[1].store_name()
        attrs = json.loads((store / ".zattrs").read_text())  # OME-NGFF 0.4 on zarr format 2, as copick reads
        assert attrs["multiscales"][0]["datasets"] == [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [10.0, 10.0, 10.0]}]}
        ]
        assert json.loads((store / "0" / ".zarray").read_text())["dimension_separator"] == "/"
    assert not [p for p in (tmp_path / "p/overlay").iterdir() if p.name.startswith(".")]  # staging removed
    again = cli(
        "predict-probs", config, "-m", model, "-o", f"copick:{config}", "--user-id", "czii", "--session-id", "3"
    )
    assert again.exit_code == 2 and "output exists" in one_error_line(again)


def test_make_labels_writes_a_multilabel_segmentation(cli, two_users, tmp_path):
    config, truth, _ = two_users
    args = ("make-labels", config, "--like", config, "--run", "TS_a")
    assert cli(*args, "-o", tmp_path / "a.zarr").exit_code == 0
    result = cli(*args, "-o", f"copick:{config}", "--out-session-id", "5")
    assert result.exit_code == 0, result.stderr
    project = copick.open_project(config)
    name = SegmentationName(10.0, "czii", "5", "spheres", multilabel=True)
    assert list_segmentations(project, "TS_a") == [name]
    assert name.store_name() == "10.000_czii_5_spheres-multilabel.zarr"
    back = read_segmentation(project, "TS_a", name)
    np.testing.assert_array_equal(back.load(), read_artifact(tmp_path / "a.zarr").load())
    assert back.meta.kind == "labels" and back.meta.classes == tuple(DEFAULT_CATALOG.names)


# ----------------------------------------------------------------------------- OME-NGFF artifacts


def test_artifacts_are_ome_ngff_0_5_images_with_czii_metadata_alongside(tmp_path):
    meta = ArtifactMeta(
        kind="probs", axes="czyx", voxel_size=7.5, origin=(10.0, 0.0, 20.0), run="TS_a", classes=CLASSES
    )
    data = np.arange(3 * 4 * 6 * 5, dtype=np.float32).reshape(3, 4, 6, 5)
    write_artifact(tmp_path / "p.zarr", data, meta, preview=True)
    attrs = json.loads((tmp_path / "p.zarr" / "zarr.json").read_text())
    assert attrs["zarr_format"] == 3
    ome = attrs["attributes"]["ome"]
    assert ome["version"] == "0.5"
    multiscale = ome["multiscales"][0]
    assert multiscale["axes"] == [{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"
    ]
    assert multiscale["datasets"] == [
        {
            "path": "data",
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 7.5, 7.5, 7.5]},
                {"type": "translation", "translation": [0.0, 10.0, 0.0, 20.0]},
            ],
        },
        {
            "path": "data_2x",
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 15.0, 15.0, 15.0]},
                {"type": "translation", "translation": [0.0, 13.75, 3.75, 23.75]},
            ],
        },
    ]
    assert [c["label"] for c in ome["omero"]["channels"]] == list(CLASSES)
    assert attrs["attributes"]["czii"]["kind"] == "probs"
    half = zarr.open_group(tmp_path / "p.zarr", mode="r")["data_2x"]
    assert half.shape == (3, 2, 3, 2)
    np.testing.assert_array_equal(half[...], data[:, :4, :6, :4].reshape(3, 2, 2, 3, 2, 2, 2).mean(axis=(2, 4, 6)))
    np.testing.assert_array_equal(read_artifact(tmp_path / "p.zarr").load(), data)


def test_label_previews_subsample_and_zip_and_stream_forms_carry_the_metadata(tmp_path):
    labels = np.zeros((5, 4, 4), np.uint8)
    labels[1::2, 1::2, 1::2] = 3  # a mean would blur these away; every other voxel keeps labels whole
    labels[0, 0, 0], labels[4, 2, 2] = 1, 2
    meta = ArtifactMeta(kind="labels", axes="zyx", voxel_size=10.0, classes=("a", "b", "c"))
    write_artifact(tmp_path / "l.zip", labels, meta, preview=True)
    group = zarr.open_group(zarr.storage.ZipStore(tmp_path / "l.zip", mode="r"), mode="r")
    np.testing.assert_array_equal(group["data_2x"][...], labels[::2, ::2, ::2])
    assert [a["name"] for a in group.attrs["ome"]["multiscales"][0]["axes"]] == ["z", "y", "x"]
    with pytest.raises(UsageError, match="a 2x preview level needs a zarr output"):
        write_artifact(tmp_path / "l.npy", labels, meta, preview=True)


def test_artifacts_written_before_ngff_still_read(tmp_path):
    group = zarr.open_group(zarr.storage.LocalStore(tmp_path / "old.zarr"), mode="w")
    group.attrs["czii"] = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0, run="TS_a").to_json()
    group.create_array("data", shape=(2, 3, 4), dtype="float32")[...] = np.ones((2, 3, 4), np.float32)
    volume = read_artifact(tmp_path / "old.zarr")
    assert volume.meta.run == "TS_a" and volume.load().sum() == 24


def test_an_independent_ome_zarr_reader_gets_the_axes_and_scale(tmp_path):
    reader = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run="TS_a", classes=CLASSES)
    write_artifact(tmp_path / "p.zarr", np.zeros((3, 8, 6, 4), np.float16), meta, preview=True)
    image = next(iter(reader.Reader(parse_url(str(tmp_path / "p.zarr")))()))
    assert [a["name"] for a in image.metadata["axes"]] == ["c", "z", "y", "x"]
    assert [t[0]["scale"] for t in image.metadata["coordinateTransformations"]] == [
        [1.0, 10.0, 10.0, 10.0],
        [1.0, 20.0, 20.0, 20.0],
    ]
    assert [tuple(level.shape) for level in image.data] == [(3, 8, 6, 4), (3, 4, 3, 2)]
    assert image.metadata["channel_names"] == list(CLASSES)


def test_the_preview_flag_of_normalize_and_make_labels(cli, tmp_path):
    config = make_project(tmp_path / "p", truth=Picks.from_points("TS_a", "ribosome", [[100.0, 100.0, 80.0]]))
    assert cli("normalize", config, "--run", "TS_a", "-o", tmp_path / "t.zarr", "--preview").exit_code == 0
    assert zarr.open_group(tmp_path / "t.zarr", mode="r")["data_2x"].shape == (8, 12, 16)
    result = cli("make-labels", config, "--like", tmp_path / "t.zarr", "-o", tmp_path / "l.zarr", "--preview")
    assert result.exit_code == 0, result.stderr
    assert zarr.open_group(tmp_path / "l.zarr", mode="r")["data_2x"].dtype == np.uint8


# ----------------------------------------------------------------------------- the copick library itself

COPICK_PYTHON = os.environ.get("CZII_COPICK_PYTHON")

COPICK_SCRIPT = """
import json, sys
import copick
root = copick.from_file(sys.argv[1])
out = {}
for run in root.runs:
    picks = {f"{p.user_id}/{p.session_id}/{p.pickable_object_name}": [p.numpy()[0].tolist(), p.scores().tolist()]
             for p in run.get_picks()}
    segs = {f"{s.user_id}/{s.session_id}/{s.name}/{s.is_multilabel}": [list(s.numpy().shape), float(s.numpy().max()),
                                                                         s.voxel_size]
            for s in run.get_segmentations()}
    out[run.name] = {"picks": picks, "segmentations": segs}
print(json.dumps(out))
"""


@pytest.mark.copick
@pytest.mark.skipif(not COPICK_PYTHON, reason="set CZII_COPICK_PYTHON to a python with the copick library")
def test_the_copick_library_opens_what_czii_writes(cli, tmp_path):
    import subprocess

    from helpers import make_model

    config = make_project(
        tmp_path / "p", shape=(8, 12, 10), truth=Picks.from_points("TS_a", "ribosome", [[50.0, 60.0, 40.0]])
    )
    probs = save_probs(tmp_path / "TS_a.zarr", "TS_a")
    assert cli("postprocess", probs, "-o", f"copick:{config}").exit_code == 0
    model = make_model(tmp_path / "m.pt", classes=CLASSES)
    assert cli("predict-probs", config, "-m", model, "-o", f"copick:{config}").exit_code == 0
    assert cli("make-labels", config, "--like", config, "--run", "TS_a", "-o", f"copick:{config}").exit_code == 0
    done = subprocess.run(
        [COPICK_PYTHON, "-c", COPICK_SCRIPT, str(config)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["TS_a"]["picks"] == {
        "curation/0/ribosome": [[[50.0, 60.0, 40.0]], [1.0]],
        "czii/0/apo-ferritin": [[[60.0, 100.0, 80.0]], [0.5]],
        "czii/0/ribosome": [[[220.0, 120.0, 80.0]], [0.75]],
    }
    segmentations = found["TS_a"]["segmentations"]
    assert sorted(segmentations) == ["czii/0/apo-ferritin/False", "czii/0/ribosome/False", "czii/0/spheres/True"]
    project = copick.open_project(config)
    for key, (shape, peak, voxel) in segmentations.items():
        user, session, name, multilabel = key.split("/")
        mine = read_segmentation(project, "TS_a", SegmentationName(10.0, user, session, name, multilabel == "True"))
        assert shape == [8, 12, 10] and voxel == 10.0
        assert peak == pytest.approx(float(np.max(mine.load())))
        assert peak > 0
