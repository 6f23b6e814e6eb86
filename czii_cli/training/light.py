"""A light 3D U-Net in the spirit of DeepFinder and the 5th-place solution.

BatchNorm on the input, double 3x3x3 convolutions per level, trilinear up-sampling.  With
``stem_stride=2`` a strided convolution first halves the grid and the logits are
up-sampled back at the end, as the 1st place's stride-2 output: the whole U-Net then
runs on an eighth of the voxels, which is what makes CPU training practical.

Such a net can also give its logits on its own half-resolution grid, without the final
up-sampling (:meth:`LightUNet.set_output_stride`): voxel ``j`` of that grid stands for
the block of input voxels ``2j, 2j + 1`` along each axis (the trilinear up-sampling it
was trained through puts it at their centre), the geometry of
:func:`czii_cli.resample.binned_origin`.  Training always runs at output stride 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def output_strides(stem_stride: int) -> tuple[int, ...]:
    """The output strides a light net with ``stem_stride`` can give: (1,) or (1, 2).

    Examples
    --------
    >>> output_strides(2)
    (1, 2)
    """
    return (1,) if int(stem_stride) == 1 else (1, int(stem_stride))


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, padding=1),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class LightUNet(nn.Module):
    """Encoder-decoder with skip connections over ``len(channels) - 1`` down-samplings.

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels (1 for a tomogram) and output classes.
    channels : sequence of int
        Channels per level, finest first; (28, 32, 36) has two levels of down-sampling,
        so patch sides must be multiples of 4 (times ``stem_stride``).
    stem_stride : int
        1: the first level works at full resolution.  2: a strided convolution
        (``channels[0]`` filters) halves the grid first and the logits are up-sampled
        trilinearly to the input size (unless :attr:`output_stride` is 2).

    Attributes
    ----------
    output_stride : int
        1 (the default, what training uses): logits at the input's size.  2 (only with
        ``stem_stride=2``): logits on the half-resolution grid, ``ceil(n / 2)`` per axis
        of an input of ``n`` (a multiple of the size multiple), without the final
        up-sampling.  Set with :meth:`set_output_stride`.
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 7, channels: Sequence[int] = (28, 32, 36), stem_stride: int = 1
    ):
        super().__init__()
        channels = list(channels)
        self.stem_stride = int(stem_stride)
        self.output_stride = 1
        self.input_norm = nn.BatchNorm3d(in_channels)
        previous = in_channels
        self.stem: nn.Module = nn.Identity()
        if stem_stride == 2:
            self.stem = nn.Sequential(
                nn.Conv3d(in_channels, channels[0], 3, stride=2, padding=1),
                nn.BatchNorm3d(channels[0]),
                nn.ReLU(inplace=True),
            )
            previous = channels[0]
        elif stem_stride != 1:
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        self.encoders = nn.ModuleList()
        for width in channels:
            self.encoders.append(_double_conv(previous, width))
            previous = width
        self.pool = nn.MaxPool3d(2)
        self.decoders = nn.ModuleList()
        for width, skip in zip(channels[-2::-1], channels[-2::-1]):
            self.decoders.append(_double_conv(previous + skip, width))
            previous = width
        self.head = nn.Conv3d(previous, out_channels, 1)

    @property
    def output_strides(self) -> tuple[int, ...]:
        """The output strides this net can give (see :func:`output_strides`)."""
        return output_strides(self.stem_stride)

    def set_output_stride(self, stride: int) -> None:
        """Give logits at the input's size (1) or on the net's half-resolution grid (2).

        Raises
        ------
        ValueError
            ``stride`` is not one of :attr:`output_strides`.
        """
        if stride not in self.output_strides:
            raise ValueError(f"output stride must be one of {self.output_strides}, got {stride}")
        self.output_stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Layer by layer, dropping each tensor as soon as nothing needs it (the skips
        # once concatenated, a layer's input once it has run): without autograd the
        # working memory then holds about two levels' tensors at a time, not the
        # whole decoder's, and larger tiles fit a prediction's memory budget.
        size = x.shape[2:]
        x = _run_layers(self.stem, self.input_norm(x))
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = self.pool(x)
            x = _run_layers(encoder, x)
            skips.append(x)
        x = skips.pop()
        for decoder in self.decoders:
            skip = skips.pop()
            x = nn.functional.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = torch.cat([x, skip], dim=1)
            del skip
            x = _run_layers(decoder, x)
        logits: torch.Tensor = self.head(x)
        del x
        if self.output_stride == 1 and logits.shape[2:] != size:
            logits = nn.functional.interpolate(logits, size=size, mode="trilinear", align_corners=False)
        return logits


def _run_layers(layers: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)``, one child of a Sequential at a time, holding only the current tensor."""
    if not isinstance(layers, nn.Sequential):
        output: torch.Tensor = layers(x)
        return output
    for layer in layers:
        x = layer(x)
    return x
