"""Patch augmentation for training, driven by one seeded ``numpy.random.Generator``.

Geometric transforms act on the image and its target together: flips on all three axes,
rot90 in the x-y plane only (the missing wedge makes z special), and small rotations
about z.  Intensity transforms act on the image only: scale and shift, Gaussian noise.
Mixup blends two samples of a batch.  Targets are class-first (``[C, Z, Y, X]``), one-hot
or heatmap, so mixup and rotation keep them meaningful.
"""

from __future__ import annotations

import numpy as np
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
    >>> a, t = augment_pair(img, tgt, config=AugmentConfig(rotate_p=0, scale=0, shift=0, noise_p=0),
    ...                     rng=np.random.default_rng(0))
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
    if config.scale or config.shift:
        image *= np.float32(rng.uniform(1 - config.scale, 1 + config.scale))
        image += np.float32(rng.uniform(-config.shift, config.shift))
    if rng.random() < config.noise_p:
        sigma = rng.uniform(0, config.noise)
        image += rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return image, np.array(target, dtype=np.float32)


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
