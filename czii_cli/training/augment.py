"""Patch augmentation for training, driven by one seeded ``numpy.random.Generator``.

Geometric transforms act on the image and its target together: flips on all three axes,
rot90 in the x-y plane only (the missing wedge makes z special), and small rotations
about z.  Intensity transforms act on the image only and model what differs between
tomograms (:func:`augment_intensity`): contrast, gamma, blur (defocus, resolution), a
CTF-like ripple (defocus), noise level (SNR, as white noise or as noise with the patch's
own spectrum), then a small scale and shift; one of them, the particle gain, uses the
target to darken the particles alone (:func:`particle_gain`).
Mixup blends two samples of a batch.  Targets are class-first (``[C, Z, Y, X]``), one-hot
or heatmap, so mixup and rotation keep them meaningful.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from scipy import ndimage

from .config import AugmentConfig


def augment_pair(
    image: np.ndarray, target: np.ndarray, *, config: AugmentConfig, rng: np.random.Generator, margin: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Augment one training sample.

    Parameters
    ----------
    image : ndarray, shape (Z, Y + 2 margin, X + 2 margin)
        Normalized image crop, with ``margin`` extra voxels on each side in y and x.
    target : ndarray, shape (C, Z, Y + 2 margin, X + 2 margin)
        Class-first target of the same crop.
    config : AugmentConfig
    rng : numpy.random.Generator
    margin : int
        The y-x margin to rotate into and then cut away (see
        :meth:`AugmentConfig.rotation_margin`).

    Returns
    -------
    image, target : float32 arrays of the patch shape (margin removed).

    Examples
    --------
    >>> img = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    >>> tgt = np.stack([img == 0, img != 0]).astype(np.float32)
    >>> still = AugmentConfig(rotate_p=0, scale=0, shift=0, noise_p=0, contrast_p=0, gamma_p=0, blur_p=0,
    ...                       spectral_noise_p=0, lowpass_p=0, particle_gain_p=0)
    >>> a, t = augment_pair(img, tgt, config=still, rng=np.random.default_rng(0))
    >>> sorted(a.ravel().tolist()) == list(range(8)), bool(((a == 0) == (t[0] == 1)).all())
    (True, True)
    """
    if margin and rng.random() < config.rotate_p:
        angle = float(rng.uniform(-config.rotate_degrees, config.rotate_degrees))
        image = ndimage.rotate(image, angle, axes=(1, 2), reshape=False, order=1, mode="nearest")
        target = ndimage.rotate(target, angle, axes=(2, 3), reshape=False, order=1, mode="nearest")
    if margin:
        image = image[:, margin:-margin, margin:-margin]
        target = target[:, :, margin:-margin, margin:-margin]
    for axis in range(3):
        if rng.random() < config.flip:
            image = np.flip(image, axis)
            target = np.flip(target, axis + 1)
    if config.rot90:
        turns = int(rng.integers(4)) if image.shape[1] == image.shape[2] else 2 * int(rng.integers(2))
        image = np.rot90(image, turns, axes=(1, 2))
        target = np.rot90(target, turns, axes=(2, 3))
    image = np.array(image, dtype=np.float32)
    target = np.array(target, dtype=np.float32)
    if config.particle_gain > 0 and config.particle_gain_p > 0 and rng.random() < config.particle_gain_p:
        gain = float(rng.uniform(0, config.particle_gain))
        image = particle_gain(image, target_foreground(target), gain=gain, sigma=config.particle_sigma)
    return augment_intensity(image, config=config, rng=rng), target


def target_foreground(target: np.ndarray) -> np.ndarray:
    """Where a class-first target ``[C, Z, Y, X]`` marks particles, in [0, 1].

    A one-hot target (channel 0 the background, every voxel summing to 1) gives one minus
    its background; a heatmap target (one channel per class) gives its largest channel.

    Examples
    --------
    >>> one_hot = np.stack([np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])])
    >>> target_foreground(one_hot).tolist()
    [0.0, 1.0, 0.0]
    >>> target_foreground(np.array([[0.25, 0.75, 0.0], [0.5, 0.0, 0.0]])).tolist()
    [0.5, 0.75, 0.0]
    """
    if target.shape[0] > 1 and np.allclose(target.sum(axis=0), 1.0):
        return np.asarray(1.0 - target[0], dtype=np.float32)
    return np.asarray(target.max(axis=0), dtype=np.float32)


