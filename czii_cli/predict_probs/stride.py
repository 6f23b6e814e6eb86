"""Output stride: probability maps on the network's own half-resolution grid.

A ``light`` net with ``stem_stride=2`` runs its whole U-Net at half resolution and only
up-samples its logits at the end (:mod:`czii_cli.training.light`).  At output stride 2
that last step is dropped: the map has ``ceil(n / 2)`` voxels per axis of ``n``
(:func:`czii_cli.resample.binned_shape`), twice the voxel size, and the origin of a grid
binned by 2 (:func:`czii_cli.resample.binned_origin`), so picks taken from it are in the
tomogram's Å like those of a full-resolution map.  The activation, the output dtype
conversion, the write and every later stage then handle 8 times fewer voxels.

``auto`` resolves to the stride the models were trained for (the ``output_stride`` of
their training settings, at which their validation rounds tuned the pick thresholds that
the map carries), when they all agree, can give it and the tiling is not sliding windows;
else to 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from torch import nn

from ..errors import UsageError
from ..training.checkpoint import ModelFile
from ..training.light import output_strides
from ..training.registry import resolve_params

OutputStride = int | Literal["auto"]
"""An output stride as asked for: 1, 2 or ``auto``."""
OUTPUT_STRIDES: tuple[OutputStride, ...] = ("auto", 1, 2)


def check_output_stride(value: object) -> OutputStride:
    """``value`` as an output stride (``auto``, 1 or 2); anything else is a :class:`UsageError`.

    Examples
    --------
    >>> check_output_stride(2)
    2
    """
    if value == "auto":
        return "auto"
    if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2):
        return int(value)
    raise UsageError(f"output stride must be auto, 1 or 2, got {value!r}")


def model_output_strides(model: ModelFile) -> tuple[int, ...]:
    """The output strides the network of ``model`` can give: (1, 2) for a ``light`` net with
    ``stem_stride`` 2, else (1,)."""
    if model.arch != "light":
        return (1,)
    return output_strides(int(resolve_params(model.arch, model.arch_params)["stem_stride"]))


def recorded_output_stride(model: ModelFile) -> int:
    """The output stride ``model`` was trained for: its training settings' ``output_stride``
    (1 for models from before the setting, or without a training summary)."""
    config = model.train.get("config")
    value = config.get("output_stride", 1) if isinstance(config, dict) else 1
    return int(value) if value in (1, 2) and not isinstance(value, bool) else 1


def resolve_output_stride(
    requested: OutputStride, models: Sequence[ModelFile], paths: Sequence[Path | str], *, tiling: str = "auto"
) -> int:
    """The output stride of a prediction with ``models`` (loaded from ``paths``).

    ``auto`` is the stride the models were trained for (:func:`recorded_output_stride`)
    when they agree on it, every model can give it and ``tiling`` is not ``sliding``,
    else 1.  Stride 2 needs halo tiles and every model able to give it.

    Raises
    ------
    UsageError
        Stride 2 with a model that cannot give it (naming the model file and its
        network), or with sliding windows.

    Examples
    --------
    >>> resolve_output_stride(1, [], [])
    1
    """
    requested = check_output_stride(requested)
    if requested == 1:
        return 1
    if requested == "auto":
        recorded = {recorded_output_stride(m) for m in models}
        stride = recorded.pop() if len(recorded) == 1 else 1
        able = tiling != "sliding" and all(stride in model_output_strides(m) for m in models)
        return stride if able else 1
    for model, path in zip(models, paths):
        if requested not in model_output_strides(model):
            params = resolve_params(model.arch, model.arch_params)
            network = f"a light net with stem_stride {params['stem_stride']}" if model.arch == "light" else model.arch
            raise UsageError(
                f"{path}: its network ({network}) gives its output at full resolution only; output stride "
                f"{requested} needs a light net with stem_stride {requested}"
            )
    if tiling == "sliding":
        raise UsageError(f"output stride {requested} needs halo tiles (tiling auto or halo), not sliding windows")
    return requested


def network_output_strides(network: nn.Module) -> tuple[int, ...]:
    """The output strides ``network`` can give (its ``output_strides``; (1,) when it has none)."""
    strides = getattr(network, "output_strides", (1,))
    return tuple(int(s) for s in strides)


@contextmanager
def at_output_stride(networks: Sequence[nn.Module], stride: int) -> Iterator[None]:
    """Set every network to output ``stride`` for the block; their previous stride comes back after.

    Raises
    ------
    UsageError
        A network that cannot give ``stride`` (stride 1 is always possible).
    """
    for network in networks:
        if stride not in network_output_strides(network):
            raise UsageError(f"a {type(network).__name__} network cannot give its output at stride {stride}")
    setters = [getattr(network, "set_output_stride", None) for network in networks]
    previous = [int(getattr(network, "output_stride", 1)) for network in networks]
    try:
        for setter in setters:
            if setter is not None:
                setter(stride)
        yield
    finally:
        for setter, before in zip(setters, previous):
            if setter is not None:
                setter(before)
