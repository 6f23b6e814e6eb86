"""Validation rounds with the real pipeline: sliding-window prediction, picking, F-beta.

Each held-out tomogram is predicted whole with :func:`czii_cli.predict_probs.predict_volume`
and picked with :func:`czii_cli.postprocess.extract_picks` (the library's default
method) at the fixed pick threshold and at a few lower candidate thresholds.  The
competition's metric (:func:`czii_cli.score.score_picks`) scores the picks at the fixed
threshold as they are, and the candidates after per-class score cutoffs tuned on these
same picks (:mod:`czii_cli.tune`, by default with its ``robust`` rule, whose cutoffs are
made to carry over to unseen tomograms), as the competition's solutions chose their
thresholds.  The tuned score judges a checkpoint at its own thresholds, so one class that
peaks just under the fixed threshold for a while does not decide which checkpoint is kept.

Each class takes the candidate threshold that tunes best: connected components at a low
threshold can merge neighbouring particles, and do merge whole tomograms early in
training, while a class whose probabilities are still low is only found there.  The fixed
threshold is always one of the candidate thresholds, so with the exact rule ``best`` the
tuned score is never below the fixed one; the robust rule trades a little of the
validation score for cutoffs that hold elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..catalog import Catalog
from ..picks import Picks, concat
from ..resample import binned_origin
from ..score import ScoreReport, score_picks
from ..tune import DEFAULT_RULE, apply_thresholds, group_events, thresholds_from_events
from .dataset import TrainingVolume

MAX_WINDOW_VOXELS = 1 << 22


def validation_window(
    shape: Sequence[int], *, multiple: int, minimum: Sequence[int], max_voxels: int = MAX_WINDOW_VOXELS
) -> tuple[int, int, int]:
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
    # cast: ``shape`` is a zyx shape, so the window has three sides
    return cast(tuple[int, int, int], tuple(max(w, m) for w, m in zip(window, minimum)))


@dataclass(frozen=True)
class RoundScores:
    """The scores of one validation round.

    Attributes
    ----------
    fixed : czii_cli.score.ScoreReport
        The picks at the fixed threshold.
    tuned : czii_cli.score.ScoreReport
        Per class, the candidates at ``pick_thresholds[class]`` with ``score >= cutoffs[class]``.
    pick_thresholds : dict of str to float
        The tuned candidate threshold of each class that has candidates.
    cutoffs : dict of str to float or None
        The score cutoff of each of those classes; None keeps all of its picks.
    """

    fixed: ScoreReport
    tuned: ScoreReport
    pick_thresholds: dict[str, float]
    cutoffs: dict[str, float | None]


def score_round(
    picks: Mapping[float, Picks],
    references: Picks,
    catalog: Catalog,
    *,
    threshold: float,
    beta: float = 4.0,
    rule: str = DEFAULT_RULE,
) -> RoundScores:
    """Score the picks at the fixed threshold, and the candidates at their F-beta-best thresholds.

    For every candidate threshold the per-class score cutoffs that maximise F-beta are
    tuned on ``references`` themselves; each class then takes the candidate threshold
    whose cutoff scores best (the higher threshold on ties).  With ``rule="best"`` keeping
    every pick is one of the cutoffs, so the tuned F-beta of a class is at least that of
    its picks at any one candidate threshold and cutoff, the fixed threshold included.

    Parameters
    ----------
    picks : mapping of float to Picks
        Scored picks of the same maps at each candidate threshold (all classes).
    references : Picks
        The reference picks.
    catalog : Catalog
    threshold : float
        The fixed threshold: a key of ``picks``.
    beta : float
        Recall weight of F-beta.
    rule : {"robust", "best"}
        How cutoffs are chosen (:func:`czii_cli.tune.best_cutoff`).

    Returns
    -------
    RoundScores

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> refs = Picks.from_points("TS_1", "ribosome", [[0, 0, 0], [500, 0, 0]])
    >>> picks = {0.15: Picks.from_points("TS_1", "ribosome", [[10, 0, 0]], score=[0.9]),
    ...          0.05: Picks.from_points("TS_1", "ribosome", [[10, 0, 0], [510, 0, 0], [900, 0, 0]],
    ...                                  score=[0.9, 0.1, 0.06])}
    >>> result = score_round(picks, refs, DEFAULT_CATALOG, threshold=0.15, rule="best")
    >>> result.pick_thresholds, result.cutoffs
    ({'ribosome': 0.05}, {'ribosome': 0.08})
    >>> round(result.fixed.score, 3), round(result.tuned.score, 3)
    (0.074, 0.143)
    """
    best: dict[str, float] = {}
    pick_thresholds: dict[str, float] = {}
    cutoffs: dict[str, float | None] = {}
    kept_of_class: dict[str, Picks] = {}
    for level in sorted(picks, reverse=True):
        level_cutoffs = thresholds_from_events(
            group_events(picks[level], references, catalog), catalog, beta=beta, rule=rule
        )
        kept = apply_thresholds(picks[level], level_cutoffs)
        level_picks = picks[level]
        found = set(level_picks.particle_type[np.isin(level_picks.experiment, references.experiments)].tolist())
        for name, part in score_picks(kept, references, catalog, beta=beta).per_class.items():
            if name in found and part.fbeta > best.get(name, -1.0):
                best[name], pick_thresholds[name], cutoffs[name] = part.fbeta, level, level_cutoffs.get(name)
                kept_of_class[name] = kept.where(particle_type=name)
    tuned = concat([Picks.empty(with_score=True), *kept_of_class.values()])
    in_catalog_order = [name for name in catalog.names if name in best]
    return RoundScores(
        fixed=score_picks(picks[threshold], references, catalog, beta=beta),
        tuned=score_picks(tuned, references, catalog, beta=beta),
        pick_thresholds={name: pick_thresholds[name] for name in in_catalog_order},
        cutoffs={name: cutoffs[name] for name in in_catalog_order},
    )


def validation_picks(
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
    thresholds: Sequence[float],
    device: torch.device,
    output_stride: int = 1,
) -> list[Picks]:
    """Predict every validation volume once and pick it at each of ``thresholds``.

    At output stride 1 the volumes are predicted with sliding windows; at output stride 2
    (a ``light`` net with ``stem_stride=2``) with halo tiles on the net's half-resolution
    grid, as ``predict-probs --output-stride 2`` predicts, and picked on that grid (twice
    the voxel size, the binned origin), so thresholds tuned on these picks are those of
    such maps.

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
    thresholds : sequence of float
        Pick thresholds, each applied to every class.
    device : torch.device
    output_stride : int
        1 or 2: the grid of the maps (see above).

    Returns
    -------
    list of Picks
        For each threshold, the picks of all volumes (default method, with scores).
    """
    from ..postprocess import DEFAULT_METHOD, extract_picks
    from ..predict_probs import predict_volume

    picked: list[list[Picks]] = [[] for _ in thresholds]
    for volume in volumes:
        window = patch_size or validation_window(volume.image.shape, multiple=multiple, minimum=minimum)
        probs = predict_volume(
            network,
            volume.image,
            patch_size=tuple(window),
            overlap=overlap,
            activation=activation,
            device=device,
            tiling="sliding" if output_stride == 1 else "halo",
            multiple=multiple,
            output_stride=output_stride,
        )
        voxel_size = volume.voxel_size * output_stride
        origin = binned_origin(volume.origin, voxel_size=volume.voxel_size, factor=output_stride)
        for picks, threshold in zip(picked, thresholds):
            picks.append(
                extract_picks(
                    probs,
                    classes=list(classes),
                    catalog=catalog,
                    method=DEFAULT_METHOD,
                    thresholds=threshold,
                    voxel_size=voxel_size,
                    origin_zyx=origin,
                    run=volume.run,
                )
            )
    return [concat(picks) for picks in picked]


def validate(
    network: nn.Module, volumes: Sequence[TrainingVolume], *, catalog: Catalog, threshold: float, **options: Any
) -> ScoreReport:
    """Score a network on validation volumes at one pick threshold.

    ``options`` are those of :func:`validation_picks` (``classes``, ``activation``,
    ``patch_size``, ``multiple``, ``minimum``, ``overlap``, ``device``).

    Returns
    -------
    czii_cli.score.ScoreReport
        ``.score`` (weighted F-beta) and ``.per_class``.
    """
    (picks,) = validation_picks(network, volumes, catalog=catalog, thresholds=[threshold], **options)
    return score_picks(picks, concat(v.picks for v in volumes), catalog)


def validate_round(
    network: nn.Module,
    volumes: Sequence[TrainingVolume],
    *,
    catalog: Catalog,
    threshold: float,
    candidate_thresholds: Sequence[float],
    rule: str = DEFAULT_RULE,
    **options: Any,
) -> RoundScores:
    """Score a network at the fixed ``threshold`` and at per-class tuned thresholds.

    The volumes are predicted once and picked at ``threshold`` and at each of
    ``candidate_thresholds``; :func:`score_round` scores them under ``rule``.  ``options``
    are those of :func:`validation_picks`.

    Returns
    -------
    RoundScores
    """
    levels = sorted({threshold, *candidate_thresholds}, reverse=True)
    picks = validation_picks(network, volumes, catalog=catalog, thresholds=levels, **options)
    return score_round(
        dict(zip(levels, picks)), concat(v.picks for v in volumes), catalog, threshold=threshold, rule=rule
    )