def particle_gain(image: np.ndarray, foreground: np.ndarray, *, gain: float, sigma: float) -> np.ndarray:
    """Darken the particles of a patch against its noise and other content.

    Parameters
    ----------
    image : float32 ndarray, shape (Z, Y, X)
        Normalized patch.
    foreground : ndarray, shape (Z, Y, X)
        Where the target marks particles (:func:`target_foreground`), in [0, 1].
    gain : float
        Multiple of the patch's fine low-pass (Gaussian, 1 voxel: the particles' density
        and a little of the noise) added inside the particles.
    sigma : float
        Gaussian (voxels) that widens the foreground into a soft mask over whole
        particles (targets mark their cores), scaled to 1 at its maximum.

    Returns
    -------
    float32 ndarray
        The patch with ``gain x mask x low-pass`` added, rescaled to its mean and spread;
        the patch itself when it has no foreground.

    Examples
    --------
    >>> image = np.zeros((1, 1, 5), np.float32); image[0, 0, 2] = 1.0
    >>> foreground = np.zeros((1, 1, 5), np.float32)
    >>> bool(np.array_equal(particle_gain(image, foreground, gain=1.0, sigma=1.0), image))
    True
    """
    mask = ndimage.gaussian_filter(np.asarray(foreground, dtype=np.float32), sigma, mode="constant")
    peak = float(mask.max())
    if peak <= 0 or gain <= 0:
        return image
    band = ndimage.gaussian_filter(image, 1.0, mode="nearest")
    return _keeping_spread(image, image + np.float32(gain / peak) * mask * band)


def augment_intensity(image: np.ndarray, *, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Change a normalized patch as another tomogram's normalized voxels would differ.

    In turn, each with its probability: a low-pass gain (the patch plus a multiple of its
    Gaussian low-pass band: particles darker at the same noise), contrast (a log-uniform
    factor), gamma on the patch rescaled to [0, 1], Gaussian blur, a CTF-like modulation
    (:func:`ctf_modulation`), white Gaussian noise and noise with the patch's own spectrum
    (:func:`spectral_noise`) (the low-pass gain, blur, modulation and noises keep the
    patch's mean and spread, as a tomogram of another SNR or resolution looks after its
    own normalization), then scale and shift.  The low-pass gain, the modulation and the
    spectral noise draw from ``rng`` only when they are enabled.

    Parameters
    ----------
    image : float32 ndarray, shape (Z, Y, X)
        Modified in place where possible.
    config : AugmentConfig
    rng : numpy.random.Generator

    Returns
    -------
    float32 ndarray

    Examples
    --------
    >>> patch = np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32)
    >>> off = AugmentConfig(contrast_p=0, gamma_p=0, blur_p=0, noise_p=0, spectral_noise_p=0, lowpass_p=0,
    ...                     scale=0, shift=0)
    >>> bool(np.array_equal(augment_intensity(patch.copy(), config=off, rng=np.random.default_rng(1)), patch))
    True
    >>> noisy = augment_intensity(patch.copy(), config=AugmentConfig(contrast_p=0, gamma_p=0, blur_p=0, noise_p=1,
    ...                           spectral_noise_p=0, scale=0, shift=0), rng=np.random.default_rng(1))
    >>> bool(abs(noisy.std() - patch.std()) < 1e-3 and not np.allclose(noisy, patch))
    True
    """
    if config.lowpass_gain > 0 and config.lowpass_p > 0 and rng.random() < config.lowpass_p:
        gain = np.float32(rng.uniform(0, config.lowpass_gain))
        band = ndimage.gaussian_filter(image, config.lowpass_sigma, mode="nearest")
        image = _keeping_spread(image, image + gain * band)
    if rng.random() < config.contrast_p and config.contrast > 1:
        image *= np.float32(np.exp(rng.uniform(-np.log(config.contrast), np.log(config.contrast))))
    if rng.random() < config.gamma_p and config.gamma > 0:
        image = _keeping_spread(image, _gamma(image, float(np.exp(rng.uniform(-config.gamma, config.gamma)))))
    if rng.random() < config.blur_p and config.blur > 0:
        sigma = float(rng.uniform(0.25, max(config.blur, 0.25)))
        image = _keeping_spread(image, ndimage.gaussian_filter(image, sigma, mode="nearest"))
    if config.ctf_p > 0 and rng.random() < config.ctf_p:
        zero = float(rng.uniform(config.ctf_zero, 0.5))
        image = _keeping_spread(image, ctf_modulation(image, first_zero=zero))
    if rng.random() < config.noise_p and config.noise > 0:
        sigma = float(rng.uniform(0, config.noise)) * float(image.std())
        image = _keeping_spread(image, image + rng.normal(0.0, sigma, size=image.shape).astype(np.float32))
    if config.spectral_noise > 0 and config.spectral_noise_p > 0 and rng.random() < config.spectral_noise_p:
        image = spectral_noise(image, level=float(rng.uniform(0, config.spectral_noise)), rng=rng)
    if config.scale or config.shift:
        image *= np.float32(rng.uniform(1 - config.scale, 1 + config.scale))
        image += np.float32(rng.uniform(-config.shift, config.shift))
    return image


def ctf_modulation(image: np.ndarray, *, first_zero: float) -> np.ndarray:
    """Multiply the patch's spectrum by ``cos(pi / 2 * (k / first_zero)^2)``, a CTF-like ripple.

    The factor is 1 at the constant term, falls to 0 at ``|k| = first_zero``, reaches -1
    at ``sqrt(2) * first_zero`` and rises again, as the oscillation of a contrast transfer
    function does: a tomogram taken at another defocus has its zeros, and the bands whose
    sign its CTF flips, elsewhere.  Low frequencies, where a particle's shape lives, pass
    almost unchanged; fine detail is damped or inverted.

    Parameters
    ----------
    image : float32 ndarray, shape (Z, Y, X)
    first_zero : float
        Spatial frequency of the first zero, in cycles per voxel (Nyquist is 0.5).

    Returns
    -------
    float32 ndarray
        The modulated patch (its mean kept, its spread not rescaled).

    Examples
    --------
    >>> patch = np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32)
    >>> out = ctf_modulation(patch, first_zero=0.3)
    >>> bool(np.isclose(out.mean(), patch.mean(), atol=1e-6) and not np.allclose(out, patch))
    True
    """
    if not first_zero > 0:
        raise ValueError(f"first_zero must be a positive frequency in cycles per voxel, got {first_zero}")
    nz, ny, nx = image.shape
    kz = scipy.fft.fftfreq(nz).astype(np.float32)[:, None, None]
    ky = scipy.fft.fftfreq(ny).astype(np.float32)[None, :, None]
    kx = scipy.fft.rfftfreq(nx).astype(np.float32)[None, None, :]
    ripple = np.cos(np.float32(math.pi / 2 / first_zero**2) * (kz**2 + ky**2 + kx**2))
    return scipy.fft.irfftn(scipy.fft.rfftn(image) * ripple, s=image.shape).astype(np.float32)


def spectral_noise(image: np.ndarray, *, level: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise shaped by the patch's own amplitude spectrum, keeping its spread.

    White noise is filtered by ``|rfftn(image)|`` (the constant term removed), so the
    added noise has the patch's power spectrum: the CTF band pass and the missing wedge
    that shaped the tomogram's own noise shape it too, and frequencies the patch lacks
    stay empty.

    Parameters
    ----------
    image : float32 ndarray, shape (Z, Y, X)
    level : float
        Standard deviation of the added noise relative to the patch's.
    rng : numpy.random.Generator

    Returns
    -------
    float32 ndarray
        The noisier patch, at the mean and standard deviation of ``image``.

    Examples
    --------
    >>> patch = np.random.default_rng(0).normal(size=(4, 8, 8)).astype(np.float32)
    >>> out = spectral_noise(patch, level=1.0, rng=np.random.default_rng(1))
    >>> bool(np.isclose(out.std(), patch.std()) and not np.allclose(out, patch))
    True
    """
    amplitude = np.abs(scipy.fft.rfftn(image))
    amplitude[0, 0, 0] = 0.0
    white = rng.standard_normal(image.shape, dtype=np.float32)
    noise = scipy.fft.irfftn(scipy.fft.rfftn(white) * amplitude, s=image.shape).astype(np.float32)
    spread = float(noise.std())
    if spread == 0:
        return image
    noise *= np.float32(level * float(image.std()) / spread)
    return _keeping_spread(image, image + noise)


