"""Segmentation losses for label maps and heatmaps, combined by weight.

Every loss takes logits ``[B, C, Z, Y, X]`` and a float target of the same shape: one-hot
(or mixup-blended) class probabilities for ``softmax`` models, per-class heatmaps for
``sigmoid`` models.  A loss specification (:data:`~.config.LossSpec`) such as
``(("ce", 1.0), ("tversky", 0.5))`` sums the named terms with their weights.

=============  =========  ==================================================================
name           models     definition
=============  =========  ==================================================================
ce             softmax    cross-entropy weighted per class, normalised by the total weight
                          (``sum w_c t log p / sum w_c t``), e.g. 256:1 for point targets
dice, dicece   both       MONAI ``DiceLoss`` / ``DiceCELoss`` (background channel excluded)
tversky        both       ``1 - TP / (TP + a FP + b FN)`` per class, a 0.3, b 0.7 (2nd place)
focaltversky   both       Tversky++ (FP and FN terms raised to gamma 2) with the focal
                          exponent ``(1 - TI)^(1 / 1.33)`` (6th place)
bce            sigmoid    binary cross-entropy, positives weighted: ``1 + (w_c - 1) t``
mse            sigmoid    balanced MSE on probabilities, weighted by ``t + 0.1`` (4th place)
=============  =========  ==================================================================

Tversky and Dice terms are summed over the whole batch and smoothed by 1 in numerator and
denominator, so a class absent from a batch costs little when it is not predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .config import LOSSES, SIGMOID_LOSSES, SOFTMAX_LOSSES, check_loss

__all__ = ["LOSSES", "SIGMOID_LOSSES", "SOFTMAX_LOSSES", "CombinedLoss", "LossTerm", "build_loss"]

SMOOTH = 1.0


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Soft-label cross-entropy weighted per class, normalised by the weight of the targets.

    For one-hot targets this equals ``torch.nn.functional.cross_entropy`` with ``weight``.

    Examples
    --------
    >>> logits = torch.zeros(1, 2, 1, 1, 2)
    >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 1, 2)
    >>> round(float(weighted_cross_entropy(logits, target, torch.tensor([1.0, 256.0]))), 4)
    0.6931
    """
    log_p = torch.log_softmax(logits.float(), dim=1)
    w = weights.to(logits.device).view(1, -1, *([1] * (logits.dim() - 2))) * target
    return -(w * log_p).sum() / w.sum().clamp_min(1e-8)


def tversky_index(
    probs: torch.Tensor, target: torch.Tensor, *, alpha: float, beta: float, gamma: float = 1.0
) -> torch.Tensor:
    """Per-channel Tversky index summed over batch and space: ``TP / (TP + a FP^g + b FN^g)``.

    ``gamma`` raises each voxel's FP and FN terms (Tversky++); 1 is the plain index.
    """
    dims = (0,) + tuple(range(2, probs.dim()))
    tp = (probs * target).sum(dims)
    fp = ((probs * (1 - target)) ** gamma).sum(dims)
    fn = (((1 - probs) * target) ** gamma).sum(dims)
    return (tp + SMOOTH) / (tp + alpha * fp + beta * fn + SMOOTH)


@dataclass(frozen=True)
class LossTerm:
    """One named loss with its weight in the sum."""

    name: str
    weight: float
    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CombinedLoss(nn.Module):
    """Weighted sum of loss terms; :meth:`forward` returns the total."""

    def __init__(self, terms: Sequence[LossTerm]):
        super().__init__()
        self.terms = list(terms)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        for term in self.terms:
            total = total + term.weight * term.function(logits, target)
        return total


