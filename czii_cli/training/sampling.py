"""Where to crop training patches: uniformly at random, or class-balanced around particles.

A class-balanced crop picks a class uniformly among those with particles, then one of its
particles, and centres the crop on it with a uniform jitter, so rare classes are seen as
often as common ones.  All choices come from one seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from ..make_labels import Centres


def clamp_start(
    centre_start: npt.NDArray[np.integer[Any]],
    shape: Sequence[int],
    crop: Sequence[int] | npt.NDArray[np.integer[Any]],
) -> tuple[int, int, int]:
    """Keep a crop inside the volume; a volume smaller than the crop gets it centred.

    Examples
    --------
    >>> clamp_start(np.array([-3, 5, 30]), (10, 10, 40), (4, 12, 8))
    (0, -1, 30)
    """
    start: list[int] = []
    for value, size, length in zip(centre_start, shape, crop):
        if length >= size:
            start.append(-((length - size + 1) // 2))
        else:
            start.append(int(min(max(int(value), 0), size - length)))
    # One entry per zyx axis: the centre, shape and crop are all three long.
    return cast(tuple[int, int, int], tuple(start))


class PatchSampler:
    """Draw crop positions over several volumes.

    Parameters
    ----------
    shapes : list of (Z, Y, X)
        Spatial shape of each training volume.
    centres : list of Centres
        Particles of each volume, in voxels.
    crop : (Z, Y, X)
        Crop size (the patch plus any augmentation margin).
    balanced : float
        Fraction of class-balanced crops; the rest are uniform.
    jitter : float
        Largest offset of the particle from the crop centre, as a fraction of half the
        patch side.
    patch : (Z, Y, X), optional
        The patch the network sees (jitter is relative to it); defaults to ``crop``.

    Examples
    --------
    >>> c = Centres(np.array([[5.0, 5.0, 5.0]]), np.array([0]), np.array([3.0]))
    >>> s = PatchSampler([(20, 20, 20)], [c], crop=(4, 4, 4), balanced=1.0, jitter=0.0)
    >>> s.draw(np.random.default_rng(0))
    (0, (3, 3, 3))
    """

    def __init__(
        self,
        shapes: Sequence[Sequence[int]],
        centres: Sequence[Centres],
        *,
        crop: Sequence[int],
        balanced: float,
        jitter: float,
        patch: Sequence[int] | None = None,
    ):
        self.shapes = [tuple(int(s) for s in shape) for shape in shapes]
        self.crop = np.asarray(crop, dtype=np.int64)
        self.patch = np.asarray(patch if patch is not None else crop, dtype=np.int64)
        self.balanced = float(balanced)
        self.jitter = float(jitter)
        sizes = np.array([np.prod(shape, dtype=np.float64) for shape in self.shapes])
        self.volume_weights = sizes / sizes.sum()
        volume_of = [np.full(len(c.zyx), v) for v, c in enumerate(centres)]
        all_volumes = np.concatenate(volume_of) if volume_of else np.empty(0, dtype=np.int64)
        all_zyx = np.concatenate([c.zyx for c in centres]) if centres else np.empty((0, 3))
        all_channels = np.concatenate([c.channel for c in centres]) if centres else np.empty(0, dtype=np.int64)
        self.particles_by_class = {
            int(channel): (all_volumes[all_channels == channel], all_zyx[all_channels == channel])
            for channel in np.unique(all_channels)
        }

    def draw(self, rng: np.random.Generator) -> tuple[int, tuple[int, int, int]]:
        """One crop: ``(volume index, start zyx)``; starts may be negative for small volumes."""
        if self.particles_by_class and rng.random() < self.balanced:
            classes = sorted(self.particles_by_class)
            volumes, zyx = self.particles_by_class[classes[int(rng.integers(len(classes)))]]
            pick = int(rng.integers(len(volumes)))
            half = self.patch / 2.0
            offset = rng.uniform(-1.0, 1.0, size=3) * self.jitter * half
            start = np.floor(zyx[pick] + offset - self.crop / 2.0 + 0.5).astype(np.int64)
            volume = int(volumes[pick])
        else:
            volume = int(rng.choice(len(self.shapes), p=self.volume_weights))
            shape = np.asarray(self.shapes[volume])
            room = np.maximum(shape - self.crop, 0)
            start = np.array([int(rng.integers(r + 1)) for r in room])
        return volume, clamp_start(start, self.shapes[volume], self.crop)


def extract_crop(
    array: npt.NDArray[Any], start: Sequence[int], size: Sequence[int], *, fill: float = 0.0
) -> np.ndarray:
    """Read the crop ``[start, start + size)`` of the last three axes, padding outside with ``fill``.

    Examples
    --------
    >>> extract_crop(np.arange(4).reshape(1, 1, 4), (0, 0, 2), (1, 1, 4), fill=-1).tolist()
    [[[2, 3, -1, -1]]]
    """
    spatial = array.shape[-3:]
    source, destination = [], []
    for begin, length, extent in zip(start, size, spatial):
        low, high = max(begin, 0), min(begin + length, extent)
        source.append(slice(low, max(low, high)))
        destination.append(slice(low - begin, low - begin + max(0, high - low)))
    lead = (slice(None),) * (array.ndim - 3)
    block = np.asarray(array[lead + tuple(source)])
    if block.shape[-3:] == tuple(size):
        return block
    out = np.full(array.shape[:-3] + tuple(size), fill, dtype=block.dtype)
    out[lead + tuple(destination)] = block
    return out
