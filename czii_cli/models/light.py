"""A light 3D U-Net in the spirit of DeepFinder and the 5th-place solution.

Two resolution levels of 28-32-36 channels, BatchNorm on the input, trilinear
up-sampling: about 0.3 M parameters, so it learns something useful after minutes on a
CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


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
        Channels per level, finest first; the default (28, 32, 36) has two levels of
        down-sampling, so patch sides must be multiples of 4.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 7, channels: Sequence[int] = (28, 32, 36)):
        super().__init__()
        channels = list(channels)
        self.input_norm = nn.BatchNorm3d(in_channels)
        self.encoders = nn.ModuleList()
        previous = in_channels
        for width in channels:
            self.encoders.append(_double_conv(previous, width))
            previous = width
        self.pool = nn.MaxPool3d(2)
        self.decoders = nn.ModuleList()
        for width, skip in zip(channels[-2::-1], channels[-2::-1]):
            self.decoders.append(_double_conv(previous + skip, width))
            previous = width
        self.head = nn.Conv3d(previous, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(x)
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x)
        for decoder, skip in zip(self.decoders, skips[-2::-1]):
            x = nn.functional.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)
