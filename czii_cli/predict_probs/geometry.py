"""Inference geometry from the network: receptive field, working memory, large tiles with a halo.

A fully convolutional network (convolutions, pooling, interpolation, BatchNorm in eval
mode) computes each output voxel from a bounded neighbourhood of the input, its
*receptive field*.  A tile that reaches at least that far beyond the voxels taken from
it (the *halo*) gives exactly what one pass over the whole volume would, so large tiles
with a halo, stitched by their centres, replace small overlapping windows blended with
Gaussian weights: no blending, and each voxel is computed about once instead of about
2.4 times (64^3 windows at 25 % overlap).

* :func:`receptive_radius` measures how far the network looks along each axis, by
  changing the input beyond a distance and checking that a block of outputs stays the
  same (exact for max pooling, where gradients would miss voxels).  A network whose
  outputs depend on the whole window (InstanceNorm, GroupNorm) has no bounded radius.
* :func:`working_bytes_per_voxel` measures the memory a forward pass holds at its peak
  per input voxel, by tracking every tensor the network's torch functions return.
* :func:`plan_halo_tiling` picks the tiles: the fewest computed voxels whose tile fits
  the memory budget, tile starts on the network's size multiple (so its pooling grid
  matches one pass over the whole volume) and cuts between tiles on chunk boundaries
  where the halo allows.

Tiles start at multiples of the size multiple and never extend past the volume's start;
the volume is zero-padded at its far end to a multiple (as a pass over the whole volume
would need), so every stitched voxel equals that pass up to floating-point rounding.

A network may give its output at a stride: on a grid ``s`` times coarser than its input
(a ``light`` net at output stride 2, whose voxel ``j`` stands for input voxels
``2j .. 2j + 1``).  Radii and halos stay in input voxels; the cuts between cores fall on
multiples of ``s``, so tile ``i`` gives output voxels ``[cuts[i] / s, cuts[i + 1] / s)``
of the binned grid (:func:`czii_cli.resample.binned_shape`).
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import UsageError
from ..resample import binned_shape
from .runner import set_memory_format

PROBE_LENGTH = 256
"""Longest probe along an axis (voxels): a radius reaching its ends counts as unbounded."""
PROBE_START = 128
"""First probe length; doubled (up to ``length``) while the radius reaches its ends."""
PROBE_WIDTH = 16
"""Cross-section of a probe (voxels, at least twice the size multiple): wide enough that
its centre behaves like the inside of a volume (thinner ones can silence whole paths)."""
PROBE_SEEDS = 1
"""Random probes per axis; the largest radius found is kept."""


def window_wide_layers(network: nn.Module) -> bool:
    """Whether ``network`` has layers that normalize over the whole input in eval mode
    (InstanceNorm without running statistics, GroupNorm, LayerNorm): its receptive field
    is then unbounded and no probe is needed."""
    for module in network.modules():
        if isinstance(module, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)):
            if not module.track_running_stats:
                return True
        elif isinstance(module, (nn.GroupNorm, nn.LayerNorm)):
            return True
    return False


def receptive_radius(
    network: nn.Module,
    *,
    multiple: int,
    tolerance: float = 0.0,
    device: torch.device | None = None,
    length: int = PROBE_LENGTH,
    seed: int = 0,
    precision: str = "float32",
    layout: torch.memory_format | None = None,
) -> tuple[int, int, int] | None:
    """How many input voxels beyond a block of outputs the network reads, per axis (z, y, x).

    Along each axis a probe (:data:`PROBE_WIDTH` across, :data:`PROBE_START` long,
    doubled up to ``length`` while needed) is run on random normal input (the scale of
    a z-scored tomogram), in one batch with copies in which every input voxel farther
    than ``d`` from the central block of ``multiple`` outputs is replaced by other
    random values, for every ``d`` on the multiple.  The radius is the smallest ``d``
    (a multiple of ``multiple``) from which on no such change moves the block's output
    by more than ``tolerance`` times its largest magnitude, the largest over
    :data:`PROBE_SEEDS` probes; a longer probe tests only the distances beyond the farthest
    one a shorter probe tested.  With
    ``tolerance=0`` (the default, what prediction uses) that is the exact receptive
    field: the output is bit for bit the same.  A positive tolerance only bounds the
    influence within the probe's cross-section; a whole volume adds more paths.

    The probe runs in the arithmetic and layout of the prediction (``precision``,
    ``layout``): exactness is that of the same arithmetic over the whole volume.  A
    network with window-wide layers (:func:`window_wide_layers`) is unbounded at once.

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``[B, 1, Z, Y, X]`` to ``[B, C, Z, Y, X]``; it is run in eval mode, float32.
    multiple : int
        Window sides must be multiples of this (the network's total down-sampling).
    tolerance : float
        Largest change of the block's output, relative to its largest magnitude, that
        counts as unchanged (0: exact).
    device : torch.device, optional
        Where to run; defaults to the CPU.
    length : int
        Probe length along the measured axis (rounded down to a multiple).
    seed : int
        Seed of the random probe inputs.
    precision : str
        ``float32``, ``bfloat16`` or ``float16`` (autocast).
    layout : torch.memory_format, optional
        Memory layout of the network and the probes.

    Returns
    -------
    tuple of 3 int, or None
        The radius along z, y and x in voxels, a multiple of ``multiple``; None when the
        output depends on input at the probe's ends (an unbounded receptive field, or
        one larger than the probe).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.Conv3d(2, 2, 5, padding=2))
    >>> receptive_radius(net, multiple=1, length=32)
    (3, 3, 3)
    """
    found = probe_network(
        network,
        multiple=multiple,
        tolerance=tolerance,
        device=device,
        length=length,
        seed=seed,
        precision=precision,
        layout=layout,
    )
    return found.radius


@dataclass(frozen=True)
class NetworkProbe:
    """What :func:`probe_network` found.

    Attributes
    ----------
    radius : tuple of 3 int, or None
        Receptive radius per axis (see :func:`receptive_radius`); None when unbounded.
    bytes_per_voxel : float
        Peak bytes the tensors of a forward pass hold at once, per input voxel (0 when
        the radius is unbounded: nothing was run).
    channels : int
        Output channels (0 when nothing was run).
    """

    radius: tuple[int, int, int] | None
    bytes_per_voxel: float = 0.0
    channels: int = 0


def isotropic_layers(network: nn.Module) -> bool:
    """Whether every layer with a kernel, stride, padding or dilation has equal values along all axes
    (then the receptive field is the same along z, y and x, and one axis is probed)."""
    for module in network.modules():
        for name in ("kernel_size", "stride", "padding", "dilation", "scale_factor"):
            value = getattr(module, name, None)
            if isinstance(value, (tuple, list)) and len(set(value)) > 1:
                return False
    return True


def probe_network(
    network: nn.Module,
    *,
    multiple: int,
    tolerance: float = 0.0,
    device: torch.device | None = None,
    length: int = PROBE_LENGTH,
    seed: int = 0,
    precision: str = "float32",
    layout: torch.memory_format | None = None,
) -> NetworkProbe:
    """The receptive radius (as :func:`receptive_radius`) and the working memory per voxel.

    The first probe batch runs with every tensor the network's torch functions return
    tracked until it is freed; the largest total over the batch's input voxels is the
    working memory per voxel (memory scales with the voxels of a fully convolutional
    network; backend scratch space is not seen).  A network whose layers are isotropic
    (:func:`isotropic_layers`) is probed along x only.
    """
    multiple = max(1, int(multiple))
    device = device or torch.device("cpu")
    if window_wide_layers(network):
        return NetworkProbe(None)
    width = max(PROBE_WIDTH, 2 * multiple) // multiple * multiple
    axes = (2,) if isotropic_layers(network) else (0, 1, 2)
    was_training = network.training
    network.eval()
    tracker = _PeakTracker(device)
    run = partial(_forward, network, precision=precision, layout=layout, device=device)
    radius: dict[int, int] = {}
    try:
        for axis in axes:
            found, nearest = None, 0
            probe = min(PROBE_START, length)
            while found is None:
                probe = probe // multiple * multiple
                found = _axis_radius(
                    run,
                    axis,
                    probe,
                    multiple=multiple,
                    width=width,
                    tolerance=tolerance,
                    seed=seed + axis,
                    tracker=tracker if tracker.voxels == 0 else None,
                    nearest=nearest,
                )
                if found is None and probe >= length:
                    return NetworkProbe(None, tracker.per_voxel, tracker.channels)
                if found is None:  # it changed at the farthest distance tested: test only beyond it
                    nearest = max(nearest, _farthest_test(probe, multiple) + multiple)
                probe = min(probe * 2, length)
            radius[axis] = found
    finally:
        network.train(was_training)
        if layout is not None:
            set_memory_format(network, torch.contiguous_format)
    # x (axis 2) is always probed; an isotropic network's z and y radius is x's
    z, y, x = (radius.get(axis, radius[2]) for axis in range(3))
    return NetworkProbe((z, y, x), tracker.per_voxel, tracker.channels)


def _forward(
    network: nn.Module,
    inputs: torch.Tensor,
    *,
    precision: str,
    layout: torch.memory_format | None,
    device: torch.device,
    tracker: _PeakTracker | None = None,
) -> torch.Tensor:
    """The network's float32 output for ``inputs`` in the given arithmetic and layout."""
    inputs = inputs.to(device)
    if layout is not None:
        set_memory_format(network, layout)
        inputs = inputs.contiguous(memory_format=layout)
    output: torch.Tensor
    with torch.inference_mode(), tracker if tracker is not None else nullcontext():
        if precision == "float32":
            output = network(inputs)
        else:
            with torch.autocast(device_type=device.type, dtype=getattr(torch, precision)):
                output = network(inputs)
    if tracker is not None:
        tracker.voxels, tracker.channels = inputs.numel(), int(output.shape[1])
    return output.float().cpu()


