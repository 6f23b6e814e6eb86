"""Fold eval-mode BatchNorm into the convolution before it, for inference.

In eval mode a BatchNorm is a fixed per-channel affine map, so a convolution followed by
one is a single convolution with rescaled weights and a shifted bias.  Run apart, every
BatchNorm costs one more pass over its whole activation in memory: on the ``light`` net
in bfloat16 on a 2-core CPU, folding made the forward 1.08x faster on a 96x192x192 block
and 1.17x on a 184x632x376 tile, whose activations are the larger.  The arithmetic is the
same up to rounding (the folded weights are rounded once, in the weights' precision).
"""

from __future__ import annotations

import copy
from typing import cast

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def foldable_pairs(network: nn.Module) -> int:
    """How many convolutions are followed, within one ``nn.Sequential``, by a BatchNorm.

    Examples
    --------
    >>> foldable_pairs(nn.Sequential(nn.Conv3d(1, 2, 3), nn.BatchNorm3d(2), nn.ReLU()))
    1
    """
    return sum(1 for sequence in _sequences(network) for _ in _pairs(sequence))


def fold_batchnorm(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` with each convolution-BatchNorm pair made one convolution.

    A pair is a convolution directly followed by a BatchNorm with running statistics,
    both children of one ``nn.Sequential`` (as in :class:`~czii_cli.training.light.LightUNet`
    and any net built of such sequences); the convolution is replaced by the folded one
    and the BatchNorm by ``nn.Identity``.  ``network`` itself is left as it is.  A network
    without such a pair is returned as it is (not copied), set to eval mode.

    Parameters
    ----------
    network : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        In eval mode; the same outputs as ``network.eval()`` up to rounding.

    Examples
    --------
    >>> import torch
    >>> net = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.BatchNorm3d(2)).eval()
    >>> folded = fold_batchnorm(net)
    >>> isinstance(folded[1], nn.Identity), isinstance(net[1], nn.BatchNorm3d)
    (True, True)
    >>> x = torch.randn(1, 1, 4, 4, 4)
    >>> bool(torch.allclose(folded(x), net(x), atol=1e-6))
    True
    """
    network.eval()
    if foldable_pairs(network) == 0:
        return network
    folded = copy.deepcopy(network)
    for sequence in _sequences(folded):
        for index in _pairs(sequence):
            # _pairs checked both types
            convolution = cast(nn.Conv3d, sequence[index])
            batch_norm = cast(nn.BatchNorm3d, sequence[index + 1])
            sequence[index] = fuse_conv_bn_eval(convolution, batch_norm)
            sequence[index + 1] = nn.Identity()
    return folded


def _sequences(network: nn.Module) -> list[nn.Sequential]:
    return [module for module in network.modules() if isinstance(module, nn.Sequential)]


def _pairs(sequence: nn.Sequential) -> list[int]:
    """Indices of the convolutions in ``sequence`` that a foldable BatchNorm follows."""
    children = list(sequence)
    return [
        index
        for index in range(len(children) - 1)
        if isinstance(children[index], _CONVOLUTIONS)
        and isinstance(children[index + 1], _BATCH_NORMS)
        and children[index + 1].track_running_stats
        and children[index + 1].running_mean is not None
    ]
