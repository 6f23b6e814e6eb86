"""Validation rounds with the real pipeline: sliding-window prediction, picking, F-beta.

Each held-out tomogram is predicted whole with
:func:`czii_cli.inference.predict_volume`, picks are extracted with
:func:`czii_cli.postprocess.extract_picks` (the library's default method) and scored
against the reference picks with :func:`czii_cli.metric.score_picks`, so the number that
selects the best checkpoint is the competition's metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..catalog import Catalog
from ..picks import concat
from .dataset import TrainingVolume


MAX_WINDOW_VOXELS = 1 << 22


def validation_window(shape: Sequence[int], *, multiple: int, minimum: Sequence[int],
                      max_voxels: int = MAX_WINDOW_VOXELS) -> tuple[int, int, int]:
    """A large sliding window for validation: few windows means little overlap work.

    Start from the whole volume (sides rounded up to ``multiple``) and halve the longest
    side until the window holds at most ``max_voxels`` or every side is at ``minimum``.

    Examples
    --------
    >>> validation_window((96, 192, 192), multiple=4, minimum=(64, 64, 64))
    (96, 192, 192)
    >>> validation_window((184, 630, 630), multiple=4, minimum=(64, 64, 64))
    (92, 160, 160)
    """
    def round_up(value: float) -> int:
        return int(math.ceil(value / multiple) * multiple)

    window = [round_up(s) for s in shape]
    while math.prod(window) > max_voxels:
        candidates = [i for i in range(3) if round_up(window[i] / 2) >= minimum[i]]
        if not candidates:
            break
        axis = max(candidates, key=lambda i: window[i])
        window[axis] = round_up(window[axis] / 2)
    return tuple(max(w, m) for w, m in zip(window, minimum))


def validate(
    network: nn.Module,
    volumes: Sequence[TrainingVolume],
    *,
    classes: Sequence[str],
    catalog: Catalog,
    activation: str,
    patch_size: Sequence[int] | None,
    multiple: int,
    minimum: Sequence[int],
    overlap: float,
    threshold: float,
    device: torch.device,
):
    """Score a network on validation volumes.

    Parameters
    ----------
    network : nn.Module
        In eval mode, on ``device``.
    volumes : list of TrainingVolume
        Normalized tomograms with their reference picks.
    classes : list of str
        The network's output channel names (``background`` first for softmax).
    catalog : Catalog
    activation : str
        ``softmax`` or ``sigmoid``.
    patch_size : (Z, Y, X) or None
        Sliding window; None picks :func:`validation_window` per volume.
    multiple, minimum : window sides must be multiples of ``multiple`` (the network's
        down-sampling) and at least ``minimum`` (the training patch).
    overlap : float
    threshold : float
        Pick threshold for every class.
    device : torch.device

    Returns
    -------
    czii_cli.metric.ScoreReport
        ``.score`` (weighted F-beta) and ``.per_class``.
    """
    from ..inference import predict_volume
    from ..metric import score_picks
    from ..postprocess import DEFAULT_METHOD, extract_picks

    predicted = []
    for volume in volumes:
        window = patch_size or validation_window(volume.image.shape, multiple=multiple, minimum=minimum)
        probs = predict_volume(network, volume.image, patch_size=tuple(window), overlap=overlap,
                               activation=activation, device=device)
        predicted.append(
            extract_picks(probs, classes=list(classes), catalog=catalog, method=DEFAULT_METHOD, thresholds=threshold,
                          voxel_size=volume.voxel_size, origin_zyx=volume.origin, run=volume.run)
        )
    return score_picks(concat(predicted), concat(v.picks for v in volumes), catalog)
