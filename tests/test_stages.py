"""Every stage is a library function of paths and typed options: called here without typer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from czii_cli.errors import UsageError
from czii_cli.io.artifacts import ArtifactMeta, write_artifact

PROBS_CLASSES = ("background", "apo-ferritin", "ribosome")


def two_blob_map(path: Path, *, run: str = "TS_1") -> Path:
    """A 3-channel map (background, apo-ferritin, ribosome) with one blob per class, 10 Å voxels.

    The apo-ferritin blob is a 3^3 cube of 0.8 centred on voxel (z, y, x) = (4, 5, 6); the
    ribosome blob a 7^3 cube of 0.6 with a 0.9 peak, centred on (10, 9, 8).
    """
    data = np.zeros((3, 16, 16, 16), np.float32)
    data[1, 3:6, 4:7, 5:8] = 0.8
    data[2, 7:14, 6:13, 5:12] = 0.6
    data[2, 10, 9, 8] = 0.9
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run=run, classes=PROBS_CLASSES)
    write_artifact(path, data, meta)
    return path


def test_postprocess_file_writes_the_two_blob_centres_in_angstrom(tmp_path):
    from czii_cli.postprocess.job import PicksWritten, postprocess_file

    probs = two_blob_map(tmp_path / "p.zarr")
    written = postprocess_file(probs, tmp_path / "picks.csv")
    assert written == PicksWritten(tmp_path / "picks.csv", 2)
    assert (tmp_path / "picks.csv").read_text() == (
        "id,experiment,particle_type,x,y,z,score\n0,TS_1,apo-ferritin,60,50,40,0.8\n1,TS_1,ribosome,80,90,100,0.9\n"
    )


def test_postprocess_file_applies_thresholds_and_cutoffs_and_names_the_parameter(tmp_path):
    from czii_cli.postprocess.job import postprocess_file

    probs = two_blob_map(tmp_path / "p.zarr")
    assert postprocess_file(probs, tmp_path / "a.csv", class_thresholds={"apo-ferritin": 0.85}).picks == 1
    assert postprocess_file(probs, tmp_path / "b.csv", cutoffs={"ribosome": 0.95}).picks == 1
    assert (tmp_path / "b.csv").read_text().splitlines()[1:] == ["0,TS_1,apo-ferritin,60,50,40,0.8"]
    with pytest.raises(UsageError, match=r"^class_thresholds: unknown class 'nope'"):
        postprocess_file(probs, tmp_path / "c.csv", class_thresholds={"nope": 0.1})
    with pytest.raises(UsageError, match="output exists"):
        postprocess_file(probs, tmp_path / "a.csv")
    assert not (tmp_path / "c.csv").exists()


def tomogram(path: Path, data: np.ndarray, *, run: str = "TS_1") -> Path:
    write_artifact(
        path, np.asarray(data, np.float32), ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0, run=run)
    )
    return path


def test_normalize_file_writes_the_normalized_tomogram_and_its_statistics(tmp_path):
    from czii_cli.io.artifacts import read_artifact
    from czii_cli.normalize import normalize_file

    raw = tomogram(tmp_path / "raw.zarr", np.tile([1.0, 3.0], (3, 2, 1)))
    done = normalize_file(raw, tmp_path / "z.zarr")
    assert done.output == tmp_path / "z.zarr" and done.shape == (3, 2, 2)
    written = read_artifact(tmp_path / "z.zarr")
    assert written.data[:].tolist() == np.tile([-1.0, 1.0], (3, 2, 1)).tolist()
    assert written.meta.kind == "tomogram" and written.meta.run == "TS_1"
    assert (written.meta.extra["normalization"]["mean"], written.meta.extra["normalization"]["std"]) == (2.0, 1.0)
    assert written.meta.provenance[-1]["command"] == "normalize"

    ramp = tomogram(tmp_path / "ramp.zarr", np.arange(5.0).reshape(1, 1, 5))
    normalize_file(ramp, tmp_path / "p.zarr", method="percentile", clip=(0.0, 100.0))
    assert read_artifact(tmp_path / "p.zarr").data[:].tolist() == [[[0.0, 0.25, 0.5, 0.75, 1.0]]]


def test_normalize_file_fills_or_refuses_non_finite_voxels(tmp_path):
    from czii_cli.errors import NonFiniteError
    from czii_cli.io.artifacts import read_artifact
    from czii_cli.normalize import normalize_file

    raw = tomogram(tmp_path / "raw.zarr", [[[1.0, np.nan, 3.0]]])
    with pytest.raises(NonFiniteError, match=r"1 of 3 voxels are not finite \(NaN or infinite\)$") as caught:
        normalize_file(raw, tmp_path / "out.zarr")
    assert (caught.value.count, caught.value.total) == (1, 3)
    assert not (tmp_path / "out.zarr").exists()
    done = normalize_file(raw, tmp_path / "out.zarr", fill_nonfinite=True)
    assert (done.stats["nonfinite"], done.stats["fill"]) == (1, 2.0)
    assert read_artifact(tmp_path / "out.zarr").data[:].tolist() == [[[-1.0, 0.0, 1.0]]]


def test_make_labels_file_paints_the_runs_picks_on_the_grid(tmp_path):
    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.io.artifacts import read_artifact
    from czii_cli.make_labels import LabelsFile, PicksOfOtherRunsError, TargetSpec, make_labels_file

    like = tomogram(tmp_path / "t.zarr", np.zeros((8, 8, 8)))
    picks = tmp_path / "picks.csv"
    picks.write_text(
        "experiment,particle_type,x,y,z\nTS_1,apo-ferritin,40,30,20\nTS_1,ribosome,10,60,70\nTS_2,ribosome,40,40,40\n"
    )
    done = make_labels_file(picks, like, tmp_path / "l.zarr", spec=TargetSpec("points"), catalog=DEFAULT_CATALOG)
    assert done == LabelsFile((tmp_path / "l.zarr",), 2, "TS_1", (8, 8, 8))
    labels = read_artifact(tmp_path / "l.zarr")
    assert sorted(zip(*np.nonzero(labels.data[:]))) == [(2, 3, 4), (7, 6, 1)]
    assert (labels.data[2, 3, 4], labels.data[7, 6, 1]) == (1, 4)  # apo-ferritin is label 1, ribosome 4
    assert labels.meta.kind == "labels" and labels.meta.classes == tuple(DEFAULT_CATALOG.names)

    other = tmp_path / "other.csv"
    other.write_text("experiment,particle_type,x,y,z\nTS_2,ribosome,40,40,40\n")
    with pytest.raises(PicksOfOtherRunsError, match=r"other.csv: no picks of run 'TS_1' \(runs: TS_2\)$"):
        make_labels_file(other, like, tmp_path / "m.zarr", spec=TargetSpec("points"), catalog=DEFAULT_CATALOG)
    assert not (tmp_path / "m.zarr").exists()


def test_ensemble_files_averages_maps_and_fuses_pick_lists(tmp_path):
    from czii_cli.ensemble.job import ensemble_files
    from czii_cli.io.artifacts import read_artifact

    meta = ArtifactMeta(
        kind="probs", axes="czyx", voxel_size=10.0, run="TS_1", classes=PROBS_CLASSES, extra={"activation": "softmax"}
    )
    for name, value in (("a", 0.25), ("b", 0.75)):
        write_artifact(tmp_path / f"{name}.zarr", np.full((3, 4, 4, 4), value, np.float32), meta)
    maps = [tmp_path / "a.zarr", tmp_path / "b.zarr"]
    blocks = []
    assert ensemble_files(maps, tmp_path / "e.zarr", weights=[3.0, 1.0], on_plan=blocks.append) == tmp_path / "e.zarr"
    combined = read_artifact(tmp_path / "e.zarr")
    assert blocks == [1] and combined.data.dtype == np.float16
    assert np.unique(combined.data[:]).tolist() == [0.375]
    assert combined.meta.extra["ensemble"]["weights"] == [3.0, 1.0]
    with pytest.raises(UsageError, match="pick lists are fused with mode 'cluster'"):
        ensemble_files([tmp_path / "a.csv"], tmp_path / "x.zarr")

    header = "experiment,particle_type,x,y,z,score\n"
    (tmp_path / "a.csv").write_text(header + "TS_1,ribosome,100,0,0,1\n")
    (tmp_path / "b.csv").write_text(header + "TS_1,ribosome,104,0,0,1\nTS_1,apo-ferritin,500,0,0,0.5\n")
    ensemble_files([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "f.csv", mode="cluster")
    assert (tmp_path / "f.csv").read_text().splitlines()[1:] == [
        "0,TS_1,apo-ferritin,500,0,0,0.25",
        "1,TS_1,ribosome,102,0,0,1",
    ]


def write_picks(path: Path, rows: str, *, scored: bool = False) -> Path:
    path.write_text("experiment,particle_type,x,y,z" + (",score" if scored else "") + "\n" + rows)
    return path


def test_score_files_counts_matches_and_reports_disjoint_experiments(tmp_path):
    from czii_cli.score import score_files

    gt = write_picks(tmp_path / "gt.csv", "TS_1,ribosome,0,0,0\nTS_1,ribosome,1000,0,0\n")
    pred = write_picks(tmp_path / "pred.csv", "TS_1,ribosome,10,0,0\nTS_1,ribosome,5000,0,0\n")
    report = score_files(pred, gt, plot=tmp_path / "score.png")
    ribosome = report.per_class["ribosome"]
    assert (ribosome.tp, ribosome.fp, ribosome.fn, ribosome.fbeta) == (1, 1, 1, 0.5)
    assert report.score == pytest.approx(0.5 / 7, rel=1e-12)  # ribosome weight 1 of the catalog's 7
    assert (tmp_path / "score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    elsewhere = write_picks(tmp_path / "other.csv", "TS_9,ribosome,0,0,0\n")
    warnings: list[str] = []
    assert score_files(elsewhere, gt, on_warning=warnings.append).score == 0.0
    assert warnings == [
        f"no experiment of {elsewhere} is in {gt}, so nothing can match: {elsewhere} has TS_9; {gt} has TS_1"
    ]


def test_tune_files_writes_the_cutoffs_it_returns(tmp_path):
    from czii_cli.io.thresholds import read_thresholds
    from czii_cli.tune import TooFewExperimentsError, tune_files

    gt = write_picks(tmp_path / "gt.csv", "TS_1,ribosome,0,0,0\n")
    pred = write_picks(tmp_path / "pred.csv", "TS_1,ribosome,10,0,0,0.9\nTS_1,ribosome,900,0,0,0.2\n", scored=True)
    result = tune_files(pred, gt, tmp_path / "cutoffs.json", rule="best")
    assert result.thresholds == {"ribosome": 0.6}  # the shortest decimal between the scores 0.2 and 0.9
    assert read_thresholds(tmp_path / "cutoffs.json") == {"ribosome": 0.6}
    assert (result.before.per_class["ribosome"].fp, result.after.per_class["ribosome"].fp) == (1, 0)
    with pytest.raises(TooFewExperimentsError, match=r"gt.csv: cross validation needs .* two experiments, found 1$"):
        tune_files(pred, gt, tmp_path / "cv.json", cross_validation=True)
    assert not (tmp_path / "cv.json").exists()


def test_predict_file_writes_the_map_a_constant_network_predicts(tmp_path):
    import torch

    from czii_cli.catalog import DEFAULT_CATALOG
    from czii_cli.io.artifacts import read_artifact
    from czii_cli.normalize import normalization_method
    from czii_cli.predict_probs.job import predict_file
    from czii_cli.training.checkpoint import ModelFile, save_model
    from czii_cli.training.registry import build_network

    network = build_network("light", in_channels=1, out_channels=2, params={"channels": [4, 8]})
    zeros = {name: torch.zeros_like(value) for name, value in network.state_dict().items()}
    model = ModelFile(
        arch="light",
        arch_params={"channels": [4, 8]},
        classes=["background", "ribosome"],
        catalog=DEFAULT_CATALOG.to_json(),
        target="spheres",
        activation="softmax",
        normalization=normalization_method("zscore"),
        patch_size=[8, 8, 8],
        voxel_size=10.0,
        state_dict=zeros,
    )
    save_model(tmp_path / "zero.pt", model)
    raw = tomogram(tmp_path / "t.zarr", np.random.default_rng(0).normal(size=(8, 12, 16)))
    windows: list[int] = []
    result = predict_file(
        raw, tmp_path / "p.zarr", models=[tmp_path / "zero.pt"], window=(8, 8, 8), tta="flips", on_plan=windows.append
    )
    assert result["target"] == str(tmp_path / "p.zarr") and result["tiling"] == "sliding" and len(windows) == 1
    probs = read_artifact(tmp_path / "p.zarr")
    assert (probs.meta.kind, probs.meta.axes, probs.meta.classes) == ("probs", "czyx", ("background", "ribosome"))
    assert probs.data.shape == (2, 8, 12, 16) and probs.data.dtype == np.float16
    assert np.unique(probs.data[:]).tolist() == [0.5]  # zero logits: softmax of two equal values
    assert probs.meta.extra["tta"] == "flips" and probs.meta.run == "TS_1"
    with pytest.raises(UsageError, match=r"^tta must be one of none, flips, rot90, all, got 'spin'$"):
        predict_file(raw, tmp_path / "q.zarr", models=[tmp_path / "zero.pt"], tta="spin")


METHOD_OPTION_CASES = [
    ("cc", {"min_size": -1}),
    ("cc", {"min_size_fraction": -0.5}),
    ("cc", {"radius_scale": 0.0}),
    ("cc", {"radius_scale": -1.0, "min_size": 4}),  # a fixed size never needs the blob radius
    ("cc", {"connectivity": 8}),
    ("peaks", {"footprint": "star"}),
    ("peaks", {"sigma": -1.0}),
    ("peaks", {"nms_distance": -0.1, "radius_scale": 0.0}),
    ("peaks", {"radius_scale": 0.0}),
    ("watershed", {"connectivity": 4, "min_size": -1}),
    ("watershed", {"radius_scale": -1.0, "min_size": 4}),
    ("dbscan", {"points": "grid"}),
    ("dbscan", {"eps_scale": 0.0}),
    ("dbscan", {"connectivity": 8}),  # voxel clustering labels no components
    ("dbscan", {"connectivity": 8, "points": "centroids"}),
    ("kl-fit", {"template": "cone"}),
    ("kl-fit", {"overlap": 0.0}),
    ("kl-fit", {"radius_scale": 0.0, "min_size": -1}),
    ("kl-fit", {"connectivity": 5}),
    ("kl-fit", {"template": "gaussian", "overlap": 0.5, "connectivity": 6}),
]


def one_voxel_run_message(method: str, options: dict[str, object]) -> str | None:
    """What running the method itself on a one-voxel map says of these options (None: accepted)."""
    from czii_cli.postprocess import METHODS

    try:
        METHODS[method](np.zeros((1, 1, 1), np.float32), threshold=1.0, radius=1.0, **options)
    except UsageError as err:
        return str(err)
    return None


@pytest.mark.parametrize(("method", "options"), METHOD_OPTION_CASES)
def test_method_options_are_checked_as_the_method_itself_checks_them(method, options):
    from czii_cli.commands.options import postprocess_options

    expected = one_voxel_run_message(method, options)
    if expected is None:
        assert postprocess_options(method, options, seed=0) == {
            **options,
            **({"seed": 0} if method == "kl-fit" else {}),
        }
    else:
        with pytest.raises(UsageError) as caught:
            postprocess_options(method, options, seed=0)
        assert str(caught.value) == expected


def test_a_bad_method_option_is_one_error_line_before_any_input_is_read(cli, tmp_path):
    result = cli("postprocess", tmp_path / "missing.zarr", "--method", "dbscan", "--points", "grid")
    assert result.exit_code == 2
    assert result.stderr == "czii: error: points must be one of voxels, centroids, got 'grid'\n"
    assert result.stdout == ""


@pytest.mark.parametrize("output", ["picks.csv", "picks/"])
def test_postprocess_opens_each_input_once(cli, tmp_path, monkeypatch, output):
    from czii_cli.io import volumes

    opened: list[str] = []
    read_volume = volumes.read_volume

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(Path(path).name)
        return read_volume(path, *args, **kwargs)

    monkeypatch.setattr(volumes, "read_volume", counting)
    maps = [two_blob_map(tmp_path / "a.zarr"), two_blob_map(tmp_path / "b.zarr", run="TS_2")]
    result = cli("postprocess", *maps, "-o", f"{tmp_path}/{output}")
    assert result.exit_code == 0, result.stderr
    assert opened == ["a.zarr", "b.zarr"]
