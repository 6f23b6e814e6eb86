"""Run one network on batches of windows: device, mixed precision, memory layout, activation.

Memory layout: whether ``torch.channels_last_3d`` is faster depends on the network (on
a CPU, BatchNorm nets such as ``light`` gained 1.4-2x in our measurements, MONAI UNets
with InstanceNorm lost about 5 %).  So the first batches are run alternately in both
layouts (every output is used; nothing is computed twice) and the faster one is kept
for the rest.  The two layouts give the same values up to float32 rounding.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..errors import DataError, UsageError

ACTIVATIONS = ("softmax", "sigmoid", "logits")
# Layout of each trial call; the first call of each layout warms it up, the second is timed.
_TRIAL = (torch.contiguous_format, torch.channels_last_3d, torch.contiguous_format, torch.channels_last_3d)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r} (choose from auto, cpu, cuda)")
    return torch.device(name)


def network_device(network: nn.Module) -> torch.device:
    """The device of a network's first parameter or buffer (the CPU when it has none)."""
    for tensor in [*network.parameters(), *network.buffers()]:
        return tensor.device
    return torch.device("cpu")


def activate(logits: torch.Tensor, activation: str, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over channels, sigmoid, or the logits themselves, written as float32.

    ``out`` (float32, the shape of ``logits``) receives the result and is returned, so a
    caller can reuse one buffer for every batch; otherwise a new tensor is returned.
    The result never shares memory with ``logits``.
    """
    if out is None:
        out = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    if activation == "softmax":
        return torch.softmax(logits, dim=1, dtype=torch.float32, out=out)
    if activation == "sigmoid":
        return torch.sigmoid(logits, out=out)
    if activation == "logits":
        return out.copy_(logits)
    raise UsageError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")


class NetworkRunner:
    """Calls a network in eval mode on ``device``, choosing its memory layout by timing.

    Use as a context manager: on exit the network's training flag and contiguous layout
    are restored, so a network under training can be validated in place.
    """

    def __init__(self, network: nn.Module, *, device: torch.device):
        self.network = network
        self.device = device
        self._trial = list(_TRIAL)
        self._seconds: dict[torch.memory_format, float] = {}
        self._layout = torch.contiguous_format
        self._was_training = network.training

    def __enter__(self) -> NetworkRunner:
        self.network.to(self.device).eval()
        if not self._trial:
            self.network.to(memory_format=self._layout)
        return self

    def __exit__(self, *exc) -> None:
        self.network.to(memory_format=torch.contiguous_format)
        self.network.train(self._was_training)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Network output for ``batch`` ``[B, 1, Z, Y, X]``; same spatial shape required."""
        if self._trial:
            layout = self._trial.pop(0)
            self.network.to(memory_format=layout)
            start = self._clock()
            output = self._forward(batch, layout)
            self._seconds[layout] = self._clock() - start
            if not self._trial:
                self._layout = min(self._seconds, key=self._seconds.get)
                self.network.to(memory_format=self._layout)
        else:
            output = self._forward(batch, self._layout)
        if output.shape[0] != batch.shape[0] or output.shape[2:] != batch.shape[2:]:
            raise DataError(
                f"the network maps windows of {tuple(batch.shape[2:])} to {tuple(output.shape[2:])}; "
                "prediction needs outputs of the window's shape"
            )
        return output

    @property
    def layout(self) -> str:
        """The memory layout in use: ``channels_last_3d`` or ``contiguous``."""
        return "channels_last_3d" if self._layout == torch.channels_last_3d else "contiguous"

    def _forward(self, batch: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
        batch = batch.contiguous(memory_format=layout)
        if self.device.type == "cuda":
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                return self.network(batch)
        return self.network(batch)

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()