class _PeakTracker(TorchFunctionMode):
    """Tracks the bytes of the tensors that torch functions return, until each is freed; keeps the peak.

    A function mode sees every torch function a network's Python code calls (module
    forwards, ``torch.cat``, ``interpolate``), not the temporaries inside one kernel
    (autocast's copies of the input): those are transient and covered by
    :data:`~czii_cli.predict_probs.stitch.SCRATCH`.  A dispatch mode would see them too,
    but entering one imports ``torch._dynamo`` (seconds, once per process).
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device_type = device.type
        self.storages: dict[int, list[int]] = {}
        self.live = self.peak = 0
        self.voxels = self.channels = 0

    @property
    def per_voxel(self) -> float:
        return self.peak / self.voxels if self.voxels else 0.0

    def _release(self, key: int) -> None:
        entry = self.storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self.storages[key]

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        result = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(result)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != self.device_type:
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            entry = self.storages.get(key)
            if entry is None:
                self.storages[key] = entry = [storage.nbytes(), 0]
                self.live += entry[0]
                self.peak = max(self.peak, self.live)
            entry[1] += 1
            weakref.finalize(tensor, self._release, key)
        return result


def _farthest_test(length: int, multiple: int) -> int:
    """The farthest distance a probe of ``length`` tests (voxels, a multiple; below 0: none).

    The central block starts at the middle (on the multiple); the farthest test still
    replaces at least ``multiple`` voxels at the nearer end of the probe.
    """
    block = (length // 2) // multiple * multiple
    return (min(block, length - block - multiple) - multiple) // multiple * multiple


def _axis_radius(
    run: Callable[..., torch.Tensor],
    axis: int,
    length: int,
    *,
    multiple: int,
    width: int,
    tolerance: float,
    seed: int,
    tracker: _PeakTracker | None = None,
    nearest: int = 0,
) -> int | None:
    """The radius along one axis with a probe of ``length``, or None if it reaches the probe's ends.

    One batch holds, per random probe, the probe itself and one copy per tested distance
    ``d`` whose voxels farther than ``d`` from the central block are replaced.  Only
    distances from ``nearest`` on are tested (a shorter probe already saw a change
    closer): a radius of ``nearest`` is returned when none of them changes the block.
    """
    block = (length // 2) // multiple * multiple
    top = _farthest_test(length, multiple) // multiple
    if top < 1:
        return None
    generator = torch.Generator().manual_seed(seed)
    index = torch.arange(length)
    view = [1, 1, 1, 1, 1]
    view[2 + axis] = length
    shape = [width] * 3
    shape[axis] = length
    distances = [k * multiple for k in range(top + 1) if k * multiple >= nearest]
    if not distances:
        return None
    samples = []
    for _ in range(PROBE_SEEDS):
        base = torch.randn((1, 1, *shape), generator=generator)
        other = torch.randn((1, 1, *shape), generator=generator)
        samples.append(base)
        for distance in distances:
            far = ((index < block - distance) | (index >= block + multiple + distance)).view(view)
            samples.append(torch.where(far, other, base))
    outputs = run(torch.cat(samples), tracker=tracker)
    stride = output_stride_of(length, int(outputs.shape[2 + axis]), multiple=multiple)
    central = [slice(None)] * 5
    central[2 + axis] = slice(block // stride, (block + multiple) // stride)
    outputs = outputs[tuple(central)]
    changed_beyond = -1  # the largest distance whose change still moved the block
    step = len(distances) + 1
    for first in range(0, len(samples), step):
        reference = outputs[first]
        scale = float(reference.abs().max()) or 1.0
        for offset, distance in enumerate(distances, start=1):
            if float((outputs[first + offset] - reference).abs().max()) > tolerance * scale:
                changed_beyond = max(changed_beyond, distance)
    if changed_beyond >= distances[-1]:
        return None
    return changed_beyond + multiple if changed_beyond >= 0 else nearest


def output_stride_of(side: int, output_side: int, *, multiple: int) -> int:
    """The stride of a network that maps ``side`` input voxels to ``output_side`` output voxels.

    1 when the sides are equal; ``s`` when the output is ``side / s`` with ``s`` dividing
    ``multiple`` (so tiles on the multiple map to whole output voxels); anything else is a
    :class:`UsageError`.

    Examples
    --------
    >>> output_stride_of(64, 32, multiple=8)
    2
    """
    if output_side == side:
        return 1
    stride = side // output_side if output_side else 0
    if stride < 2 or stride * output_side != side or multiple % stride:
        raise UsageError(
            f"a network mapped {side} input voxels to {output_side}: neither the same size nor a stride dividing "
            f"its size multiple {multiple}"
        )
    return stride


def working_bytes_per_voxel(
    network: nn.Module,
    *,
    multiple: int,
    precision: str = "float32",
    layout: torch.memory_format | None = None,
    device: torch.device | None = None,
    side: int = 32,
) -> tuple[float, int]:
    """Peak bytes of the tensors a forward pass holds at once, per input voxel; output channels.

    A probe of about ``side``^3 voxels (sides rounded up to ``multiple``) is run with
    every tensor that the network's torch functions return tracked until it is freed; the
    largest total, divided by the probe's voxels, is returned.  Memory scales with the
    voxels of a fully convolutional network, so this predicts the working memory of a
    large tile.  Backend scratch space is not seen: leave some room in a budget.

    Parameters
    ----------
    network : torch.nn.Module
    multiple : int
        Window sides must be multiples of this.
    precision : str
        ``float32``, ``bfloat16`` or ``float16``: autocast of the probe, as in inference.
    layout : torch.memory_format, optional
        Memory layout of the input and the network during the probe.
    device : torch.device, optional
        Where to run; defaults to the CPU.
    side : int
        Probe side in voxels.

    Returns
    -------
    bytes_per_voxel : float
    channels : int
        The network's output channels.
    """
    device = device or torch.device("cpu")
    side = max(int(math.ceil(side / multiple)) * multiple, multiple)
    tracker = _PeakTracker(device)
    was_training = network.training
    network.eval()
    try:
        _forward(
            network,
            torch.randn((1, 1, side, side, side)),
            precision=precision,
            layout=layout,
            device=device,
            tracker=tracker,
        )
    finally:
        network.train(was_training)
        if layout is not None:
            set_memory_format(network, torch.contiguous_format)
    return tracker.per_voxel, tracker.channels


@dataclass(frozen=True)
class HaloTiling:
    """Tiles over one volume, each used only for its core, the voxels farthest from its edges.

    Attributes
    ----------
    shape : tuple of int
        The volume's spatial shape (z, y, x).
    padded_shape : tuple of int
        ``shape`` rounded up to the size multiple (zeros beyond the volume's end).
    window : tuple of int
        Tile shape (z, y, x), multiples of the size multiple.
    halo : tuple of int
        Voxels of context each core keeps to its tile's edges (none at the volume's edges).
    starts : tuple of three tuples of int
        Tile starts along each axis; the tiles are their Cartesian product.
    cuts : tuple of three tuples of int
        Core boundaries along each axis: tile ``i`` gives voxels ``[cuts[i], cuts[i + 1])``
        of the padded volume (``cuts[0] == 0``, ``cuts[-1] == padded size``), multiples
        of ``stride``.
    stride : int
        Output stride of the networks: the output grid is ``stride`` times coarser than
        the volume's (1: the volume's own grid).
    """

    shape: tuple[int, int, int]
    padded_shape: tuple[int, int, int]
    window: tuple[int, int, int]
    halo: tuple[int, int, int]
    starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    cuts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    stride: int = 1

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """The output's spatial shape: the volume's, binned by ``stride`` (partial blocks kept)."""
        return binned_shape(self.shape, factor=self.stride)

    @property
    def count(self) -> int:
        """Number of tiles."""
        return math.prod(len(s) for s in self.starts)

    @property
    def redundancy(self) -> float:
        """Voxels computed over voxels of the volume."""
        return self.count * math.prod(self.window) / math.prod(self.shape)

    def tiles(self) -> list[tuple[tuple[int, int, int], tuple[slice, slice, slice]]]:
        """``(start, core)`` of each tile in z, y, x order: its start in the volume and the
        slices of the output (not padded; the volume's grid at stride 1, the binned grid
        at stride ``s``) it provides; tiles whose core lies in the padding only are
        skipped."""
        found: list[tuple[tuple[int, int, int], tuple[slice, slice, slice]]] = []
        step, out = self.stride, self.output_shape
        for index in itertools.product(*(range(len(s)) for s in self.starts)):
            z, y, x = (self.starts[a][i] for a, i in enumerate(index))
            cz, cy, cx = (
                slice(self.cuts[a][i] // step, min(self.cuts[a][i + 1] // step, out[a])) for a, i in enumerate(index)
            )
            core = (cz, cy, cx)
            if all(c.stop > c.start for c in core):
                found.append(((z, y, x), core))
        return found


def axis_tiles(
    size: int, window: int, *, halo: int, multiple: int, align: int = 1, step: int = 1
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Starts and core boundaries of the fewest tiles of ``window`` voxels along one axis.

    Tiles start at multiples of ``multiple``, the first at 0, the last ending at ``size``
    (a multiple too); each tile's core stays ``halo`` voxels away from its edges, except at
    the ends of the axis.  Each cut between two cores lies where both tiles are valid: on
    a multiple of ``align`` if there is one, else in the middle, rounded down to a
    multiple of ``step`` (the output stride, which must divide ``multiple`` and ``align``).

    Examples
    --------
    >>> axis_tiles(632, 368, halo=48, multiple=8, align=64)
    ((0, 264), (0, 320, 632))
    >>> axis_tiles(184, 184, halo=48, multiple=8)
    ((0,), (0, 184))
    """
    if size % multiple or window % multiple:
        raise UsageError(f"tiles of {window} on an axis of {size} must both be multiples of {multiple}")
    if multiple % step or align % step:
        raise UsageError(f"an output stride of {step} must divide the size multiple {multiple} and alignment {align}")
    if window >= size:
        return (0,), (0, size)
    core = window - 2 * halo
    if core < multiple:
        raise UsageError(f"a tile of {window} voxels leaves no core inside a halo of {halo}")
    count = 2 + max(0, math.ceil((size - 2 * (window - halo)) / core))
    span = size - window
    starts = [round(i * span / (count - 1) / multiple) * multiple for i in range(count)]
    cuts = [0]
    for left, right in zip(starts, starts[1:]):
        low, high = right + halo, left + window - halo  # both tiles valid in [low, high]
        if low > high:  # rounding to the multiple left a gap: should not happen with the count above
            raise UsageError(f"tiles of {window} with a halo of {halo} cannot cover an axis of {size}")
        aligned = math.ceil(low / align) * align
        # low is a multiple of ``multiple``, so of ``step``: the rounded middle stays in [low, high]
        cuts.append(aligned if aligned <= high else (low + high) // 2 // step * step)
    cuts.append(size)
    return tuple(starts), tuple(cuts)


def _smallest_window(size: int, count: int, *, halo: int, multiple: int) -> int:
    """The smallest tile side (a multiple) with which ``count`` tiles cover ``size`` voxels."""
    if count == 1:
        return size
    needed = math.ceil((size + 2 * halo * (count - 1)) / count)
    return max(math.ceil(needed / multiple) * multiple, 2 * halo + multiple)


def plan_halo_tiling(
    shape: Sequence[int],
    *,
    halo: Sequence[int],
    multiple: int,
    max_window_voxels: int,
    align: Sequence[int] = (1, 1, 1),
    stride: int = 1,
) -> HaloTiling:
    """The tiling that computes the fewest voxels with tiles of at most ``max_window_voxels``.

    Parameters
    ----------
    shape : sequence of 3 int
        The volume's spatial shape.
    halo : sequence of 3 int
        Context each core keeps along z, y, x (at least the receptive radius).
    multiple : int
        Tile sides and starts are multiples of it.
    max_window_voxels : int
        Largest tile (voxels): what the memory budget allows.
    align : sequence of 3 int
        Preferred positions of the cuts (the output's chunks, in output voxels), per axis.
    stride : int
        Output stride of the networks (it must divide ``multiple``): cuts fall on its
        multiples and the cores are given on the output's grid (:meth:`HaloTiling.tiles`).

    Returns
    -------
    HaloTiling
        Among the tilings that fit, the fewest computed voxels, then the fewest tiles.

    Examples
    --------
    >>> t = plan_halo_tiling((184, 630, 630), halo=(48, 48, 48), multiple=8, max_window_voxels=25_000_000)
    >>> t.window, t.count, round(t.redundancy, 2)
    ((184, 368, 368), 4, 1.36)
    """
    shape = tuple(int(s) for s in shape)
    multiple = max(1, int(multiple))
    halo = tuple(math.ceil(int(h) / multiple) * multiple for h in halo)
    padded = tuple(math.ceil(s / multiple) * multiple for s in shape)
    options = []
    for size, h in zip(padded, halo):
        sides: dict[int, int] = {}
        for count in range(1, size // multiple + 1):
            side = _smallest_window(size, count, halo=h, multiple=multiple)
            if side > size:
                continue
            sides.setdefault(side, count)
            if side <= 2 * h + multiple:
                break
        options.append(sorted((count, side) for side, count in sides.items()))
    best = None
    for choice in itertools.product(*options):
        window = tuple(side for _, side in choice)
        if math.prod(window) > max_window_voxels:
            continue
        count = math.prod(c for c, _ in choice)
        key = (count * math.prod(window), count)
        if best is None or key < best[0]:
            best = (key, window)
    if best is None:
        smallest = math.prod(min(side for _, side in o) for o in options)
        raise UsageError(
            f"the memory budget allows tiles of {max_window_voxels} voxels, but the smallest tile with a halo of "
            f"{'x'.join(map(str, halo))} has {smallest}; raise the memory budget"
        )
    window = best[1]
    axes = [
        axis_tiles(p, w, halo=h, multiple=multiple, align=a * stride, step=stride)
        for p, w, h, a in zip(padded, window, halo, align)
    ]
    # one value per axis of ``shape`` (z, y, x), as every caller passes: the tuples have three
    return HaloTiling(
        shape=cast("tuple[int, int, int]", shape),
        padded_shape=cast("tuple[int, int, int]", padded),
        window=cast("tuple[int, int, int]", window),
        halo=cast("tuple[int, int, int]", halo),
        starts=cast("tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]", tuple(a[0] for a in axes)),
        cuts=cast("tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]", tuple(a[1] for a in axes)),
        stride=stride,
    )


def network_bounds(
    networks: Sequence[nn.Module],
    *,
    multiple: int,
    tolerance: float,
    device: torch.device | None = None,
    precision: str = "float32",
    layouts: Sequence[torch.memory_format | None] | None = None,
) -> tuple[tuple[int, int, int] | None, float, int]:
    """The largest receptive radius per axis over ``networks`` (None if any is unbounded),
    the largest working memory per voxel and the output channels (see :func:`probe_network`)."""
    radius = np.zeros(3, dtype=int)
    per_voxel, channels = 0.0, 0
    for position, network in enumerate(networks):
        layout = layouts[position] if layouts else None
        found = probe_network(
            network, multiple=multiple, tolerance=tolerance, device=device, precision=precision, layout=layout
        )
        if found.radius is None:
            return None, 0.0, 0
        radius = np.maximum(radius, found.radius)
        per_voxel, channels = max(per_voxel, found.bytes_per_voxel), max(channels, found.channels)
    z, y, x = (int(r) for r in radius)
    return (z, y, x), per_voxel, channels
