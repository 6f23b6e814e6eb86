"""`czii postprocess`: input forms, outputs, thresholds and error paths."""

from __future__ import annotations

import numpy as np
import pytest

from czii_cli.io.artifacts import ArtifactMeta, write_artifact
from czii_cli.io.thresholds import write_thresholds

CLASSES = ("background", "apo-ferritin", "ribosome")
HEADER = "id,experiment,particle_type,x,y,z,score"


def probs_map(shift: int = 0) -> np.ndarray:
    """An apo-ferritin ball at voxel (8, 10, 6 + shift) and a ribosome ball at (8, 12, 22)."""
    z, y, x = np.indices((16, 24, 32))
    probs = np.zeros((3, 16, 24, 32), np.float16)
    probs[1][(z - 8) ** 2 + (y - 10) ** 2 + (x - 6 - shift) ** 2 <= 9] = 0.5
    probs[2][(z - 8) ** 2 + (y - 12) ** 2 + (x - 22) ** 2 <= 36] = 0.75
    return probs


def save(path, probs=None, *, run="TS_a", kind="probs", classes=CLASSES, extra=None):
    meta = ArtifactMeta(kind=kind, axes="czyx", voxel_size=10.0, run=run, classes=classes, extra=extra or {})
    write_artifact(path, probs_map() if probs is None else probs, meta)
    return path


EXPECTED = f"""{HEADER}
0,TS_a,apo-ferritin,60,100,80,0.5
1,TS_a,ribosome,220,120,80,0.75
"""


@pytest.mark.parametrize("name", ["p.zarr", "p.zip", "p.npy"])
def test_every_input_form_gives_the_same_csv(cli, tmp_path, name):
    result = cli("postprocess", save(tmp_path / name), "-o", tmp_path / "picks.csv")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "picks.csv").read_text() == EXPECTED
    assert result.stdout == ""


def test_zip_streamed_into_a_zarr_name_is_read_by_content(cli, tmp_path):
    (save(tmp_path / "p.zip")).rename(tmp_path / "p.zarr")
    result = cli("postprocess", tmp_path / "p.zarr")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED


def test_heatmaps_are_accepted_too(cli, tmp_path):
    assert cli("postprocess", save(tmp_path / "h.zarr", kind="heatmap")).stdout == EXPECTED


def test_stdin_and_file_stem_name_the_experiment(cli, tmp_path):
    stream = save(tmp_path / "TS_b.zip", run=None).read_bytes()
    assert cli("postprocess", "-", input=stream).stdout == EXPECTED.replace("TS_a", "stdin")
    assert cli("postprocess", tmp_path / "TS_b.zip").stdout == EXPECTED.replace("TS_a", "TS_b")


def test_output_is_not_overwritten_without_the_flag(cli, tmp_path):
    save(tmp_path / "p.zarr")
    (tmp_path / "picks.csv").write_text("old")
    result = cli("postprocess", tmp_path / "p.zarr", "-o", tmp_path / "picks.csv")
    assert result.exit_code == 2
    assert "output exists; pass --overwrite" in result.stderr
    assert (tmp_path / "picks.csv").read_text() == "old"
    assert cli("postprocess", tmp_path / "p.zarr", "-o", tmp_path / "picks.csv", "-f").exit_code == 0
    assert (tmp_path / "picks.csv").read_text() == EXPECTED


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "best"], "unknown method 'best'"),
        (["--threshold", "ribosome=high"], "'high' is not a number"),
        (["--threshold", "0.1,0.2"], "more than one default"),
        (["--threshold", "lysosome=0.2"], "unknown class 'lysosome'"),
        (["--sigma", "1"], "--sigma does not apply to --method cc"),
        (["--method", "peaks", "--footprint", "star"], "footprint must be one of cube, ball"),
        (["--connectivity", "8"], "connectivity must be 6, 18 or 26"),
    ],
)
def test_bad_options_exit_2_with_one_line(cli, tmp_path, args, message):
    result = cli("postprocess", save(tmp_path / "p.zarr"), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_corrupt_or_wrong_inputs_exit_1_naming_the_file(cli, tmp_path):
    (tmp_path / "junk.zarr").write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("postprocess", tmp_path / "junk.zarr")
    assert result.exit_code == 1 and "junk.zarr" in result.stderr
    tomogram = tmp_path / "tomo.zarr"
    meta = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0)
    write_artifact(tomogram, np.zeros((4, 4, 4), np.float32), meta)
    result = cli("postprocess", tomogram)
    assert result.exit_code == 1 and "tomo.zarr: expected a probs or heatmap artifact" in result.stderr
    result = cli("postprocess", save(tmp_path / "odd.zarr", classes=("background", "lysosome", "ribosome")))
    assert result.exit_code == 1 and "odd.zarr: channel 'lysosome' is not a known class" in result.stderr


