"""Model files, networks, losses, sampling, augmentation and the training step's pieces."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from czii_cli.catalog import DEFAULT_CATALOG
from czii_cli.commands.train_options import parse_loss
from czii_cli.errors import ConfigError, DataError, UsageError
from czii_cli.io.volumes import write_mrc
from czii_cli.make_labels import Centres
from czii_cli.training.augment import augment_pair, mixup
from czii_cli.training.checkpoint import ModelFile, load_model_file, save_model
from czii_cli.training.config import AugmentConfig, TrainConfig
from czii_cli.training.losses import build_loss, tversky_index, weighted_cross_entropy
from czii_cli.training.plan import load_initial_weights, split_runs
from czii_cli.training.registry import build_network, patch_multiple
from czii_cli.training.sampling import PatchSampler, extract_crop
from czii_cli.training.training import Trainer, learning_rate, one_hot, restore_rng_state, rng_state

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- safe model files


class WritesMarker:
    """Unpickling this would create a file: harmless proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tiny_model_file(**changes) -> ModelFile:
    network = build_network("light", in_channels=1, out_channels=2, params={"channels": [4, 8]})
    fields = dict(
        arch="light",
        arch_params={"channels": [4, 8]},
        classes=["background", "apo-ferritin"],
        catalog=DEFAULT_CATALOG.to_json(),
        target="spheres",
        activation="softmax",
        normalization={"method": "zscore", "clip": None},
        patch_size=[8, 8, 8],
        voxel_size=10.0,
        state_dict=network.state_dict(),
    )
    return ModelFile(**{**fields, **changes})


@pytest.fixture
def evil_model(tmp_path):
    marker = tmp_path / "marker"
    document = tiny_model_file().to_checkpoint()
    document["train"] = {"hook": WritesMarker(marker), "callback": os.getcwd}
    torch.save(document, tmp_path / "evil.pt")
    assert not marker.exists()
    return tmp_path / "evil.pt", marker


def test_load_model_file_refuses_pickled_code(evil_model):
    path, marker = evil_model
    with pytest.raises(DataError, match="refused: the model file holds objects that could run code"):
        load_model_file(path)
    assert not marker.exists()


def test_cli_refuses_pickled_code(cli, evil_model, tmp_path):
    path, marker = evil_model
    result = cli("info", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"czii: error: {path}: refused: the model file holds objects that could run code")
    write_mrc(tmp_path / "t.mrc", np.zeros((8, 8, 8), np.float32), voxel_size=10.0)
    result = cli("predict-probs", tmp_path / "t.mrc", "-m", path, "-o", tmp_path / "p.zarr")
    assert result.exit_code == 1
    assert "refused: the model file holds objects that could run code" in result.stderr
    assert not marker.exists() and not (tmp_path / "p.zarr").exists()


def test_model_file_round_trip_builds_the_same_network(tmp_path):
    model = tiny_model_file()
    save_model(tmp_path / "m.pt", model)
    loaded = load_model_file(tmp_path / "m.pt")
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        reference = build_network("light", in_channels=1, out_channels=2, params={"channels": [4, 8]})
        reference.load_state_dict(model.state_dict)
        torch.testing.assert_close(loaded.build()(x), reference.eval()(x))


# ----------------------------------------------------------------------------- networks


def test_light_stride_two_stem_keeps_the_input_size_and_shrinks_the_work():
    full = build_network("light", in_channels=1, out_channels=3, params={"channels": [4, 8], "stem_stride": 1})
    strided = build_network("light", in_channels=1, out_channels=3, params={"channels": [4, 8]})
    assert strided(torch.zeros(2, 1, 8, 12, 16)).shape == (2, 3, 8, 12, 16)
    assert patch_multiple("light", {"channels": [4, 8], "stem_stride": 1}) == 2
    assert patch_multiple("light", {"channels": [4, 8]}) == 4
    assert set(full.state_dict()) < set(strided.state_dict())  # stride 1 keeps the original layout


