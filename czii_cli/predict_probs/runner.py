"""Run one network on batches of windows: device, mixed precision, memory layout, activation.

Precision: ``float32`` runs the network as it is; ``bfloat16`` runs it under
``torch.autocast`` in bfloat16 (convolutions in bfloat16 with float32 accumulation, the
ops autocast keeps in float32 stay so).  On a 2-core CPU with native bfloat16
(AVX512-BF16) that made the forward of a MONAI UNet and of a 4-channel ``light`` net
about twice as fast in our measurements; on a trained ``light`` net the probabilities
moved by at most 0.015 (1e-4 on average) and the picks stayed the same.  ``auto`` picks
float16 autocast on CUDA, bfloat16 on a CPU with native bfloat16, else float32: the
choice depends only on the hardware, never on timing, so it is the same run to run.
Whatever the precision, the outputs are activated and blended in float32.  Each
BatchNorm that follows a convolution is folded into it (:mod:`.fusion`), which saves a
pass over each activation.

Memory layout: whether ``torch.channels_last_3d`` is faster depends on the network (on
a CPU, BatchNorm nets such as ``light`` gained 1.4-2x in our measurements, MONAI UNets
with InstanceNorm lost about 5 %).  So the first batches are run alternately in both
layouts (every output is used; nothing is computed twice) and the faster one is kept
for the rest.  In float32 the two layouts give the same values up to float32 rounding.
In bfloat16 they round differently (up to 0.01 in probability on a trained ``light``
net), so on a CPU the layout is not timed but follows the network's layers, which keeps
the output the same run to run: contiguous when it has InstanceNorm (whose CPU kernel
copies channels-last input to contiguous), channels-last otherwise.  In our bfloat16
measurements that picked the faster layout where the two are far apart (``light`` and
``flexunet`` 1.3-1.7x faster channels-last, ``unet`` and ``dynunet`` about 15 % faster
contiguous) and one within about 20 % of it where they are close.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..errors import DataError, UsageError
from .fusion import fold_batchnorm

ACTIVATIONS = ("softmax", "sigmoid", "logits")
PRECISIONS = ("auto", "float32", "bfloat16")
_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# Layout of each trial call; the first call of each layout warms it up, the second is timed.
_TRIAL = (torch.contiguous_format, torch.channels_last_3d, torch.contiguous_format, torch.channels_last_3d)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda': no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r} (choose from auto, cpu, cuda)")
    return torch.device(name)


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16) through oneDNN.

    Other x86 CPUs with AVX-512 also run bfloat16 convolutions, emulated and no faster
    than float32.
    """
    # torch.backends.mkldnn.is_available carries no annotations
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision a network runs in: ``float32``, ``bfloat16`` or ``float16``.

    ``auto`` gives ``float16`` on CUDA, ``bfloat16`` on a CPU with native bfloat16
    (:func:`native_bfloat16`) and ``float32`` elsewhere; ``float32`` and ``bfloat16``
    are taken as they are.

    Examples
    --------
    >>> resolve_precision("auto", torch.device("cuda"))
    'float16'
    >>> resolve_precision("bfloat16", torch.device("cpu"))
    'bfloat16'
    """
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision {name!r} (choose from {', '.join(PRECISIONS)})")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "float16"
    return "bfloat16" if native_bfloat16() else "float32"


def bfloat16_layout(network: nn.Module) -> torch.memory_format:
    """The fixed memory layout for ``network`` in bfloat16 on a CPU (see the module docstring)."""
    instance_norms = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    if any(isinstance(module, instance_norms) for module in network.modules()):
        return torch.contiguous_format
    return torch.channels_last_3d


def set_memory_format(network: nn.Module, layout: torch.memory_format) -> None:
    """Convert ``network``'s parameters and buffers to ``layout`` in place."""
    # torch's stubs omit Module.to's memory_format keyword, which it accepts at run time
    network.to(memory_format=layout)  # type: ignore[call-overload]


def network_device(network: nn.Module) -> torch.device:
    """The device of a network's first parameter or buffer (the CPU when it has none)."""
    for tensor in [*network.parameters(), *network.buffers()]:
        return tensor.device
    return torch.device("cpu")