def test_catalog_comes_from_the_artifact_then_classes_flag(cli, tmp_path):
    catalog = [{"name": "apo-ferritin", "radius": 60.0}, {"name": "ribosome", "radius": 500.0}]
    path = save(tmp_path / "p.zarr", extra={"catalog": catalog})
    assert cli("postprocess", path).stdout == f"{HEADER}\n0,TS_a,apo-ferritin,60,100,80,0.5\n"  # ribosome too small
    (tmp_path / "classes.json").write_text(
        '[{"name": "apo-ferritin", "radius": 60}, {"name": "ribosome", "radius": 150}]'
    )
    assert cli("postprocess", path, "--classes", tmp_path / "classes.json").stdout == EXPECTED


def test_thresholds_file_cuts_scores_and_threshold_binarizes(cli, tmp_path):
    path = save(tmp_path / "p.zarr")
    write_thresholds(tmp_path / "t.json", {"apo-ferritin": 0.6, "ribosome": 0.2}, extra={"score": 0.7})
    only_ribosome = cli("postprocess", path, "--thresholds", tmp_path / "t.json").stdout
    assert only_ribosome == f"{HEADER}\n0,TS_a,ribosome,220,120,80,0.75\n"
    # The cutoffs filter scores (apo-ferritin scores 0.5 < 0.6) whatever the binarization threshold.
    low = cli("postprocess", path, "--thresholds", tmp_path / "t.json", "--threshold", "apo-ferritin=0.4").stdout
    assert low == only_ribosome
    write_thresholds(tmp_path / "t2.json", {"apo-ferritin": 0.5, "ribosome": 0.76}, extra={})
    assert cli("postprocess", path, "--thresholds", tmp_path / "t2.json").stdout == (
        f"{HEADER}\n0,TS_a,apo-ferritin,60,100,80,0.5\n"
    )
    write_thresholds(tmp_path / "bad.json", {"lysosome": 0.5}, extra={})
    result = cli("postprocess", path, "--thresholds", tmp_path / "bad.json")
    assert result.exit_code == 2 and "bad.json: unknown class 'lysosome'" in result.stderr
    only_apo = cli("postprocess", path, "--threshold", "0.8,apo-ferritin=0.3").stdout
    assert only_apo == f"{HEADER}\n0,TS_a,apo-ferritin,60,100,80,0.5\n"


def test_empty_map_gives_a_header_only(cli, tmp_path):
    result = cli("postprocess", save(tmp_path / "p.zarr", np.zeros((3, 4, 4, 4), np.float16)), "--method", "kl-fit")
    assert result.exit_code == 0 and result.stdout == HEADER + "\n"


def test_two_workers_give_the_serial_output(cli, tmp_path):
    inputs = [save(tmp_path / f"run{i}.zarr", probs_map(shift=i), run=f"TS_{i}") for i in range(3)]
    serial = cli("postprocess", *inputs, "--method", "watershed")
    pooled = cli("postprocess", *inputs, "--method", "watershed", "-j", "2")
    assert serial.exit_code == 0 and pooled.exit_code == 0, pooled.stderr
    assert pooled.stdout == serial.stdout
    assert serial.stdout.count("\n") == 7


def test_a_folder_output_gets_one_csv_per_experiment(cli, tmp_path):
    inputs = [save(tmp_path / f"run{i}.zarr", probs_map(shift=i), run=f"TS_{i}") for i in range(3)]
    result = cli("postprocess", *inputs[:2], "-o", f"{tmp_path}/picks/")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert (tmp_path / "picks" / "TS_0.csv").read_text() == EXPECTED.replace("TS_a", "TS_0")
    merged = cli("postprocess", *inputs).stdout
    (tmp_path / "picks" / "TS_0.csv").write_text(HEADER + "\n")  # complete (a header), so kept as it is
    again = cli("postprocess", *inputs, "-o", tmp_path / "picks", "--skip-existing")
    assert again.exit_code == 0, again.stderr
    assert "skipped " in again.stderr and (tmp_path / "picks" / "TS_0.csv").read_text() == HEADER + "\n"
    parts = [(tmp_path / "picks" / f"TS_{i}.csv").read_text().splitlines()[1:] for i in (1, 2)]
    assert [line.split(",", 1)[1] for part in parts for line in part] == [
        line.split(",", 1)[1] for line in merged.splitlines()[3:]
    ]
    clash = cli("postprocess", inputs[0], save(tmp_path / "other.zarr", run="TS_0"), "-o", f"{tmp_path}/clash/")
    assert clash.exit_code == 2 and "several inputs are experiment 'TS_0'" in clash.stderr
