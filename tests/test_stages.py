"""Every stage is a library function of paths and typed options: called here without typer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from czii_cli.errors import UsageError
from czii_cli.io.artifacts import ArtifactMeta, write_artifact

PROBS_CLASSES = ("background", "apo-ferritin", "ribosome")


def two_blob_map(path: Path) -> Path:
    """A 3-channel map (background, apo-ferritin, ribosome) with one blob per class, 10 Å voxels.

    The apo-ferritin blob is a 3^3 cube of 0.8 centred on voxel (z, y, x) = (4, 5, 6); the
    ribosome blob a 7^3 cube of 0.6 with a 0.9 peak, centred on (10, 9, 8).
    """
    data = np.zeros((3, 16, 16, 16), np.float32)
    data[1, 3:6, 4:7, 5:8] = 0.8
    data[2, 7:14, 6:13, 5:12] = 0.6
    data[2, 10, 9, 8] = 0.9
    meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run="TS_1", classes=PROBS_CLASSES)
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