def is_contiguous_float32(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is float32 in the contiguous layout (no conversion needed)."""
    return tensor.dtype == torch.float32 and tensor.is_contiguous()


def activate(
    logits: torch.Tensor, activation: str, *, out: torch.Tensor | None = None, staging: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax over channels, sigmoid, or the logits themselves, written as float32.

    ``out`` (float32, the shape of ``logits``) receives the result and is returned, so a
    caller can reuse one buffer for every batch; otherwise a new tensor is returned.
    The result never shares memory with ``logits``.  Logits that are not contiguous
    float32 (bfloat16 or float16 from autocast, channels-last) are first copied into
    ``staging`` (contiguous float32, their shape; a new tensor if omitted): on a CPU that
    copy plus the activation on contiguous float32 cost about half of the activation
    straight from such logits.
    """
    if activation not in ACTIVATIONS:
        raise UsageError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")
    if out is None:
        out = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    if activation == "logits":
        return out.copy_(logits)
    if not is_contiguous_float32(logits):
        if staging is None:
            staging = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
        logits = staging.copy_(logits)
    if activation == "softmax":
        return torch.softmax(logits, dim=1, out=out)
    return torch.sigmoid(logits, out=out)


class NetworkRunner:
    """Calls a network in eval mode on ``device`` in ``precision``, choosing its memory layout.

    What runs is the network with its BatchNorms folded into the convolutions before them
    (:func:`~czii_cli.predict_probs.fusion.fold_batchnorm`, a copy made on entering).

    ``precision`` is one of :data:`PRECISIONS` (resolved by :func:`resolve_precision`
    into :attr:`precision`).  The layout is chosen by timing, or fixed by
    :func:`bfloat16_layout` for bfloat16 on a CPU (see the module docstring).  Use as a
    context manager: on exit the network's training flag and contiguous layout are
    restored, so a network under training can be validated in place.
    """

    def __init__(self, network: nn.Module, *, device: torch.device, precision: str = "auto", output_stride: int = 1):
        self.network = network
        self.output_stride = int(output_stride)
        self.device = device
        self.precision = resolve_precision(precision, device)
        fixed = self.precision == "bfloat16" and device.type == "cpu"
        self._trial = [] if fixed else list(_TRIAL)
        self._seconds: dict[torch.memory_format, float] = {}
        self._layout = bfloat16_layout(network) if fixed else torch.contiguous_format
        self._was_training = network.training
        self._inference = network

    def __enter__(self) -> NetworkRunner:
        self.network.to(self.device).eval()
        self._inference = fold_batchnorm(self.network)
        if not self._trial:
            set_memory_format(self._inference, self._layout)
        return self

    def __exit__(self, *exc: object) -> None:
        set_memory_format(self.network, torch.contiguous_format)
        self.network.train(self._was_training)
        self._inference = self.network

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Network output for ``batch`` ``[B, 1, Z, Y, X]``: the same spatial shape, or that
        shape divided by ``output_stride`` (the batch's sides are multiples of it)."""
        if self._trial:
            layout = self._trial.pop(0)
            set_memory_format(self._inference, layout)
            start = self._clock()
            output = self._forward(batch, layout)
            self._seconds[layout] = self._clock() - start
            if not self._trial:
                self._layout = min(self._seconds, key=self._seconds.__getitem__)
                set_memory_format(self._inference, self._layout)
        else:
            output = self._forward(batch, self._layout)
        expected = tuple(side // self.output_stride for side in batch.shape[2:])
        if output.shape[0] != batch.shape[0] or tuple(output.shape[2:]) != expected:
            at = "" if self.output_stride == 1 else f" at output stride {self.output_stride}"
            raise DataError(
                f"the network maps windows of {tuple(batch.shape[2:])} to {tuple(output.shape[2:])}; "
                f"prediction{at} needs outputs of {expected}"
            )
        return output

    @property
    def layout(self) -> str:
        """The memory layout in use: ``channels_last_3d`` or ``contiguous``."""
        return "channels_last_3d" if self._layout == torch.channels_last_3d else "contiguous"

    def _forward(self, batch: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
        batch = batch.contiguous(memory_format=layout)
        output: torch.Tensor
        if self.precision == "float32":
            output = self._inference(batch)
            return output
        with torch.autocast(device_type=self.device.type, dtype=_AUTOCAST[self.precision]):
            output = self._inference(batch)
            return output

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()