def test_default_light_is_about_a_third_of_a_million_parameters():
    network = build_network("light", in_channels=1, out_channels=7)
    assert 250_000 < sum(p.numel() for p in network.parameters()) < 400_000


def test_init_loads_matching_tensors_and_names_the_rest():
    source = tiny_model_file()
    network = build_network("light", in_channels=1, out_channels=3, params={"channels": [4, 8]})
    notes = load_initial_weights(network, source, arch="light", source="m.pt")
    assert notes == ["shape differs, kept the new initialisation: head.bias, head.weight"]
    torch.testing.assert_close(network.state_dict()["encoders.0.0.weight"], source.state_dict["encoders.0.0.weight"])
    with pytest.raises(UsageError, match="a light model cannot initialise a unet network"):
        load_initial_weights(network, source, arch="unet", source="m.pt")


# ----------------------------------------------------------------------------- losses


def test_weighted_cross_entropy_matches_torch_on_one_hot_targets():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, 6, generator=generator)
    labels = torch.randint(0, 3, (2, 4, 5, 6), generator=generator)
    weights = torch.tensor([1.0, 256.0, 4.0])
    target = torch.nn.functional.one_hot(labels, 3).permute(0, 4, 1, 2, 3).float()
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
    torch.testing.assert_close(weighted_cross_entropy(logits, target, weights), expected)


def test_tversky_index_by_hand():
    probs = torch.tensor([0.5, 1.0, 0.0, 1.0]).reshape(1, 1, 1, 1, 4)
    target = torch.tensor([1.0, 1.0, 1.0, 0.0]).reshape(1, 1, 1, 1, 4)
    # TP 1.5, FP 1.0, FN 1.5 -> (1.5 + 1) / (1.5 + 0.3 * 1 + 0.7 * 1.5 + 1)
    index = tversky_index(probs, target, alpha=0.3, beta=0.7)
    assert float(index) == pytest.approx(2.5 / 3.85)
    squared = tversky_index(probs, target, alpha=0.3, beta=0.7, gamma=2.0)  # FP 1.0, FN 0.25 + 1
    assert float(squared) == pytest.approx(2.5 / (1.5 + 0.3 + 0.7 * 1.25 + 1))


@pytest.mark.parametrize("spec", ["ce", "dice", "dicece", "tversky", "focaltversky", "ce:1,tversky:0.5"])
def test_softmax_losses_prefer_the_right_answer(spec):
    labels = torch.zeros(1, 6, 6, 6, dtype=torch.long)
    labels[0, 2:4, 2:4, 2:4] = 1
    target = torch.nn.functional.one_hot(labels, 2).permute(0, 4, 1, 2, 3).float()
    loss = build_loss(parse_loss(spec), activation="softmax", class_weights=[1.0, 4.0])
    right, wrong = 8 * (2 * target - 1), 8 * (1 - 2 * target)
    assert float(loss(right, target)) < 0.05 * float(loss(wrong, target))


@pytest.mark.parametrize("spec", ["bce", "mse", "dice", "tversky", "focaltversky"])
def test_sigmoid_losses_prefer_the_right_answer(spec):
    heat = torch.zeros(1, 2, 6, 6, 6)
    heat[0, 1, 2:4, 2:4, 2:4] = 1.0
    loss = build_loss(parse_loss(spec), activation="sigmoid", class_weights=[8.0, 8.0])
    assert float(loss(8 * (2 * heat - 1), heat)) < 0.05 * float(loss(8 * (1 - 2 * heat), heat))


def test_losses_refuse_the_wrong_target_kind():
    with pytest.raises(UsageError, match="loss 'ce' does not apply to heatmap targets"):
        build_loss([("ce", 1.0)], activation="sigmoid", class_weights=[1.0])
    with pytest.raises(ConfigError, match="unknown loss 'l1'"):
        build_loss([("l1", 1.0)], activation="softmax", class_weights=[1.0])
    with pytest.raises(ConfigError, match="no loss terms"):
        build_loss((), activation="softmax", class_weights=[1.0])


