"""Prediction with large tiles and a halo, stitched by their cores (no blending).

For a network whose receptive field is bounded (:mod:`.geometry`), each tile's core is
what one pass over the whole volume gives, so the cores are written side by side: every
output voxel is written once, from one tile, and the map equals a single pass over the
volume (zero-padded at its far end to the network's size multiple) up to the halo's
tolerance.  Per tile, every network and every TTA transform runs on the whole tile, the
logits are cropped to the core and activated in thin z-slabs (float32, a small buffer),
and the core is kept in the output dtype until its channels are written, so the working
memory is the network's own plus about one output-dtype copy of the core.  A tile's
input is read and prepared a few z-planes at a time into one buffer of the tile's shape,
reused by every tile.

At output stride 2 (a ``light`` net without its final up-sampling) the networks give
each tile's logits on a grid twice as coarse; tile starts are multiples of the size
multiple, hence even, so a tile starting at input voxel ``s`` gives output voxels from
``s / 2`` on, and its core is cut there (:class:`~.geometry.HaloTiling`).  The stitched
map equals one pass over the whole (padded) volume at that stride.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..errors import UsageError
from .geometry import HaloTiling, network_bounds, plan_halo_tiling
from .runner import bfloat16_layout
from .tta import Transform

SLAB = 8
"""Core planes activated at a time (float32 staging of ``C x SLAB x core_y x core_x``)."""
INPUT_SLAB = 16
"""Z-planes of a tile read and prepared at a time."""
SCRATCH = 1.25
"""Factor on the tracked working memory of a forward pass, for the backend's own scratch."""
DEFAULT_MEMORY_BUDGET = 1.75 * 1024**3
"""Bytes a tile may use: the network's working memory plus the tile's buffers."""
DEFAULT_HALO_TOLERANCE = 0.0
"""Influence beyond the halo on the logits, relative to their magnitude (see
:func:`~czii_cli.predict_probs.geometry.receptive_radius`): none, the exact receptive field."""