def build_loss(
    spec: Sequence[tuple[str, float]],
    *,
    activation: str,
    class_weights: Sequence[float],
    tversky_alpha: float = 0.3,
    tversky_beta: float = 0.7,
    focal_gamma: float = 2.0,
    focal_exponent: float = 4.0 / 3.0,
) -> CombinedLoss:
    """Build the combined loss for a model's activation.

    Parameters
    ----------
    spec : sequence of (name, weight)
        The terms (:data:`~.config.LossSpec`); unknown names are a ConfigError.
    activation : str
        ``softmax`` (channel 0 is background) or ``sigmoid`` (one channel per class).
    class_weights : sequence of float
        One weight per output channel (background first for softmax); used by ``ce``
        and, for particle channels, by ``bce``.
    tversky_alpha, tversky_beta : weights of false positives and false negatives.
    focal_gamma, focal_exponent : Tversky++ exponent and the focal exponent of
        ``focaltversky``.

    Examples
    --------
    >>> loss = build_loss([("ce", 1.0), ("tversky", 0.5)], activation="softmax", class_weights=[1.0, 4.0])
    >>> target = torch.nn.functional.one_hot(torch.tensor([[0, 1]]), 2).permute(0, 2, 1).reshape(1, 2, 1, 1, 2)
    >>> float(loss(torch.zeros(1, 2, 1, 1, 2), target.float())) > 0
    True
    """
    terms = check_loss(spec)
    if not terms:
        raise ConfigError("training setting 'loss': no loss terms given")
    allowed = SOFTMAX_LOSSES if activation == "softmax" else SIGMOID_LOSSES
    weights = torch.as_tensor(list(class_weights), dtype=torch.float32)
    built = []
    for name, weight in terms:
        if name not in allowed:
            target_kind = "label-map (spheres, points)" if activation == "softmax" else "heatmap"
            raise ConfigError(f"loss {name!r} does not apply to {target_kind} targets (use {', '.join(allowed)})")
        function = _loss_function(
            name,
            activation=activation,
            weights=weights,
            alpha=tversky_alpha,
            beta=tversky_beta,
            gamma=focal_gamma,
            exponent=focal_exponent,
        )
        built.append(LossTerm(name, float(weight), function))
    return CombinedLoss(built)


def _probabilities(logits: torch.Tensor, activation: str) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=1) if activation == "softmax" else torch.sigmoid(logits.float())


def _loss_function(
    name: str, *, activation: str, weights: torch.Tensor, alpha: float, beta: float, gamma: float, exponent: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    first = 1 if activation == "softmax" else 0  # particle channels only for overlap losses
    if name == "ce":
        return lambda logits, target: weighted_cross_entropy(logits, target, weights)
    if name in ("tversky", "focaltversky"):
        power = gamma if name == "focaltversky" else 1.0
        focal = 1.0 / exponent if name == "focaltversky" else 1.0

        def tversky(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            probs = _probabilities(logits, activation)[:, first:]
            index = tversky_index(probs, target[:, first:].float(), alpha=alpha, beta=beta, gamma=power)
            return ((1 - index).clamp_min(0) ** focal).mean()

        return tversky
    if name in ("dice", "dicece"):
        from monai.losses.dice import DiceCELoss, DiceLoss  # monai.losses re-exports them implicitly

        options: dict[str, Any] = {
            "include_background": activation != "softmax",
            "softmax": activation == "softmax",
            "sigmoid": activation == "sigmoid",
            "batch": True,
            "smooth_nr": SMOOTH,
            "smooth_dr": SMOOTH,
        }
        monai_loss = DiceLoss(**options) if name == "dice" else DiceCELoss(**options)
        return lambda logits, target: monai_loss(logits.float(), target.float())
    if name == "bce":

        def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            w = weights.to(logits.device).view(1, -1, *([1] * (logits.dim() - 2)))
            voxel_weight = 1 + (w - 1) * target.float()
            return nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float(), weight=voxel_weight)

        return bce

    def balanced_mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        voxel_weight = target.float() + 0.1
        error = (torch.sigmoid(logits.float()) - target.float()) ** 2
        return (voxel_weight * error).sum() / voxel_weight.sum()

    return balanced_mse