# ----------------------------------------------------------------------------- sampling and augmentation


def test_balanced_crops_follow_rare_classes():
    common = Centres(np.tile([[10.0, 10.0, 10.0]], (50, 1)), np.zeros(50, int), np.full(50, 3.0))
    rare = Centres(np.array([[30.0, 30.0, 30.0]]), np.array([1]), np.array([3.0]))
    sampler = PatchSampler([(40, 40, 40), (40, 40, 40)], [common, rare], crop=(8, 8, 8), balanced=1.0, jitter=0.5)
    rng = np.random.default_rng(0)
    draws = [sampler.draw(rng) for _ in range(400)]
    assert 150 < sum(volume == 1 for volume, _ in draws) < 250
    for volume, start in draws:
        centre = 10 if volume == 0 else 30
        assert all(centre - 6 <= s <= centre - 2 for s in start)  # particle within +-2 voxels of the crop centre


def test_uniform_crops_stay_inside_and_small_volumes_are_padded():
    sampler = PatchSampler(
        [(10, 20, 30)],
        [Centres(np.empty((0, 3)), np.empty(0, int), np.empty(0))],
        crop=(12, 8, 8),
        balanced=0.8,
        jitter=0.5,
    )
    rng = np.random.default_rng(1)
    for _ in range(50):
        _, (z, y, x) = sampler.draw(rng)
        assert z == -1 and 0 <= y <= 12 and 0 <= x <= 22
    crop = extract_crop(np.ones((10, 20, 30), np.float32), (-1, 0, 0), (12, 8, 8), fill=0.0)
    assert crop.shape == (12, 8, 8) and crop[0].sum() == 0 and crop[11].sum() == 0 and crop[1:11].all()


# every intensity augmentation of AugmentConfig off: tests switch one back on at a time
INTENSITY_OFF = dict(
    contrast_p=0.0, gamma_p=0.0, blur_p=0.0, noise_p=0.0, spectral_noise_p=0.0, lowpass_p=0.0, scale=0.0, shift=0.0
)


def test_augmentation_moves_image_and_target_together():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(6, 10, 10)).astype(np.float32)
    labels = (image > 1).astype(np.uint8)
    config = AugmentConfig(
        rotate_p=0.0,
        scale=0.0,
        shift=0.0,
        noise_p=0.0,
        contrast_p=0.0,
        gamma_p=0.0,
        blur_p=0.0,
        spectral_noise_p=0.0,
        lowpass_p=0.0,
        particle_gain_p=0.0,
    )
    for seed in range(8):
        out_image, out_target = augment_pair(image, one_hot(labels, 2), config=config, rng=np.random.default_rng(seed))
        assert np.array_equal(out_image > 1, out_target[1] == 1)
    first = augment_pair(image, one_hot(labels, 2), config=AugmentConfig(), rng=np.random.default_rng(5))
    again = augment_pair(image, one_hot(labels, 2), config=AugmentConfig(), rng=np.random.default_rng(5))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_intensity_augmentation_spans_the_configured_ranges():
    from czii_cli.training.augment import augment_intensity

    patch = np.random.default_rng(4).normal(size=(6, 10, 10)).astype(np.float32)
    off = INTENSITY_OFF
    factors = []
    for seed in range(200):
        out = augment_intensity(
            patch.copy(), config=AugmentConfig(**{**off, "contrast_p": 1.0}), rng=np.random.default_rng(seed)
        )
        factor = out / patch
        np.testing.assert_allclose(factor, factor.flat[0], rtol=1e-5)  # one factor for the whole patch
        factors.append(float(factor.flat[0]))
    assert 0.5 <= min(factors) < 0.6 and 1.8 < max(factors) <= 2.0
    for change in ({"gamma_p": 1.0}, {"blur_p": 1.0}, {"noise_p": 1.0}, {"spectral_noise_p": 1.0}, {"lowpass_p": 1.0}):
        out = augment_intensity(patch.copy(), config=AugmentConfig(**{**off, **change}), rng=np.random.default_rng(0))
        assert not np.allclose(out, patch), change
        assert out.mean() == pytest.approx(patch.mean(), abs=1e-5) and out.std() == pytest.approx(patch.std(), rel=1e-4)
    flat = np.full((2, 3, 3), 0.5, np.float32)  # nothing to rescale: left as it is
    assert np.array_equal(
        augment_intensity(flat.copy(), config=AugmentConfig(**{**off, "gamma_p": 1.0}), rng=np.random.default_rng(0)),
        flat,
    )


