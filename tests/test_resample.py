"""Binning: exact block means, partial blocks, the binned grid in Å, and coarser models at prediction."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import make_model

from czii_cli.catalog import Catalog, ParticleClass
from czii_cli.errors import DataError, NonFiniteError, UsageError
from czii_cli.io.artifacts import read_artifact
from czii_cli.io.volumes import VolumeRequest, read_tomogram, write_mrc
from czii_cli.make_labels import TargetSpec
from czii_cli.picks import Picks
from czii_cli.predict_probs.job import PredictSettings, predict_tomogram
from czii_cli.predict_probs.members import at_model_grid, members_for, model_bin_factor
from czii_cli.resample import bin_volume, binned_origin, binned_shape
from czii_cli.training.checkpoint import load_model_file, save_model
from czii_cli.training.dataset import TrainingVolume, bin_training_volume

torch.set_num_threads(1)


def test_block_means_of_a_hand_built_volume():
    volume = np.arange(4 * 4 * 4, dtype=np.int64).reshape(4, 4, 4)  # value = 16 z + 4 y + x
    out = bin_volume(volume, factor=2)
    assert out.dtype == np.float32 and out.shape == (2, 2, 2)
    # block (0, 0, 0) holds z, y, x in {0, 1}: mean 16 * 0.5 + 4 * 0.5 + 0.5 = 10.5; each block step adds 32, 8, 2
    expected = 10.5 + 32 * np.arange(2)[:, None, None] + 8 * np.arange(2)[None, :, None] + 2 * np.arange(2)
    assert out.tolist() == expected.tolist()


def test_partial_blocks_are_averaged_over_the_voxels_they_hold():
    volume = np.array(
        [
            [[1.0, 3.0, 5.0]],
            [[7.0, 9.0, 11.0]],
            [[100.0, 200.0, 400.0]],
        ]
    )  # shape (3, 1, 3): z and x end in partial blocks of one voxel
    out = bin_volume(volume, factor=2)
    assert out.shape == binned_shape(volume.shape, factor=2) == (2, 1, 2)
    assert out.tolist() == [[[5.0, 8.0]], [[150.0, 400.0]]]
    assert bin_volume(volume, factor=4).tolist() == [[[np.float32(736 / 9)]]]  # one block: the mean of all nine


def test_factor_one_is_a_float32_copy_and_constants_stay_constant():
    volume = np.random.default_rng(0).normal(size=(3, 4, 5))
    same = bin_volume(volume, factor=1)
    assert same.dtype == np.float32 and np.array_equal(same, volume.astype(np.float32))
    assert np.all(bin_volume(np.full((5, 6, 7), 2.5, dtype=np.float16), factor=3) == 2.5)


def test_the_binned_grid_keeps_positions_in_angstrom():
    # a bright 2x2x2 block at voxels 4..5 (centre 4.5 voxels = 45 Å from origin 100 Å) is binned voxel 2
    volume = np.zeros((8, 8, 8), dtype=np.float32)
    volume[4:6, 4:6, 4:6] = 1.0
    out = bin_volume(volume, factor=2)
    assert np.argwhere(out == 1.0).tolist() == [[2, 2, 2]]
    origin = binned_origin((100.0, 0.0, 0.0), voxel_size=10.0, factor=2)
    assert origin == (105.0, 5.0, 5.0)
    assert 2 * 20.0 + origin[0] == 4.5 * 10.0 + 100.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_refused_naming_the_source(bad):
    volume = np.zeros((4, 4, 4), dtype=np.float32)
    volume[0, 1, 2] = bad
    volume[3, 3, 3] = bad
    with pytest.raises(NonFiniteError, match=r"^t\.mrc: 2 of 64 voxels are not finite") as caught:
        bin_volume(volume, factor=2, source="t.mrc")
    assert (caught.value.count, caught.value.total) == (2, 64)


@pytest.mark.parametrize("factor", [0, -2, 2.0, True, "2"])
def test_a_factor_must_be_a_positive_whole_number(factor):
    with pytest.raises(UsageError, match="factor must be a whole number >= 1"):
        bin_volume(np.zeros((2, 2, 2)), factor=factor)


def test_a_volume_must_be_three_dimensional():
    with pytest.raises(UsageError, match=r"^v: expected a \(z, y, x\) volume to bin, found shape \(4, 4\)"):
        bin_volume(np.zeros((4, 4)), factor=2, source="v")


def test_a_training_run_is_binned_and_its_target_painted_again_on_the_binned_grid():
    catalog = Catalog((ParticleClass("small", 30.0, 1.0, 1), ParticleClass("large", 50.0, 2.0, 2)))
    rng = np.random.default_rng(3)
    image = rng.normal(size=(16, 32, 32)).astype(np.float32)
    picks = Picks.from_points("r", "large", [[165.0, 245.0, 85.0]])  # x y z in Å
    volume = TrainingVolume(
        run="r",
        image=image,
        target=np.zeros(image.shape, dtype=np.uint8),
        picks=picks,
        voxel_size=10.0,
        origin=(0.0, 0.0, 0.0),
        normalization={"method": "zscore", "clip": None},
        source="r.mrc",
    )
    binned = bin_training_volume(volume, factor=2, catalog=catalog, spec=TargetSpec())
    assert binned.image.shape == binned.target.shape == (8, 16, 16)
    assert binned.voxel_size == 20.0 and binned.origin == (5.0, 5.0, 5.0)
    assert abs(float(binned.image.mean())) < 1e-5 and float(binned.image.std()) == pytest.approx(1.0, abs=1e-4)
    # the pick (z 85, y 245, x 165 Å) sits at binned voxel ((85, 245, 165) - 5) / 20 = (4, 12, 8);
    # a sphere of 0.5 x 50 Å = 1.25 binned voxels: the centre and its six neighbours
    labelled = np.argwhere(binned.target == 2)
    assert labelled.tolist() == [[3, 12, 8], [4, 11, 8], [4, 12, 7], [4, 12, 8], [4, 12, 9], [4, 13, 8], [5, 12, 8]]
    assert binned.picks is picks and bin_training_volume(volume, factor=1, catalog=catalog, spec=TargetSpec()) is volume


class BrightIsRibosome(torch.nn.Module):
    """Softmax logits: background 0, ribosome 4 x input - 8, the other classes far below."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = torch.full_like(x, -20.0)
        return torch.cat([torch.zeros_like(x), low, low, low, 4 * x - 8, low, low], dim=1)


