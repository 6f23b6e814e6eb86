"""Network registry: build any supported 3D segmentation net from a name and parameters.

Names: ``unet``, ``segresnet``, ``dynunet`` (MONAI), ``flexunet`` (MONAI FlexibleUNet,
randomly initialised: no weights are downloaded) and ``light`` (a ~0.3 M-parameter net
that computes at half resolution, the CPU default of ``czii train``).
Defaults follow the competition's top solutions; any parameter can be overridden.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import UsageError

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    # 2nd place: light MONAI UNet, InstanceNorm + PReLU, strides (2, 2, 1).
    "unet": {
        "channels": [48, 64, 80, 80],
        "strides": [2, 2, 1],
        "num_res_units": 1,
        "norm": "instance",
        "act": "prelu",
    },
    "segresnet": {"init_filters": 16, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "dropout_prob": 0.0},
    "dynunet": {
        "kernel_size": [3, 3, 3, 3],
        "strides": [1, 2, 2, 2],
        "filters": [32, 64, 128, 256],
        "res_block": True,
    },
    # 1st place: FlexibleUNet with a resnet34 encoder, decoder 256-128-64-32-16.
    "flexunet": {"backbone": "resnet34", "decoder_channels": [256, 128, 64, 32, 16]},
    # DeepFinder / 5th-place sized (~0.33 M parameters) with a stride-2 stem and output, so
    # it trains on a CPU: a 64^3 batch of 2 costs about a fifth of the full-resolution net.
    "light": {"channels": [24, 32, 48], "stem_stride": 2},
}

ARCHS = tuple(DEFAULT_PARAMS)


def resolve_params(arch: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The default parameters of ``arch`` updated by ``overrides``; unknown keys are errors."""
    if arch not in DEFAULT_PARAMS:
        raise UsageError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    params = dict(DEFAULT_PARAMS[arch])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise UsageError(f"{arch} has no parameter {key!r} (parameters: {', '.join(params)})")
        params[key] = value
    return params


def build_network(arch: str, *, in_channels: int, out_channels: int, params: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a network.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHS`.
    in_channels, out_channels : int
        Input channels (1 for a tomogram) and output channels (classes).
    params : dict, optional
        Overrides of :data:`DEFAULT_PARAMS` for this architecture.

    Returns
    -------
    torch.nn.Module
        Maps ``[B, in, Z, Y, X]`` to ``[B, out, Z, Y, X]`` logits.
    """
    resolved = resolve_params(arch, params)
    try:
        return _BUILDERS[arch](in_channels, out_channels, resolved)
    except (TypeError, ValueError, KeyError, AssertionError) as err:
        raise UsageError(f"cannot build {arch} with parameters {resolved}: {err}") from None


def patch_multiple(arch: str, params: dict[str, Any] | None = None) -> int:
    """Patch sides must be multiples of this for the architecture to round-trip shapes."""
    resolved = resolve_params(arch, params)
    if arch == "unet":
        factor = 1
        for s in resolved["strides"]:
            factor *= int(s)
        return factor
    if arch == "segresnet":
        levels: int = 2 ** (len(resolved["blocks_down"]) - 1)
        return levels
    if arch == "dynunet":
        factor = 1
        for s in resolved["strides"]:
            factor *= int(s)
        return factor
    if arch == "flexunet":
        return 32
    multiple: int = 2 ** (len(resolved["channels"]) - 1) * int(resolved["stem_stride"])
    return multiple


def _unet(i: int, o: int, p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets.unet import UNet  # monai.networks.nets re-exports it implicitly

    return UNet(
        spatial_dims=3,
        in_channels=i,
        out_channels=o,
        channels=tuple(p["channels"]),
        strides=tuple(p["strides"]),
        num_res_units=p["num_res_units"],
        norm=p["norm"],
        act=p["act"],
    )


def _segresnet(i: int, o: int, p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets.segresnet import SegResNet  # monai.networks.nets re-exports it implicitly

    return SegResNet(
        spatial_dims=3,
        in_channels=i,
        out_channels=o,
        init_filters=p["init_filters"],
        blocks_down=tuple(p["blocks_down"]),
        blocks_up=tuple(p["blocks_up"]),
        dropout_prob=p["dropout_prob"],
    )


def _dynunet(i: int, o: int, p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets.dynunet import DynUNet  # monai.networks.nets re-exports it implicitly

    strides = list(p["strides"])
    return DynUNet(
        spatial_dims=3,
        in_channels=i,
        out_channels=o,
        kernel_size=list(p["kernel_size"]),
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=list(p["filters"]),
        res_block=p["res_block"],
        norm_name="instance",
    )


def _flexunet(i: int, o: int, p: dict[str, Any]) -> nn.Module:
    from monai.networks.nets.flexible_unet import FlexibleUNet  # monai.networks.nets re-exports it implicitly

    return FlexibleUNet(
        in_channels=i,
        out_channels=o,
        backbone=p["backbone"],
        pretrained=False,
        decoder_channels=tuple(p["decoder_channels"]),
        spatial_dims=3,
    )


def _light(i: int, o: int, p: dict[str, Any]) -> nn.Module:
    from .light import LightUNet

    return LightUNet(i, o, channels=tuple(p["channels"]), stem_stride=int(p["stem_stride"]))


_BUILDERS: dict[str, Callable[[int, int, dict[str, Any]], nn.Module]] = {
    "unet": _unet,
    "segresnet": _segresnet,
    "dynunet": _dynunet,
    "flexunet": _flexunet,
    "light": _light,
}