def test_the_lowpass_gain_darkens_smooth_particles_against_fine_noise_at_the_same_spread():
    """A dark ball (radius 4) in a +-0.5 checkerboard: the low-pass band holds the ball and almost none
    of the checkerboard, so after the gain and the rescale to the former spread the ball is darker and
    the checkerboard fainter, both in units of the patch's standard deviation."""
    from czii_cli.training.augment import augment_intensity

    z, y, x = np.indices((16, 16, 16))
    ball = ((z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2 <= 16).astype(np.float32)
    checker = 0.5 * (-1.0) ** (z + y + x)
    patch = (checker - ball).astype(np.float32)
    off = {name: value for name, value in INTENSITY_OFF.items() if name != "lowpass_p"}
    boost = AugmentConfig(**off, lowpass_gain=2.0, lowpass_p=1.0, lowpass_sigma=2.0)
    out = augment_intensity(patch.copy(), config=boost, rng=np.random.default_rng(1))
    assert out.mean() == pytest.approx(patch.mean(), abs=1e-5) and out.std() == pytest.approx(patch.std(), rel=1e-4)

    def contrast(image):  # ball depth and checkerboard amplitude, in standard deviations of the patch
        inside, outside = image[ball > 0], image[(ball == 0) & (np.abs(z - 8) > 6)]
        return (outside.mean() - inside.mean()) / image.std(), np.abs(outside - outside.mean()).mean() / image.std()

    (depth, fine), (new_depth, new_fine) = contrast(patch), contrast(out)
    assert new_depth > 1.5 * depth and new_fine < 0.85 * fine  # 1.73 -> 2.69 and 0.91 -> 0.75 sd
    # disabled, it changes nothing and draws nothing from the generator
    disabled = AugmentConfig(**off, lowpass_p=0.0)
    assert np.array_equal(augment_intensity(patch.copy(), config=disabled, rng=np.random.default_rng(1)), patch)
    draws = np.random.default_rng(1)
    augment_intensity(patch.copy(), config=disabled, rng=draws)
    assert draws.random() == np.random.default_rng(1).random(5)[-1]  # after contrast, gamma, blur and noise


def test_the_spectral_noise_fills_only_the_frequencies_the_patch_has():
    """A patch band-limited by hand (a missing-wedge-like cut: every Fourier component with
    |kz| > |kx| zeroed) gets noise with its own spectrum: the cut frequencies stay empty, the
    patch keeps its mean and spread, the patch is no longer the same, and the added noise is
    as strong as asked; white noise of the same level would fill the cut."""
    import scipy.fft

    from czii_cli.training.augment import augment_intensity, spectral_noise

    shape = (16, 16, 16)
    kz = scipy.fft.fftfreq(16)[:, None, None]
    kx = scipy.fft.rfftfreq(16)[None, None, :]
    cut = np.broadcast_to(np.abs(kz) > np.abs(kx), (16, 16, 9))
    spectrum = scipy.fft.rfftn(np.random.default_rng(0).normal(size=shape))
    spectrum[cut] = 0
    patch = (scipy.fft.irfftn(spectrum, s=shape) + 0.25).astype(np.float32)
    out = spectral_noise(patch, level=1.0, rng=np.random.default_rng(1))
    assert out.dtype == np.float32
    assert out.mean() == pytest.approx(patch.mean(), abs=1e-5) and out.std() == pytest.approx(patch.std(), rel=1e-4)
    power = np.abs(scipy.fft.rfftn(out)) ** 2
    assert power[cut].max() < 1e-6 * power[~cut].max()
    # noise of the patch's own sd, then rescaled: the patch keeps 1/sqrt(2) of its share
    centred = lambda a: (a - a.mean()).ravel()  # noqa: E731
    correlation = float(np.dot(centred(out), centred(patch)) / (out.std() * patch.std() * out.size))
    assert correlation == pytest.approx(2**-0.5, abs=0.05)
    white = patch + np.random.default_rng(1).normal(0, patch.std(), size=shape).astype(np.float32)
    assert (np.abs(scipy.fft.rfftn(white)) ** 2)[cut].max() > 0.01 * power[~cut].max()
    # through augment_intensity: seeded, and drawing nothing when disabled
    off = INTENSITY_OFF
    on = AugmentConfig(**{**off, "spectral_noise_p": 1.0}, spectral_noise=1.0)
    first = augment_intensity(patch.copy(), config=on, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(first, augment_intensity(patch.copy(), config=on, rng=np.random.default_rng(2)))
    assert not np.allclose(first, patch)
    draws = np.random.default_rng(2)
    disabled = augment_intensity(patch.copy(), config=AugmentConfig(**off, spectral_noise=1.0), rng=draws)
    np.testing.assert_array_equal(disabled, patch)
    assert draws.random() == np.random.default_rng(2).random(5)[-1]  # after contrast, gamma, blur and noise


def test_the_ctf_ripple_damps_and_inverts_fine_detail_as_another_defocus_would():
    """Plane waves along x pass through the ripple cos(pi/2 (k/k0)^2) with exact factors: the
    constant term unchanged, a wave at the first zero k0 removed, one at sqrt(2) k0 inverted,
    a coarse one (k0 / 4) nearly kept (cos(pi/32)); through augment_intensity the patch keeps its
    mean and spread, the result is seeded, nothing is drawn when disabled, and a first zero
    outside (0, 0.5] cycles per voxel is refused by name."""
    from czii_cli.training.augment import augment_intensity, ctf_modulation

    x = np.arange(16, dtype=np.float32)
    wave = lambda period: np.broadcast_to(np.cos(2 * np.pi * x / period), (4, 4, 16)).astype(np.float32)  # noqa: E731
    k0 = 0.25 * 2**-0.5  # so that sqrt(2) k0 = 1/4: a period of 4 voxels
    np.testing.assert_allclose(ctf_modulation(wave(4) + 3, first_zero=k0), 3 - wave(4), atol=1e-5)
    np.testing.assert_allclose(ctf_modulation(wave(4), first_zero=0.25), 0, atol=1e-5)
    np.testing.assert_allclose(ctf_modulation(wave(16), first_zero=0.25), np.cos(np.pi / 32) * wave(16), atol=1e-5)
    patch = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32) + 0.5
    off = INTENSITY_OFF
    on = AugmentConfig(**off, ctf_p=1.0)
    first = augment_intensity(patch.copy(), config=on, rng=np.random.default_rng(2))
    assert first.mean() == pytest.approx(patch.mean(), abs=1e-5) and first.std() == pytest.approx(patch.std(), rel=1e-4)
    assert not np.allclose(first, patch)
    np.testing.assert_array_equal(first, augment_intensity(patch.copy(), config=on, rng=np.random.default_rng(2)))
    draws = np.random.default_rng(2)
    np.testing.assert_array_equal(augment_intensity(patch.copy(), config=AugmentConfig(**off), rng=draws), patch)
    assert draws.random() == np.random.default_rng(2).random(5)[-1]  # after contrast, gamma, blur and noise
    for zero in (0.0, 0.6):
        with pytest.raises(ConfigError, match="ctf_zero must lie in"):
            TrainConfig(augment=AugmentConfig(ctf_p=0.5, ctf_zero=zero))


def test_the_particle_gain_darkens_the_marked_particle_alone():
    """Two equal dark balls (radius 3) in white noise; the target marks the core of the first only
    (radius 1.5, as labels at 0.5 r do).  After the gain the marked ball is darker in units of the
    patch's spread, the unmarked one is not, and the noise far from both keeps its level."""
    from czii_cli.training.augment import particle_gain, target_foreground

    z, y, x = np.indices((16, 16, 32))
    first = (z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2
    second = (z - 8) ** 2 + (y - 8) ** 2 + (x - 24) ** 2
    noise = np.random.default_rng(0).normal(0.0, 0.3, size=z.shape)
    patch = (noise - (first <= 9) - (second <= 9)).astype(np.float32)
    labels = (first <= 2.25).astype(np.uint8)
    foreground = target_foreground(one_hot(labels, 2))
    np.testing.assert_array_equal(foreground, labels)
    out = particle_gain(patch, foreground, gain=1.5, sigma=2.0)
    assert out.mean() == pytest.approx(patch.mean(), abs=1e-5) and out.std() == pytest.approx(patch.std(), rel=1e-4)

    def depth(image, inside):  # how far a ball lies below the far background, in spreads of the patch
        far = (first > 49) & (second > 49)
        return (image[far].mean() - image[inside].mean()) / image.std()

    assert depth(out, first <= 9) > 1.3 * depth(patch, first <= 9)  # 2.91 -> 4.15 spreads
    assert depth(out, second <= 9) < depth(patch, second <= 9)  # 2.78 -> 2.55: the patch's spread grew
    far = (first > 49) & (second > 49)
    assert out[far].std() / out.std() == pytest.approx(patch[far].std() / patch.std(), rel=0.1)  # 0.87 -> 0.80
    assert np.array_equal(particle_gain(patch, np.zeros_like(foreground), gain=1.5, sigma=2.0), patch)


def test_the_particle_gain_is_on_by_default_draws_nothing_when_disabled_and_is_seeded_when_enabled():
    assert AugmentConfig().particle_gain == 2.0 and AugmentConfig().particle_gain_p == 0.5
    rng = np.random.default_rng(2)
    image = rng.normal(size=(8, 12, 12)).astype(np.float32)
    labels = np.zeros(image.shape, np.uint8)
    labels[3:5, 5:7, 5:7] = 1
    off = AugmentConfig(particle_gain=0.0)
    without_gain = augment_pair(image, one_hot(labels, 2), config=off, rng=np.random.default_rng(7))
    disabled = AugmentConfig(particle_gain=2.0, particle_gain_p=0.0)
    again = augment_pair(image, one_hot(labels, 2), config=disabled, rng=np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(without_gain, again))
    enabled = AugmentConfig(particle_gain=2.0, particle_gain_p=1.0)
    first = augment_pair(image, one_hot(labels, 2), config=enabled, rng=np.random.default_rng(7))
    second = augment_pair(image, one_hot(labels, 2), config=enabled, rng=np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], without_gain[0])
    np.testing.assert_array_equal(first[1], without_gain[1])  # the target is not touched


def test_heatmap_targets_mark_particles_by_their_largest_channel():
    from czii_cli.training.augment import target_foreground

    heatmap = np.zeros((2, 1, 1, 4), np.float32)
    heatmap[0, 0, 0, 1], heatmap[1, 0, 0, 2], heatmap[1, 0, 0, 1] = 0.8, 0.6, 0.1
    np.testing.assert_allclose(target_foreground(heatmap)[0, 0], [0.0, 0.8, 0.6, 0.0])


def test_rotation_uses_the_margin_and_keeps_probabilities():
    config = AugmentConfig(rotate_p=1.0, rotate_degrees=10.0, flip=0.0, rot90=False, scale=0, shift=0, noise_p=0)
    margin = config.rotation_margin((8, 8))
    image = np.random.default_rng(0).normal(size=(4, 8 + 2 * margin, 8 + 2 * margin)).astype(np.float32)
    labels = (image > 0).astype(np.uint8)
    out_image, out_target = augment_pair(
        image, one_hot(labels, 2), config=config, rng=np.random.default_rng(0), margin=margin
    )
    assert out_image.shape == (4, 8, 8) and out_target.shape == (2, 4, 8, 8)
    np.testing.assert_allclose(out_target.sum(axis=0), 1.0, rtol=1e-5)


def test_mixup_blends_targets_like_images():
    images = np.stack([np.zeros((1, 2, 2, 2)), np.ones((1, 2, 2, 2))]).astype(np.float32)
    targets = np.stack([np.zeros((2, 2, 2, 2)), np.ones((2, 2, 2, 2))]).astype(np.float32)
    mixed, mixed_targets = mixup(images, targets, config=AugmentConfig(mixup_p=1.0), rng=np.random.default_rng(2))
    np.testing.assert_allclose(mixed_targets[:, 0], mixed[:, 0])
    unchanged = mixup(images, targets, config=AugmentConfig(mixup_p=0.0), rng=np.random.default_rng(2))
    assert unchanged[0] is images


# ----------------------------------------------------------------------------- training pieces


def test_learning_rate_warms_up_then_decays():
    rates = [learning_rate(s, base=1e-3, warmup=10, total=100) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and max(rates) == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])) and rates[-1] == pytest.approx(1e-5)


