"""czii simulate: shapes, placement, imaging, determinism, layouts and error paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.fft

from czii_cli.catalog import DEFAULT_CATALOG, Catalog, ParticleClass
from czii_cli.commands import simulate as simulate_command
from czii_cli.coords import angstrom_to_voxel
from czii_cli.errors import DataError, UsageError
from czii_cli.io.picks import read_picks, write_picks_csv
from czii_cli.io.volumes import VolumeRequest, read_volume
from czii_cli.picks import Picks, concat
from czii_cli.simulate import (
    DEFAULT_SNR,
    ImagingParameters,
    RunConditions,
    SimulationRanges,
    check_positions,
    parameter_rng,
    simulate_run,
)
from czii_cli.simulate.imaging import filtered_variance, form_image, ice_profile, spectral_variance, wedge_mask
from czii_cli.simulate.membranes import Membrane, render_membrane
from czii_cli.simulate.placement import (
    BORDER_FRACTION,
    MIN_SEPARATION,
    REAL_COUNTS,
    ExclusionSampler,
    expected_counts,
)
from czii_cli.simulate.shapes import CLASS_SHAPES, GENERIC_SHAPE, class_template, render_template

SMALL = (32, 64, 64)


def _simulate(seed: int = 0, shape=SMALL, **options):
    options.setdefault("density_scale", 20.0)
    return simulate_run(shape, catalog=DEFAULT_CATALOG, voxel_size=10.0, rng=np.random.default_rng(seed), **options)


def _render(name: str, radius: float = 10.0, size: int = 31) -> np.ndarray:
    volume = np.zeros((size, size, size), np.float32)
    centre = np.full(3, size // 2, dtype=float)
    render_template(volume, class_template(name), centre_zyx=centre, radius=radius, rotation=np.eye(3))
    return volume


# ----------------------------------------------------------------------------- library


def test_same_seed_gives_identical_runs():
    a, b = _simulate(7), _simulate(7)
    assert a.tomogram.dtype == np.float32 and a.tomogram.shape == SMALL
    np.testing.assert_array_equal(a.tomogram, b.tomogram)
    np.testing.assert_array_equal(a.picks.xyz, b.picks.xyz)
    assert list(a.picks.particle_type) == list(b.picks.particle_type)
    assert len(a.picks) > 0


def test_different_seeds_differ():
    a, b = _simulate(1), _simulate(2)
    assert not np.array_equal(a.tomogram, b.tomogram)
    assert a.picks.xyz.shape != b.picks.xyz.shape or not np.allclose(a.picks.xyz, b.picks.xyz)


def test_tomogram_is_standardized_and_picks_carry_the_run_name():
    sim = _simulate(3, run="TS_x")
    assert abs(float(sim.tomogram.mean())) < 1e-4
    assert float(sim.tomogram.std()) == pytest.approx(1.0, abs=1e-4)
    assert set(sim.picks.experiment) == {"TS_x"}
    assert sim.run == "TS_x"


def test_picks_lie_inside_and_never_overlap():
    shape = (48, 96, 96)
    sim = _simulate(5, shape=shape, density_scale=40.0)
    assert len(sim.picks) > 20  # crowded: some of the ~44 drawn find no room
    radii = np.array([DEFAULT_CATALOG.get(n).radius for n in sim.picks.particle_type]) / 10.0
    voxels = angstrom_to_voxel(sim.picks.xyz, voxel_size=10.0)
    margin = np.minimum(BORDER_FRACTION * radii[:, None], (np.array(shape) - 1) / 2)
    assert np.all(voxels >= margin - 1e-3) and np.all(voxels <= np.array(shape) - 1 - margin + 1e-3)
    distance = np.linalg.norm(voxels[:, None] - voxels[None], axis=-1)
    needed = MIN_SEPARATION * (radii[:, None] + radii[None])
    off_diagonal = ~np.eye(len(radii), dtype=bool)
    assert np.all(distance[off_diagonal] >= needed[off_diagonal] - 1e-3)


def test_sampler_refuses_overlaps_and_membranes():
    sampler = ExclusionSampler(
        (20, 20, 20), membranes=[Membrane((10.0, 10.0, 10.0), 6.0, 2.0)], rng=np.random.default_rng(0)
    )
    sampler.add(np.array([3.0, 3.0, 3.0]), 2.0)
    assert not sampler.fits(np.array([3.0, 3.0, 6.0]), 2.0)  # 3 apart, needs 4
    assert sampler.fits(np.array([3.0, 3.0, 7.5]), 2.0)
    assert not sampler.fits(np.array([10.0, 10.0, 15.0]), 1.0)  # 5 from the centre: touches the wall (5..7)
    assert sampler.fits(np.array([10.0, 10.0, 10.0]), 1.0)  # inside the vesicle, clear of its wall


def test_counts_scale_with_volume_and_match_the_real_data():
    full = expected_counts(DEFAULT_CATALOG, (184, 630, 630), voxel_size=10.0)
    assert sum(full.values()) * 7 == pytest.approx(sum(REAL_COUNTS.values()))
    half = expected_counts(DEFAULT_CATALOG, (92, 630, 630), voxel_size=10.0, density_scale=3.0)
    assert half["ribosome"] == pytest.approx(full["ribosome"] * 1.5)
    custom = Catalog((ParticleClass("my-protein", 80.0, 1.0, 1),))
    mean = sum(REAL_COUNTS.values()) / 6 / 7
    assert expected_counts(custom, (184, 630, 630), voxel_size=10.0)["my-protein"] == pytest.approx(mean)


def test_apo_ferritin_is_hollow_and_dense_in_its_wall():
    volume = _render("apo-ferritin")
    centre = volume[15, 15, 15]
    wall = volume[15, 15, 15 + 8]  # 0.8 r: between the inner (0.62 r) and outer (0.95 r) radii
    assert centre == 0.0
    assert wall > 0.5
    assert volume[15, 15, 15 + 12] == 0.0  # outside the particle


def test_virus_like_particle_is_a_thin_shell_with_a_faint_core():
    volume = _render("virus-like-particle", radius=12.0, size=33)
    profile = volume[16, 16, 16:]
    assert profile[0] < 0.5 * profile[10]  # core (0.25) vs capsid wall at 0.83 r
    assert profile[0] > 0.0


def test_each_known_class_has_its_own_shape_and_unknown_names_a_globule():
    shapes = [CLASS_SHAPES[n] for n in DEFAULT_CATALOG.names]
    assert len({repr(s) for s in shapes}) == 6
    assert class_template("not-a-known-protein").primitives == GENERIC_SHAPE
    volumes = {n: _render(n) for n in DEFAULT_CATALOG.names}
    sums = {n: float(v.sum()) for n, v in volumes.items()}
    assert sums["ribosome"] > sums["beta-amylase"]  # the same radius here: shapes fill it differently
    assert len({round(s) for s in sums.values()}) == 6


def test_rotation_turns_an_elongated_particle():
    volume = np.zeros((31, 31, 31), np.float32)
    quarter_turn = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # y <-> x in the particle frame
    render_template(
        volume, class_template("thyroglobulin"), centre_zyx=np.full(3, 15.0), radius=10.0, rotation=quarter_turn
    )
    upright = _render("thyroglobulin")
    # The two lobes lie along y upright, along x after the turn.
    assert upright[15, 15 - 4, 15] > 0.3 and upright[15, 15, 15 - 4] < 0.3
    assert volume[15, 15, 15 - 4] > 0.3 and volume[15, 15 - 4, 15] < 0.3


def test_membrane_wall_is_dense_only_at_its_radius():
    volume = np.zeros((40, 40, 40), np.float32)
    render_membrane(volume, Membrane((20.0, 20.0, 20.0), 12.0, 4.0))
    assert volume[20, 20, 20] == 0.0
    assert volume[20, 20, 32] > 0.5
    assert volume[20, 20, 39] == 0.0


def test_missing_wedge_is_empty_in_fourier_space():
    density = np.random.default_rng(0).random((32, 32, 32), dtype=np.float32)
    image = form_image(density, voxel_size=10.0, snr=1.0, rng=np.random.default_rng(1), defocus_um=3.0)
    amplitude = np.abs(scipy.fft.rfftn(image))
    missing = ~wedge_mask(image.shape, tilt_max_deg=60.0)
    missing = np.broadcast_to(missing, amplitude.shape)
    assert missing.sum() > 1000
    assert amplitude[missing].max() < 1e-4 * amplitude[~missing].max()


def test_wedge_mask_follows_the_tilt_range():
    mask = wedge_mask((64, 4, 64), tilt_max_deg=60.0)[:, 0, :]  # [kz, kx]
    tan60 = math.tan(math.radians(60.0))
    assert mask[int(10 * tan60) - 1, 10] and not mask[int(10 * tan60) + 1, 10]
    assert mask[0, 0] and not mask[1, 0]


def test_snr_is_the_ratio_of_signal_to_noise_variance():
    density = np.zeros((32, 48, 48), np.float32)
    density[10:20, 10:30, 15:35] = 1.0
    clean = form_image(density, voxel_size=10.0, snr=np.inf, rng=np.random.default_rng(0), defocus_um=3.0)
    noisy = form_image(density, voxel_size=10.0, snr=0.25, rng=np.random.default_rng(0), defocus_um=3.0)
    noise = noisy - clean
    assert clean.var() / noise.var() == pytest.approx(0.25, rel=1e-3)


@pytest.mark.parametrize("shape", [(8, 9, 10), (8, 9, 11)])
def test_spectral_variance_is_parseval_for_odd_and_even_sides(shape):
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    assert spectral_variance(scipy.fft.rfftn(volume), shape_zyx=shape) == pytest.approx(
        volume.var(dtype=np.float64), rel=1e-5
    )


def test_proteins_appear_darker_than_solvent():
    picks = Picks.from_points("r", "ribosome", np.array([[320.0, 320.0, 240.0]]))
    sim = simulate_run(
        (48, 64, 64),
        catalog=DEFAULT_CATALOG,
        voxel_size=10.0,
        rng=np.random.default_rng(0),
        snr=1e6,
        positions=picks,
        density_scale=0.0,
    )
    z, y, x = np.round(angstrom_to_voxel(picks.xyz, voxel_size=10.0)[0]).astype(int)
    core = sim.tomogram[z - 8 : z + 9, y - 8 : y + 9, x - 8 : x + 9].mean()
    assert core < -1.0  # well below the solvent (the volume mean is 0)


def test_given_positions_are_kept_exactly():
    positions = concat(
        [
            Picks.from_points("any", "ribosome", np.array([[300.0, 310.0, 150.0]])),
            Picks.from_points("any", "apo-ferritin", np.array([[100.5, 520.25, 60.0]])),
        ]
    )
    sim = _simulate(0, positions=positions, run="TS_given")
    assert sorted(sim.picks.particle_type) == ["apo-ferritin", "ribosome"]
    np.testing.assert_array_equal(sim.picks.where(particle_type="apo-ferritin").xyz, [[100.5, 520.25, 60.0]])
    assert set(sim.picks.experiment) == {"TS_given"}


def test_positions_outside_or_of_unknown_class_are_refused():
    outside = Picks.from_points("TS_1", "ribosome", np.array([[100.0, 100.0, 320.0]]))  # z = 32 voxels of 32
    with pytest.raises(DataError, match="outside the volume.*z=320"):
        check_positions(outside, SMALL, voxel_size=10.0, catalog=DEFAULT_CATALOG)
    unknown = Picks.from_points("TS_1", "proteasome", np.array([[100.0, 100.0, 100.0]]))
    with pytest.raises(DataError, match="proteasome"):
        check_positions(unknown, SMALL, voxel_size=10.0, catalog=DEFAULT_CATALOG)


def test_custom_catalog_classes_get_the_generic_shape():
    catalog = Catalog((ParticleClass("my-protein", 70.0, 1.0, 1),))
    sim = simulate_run(SMALL, catalog=catalog, voxel_size=10.0, rng=np.random.default_rng(0), density_scale=200)
    assert len(sim.picks) > 0 and set(sim.picks.particle_type) == {"my-protein"}


def test_command_default_snr_is_the_library_default():
    assert simulate_command.DEFAULT_SNR == DEFAULT_SNR


# ----------------------------------------------------------------------------- command


def _zarr_level0(root, run: str) -> np.ndarray:
    return np.asarray(read_volume(root, VolumeRequest(run=run)).data[...])


def test_copick_layout_is_readable_and_matches_the_library(cli, tmp_path):
    out = tmp_path / "sim"
    r = cli("simulate", out, "--runs", 2, "--shape", *SMALL, "--seed", 4, "--density", 20)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "TS_sim_1:" in r.stderr and "particles" in r.stderr
    config = json.loads((out / "copick_config.json").read_text())
    assert [o["name"] for o in config["pickable_objects"]] == DEFAULT_CATALOG.names
    assert config["static_root"] == f"local://{out.resolve() / 'static'}"
    zarr_dir = out / "static/ExperimentRuns/TS_sim_0/VoxelSpacing10.000/denoised.zarr"
    assert sorted(p.name for p in zarr_dir.iterdir() if p.is_dir()) == ["0", "1", "2"]
    picks_files = sorted(p.name for p in (out / "overlay/ExperimentRuns/TS_sim_0/Picks").iterdir())
    assert picks_files and all(name.startswith("curation_0_") for name in picks_files)

    volume = read_volume(out, VolumeRequest(run="TS_sim_1"))
    assert volume.meta.voxel_size == 10.0 and volume.shape == SMALL
    expected = simulate_run(
        SMALL,
        catalog=DEFAULT_CATALOG,
        voxel_size=10.0,
        density_scale=20.0,
        run="TS_sim_1",
        rng=np.random.default_rng(np.random.SeedSequence([4, 1])),
    )
    np.testing.assert_array_equal(np.asarray(volume.data[...]), expected.tomogram)
    picks = read_picks(out).where(experiment="TS_sim_1").sorted()
    assert list(picks.particle_type) == list(expected.picks.particle_type)
    np.testing.assert_allclose(picks.xyz, expected.picks.xyz)


def test_same_seed_gives_identical_files_and_another_seed_does_not(cli, tmp_path):
    for name, seed in (("a", 9), ("b", 9), ("c", 10)):
        assert cli("simulate", tmp_path / name, "--shape", *SMALL, "--seed", seed, "--density", 20, "-q").exit_code == 0
    a, b, c = (_zarr_level0(tmp_path / n, "TS_sim_0") for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    picks_a, picks_b = read_picks(tmp_path / "a"), read_picks(tmp_path / "b")
    np.testing.assert_array_equal(picks_a.xyz, picks_b.xyz)
    assert list(picks_a.particle_type) == list(picks_b.particle_type)


def test_mrc_and_both_layouts_hold_the_same_run(cli, tmp_path):
    assert cli("simulate", tmp_path / "m", "--shape", *SMALL, "--layout", "mrc", "--density", 20, "-q").exit_code == 0
    assert cli("simulate", tmp_path / "b", "--shape", *SMALL, "--layout", "both", "--density", 20, "-q").exit_code == 0
    assert not (tmp_path / "m" / "copick_config.json").exists()
    mrc = read_volume(tmp_path / "m" / "train_images" / "TS_sim_0.mrc")
    assert mrc.meta.voxel_size == pytest.approx(10.0) and mrc.meta.run == "TS_sim_0"
    np.testing.assert_array_equal(np.asarray(mrc.data), _zarr_level0(tmp_path / "b", "TS_sim_0"))
    csv_picks = read_picks(tmp_path / "m").sorted()
    copick_picks = read_picks(tmp_path / "b").sorted()
    assert len(csv_picks) > 0
    assert list(csv_picks.experiment) == ["TS_sim_0"] * len(csv_picks)
    assert list(csv_picks.particle_type) == list(copick_picks.particle_type)
    np.testing.assert_allclose(csv_picks.xyz, copick_picks.xyz, atol=1e-3)


def test_picks_option_places_particles_and_names_the_runs(cli, tmp_path):
    given = concat(
        [
            Picks.from_points("TS_a", "ribosome", np.array([[300.0, 310.0, 150.0], [100.0, 100.0, 100.0]])),
            Picks.from_points("TS_b", "thyroglobulin", np.array([[400.0, 200.0, 160.0]])),
        ]
    )
    write_picks_csv(tmp_path / "truth.csv", given)
    r = cli("simulate", tmp_path / "sim", "--picks", tmp_path / "truth.csv", "--shape", *SMALL)
    assert r.exit_code == 0, r.stderr
    back = read_picks(tmp_path / "sim").sorted()
    assert back.experiments == ["TS_a", "TS_b"]
    np.testing.assert_allclose(back.xyz, given.sorted().xyz)
    assert list(back.particle_type) == list(given.sorted().particle_type)


def test_existing_output_needs_overwrite(cli, tmp_path):
    out = tmp_path / "sim"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    r = cli("simulate", out, "--shape", *SMALL)
    assert r.exit_code == 2
    assert "output exists" in r.stderr and "Traceback" not in r.stderr
    assert (out / "keep.txt").exists()
    refused = cli("simulate", out, "--shape", *SMALL, "-f", "-q")  # -f never replaces a folder czii did not write
    assert refused.exit_code == 2 and "a folder that czii did not write" in refused.stderr
    assert (out / "keep.txt").read_text() == "old"
    (out / "keep.txt").unlink()
    out.rmdir()
    assert cli("simulate", out, "--shape", *SMALL, "-q").exit_code == 0
    (out / "extra.txt").write_text("from the first run")
    assert cli("simulate", out, "--shape", *SMALL, "-f", "-q").exit_code == 0  # its own output: replaced
    assert not (out / "extra.txt").exists() and (out / "copick_config.json").exists()


@pytest.mark.parametrize("args", [["--shape", 8, 64, 64], ["--shape", 0, 64, 64], ["--snr", 0], ["--density", -1]])
def test_bad_options_are_usage_errors(cli, tmp_path, args):
    r = cli("simulate", tmp_path / "sim", *args)
    assert r.exit_code == 2
    assert r.stderr.startswith("czii: error: --")
    assert not (tmp_path / "sim").exists()


def test_picks_outside_the_volume_name_the_file_and_write_nothing(cli, tmp_path):
    write_picks_csv(tmp_path / "truth.csv", Picks.from_points("TS_a", "ribosome", np.array([[100.0, 100.0, 900.0]])))
    r = cli("simulate", tmp_path / "sim", "--picks", tmp_path / "truth.csv", "--shape", *SMALL)
    assert r.exit_code == 1
    assert "truth.csv" in r.stderr and "outside the volume" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth.csv"]


def test_runs_and_picks_exclude_each_other(cli, tmp_path):
    write_picks_csv(tmp_path / "truth.csv", Picks.from_points("TS_a", "ribosome", np.array([[100.0, 100.0, 100.0]])))
    r = cli("simulate", tmp_path / "sim", "--picks", tmp_path / "truth.csv", "--runs", 2, "--shape", *SMALL)
    assert r.exit_code == 2 and "--runs and --picks" in r.stderr


def test_a_failure_mid_way_leaves_no_output(cli, tmp_path, monkeypatch):
    import czii_cli.simulate.job as library

    real = library.simulate_run
    calls = []

    def failing_second_run(*args, **kwargs):
        calls.append(kwargs["run"])
        if len(calls) == 2:
            raise DataError("simulated failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(library, "simulate_run", failing_second_run)
    r = cli("simulate", tmp_path / "sim", "--runs", 3, "--shape", *SMALL)
    assert r.exit_code == 1 and "simulated failure" in r.stderr
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- variation between runs


def _core_darkness(sim) -> float:
    """Mean z-score over a cube of half-side 0.5 r around each particle of r >= 100 Å."""
    values = []
    for name, centre in zip(sim.picks.particle_type, angstrom_to_voxel(sim.picks.xyz, voxel_size=10.0)):
        half = int(0.5 * DEFAULT_CATALOG.get(name).radius / 10.0)
        if half >= 5:
            low = np.maximum(np.round(centre).astype(int) - half, 0)
            values.append(sim.tomogram[tuple(slice(lo, lo + 2 * half + 1) for lo in low)].mean())
    assert len(values) >= 5
    return float(np.mean(values))


def test_default_conditions_are_the_historical_run():
    plain = _simulate(11)
    explicit = _simulate(11, conditions=RunConditions(), snr=DEFAULT_SNR)
    np.testing.assert_array_equal(plain.tomogram, explicit.tomogram)
    assert plain.conditions == RunConditions() and plain.gold_beads == 0
    assert SimulationRanges().draw(np.random.default_rng(3)) == RunConditions()


def test_contrast_darkens_the_particles_at_the_same_noise():
    ribosome = Picks.from_points("r", "ribosome", np.array([[320.0, 320.0, 240.0]]))
    runs = {
        c: simulate_run(
            (48, 64, 64),
            catalog=DEFAULT_CATALOG,
            voxel_size=10.0,
            rng=np.random.default_rng(0),
            positions=ribosome,
            density_scale=0.0,
            conditions=RunConditions(snr=1e6, contrast=c, vesicles=0.0),
        )
        for c in (1.0, 2.0)
    }
    # With nothing but the particle the whole signal scales and the nearly noise-free
    # image, once standardized, stays the same.
    np.testing.assert_allclose(runs[1.0].tomogram, runs[2.0].tomogram, atol=1e-2)
    crowded = {
        c: _simulate(4, shape=(48, 96, 96), density_scale=10.0, conditions=RunConditions(contrast=c))
        for c in (1.0, 2.0)
    }
    np.testing.assert_array_equal(crowded[1.0].picks.xyz, crowded[2.0].picks.xyz)  # same particles, same noise
    darkness = {c: _core_darkness(run) for c, run in crowded.items()}
    assert darkness[1.0] < 0
    assert 1.6 < darkness[2.0] / darkness[1.0] < 2.1  # about twice as dark, in z-score units


def test_gold_beads_are_the_darkest_objects_and_not_in_the_truth():
    sim = _simulate(2, shape=(48, 96, 96), conditions=RunConditions(gold=300.0))
    assert sim.gold_beads >= 3
    plain = _simulate(2, shape=(48, 96, 96))
    assert sim.tomogram.min() < plain.tomogram.min() - 2.0
    assert set(sim.picks.particle_type) <= set(DEFAULT_CATALOG.names)
    assert sim.provenance()["gold_beads"] == sim.gold_beads


def test_distractor_rates_scale_off_targets_and_membranes():
    none = _simulate(6, conditions=RunConditions(off_targets=0.0, vesicles=0.0))
    many = _simulate(6, shape=(48, 96, 96), conditions=RunConditions(off_targets=3.0, vesicles=200.0))
    usual = _simulate(6, shape=(48, 96, 96))
    assert none.off_targets == 0 and none.membranes == 0
    assert many.off_targets > usual.off_targets and many.membranes > usual.membranes


def test_ice_gradient_makes_one_side_noisier():
    profile = ice_profile((8, 4, 9), gradient=0.5, direction_deg=90.0)  # thickening along +y
    np.testing.assert_allclose(profile[0, :, 0], [0.75, 11 / 12, 13 / 12, 1.25], rtol=1e-6)
    assert np.all(profile[0] == profile[0, :, :1])
    density = np.zeros((32, 32, 64), np.float32)
    image = form_image(
        density,
        voxel_size=10.0,
        snr=1.0,
        rng=np.random.default_rng(0),
        defocus_um=3.0,
        noise_profile=ice_profile(density.shape, gradient=1.5, direction_deg=0.0),
    )
    thin, thick = image[:, :, 4:16].std(), image[:, :, -16:-4].std()
    assert thick > 2.5 * thin  # amplitudes about 0.5 and 1.5 there


def test_form_image_reference_signal_variance_sets_the_noise():
    density = np.zeros((32, 48, 48), np.float32)
    density[10:20, 10:30, 15:35] = 1.0
    reference = filtered_variance(density, voxel_size=10.0, defocus_um=3.0)
    clean = form_image(2 * density, voxel_size=10.0, snr=np.inf, rng=np.random.default_rng(0), defocus_um=3.0)
    noisy = form_image(
        2 * density, voxel_size=10.0, snr=0.25, rng=np.random.default_rng(0), defocus_um=3.0, signal_variance=reference
    )
    assert (noisy - clean).var() == pytest.approx(reference / 0.25, rel=1e-3)


def test_ranges_draw_each_run_within_bounds_reproducibly():
    ranges = SimulationRanges(snr=(0.02, 0.5), contrast=(0.5, 2.0), ice_gradient=(0.0, 1.0), gold=(0.0, 3.0))
    draws = [ranges.draw(parameter_rng(7, i)) for i in range(40)]
    assert draws == [ranges.draw(parameter_rng(7, i)) for i in range(40)]
    snrs = np.array([d.snr for d in draws])
    assert np.all((snrs >= 0.02) & (snrs <= 0.5)) and len(set(snrs)) == 40
    assert np.median(snrs) < 0.15  # log-uniform: the geometric middle is 0.1
    assert all(0.5 <= d.contrast <= 2.0 and 0 <= d.ice_gradient <= 1.0 and 0 <= d.gold <= 3.0 for d in draws)
    assert all((d.ice_direction_deg == 0.0) == (d.ice_gradient == 0.0) for d in draws)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"snr": (0.2, 0.1)}, "snr range must have low <= high"),
        ({"contrast": (0.0, 1.0)}, "contrast must be a positive number"),
        ({"ice_gradient": (0.0, 2.0)}, r"ice_gradient must be in \[0, 2\)"),
        ({"gold": (-1.0, 1.0)}, "gold rate must be a non-negative number"),
    ],
)
def test_invalid_ranges_name_the_parameter(options, message):
    with pytest.raises(UsageError, match=message):
        SimulationRanges(**options)


def test_ranges_vary_the_runs_and_simulation_json_records_them(cli, tmp_path):
    args = [
        "--runs",
        3,
        "--shape",
        *SMALL,
        "--density",
        20,
        "--seed",
        5,
        "--snr",
        "0.05:0.5",
        "--contrast",
        "1:2",
        "--defocus",
        "2:5",
        "--ice-gradient",
        "0:0.5",
        "--gold",
        "0:2",
        "--vesicles",
        "0.5",
        "-q",
    ]
    assert cli("simulate", tmp_path / "a", *args).exit_code == 0
    assert cli("simulate", tmp_path / "b", *args).exit_code == 0
    document = json.loads((tmp_path / "a" / "simulation.json").read_text())
    assert document["seed"] == 5 and document["ranges"]["snr"] == [0.05, 0.5]
    assert document["ranges"]["defocus_um"] == [2.0, 5.0] and document["ranges"]["vesicles"] == [0.5, 0.5]
    runs = document["runs"]
    assert sorted(runs) == ["TS_sim_0", "TS_sim_1", "TS_sim_2"]
    assert len({r["snr"] for r in runs.values()}) == 3
    assert all(0.05 <= r["snr"] <= 0.5 and 1 <= r["contrast"] <= 2 and 2 <= r["defocus_um"] <= 5 for r in runs.values())
    assert all(r["vesicles"] == 0.5 for r in runs.values())
    # The recorded draw rebuilds the run exactly, and the same seed gives the same files.
    recorded = runs["TS_sim_1"]
    conditions = RunConditions(**{k: recorded[k] for k in RunConditions().to_json()})
    expected = simulate_run(
        SMALL,
        catalog=DEFAULT_CATALOG,
        voxel_size=10.0,
        density_scale=20.0,
        run="TS_sim_1",
        rng=np.random.default_rng(np.random.SeedSequence([5, 1])),
        imaging=ImagingParameters(defocus_um=(2.0, 5.0)),
        conditions=conditions,
    )
    np.testing.assert_array_equal(_zarr_level0(tmp_path / "a", "TS_sim_1"), expected.tomogram)
    assert expected.defocus_um == pytest.approx(recorded["defocus_um"])
    for run in runs:
        np.testing.assert_array_equal(_zarr_level0(tmp_path / "a", run), _zarr_level0(tmp_path / "b", run))


def test_default_options_record_the_single_setting(cli, tmp_path):
    assert cli("simulate", tmp_path / "s", "--shape", *SMALL, "--density", 20, "-q").exit_code == 0
    document = json.loads((tmp_path / "s" / "simulation.json").read_text())
    run = document["runs"]["TS_sim_0"]
    assert {k: run[k] for k in RunConditions().to_json()} == RunConditions().to_json()
    assert document["ranges"]["defocus_um"] == [2.5, 4.0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--snr", "0.2:0.1"], "--snr range must have LO <= HI"),
        (["--snr", "a:b"], "--snr must be a number or a range LO:HI"),
        (["--contrast", "1:2:3"], "--contrast must be a number or a range"),
        (["--contrast", "0"], "--contrast: "),
        (["--ice-gradient", "0:3"], "--ice-gradient: "),
        (["--gold", "-1"], "--gold: "),
        (["--defocus", "0:2"], "--defocus must be a positive underfocus"),
        (["--snr", "nan"], "--snr must be a number"),
    ],
)
def test_bad_ranges_are_one_line_usage_errors(cli, tmp_path, args, message):
    r = cli("simulate", tmp_path / "sim", "--shape", *SMALL, *args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("czii: error: ") and message in lines[0]
    assert "Traceback" not in r.stderr and not (tmp_path / "sim").exists()


@pytest.mark.slow
def test_full_size_run_at_given_positions_with_the_new_conditions():
    """A 184x630x630 run with gold, darker particles and an ice gradient (10-20 s, 1.4 GiB)."""
    rng = np.random.default_rng(0)
    names = list(DEFAULT_CATALOG.names)
    xyz = np.column_stack([rng.uniform(500, 5800, 30), rng.uniform(500, 5800, 30), rng.uniform(400, 1400, 30)])
    given = concat([Picks.from_points("TS_5_4", names[i % 6], xyz[i : i + 1]) for i in range(30)])
    sim = simulate_run(
        (184, 630, 630),
        catalog=DEFAULT_CATALOG,
        voxel_size=10.0,
        rng=np.random.default_rng(1),
        positions=given,
        run="TS_5_4",
        conditions=RunConditions(contrast=2.0, gold=1.0, ice_gradient=0.3, ice_direction_deg=45.0),
    )
    assert sim.tomogram.shape == (184, 630, 630) and sim.tomogram.dtype == np.float32
    assert np.isfinite(sim.tomogram).all()
    np.testing.assert_allclose(sim.picks.sorted().xyz, given.sorted().xyz)


def test_simulate_files_writes_the_same_project_as_the_command(cli, tmp_path):
    from czii_cli.simulate.job import simulate_files

    seen = []
    out = simulate_files(
        tmp_path / "lib",
        names=["TS_sim_0"],
        shape=SMALL,
        catalog=DEFAULT_CATALOG,
        seed=3,
        layout="mrc",
        on_run=lambda run, summary: seen.append(run),
    )
    assert out == tmp_path / "lib" and seen == ["TS_sim_0"]
    assert (
        cli("simulate", tmp_path / "cli", "--runs", 1, "--shape", *SMALL, "--seed", 3, "--layout", "mrc").exit_code == 0
    )
    for name in ("train_images/TS_sim_0.mrc", "train_annotations/TS_sim_0.csv"):
        assert (tmp_path / "lib" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    lib, made = (json.loads((tmp_path / d / "simulation.json").read_text()) for d in ("lib", "cli"))
    assert lib == made and lib["seed"] == 3 and list(lib["runs"]) == ["TS_sim_0"]
    assert not (tmp_path / "lib" / "copick_config.json").exists()


def test_simulate_files_refuses_a_run_name_that_is_not_a_file_name(tmp_path):
    from czii_cli.simulate.job import simulate_files

    with pytest.raises(DataError, match=r"picks\.csv: .*run name"):
        simulate_files(
            tmp_path / "sim", names=["../escape"], shape=SMALL, catalog=DEFAULT_CATALOG, picks_file="picks.csv"
        )
    assert not (tmp_path / "sim").exists()
