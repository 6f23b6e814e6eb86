"""Round trips of every reader and writer, and the coordinate convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.coords import angstrom_to_voxel, voxel_to_angstrom
from czii_cli.errors import DataError, UsageError
from czii_cli.io import copick
from czii_cli.io.artifacts import ArtifactMeta, create_artifact, read_artifact, write_artifact
from czii_cli.io.picks import read_picks, write_annotation_csv, write_copick_picks, write_picks_csv
from czii_cli.io.volumes import VolumeRequest, read_volume, write_mrc, write_ome_zarr
from czii_cli.picks import Picks, concat

META = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0, origin=(0.0, 5.0, 0.0), run="TS_1")


@pytest.mark.parametrize("name", ["a.zarr", "a.zip", "a.npy", "plain-name"])
def test_artifact_round_trip(tmp_path, tiny_volume, name):
    target = tmp_path / name
    write_artifact(target, tiny_volume, META.with_step("test", args={"k": 1}, inputs=["x"]))
    volume = read_volume(target)
    np.testing.assert_array_equal(volume.load(), tiny_volume)
    assert volume.meta.run == "TS_1"
    assert volume.meta.origin == (0.0, 5.0, 0.0)
    assert volume.meta.provenance[0]["command"] == "test"
    assert volume.meta.provenance[0]["args"] == {"k": 1}


def test_zip_is_recognised_by_content_not_name(tmp_path, tiny_volume):
    write_artifact(tmp_path / "a.zip", tiny_volume, META)
    (tmp_path / "a.zip").rename(tmp_path / "p.zarr")  # what `... > p.zarr` produces
    np.testing.assert_array_equal(read_artifact(tmp_path / "p.zarr").load(), tiny_volume)


def test_multichannel_artifact_keeps_classes_and_dtype(tmp_path, rng):
    probs = rng.random((3, 4, 5, 6)).astype(np.float16)
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, classes=("background", "a", "b"))
    write_artifact(tmp_path / "p.zarr", probs, meta)
    volume = read_artifact(tmp_path / "p.zarr")
    assert volume.meta.classes == ("background", "a", "b")
    assert volume.data.dtype == np.float16
    np.testing.assert_array_equal(volume.load(), probs)


def test_failed_artifact_write_leaves_nothing(tmp_path):
    for name in ("x.zarr", "x.zip", "x.npy"):
        with pytest.raises(RuntimeError):
            with create_artifact(tmp_path / name, shape=(2, 2, 2), dtype="float32", meta=META) as out:
                out[0] = 1
                raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path, tiny_volume):
    write_artifact(tmp_path / "a.zarr", tiny_volume, META)
    with pytest.raises(UsageError, match="output exists"):
        write_artifact(tmp_path / "a.zarr", tiny_volume * 2, META)
    write_artifact(tmp_path / "a.zarr", tiny_volume * 2, META, overwrite=True)
    np.testing.assert_array_equal(read_artifact(tmp_path / "a.zarr").load(), tiny_volume * 2)


def test_mrc_round_trip_takes_voxel_size_from_header(tmp_path, tiny_volume):
    write_mrc(tmp_path / "TS_9.mrc", tiny_volume, voxel_size=13.48)
    volume = read_volume(tmp_path / "TS_9.mrc")
    np.testing.assert_array_equal(volume.load(), tiny_volume)
    assert volume.meta.voxel_size == pytest.approx(13.48, abs=1e-4)
    assert volume.meta.run == "TS_9"


def test_an_mrc_written_at_another_time_has_the_same_bytes(tmp_path, tiny_volume, monkeypatch):
    import datetime

    import mrcfile.mrcobject

    write_mrc(tmp_path / "a.mrc", tiny_volume, voxel_size=10.0)

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2031, 5, 6, 7, 8, 9)

    monkeypatch.setattr(mrcfile.mrcobject, "datetime", Later)
    write_mrc(tmp_path / "b.mrc", tiny_volume, voxel_size=10.0)
    assert (tmp_path / "a.mrc").read_bytes() == (tmp_path / "b.mrc").read_bytes()
    with mrcfile.open(tmp_path / "b.mrc") as mrc:
        assert int(mrc.header.nlabl) == 1 and mrc.header.label[0].strip() == b"Written by czii"


def test_mrc_without_voxel_size_is_refused_unless_given(tmp_path, tiny_volume):
    import mrcfile

    with mrcfile.new(tmp_path / "raw.mrc") as mrc:
        mrc.set_data(tiny_volume)
    with pytest.raises(DataError, match="no voxel size"):
        read_volume(tmp_path / "raw.mrc")
    assert read_volume(tmp_path / "raw.mrc", VolumeRequest(voxel_size=10.0)).meta.voxel_size == 10.0


def test_ome_zarr_round_trip_levels(tmp_path, rng):
    data = rng.normal(size=(8, 12, 16)).astype(np.float32)
    write_ome_zarr(tmp_path / "t.zarr", data, voxel_size=10.0, levels=3)
    level0 = read_volume(tmp_path / "t.zarr")
    np.testing.assert_array_equal(level0.load(), data)
    assert level0.meta.voxel_size == 10.0
    level1 = read_volume(tmp_path / "t.zarr", VolumeRequest(level=1))
    assert level1.shape == (4, 6, 8)
    assert level1.meta.voxel_size == 20.0
    np.testing.assert_allclose(level1.load()[0, 0, 0], data[:2, :2, :2].mean(), rtol=1e-6)
    attrs = json.loads((tmp_path / "t.zarr" / ".zattrs").read_text())
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert (tmp_path / "t.zarr" / ".zgroup").exists()  # zarr format 2, as copick writes


def _copick_project(root: Path, data: np.ndarray, picks: Picks, naming: str) -> Path:
    for run in picks.experiments:
        write_ome_zarr(
            root / "static" / "ExperimentRuns" / run / "VoxelSpacing10.000" / "denoised.zarr", data, voxel_size=10.0
        )
    write_copick_picks(root / "overlay", picks, naming=naming)
    config = root / "copick_config.json"
    config.write_text(json.dumps(copick.config_document("t", DEFAULT_CATALOG.to_json(), root)))
    return config


@pytest.mark.parametrize("naming", ["copick", "particle"])
def test_copick_project_round_trip(tmp_path, tiny_volume, naming):
    picks = concat(
        [
            Picks.from_points("TS_1", "ribosome", [[120.0, 50.0, 30.0], [10.0, 20.0, 30.0]]),
            Picks.from_points("TS_2", "apo-ferritin", [[1.5, 2.5, 3.5]]),
        ]
    )
    config = _copick_project(tmp_path, tiny_volume, picks, naming)
    expected = "curation_0_ribosome.json" if naming == "copick" else "ribosome.json"
    assert (tmp_path / "overlay/ExperimentRuns/TS_1/Picks" / expected).exists()
    for source in (config, tmp_path, tmp_path / "overlay", tmp_path / "overlay" / "ExperimentRuns"):
        back = read_picks(source).sorted()
        assert back.experiment.tolist() == ["TS_1", "TS_1", "TS_2"]
        np.testing.assert_array_equal(back.xyz, picks.sorted().xyz)
    volume = read_volume(config, VolumeRequest(run="TS_2"))
    assert volume.meta.run == "TS_2"
    np.testing.assert_array_equal(volume.load(), tiny_volume)
    with pytest.raises(UsageError, match="the project has 2 runs; choose one run"):
        read_volume(tmp_path)


def test_copick_picks_file_named_by_user_and_session(tmp_path):
    picks_dir = tmp_path / "overlay/ExperimentRuns/TS_1/Picks"
    picks_dir.mkdir(parents=True)
    document = copick.picks_document("TS_1", "beta-amylase", [[1.0, 2.0, 3.0]], user="my_user", session="7")
    (picks_dir / "my_user_7_beta-amylase.json").write_text(json.dumps(document))
    back = read_picks(tmp_path / "overlay")
    assert back.particle_type.tolist() == ["beta-amylase"]
    assert back.experiment.tolist() == ["TS_1"]


def test_submission_csv_round_trip(tmp_path):
    picks = Picks.from_points("TS_1", "ribosome", [[120.25, 50.0, 30.0]], score=[0.5])
    write_picks_csv(tmp_path / "p.csv", picks)
    assert (
        tmp_path / "p.csv"
    ).read_text() == "id,experiment,particle_type,x,y,z,score\n0,TS_1,ribosome,120.25,50,30,0.5\n"
    back = read_picks(tmp_path / "p.csv")
    np.testing.assert_array_equal(back.xyz, picks.xyz)
    np.testing.assert_array_equal(back.score, [0.5])


def test_annotation_csv_round_trip_and_integer_labels(tmp_path):
    picks = Picks.from_points("TS_3", "thyroglobulin", [[1.0, 2.0, 3.0]])
    folder = tmp_path / "train_annotations"
    folder.mkdir()
    write_annotation_csv(folder / "TS_3.csv", picks)
    (folder / "TS_4.csv").write_text("dataset_id,image_name,x,y,z,label\nd,TS_4,4,5,6,4\n")
    back = read_picks(tmp_path).sorted()
    assert back.experiment.tolist() == ["TS_3", "TS_4"]
    assert back.particle_type.tolist() == ["thyroglobulin", "ribosome"]
    np.testing.assert_array_equal(back.xyz, [[1, 2, 3], [4, 5, 6]])


def test_solution_csv_without_id(tmp_path):
    (tmp_path / "s.csv").write_text("experiment,particle_type,x,y,z\nTS_1,ribosome,1,2,3\n")
    assert read_picks(tmp_path / "s.csv").particle_type.tolist() == ["ribosome"]


def test_coordinate_convention_x120_is_index_12_on_x():
    """A pick at x = 120 Å lands at index 12 on the x axis of a 10 Å volume (zyx order)."""
    zyx = angstrom_to_voxel(np.array([[120.0, 30.0, 70.0]]), voxel_size=10.0)
    np.testing.assert_array_equal(zyx, [[7.0, 3.0, 12.0]])
    np.testing.assert_array_equal(voxel_to_angstrom(zyx, voxel_size=10.0), [[120.0, 30.0, 70.0]])
    shifted = angstrom_to_voxel(np.array([[120.0, 30.0, 70.0]]), voxel_size=10.0, origin_zyx=(0.0, 0.0, 20.0))
    np.testing.assert_array_equal(shifted, [[7.0, 3.0, 10.0]])


def test_malformed_csv_is_a_data_error(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="bad.csv: unknown CSV columns"):
        read_picks(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("experiment,particle_type,x,y,z\nTS,ribosome,1,two,3\n")
    with pytest.raises(DataError, match="bad2.csv: malformed row"):
        read_picks(tmp_path / "bad2.csv")


def test_corrupt_zarr_is_a_data_error(tmp_path, tiny_volume):
    write_artifact(tmp_path / "a.zarr", tiny_volume, META)
    (tmp_path / "a.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(DataError, match="a.zarr: not a readable zarr store"):
        read_volume(tmp_path / "a.zarr")


def test_npy_without_sidecar_is_a_data_error(tmp_path, tiny_volume):
    np.save(tmp_path / "x.npy", tiny_volume)
    with pytest.raises(DataError, match="no metadata sidecar"):
        read_volume(tmp_path / "x.npy")


def test_settings_file_reads_one_json_object_and_names_the_file_on_errors(tmp_path):
    from czii_cli.io.settings_file import read_settings

    good = tmp_path / "settings.json"
    good.write_text('{"lr": 0.001, "arch": "light"}')
    assert read_settings(good) == {"lr": 0.001, "arch": "light"}
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(DataError, match=r"list\.json: training settings must be a JSON object, found list"):
        read_settings(listed)
    broken = tmp_path / "broken.json"
    broken.write_text("{lr: ")
    with pytest.raises(DataError, match=r"broken\.json: not a readable JSON file"):
        read_settings(broken)
    with pytest.raises(DataError, match=r"absent\.json: not a readable JSON file"):
        read_settings(tmp_path / "absent.json")


def test_a_png_written_to_stdout_is_the_same_bytes_as_the_file(tmp_path, capsysbinary):
    from matplotlib.figure import Figure

    from czii_cli.io.figures import write_png

    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    write_png(tmp_path / "f.png", figure, dpi=50)
    write_png("-", figure, dpi=50)
    data = (tmp_path / "f.png").read_bytes()
    assert data.startswith(b"\x89PNG") and capsysbinary.readouterr().out == data
    assert b"Software" not in data