def test_random_states_round_trip_through_a_safe_checkpoint(tmp_path):
    rng = np.random.default_rng(11)
    rng.random(5)
    torch.save({"rng": rng_state(rng)}, tmp_path / "s.pt")
    expected_numpy, expected_torch = rng.random(3), torch.rand(3)
    restore_rng_state(rng, torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    np.testing.assert_array_equal(rng.random(3), expected_numpy)
    torch.testing.assert_close(torch.rand(3), expected_torch)


def test_trainer_state_round_trip_continues_identically(tmp_path):
    config = TrainConfig(
        loss=(("ce", 1.0), ("tversky", 0.5)), patch=(8, 8, 8), steps_per_epoch=4, epochs=1, warmup_steps=1
    )
    images = np.random.default_rng(0).normal(size=(2, 1, 8, 8, 8)).astype(np.float32)
    targets = one_hot((images[:, 0] > 0).astype(np.uint8), 2).transpose(1, 0, 2, 3, 4).copy()

    def trainer():
        torch.manual_seed(0)
        network = build_network("light", in_channels=1, out_channels=2, params={"channels": [4, 8]})
        return Trainer(network, config=config, activation="softmax", class_weights=[1, 4], device=torch.device("cpu"))

    straight = trainer()
    for _ in range(3):
        straight.train_step(images, targets)
    first = trainer()
    first.train_step(images, targets)
    torch.save(first.state(), tmp_path / "state.pt")
    second = trainer()
    second.load_state(torch.load(tmp_path / "state.pt", weights_only=True))
    second.train_step(images, targets)
    second.train_step(images, targets)
    assert second.step == 3
    for key, value in straight.weights().items():
        torch.testing.assert_close(second.weights()[key], value, rtol=0, atol=0)


def test_config_json_round_trip_and_unknown_settings():
    config = TrainConfig(patch=(32, 48, 48), augment=AugmentConfig(mixup_p=0.2), max_time=60.0)
    assert TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    with pytest.raises(UsageError, match="unknown training setting 'epoch'"):
        TrainConfig.from_json({"epoch": 3})
    with pytest.raises(UsageError, match="training setting 'batch_size' must be >= 1"):
        TrainConfig(batch_size=0)


def test_split_by_experiment():
    assert split_runs(["c", "a", "b"], fold=(0, 3)) == (["b", "c"], ["a"])
    with pytest.raises(UsageError, match="no runs left for training"):
        split_runs(["a"], val_runs=["a"])
    with pytest.raises(UsageError, match="not both"):
        split_runs(["a", "b"], val_runs=["a"], fold=(0, 2))