def _gamma(image: np.ndarray, exponent: float) -> np.ndarray:
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return image
    return np.power((image - low) / (high - low), exponent, dtype=np.float32)


def _keeping_spread(reference: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """``changed`` shifted and scaled to the mean and standard deviation of ``reference``."""
    spread = float(changed.std())
    if spread == 0:
        return changed.astype(np.float32, copy=False)
    out = (changed - np.float32(changed.mean())) * np.float32(float(reference.std()) / spread)
    return (out + np.float32(reference.mean())).astype(np.float32, copy=False)


def mixup(
    images: np.ndarray, targets: np.ndarray, *, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Blend samples of a batch with a shuffled copy of it (per sample with ``mixup_p``).

    Examples
    --------
    >>> x = np.stack([np.zeros((1, 1, 1, 1)), np.ones((1, 1, 1, 1))]).astype(np.float32)
    >>> m, _ = mixup(x, x.copy(), config=AugmentConfig(mixup_p=1.0), rng=np.random.default_rng(0))
    >>> m.shape, bool(((0 <= m) & (m <= 1)).all())
    ((2, 1, 1, 1, 1), True)
    """
    if config.mixup_p <= 0 or len(images) < 2:
        return images, targets
    partner = rng.permutation(len(images))
    chosen = rng.random(len(images)) < config.mixup_p
    lam = rng.beta(config.mixup_alpha, config.mixup_alpha, size=len(images)).astype(np.float32)
    lam = np.where(chosen, lam, np.float32(1.0)).reshape(-1, *([1] * (images.ndim - 1)))
    return lam * images + (1 - lam) * images[partner], lam * targets + (1 - lam) * targets[partner]