def plan_tiles(
    networks: Sequence[torch.nn.Module],
    shape: Sequence[int],
    *,
    multiple: int,
    precision: str,
    passes: int,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    tolerance: float = DEFAULT_HALO_TOLERANCE,
    out_itemsize: int = 2,
    align: Sequence[int] = (1, 1, 1),
    device: torch.device | None = None,
    stride: int = 1,
) -> HaloTiling | None:
    """The halo tiling for ``networks`` over a volume of ``shape``, or None when a network's
    receptive field is unbounded (then only overlapping windows with blending apply).

    Parameters
    ----------
    networks : sequence of torch.nn.Module
        The ensemble; the halo is the largest receptive radius among them.
    shape : sequence of 3 int
        The volume's spatial shape.
    multiple : int
        Window sides must be multiples of it, for every network.
    precision : str
        ``float32``, ``bfloat16`` or ``float16``, resolved: the networks' arithmetic.
    passes : int
        Networks x TTA transforms per tile (more than one needs a float32 sum of the core).
    memory_budget : float
        Bytes a tile may use (the network's working memory, with a margin for scratch,
        plus its input, output and sum buffers).
    tolerance : float
        Relative influence beyond the halo that is ignored (0: the exact receptive field).
    out_itemsize : int
        Bytes per value of the output dtype.
    align : sequence of 3 int
        Chunk shape of the output (cuts between tiles go on chunk boundaries when possible).
    device : torch.device, optional
        Where the networks run.
    stride : int
        Output stride the networks are set to (1, or 2 for a ``light`` net on its own
        grid); the probes run at it, and the output buffers shrink by ``stride**3``.

    Returns
    -------
    HaloTiling or None
    """
    if not memory_budget > 0:
        raise UsageError(f"the memory budget must be positive, got {memory_budget}")
    layouts = [bfloat16_layout(network) if precision == "bfloat16" else None for network in networks]
    halo, working, channels = network_bounds(
        networks, multiple=multiple, tolerance=tolerance, device=device, precision=precision, layouts=layouts
    )
    if halo is None:
        return None
    per_output = channels * (out_itemsize + (4 if passes > 1 else 0))
    per_voxel = SCRATCH * working + 4 + per_output / stride**3
    return plan_halo_tiling(
        shape,
        halo=halo,
        multiple=multiple,
        max_window_voxels=int(memory_budget // per_voxel),
        align=align,
        stride=stride,
    )


def predict_tiles_into(
    tiling: HaloTiling,
    volume: Any,
    output: Callable[[int], Any],
    *,
    prepares: Sequence[Callable[[np.ndarray], np.ndarray] | None],
    runners: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    transforms: Sequence[Transform],
    activation: str,
    device: torch.device,
    on_windows: Callable[[int], None] | None = None,
    seconds: dict[str, float] | None = None,
) -> None:
    """Predict every tile of ``tiling`` and write its core into the output.

    Parameters
    ----------
    tiling : HaloTiling
    volume : array-like, shape (Z, Y, X)
        Read one tile at a time.
    output : callable
        Called once with the number of output channels; returns the array-like
        ``(C, *tiling.output_shape)`` written as ``out[c, core] = block``, each voxel once.
    prepares : sequence
        Per network, its input preparation (callable on a raw block, or None).
    runners : sequence of NetworkRunner
        Entered (``with``) by the caller; one per network, in the order of ``prepares``.
    transforms : sequence of Transform
        TTA transforms.
    activation : str
        ``softmax``, ``sigmoid`` or ``logits``.
    device : torch.device
    on_windows : callable, optional
        Called with 1 after each tile.
    seconds : dict, optional
        Wall-clock seconds per stage are added to it: ``input`` (reading, preparing and
        padding the tiles), ``forward`` (the networks, with the TTA transforms),
        ``activation`` (cropping, activation, averaging, conversion to the output dtype)
        and ``write`` (handing the cores to the output array, encoding included).
    """
    passes = len(runners) * len(transforms)
    clock = _StageClock(seconds, device)
    tile_inputs = _TileInputs(tiling, prepares, device)
    out: Any = None  # the output array, made by ``output`` once the channel count is known
    for start, core in tiling.tiles():
        with clock("input"):
            inputs = tile_inputs.read(volume, start)
        first = [s // tiling.stride for s in start]  # the tile's first output voxel (starts are on the stride)
        relative = tuple(slice(c.start - f, c.stop - f) for c, f in zip(core, first))
        core_shape = tuple(c.stop - c.start for c in core)
        total: torch.Tensor | None = None
        stored: torch.Tensor | None = None
        for prepare, runner in zip(prepares, runners):
            for transform in transforms:
                with clock("forward"):
                    logits = runner(transform.apply(inputs[id(prepare)]))
                    if not transform.is_identity:
                        logits = transform.invert(logits)
                with clock("activation"):
                    cropped = logits[0, :, relative[0], relative[1], relative[2]]
                    if out is None:
                        out = output(int(cropped.shape[0]))
                    if stored is None:
                        stored = torch.empty((cropped.shape[0], *core_shape), dtype=_torch_dtype(out.dtype))
                        if passes > 1:
                            total = torch.zeros(stored.shape, dtype=torch.float32, device=device)
                    _activate_core(cropped, activation, into=stored if total is None else total, add=total is not None)
                del logits, cropped
        assert stored is not None  # set by the first pass (there is at least one network and transform)
        with clock("activation"):
            if total is not None:
                total.mul_(1.0 / passes)
                stored.copy_(total)
                del total
        with clock("write"):
            for channel in range(stored.shape[0]):
                out[(channel, *core)] = stored[channel].numpy()
        if on_windows is not None:
            on_windows(1)


class _StageClock:
    """Adds the wall-clock seconds of ``with clock(stage):`` blocks to a dict (nothing when None)."""

    def __init__(self, seconds: dict[str, float] | None, device: torch.device) -> None:
        self.seconds = seconds
        self.device = device
        self._stage = ""
        self._start = 0.0

    def __call__(self, stage: str) -> _StageClock:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        if self.seconds is not None:
            self._start = self._now()

    def __exit__(self, *exc: object) -> None:
        if self.seconds is not None:
            self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + self._now() - self._start

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def _activate_core(logits: torch.Tensor, activation: str, *, into: torch.Tensor, add: bool) -> None:
    """Activate ``[C, z, y, x]`` logits in z-slabs (float32) into ``into`` (copy, or add)."""
    depth = logits.shape[1]
    staging = torch.empty(
        (logits.shape[0], min(SLAB, depth), *logits.shape[2:]), dtype=torch.float32, device=logits.device
    )
    activated = torch.empty_like(staging)
    for first in range(0, depth, SLAB):
        count = min(SLAB, depth - first)
        part, result = staging[:, :count], activated[:, :count]
        part.copy_(logits[:, first : first + count])
        if activation == "softmax":
            torch.softmax(part, dim=0, out=result)
        elif activation == "sigmoid":
            torch.sigmoid(part, out=result)
        else:
            result = part
        target = into[:, first : first + count]
        if add:
            target.add_(result.to(target.device))
        else:
            target.copy_(result)


class _TileInputs:
    """Each distinct preparation's input tile ``[1, 1, *window]``, zero-padded beyond the volume.

    A tile is read :data:`INPUT_SLAB` z-planes at a time, each slab prepared by every
    distinct preparation and copied into that preparation's buffer of the window's shape,
    allocated once and reused by every tile (only its padding is zeroed again).  Small
    slabs keep the reads' buffers small and recycled: a volume read by whole planes (an
    MRC file) would otherwise cost a fresh allocation of every plane the tile spans.
    """

    def __init__(
        self,
        tiling: HaloTiling,
        prepares: Sequence[Callable[[np.ndarray], np.ndarray] | None],
        device: torch.device,
    ) -> None:
        self.tiling = tiling
        self.prepares = prepares
        self.device = device
        self._buffers: dict[int, torch.Tensor] = {}

    def read(self, volume: Any, start: Sequence[int]) -> dict[int, torch.Tensor]:
        """The inputs of the tile at ``start``, keyed by ``id`` of their preparation."""
        window = self.tiling.window
        stops = [min(s + w, n) for s, w, n in zip(start, window, self.tiling.shape)]
        keys = list(dict.fromkeys(id(prepare) for prepare in self.prepares))
        prepares = {id(prepare): prepare for prepare in self.prepares}
        buffers = {key: self._buffer(key) for key in keys}
        y, x = stops[1] - start[1], stops[2] - start[2]
        for first in range(start[0], stops[0], INPUT_SLAB):
            last = min(first + INPUT_SLAB, stops[0])
            raw = np.asarray(volume[first:last, start[1] : stops[1], start[2] : stops[2]], dtype=np.float32)
            for key in keys:
                prepare = prepares[key]
                block = raw if prepare is None else np.asarray(prepare(raw), dtype=np.float32)
                target = buffers[key][first - start[0] : last - start[0], :y, :x]
                target.copy_(torch.from_numpy(np.ascontiguousarray(block)))
        z = stops[0] - start[0]
        for buffer in buffers.values():
            buffer[z:].zero_()
            buffer[:z, y:].zero_()
            buffer[:z, :y, x:].zero_()
        return {key: buffer.to(self.device)[None, None] for key, buffer in buffers.items()}

    def _buffer(self, key: int) -> torch.Tensor:
        """The reused window-shaped buffer of the preparation ``key``."""
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = torch.empty(self.tiling.window, dtype=torch.float32)
        return buffer


def _torch_dtype(dtype: npt.DTypeLike) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def lcm(values: Sequence[int]) -> int:
    """Least common multiple of positive integers.

    Examples
    --------
    >>> lcm([8, 4, 6])
    24
    """
    return math.lcm(*[max(1, int(v)) for v in values]) if values else 1