def coarse_model(tmp_path, voxel_size: float):
    path = make_model(tmp_path / f"m{voxel_size:g}.pt")
    model = replace(load_model_file(path), voxel_size=voxel_size)
    save_model(path, model, overwrite=True)
    return path, load_model_file(path)


def test_a_tomogram_through_a_twice_coarser_model_gives_a_half_size_map_and_picks_in_angstrom(cli, tmp_path):
    rng = np.random.default_rng(11)
    shape = (40, 48, 56)
    tomogram = 0.3 * rng.normal(size=shape).astype(np.float32)
    truth_zyx = np.array([21.3, 22.6, 30.1])  # voxels of 10 Å
    grid = np.indices(shape).reshape(3, -1).T
    tomogram.reshape(-1)[np.linalg.norm(grid - truth_zyx, axis=1) <= 7.5] += 3.0
    write_mrc(tmp_path / "t.mrc", tomogram, voxel_size=10.0)
    path, model = coarse_model(tmp_path, 20.0)

    volume = read_tomogram(tmp_path / "t.mrc", VolumeRequest())
    coarse = at_model_grid(volume, [model], [path])
    assert coarse.shape == (20, 24, 28) and coarse.meta.voxel_size == 20.0 and coarse.meta.origin == (5.0, 5.0, 5.0)
    settings = PredictSettings(models=(path,), window=(8, 16, 16), device="cpu", precision="float32")
    # predict_tomogram bins the 10 Å tomogram itself
    predict_tomogram(volume, tmp_path / "p.zarr", models=[model], networks=[BrightIsRibosome()], settings=settings)
    probs = read_artifact(tmp_path / "p.zarr")
    assert probs.shape == (7, 20, 24, 28) and probs.meta.voxel_size == 20.0

    result = cli("postprocess", tmp_path / "p.zarr", "-o", tmp_path / "picks.csv")
    assert result.exit_code == 0, result.stderr
    with open(tmp_path / "picks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["particle_type"] for row in rows] == ["ribosome"]
    found = np.array([float(rows[0][axis]) for axis in "zyx"])
    # well within one 20 Å voxel; a grid without the half-voxel origin shift would be 8.7 Å off
    assert np.linalg.norm(found - truth_zyx * 10.0) < 5.0


def test_the_factor_follows_the_model_and_other_ratios_are_refused(tmp_path):
    volume = read_tomogram_like(tmp_path, voxel_size=10.0)
    models = {size: coarse_model(tmp_path, size) for size in (10.012, 20.0, 20.01, 25.0, 5.0)}
    assert model_bin_factor([models[20.0][1]], [models[20.0][0]], volume) == 2
    assert model_bin_factor([models[20.01][1]], [models[20.01][0]], volume) == 2  # within VOXEL_SIZE_RTOL
    assert model_bin_factor([models[10.012][1]], [models[10.012][0]], volume) == 1
    assert model_bin_factor([models[5.0][1]], [models[5.0][0]], volume) == 1  # finer: as before, predicted as is
    assert at_model_grid(volume, [models[10.012][1]], [models[10.012][0]]) is volume
    with pytest.raises(DataError, match=r"m25\.pt: trained at 25 Å voxels, 2\.5 times the 10 Å of .*t\.mrc"):
        model_bin_factor([models[25.0][1]], [models[25.0][0]], volume)
    with pytest.raises(UsageError, match="models disagree on voxel size"):
        model_bin_factor([models[20.0][1], models[10.012][1]], [models[20.0][0], models[10.012][0]], volume)


def test_a_normalized_tomogram_is_normalized_again_after_binning(tmp_path, cli):
    rng = np.random.default_rng(5)
    write_mrc(tmp_path / "raw.mrc", rng.normal(size=(8, 8, 8)).astype(np.float32), voxel_size=10.0)
    assert cli("normalize", tmp_path / "raw.mrc", "-o", tmp_path / "n.zarr").exit_code == 0
    volume = read_tomogram(tmp_path / "n.zarr", VolumeRequest())
    assert "normalization" in volume.meta.extra
    path, model = coarse_model(tmp_path, 20.0)
    coarse = at_model_grid(volume, [model], [path])
    assert "normalization" not in coarse.meta.extra
    assert coarse.meta.extra["binned"] == {"factor": 2, "voxel_size": 10.0, "shape": [8, 8, 8]}
    assert np.array_equal(coarse.data, bin_volume(volume.load(), factor=2))


def read_tomogram_like(tmp_path, *, voxel_size: float):
    write_mrc(tmp_path / "t.mrc", np.zeros((4, 4, 4), dtype=np.float32), voxel_size=voxel_size)
    return read_tomogram(tmp_path / "t.mrc", VolumeRequest())


def test_a_tomogram_off_the_models_grid_is_never_predicted_at_the_wrong_scale(tmp_path):
    volume = read_tomogram_like(tmp_path, voxel_size=10.0)
    path, model = coarse_model(tmp_path, 20.0)
    with pytest.raises(DataError, match=r"t\.mrc: at 10 Å voxels, the models need it binned by 2 \(20 Å\)"):
        members_for([BrightIsRibosome()], [model], volume)
    members, applied = members_for([BrightIsRibosome()], [model], at_model_grid(volume, [model], [path]))
    assert len(members) == 1 and applied[0]["method"] == "zscore"


def test_predict_probs_bins_a_tomogram_to_a_twice_coarser_model(cli, tmp_path):
    write_mrc(tmp_path / "t.mrc", np.zeros((16, 24, 32), dtype=np.float32), voxel_size=10.0)
    path, _ = coarse_model(tmp_path, 20.0)
    result = cli("predict-probs", tmp_path / "t.mrc", "-m", path, "-o", tmp_path / "p.zarr")
    assert result.exit_code == 0, result.stderr
    assert f"{tmp_path / 't.mrc'}: binned by 2 to the model's 20 Å voxels" in result.stderr
    assert "the model was trained at" not in result.stderr
    probs = read_artifact(tmp_path / "p.zarr")
    assert probs.shape[1:] == (8, 12, 16) and probs.meta.voxel_size == 20.0


def test_predict_probs_refuses_a_model_at_a_non_integer_multiple(cli, tmp_path):
    write_mrc(tmp_path / "t.mrc", np.zeros((8, 8, 8), dtype=np.float32), voxel_size=10.0)
    path, _ = coarse_model(tmp_path, 25.0)
    result = cli("predict-probs", tmp_path / "t.mrc", "-m", path, "-o", tmp_path / "p.zarr")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("czii: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert f"{path}: trained at 25 Å voxels, 2.5 times the 10 Å of {tmp_path / 't.mrc'}" in errors[0]
    assert not (tmp_path / "p.zarr").exists()
