"""Sliding-window prediction that streams finished z-ranges into an output array.

The volume is processed in z bands, one band per row of window starts along z.  Each
band's windows are blended (Gaussian weights, :mod:`.windows`) into a float32 buffer of
``[C, window_z, Y, X]``; when a band is done, the planes no later band reaches are
final: they are normalised by the separable weight sums, written to the output (one
channel at a time), and the buffer is shifted down by that many planes.  Peak memory is
one buffer, one input band per normalization and one batch of windows, never a float32
copy of the whole map.

Per batch of windows, every network and every TTA transform is run and the activated
outputs (probabilities, or logits) are averaged; that mean is what gets blended.  The
networks may run in a reduced precision (:mod:`.runner`); activation, averaging and
blending are float32 whatever the precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ..errors import UsageError
from ..resample import binned_shape
from .runner import ACTIVATIONS, NetworkRunner, activate, is_contiguous_float32, network_device, resolve_precision
from .stitch import DEFAULT_HALO_TOLERANCE, DEFAULT_MEMORY_BUDGET, plan_tiles, predict_tiles_into
from .stride import at_output_stride
from .tta import Transform, tta_transforms
from .windows import Tiling

Prepare = Callable[[np.ndarray], np.ndarray]
TILINGS = ("auto", "halo", "sliding")


@dataclass(frozen=True)
class Member:
    """One network of an ensemble and how its input is prepared.

    ``prepare`` maps a raw block of the volume ``[z, y, x]`` to the network's input
    scale (float32), e.g. the model's normalization; ``None`` uses the block as is.
    """

    network: nn.Module
    prepare: Prepare | None = None


class FixedOutput:
    """An existing output array as the ``output`` callable of :func:`predict_into`.

    Its ``dtype`` and ``chunks`` tell the tile planner the output's value size and chunk
    shape (cuts between tiles go on chunk boundaries where possible).
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self.dtype = array.dtype
        self.chunks = getattr(array, "chunks", None)

    def __call__(self, channels: int) -> Any:
        return self.array


def predict_volume(
    network: nn.Module,
    volume: np.ndarray,
    *,
    patch_size: Sequence[int],
    overlap: float = 0.25,
    batch_size: int = 1,
    tta: str = "none",
    activation: str = "softmax",
    device: torch.device | None = None,
    precision: str = "auto",
    tiling: str = "sliding",
    multiple: int = 1,
    output_stride: int = 1,
) -> np.ndarray:
    """Predict a whole volume in memory with a sliding window.

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``[B, 1, Z, Y, X]`` to ``[B, C, Z, Y, X]`` logits.
    volume : ndarray, shape (Z, Y, X)
        The tomogram, already normalized.
    patch_size : sequence of 3 int
        Window shape (z, y, x); axes of the volume shorter than it are zero-padded.
    overlap : float
        Minimum overlap between neighbouring windows, fraction of the window.
    batch_size : int
        Windows per network call.
    tta : str
        ``none``, ``flips``, ``rot90`` or ``all`` (see :mod:`czii_cli.predict_probs.tta`).
    activation : str
        ``softmax``, ``sigmoid`` or ``logits`` (raw, averaged logits).
    device : torch.device, optional
        Where to run; defaults to the network's device.
    precision : str
        ``auto``, ``float32`` or ``bfloat16``: the network's arithmetic (autocast);
        ``auto`` is float16 on CUDA, bfloat16 on a CPU with native bfloat16, else
        float32 (see :func:`czii_cli.predict_probs.runner.resolve_precision`).
    tiling : {"sliding", "halo", "auto"}
        Overlapping windows with Gaussian blending, or large tiles with a halo of the
        network's receptive radius stitched by their cores (see :func:`predict_into`).
    multiple : int
        Tile sides must be multiples of this (``halo``, ``auto``).
    output_stride : int
        1: the map on the volume's grid.  2: on the network's half-resolution grid (a
        ``light`` net with ``stem_stride=2``; halo tiles only), see :func:`predict_into`.

    Returns
    -------
    ndarray, shape (C, Z, Y, X), float32
        At output stride ``s`` the spatial shape is ``binned_shape(volume.shape, factor=s)``.

    Examples
    --------
    >>> class Twice(torch.nn.Module):
    ...     def forward(self, x):
    ...         return torch.cat([x, 2 * x], dim=1)
    >>> volume = np.arange(6 * 7 * 9, dtype=np.float32).reshape(6, 7, 9)
    >>> out = predict_volume(Twice(), volume, patch_size=(4, 4, 4), activation="logits", tta="all")
    >>> out.shape, bool(np.allclose(out[1], 2 * volume, rtol=1e-6))
    ((2, 6, 7, 9), True)
    """
    volume = np.asarray(volume, dtype=np.float32)
    arrays = []

    def allocate(channels: int) -> np.ndarray:
        arrays.append(np.empty((channels, *binned_shape(volume.shape, factor=output_stride)), dtype=np.float32))
        return arrays[0]

    predict_into(
        [Member(network)],
        volume,
        allocate,
        patch_size=patch_size,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        activation=activation,
        device=device,
        precision=precision,
        tiling=tiling,
        multiple=multiple,
        memory_budget=DEFAULT_MEMORY_BUDGET,
        output_stride=output_stride,
    )
    return arrays[0]


def predict_into(
    members: Sequence[Member],
    volume: Any,
    output: Callable[[int], Any],
    *,
    patch_size: Sequence[int],
    overlap: float = 0.25,
    batch_size: int = 1,
    tta: str = "none",
    activation: str = "softmax",
    device: torch.device | None = None,
    on_windows: Callable[[int], None] | None = None,
    precision: str = "auto",
    tiling: str = "sliding",
    multiple: int = 1,
    memory_budget: float = DEFAULT_MEMORY_BUDGET,
    halo_tolerance: float = DEFAULT_HALO_TOLERANCE,
    on_plan: Callable[[int], None] | None = None,
    output_stride: int = 1,
) -> dict[str, Any]:
    """Predict a volume with one or more networks, writing finished planes into an array.

    Parameters
    ----------
    members : sequence of Member
        Networks whose outputs are averaged (an ensemble), each with its input preparation.
    volume : array-like, shape (Z, Y, X)
        Read one z band at a time, so a memory map or zarr array stays on disk.
    output : callable
        Called once, with the number of output channels C once the first batch has run;
        returns the writable array-like ``(C, Z, Y, X)`` (numpy array, memory map or
        zarr array), written as ``out[c, z0:z1] = block`` in its dtype, each plane once.
    patch_size, overlap, batch_size, tta, activation, device :
        As in :func:`predict_volume`; ``device`` defaults to the first network's.
    on_windows : callable, optional
        Called with the number of windows finished after each batch (for progress).
    precision : str
        As in :func:`predict_volume`, the same for every network.
    tiling : {"sliding", "halo", "auto"}
        ``sliding``: windows of ``patch_size`` with ``overlap``, Gaussian blending.
        ``halo``: large tiles with a halo of the networks' receptive radius, stitched by
        their cores (:mod:`.stitch`); an error for a network whose receptive field is
        unbounded.  ``auto``: ``halo`` where the receptive field is bounded, else ``sliding``.
    multiple : int
        Tile sides must be multiples of this for every network (``halo``, ``auto``).
    memory_budget : float
        Bytes a tile may use (``halo``, ``auto``; see :func:`.stitch.plan_tiles`).
    halo_tolerance : float
        Relative influence beyond the halo that is ignored (``halo``, ``auto``).
    on_plan : callable, optional
        Called with the number of windows (or tiles) once they are planned.
    output_stride : int
        1, or 2: every network is set to give its logits on its half-resolution grid
        (:mod:`.stride`) while it runs, and ``output`` must be
        ``(C, *binned_shape(volume.shape, factor=2))``: voxel ``j`` stands for volume voxels
        ``2j .. 2j + 1``.  Halo tiles only (a :class:`UsageError` with ``sliding``, or when
        ``auto`` finds an unbounded receptive field); the stitched map equals one pass of
        the networks over the whole padded volume at that stride.  TTA flips stay exact
        permutations: a flipped tile's even side flips the block pairs along with it.

    Returns
    -------
    dict
        What was run: ``tiling`` (``sliding`` or ``halo``), ``output_stride``, ``windows``, ``window``,
        ``halo`` (None for ``sliding``), ``layouts`` (memory layout per network),
        ``precision`` (``auto`` resolved) and ``seconds``: wall-clock seconds per stage of
        the halo tiling, ``plan`` (probing the networks' receptive field and memory) and
        those of :func:`.stitch.predict_tiles_into` (for ``sliding`` windows at most ``plan``,
        when ``auto`` found an unbounded receptive field).
    """
    transforms = tta_transforms(tta)
    if activation not in ACTIVATIONS:
        raise UsageError(f"unknown activation {activation!r} (choose from {', '.join(ACTIVATIONS)})")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if tiling not in TILINGS:
        raise UsageError(f"unknown tiling {tiling!r} (choose from {', '.join(TILINGS)})")
    device = device or network_device(members[0].network)
    resolved = resolve_precision(precision, device)
    if output_stride != 1 and tiling == "sliding":
        raise UsageError(f"output stride {output_stride} needs halo tiles, not sliding windows")
    with at_output_stride([m.network for m in members], output_stride):
        return _predict_into(
            members,
            volume,
            output,
            patch_size=patch_size,
            overlap=overlap,
            batch_size=batch_size,
            transforms=transforms,
            activation=activation,
            device=device,
            on_windows=on_windows,
            precision=precision,
            resolved=resolved,
            tiling=tiling,
            multiple=multiple,
            memory_budget=memory_budget,
            halo_tolerance=halo_tolerance,
            on_plan=on_plan,
            output_stride=output_stride,
        )


def _predict_into(
    members: Sequence[Member],
    volume: Any,
    output: Callable[[int], Any],
    *,
    patch_size: Sequence[int],
    overlap: float,
    batch_size: int,
    transforms: Sequence[Transform],
    activation: str,
    device: torch.device,
    on_windows: Callable[[int], None] | None,
    precision: str,
    resolved: str,
    tiling: str,
    multiple: int,
    memory_budget: float,
    halo_tolerance: float,
    on_plan: Callable[[int], None] | None,
    output_stride: int,
) -> dict[str, Any]:
    """:func:`predict_into` with its options checked and the networks at ``output_stride``."""
    seconds: dict[str, float] = {}
    if tiling != "sliding":
        planned = time.perf_counter()
        halo = plan_tiles(
            [m.network for m in members],
            volume.shape,
            multiple=multiple,
            precision=resolved,
            passes=len(members) * len(transforms),
            memory_budget=memory_budget,
            tolerance=halo_tolerance,
            out_itemsize=_output_itemsize(output),
            align=_output_chunks(output),
            device=device,
            stride=output_stride,
        )
        seconds["plan"] = time.perf_counter() - planned
        if halo is None and tiling == "halo":
            raise UsageError("halo tiling needs networks with a bounded receptive field; use sliding windows")
        if halo is None and output_stride != 1:
            raise UsageError(
                f"output stride {output_stride} needs halo tiles, and the networks' receptive field is unbounded"
            )
        if halo is not None:
            if on_plan is not None:
                on_plan(len(halo.tiles()))
            runners = [
                NetworkRunner(m.network, device=device, precision=precision, output_stride=output_stride)
                for m in members
            ]
            with torch.inference_mode(), ExitStack() as stack:
                for runner in runners:
                    stack.enter_context(runner)
                predict_tiles_into(
                    halo,
                    volume,
                    output,
                    prepares=[m.prepare for m in members],
                    runners=runners,
                    transforms=transforms,
                    activation=activation,
                    device=device,
                    on_windows=on_windows,
                    seconds=seconds,
                )
            return {
                "tiling": "halo",
                "output_stride": output_stride,
                "windows": len(halo.tiles()),
                "window": list(halo.window),
                "halo": list(halo.halo),
                "layouts": [r.layout for r in runners],
                "precision": resolved,
                "seconds": seconds,
            }
    grid = Tiling.plan(volume.shape, patch_size, overlap=overlap)
    if on_plan is not None:
        on_plan(grid.count)
    weights = torch.from_numpy(grid.importance_map() / (len(members) * len(transforms))).to(device)
    runners = [NetworkRunner(m.network, device=device, precision=precision) for m in members]
    passes = _Passes(members, runners, transforms, activation=activation, tiling=grid, batch_size=batch_size)
    writer: _BandWriter | None = None
    plane = grid.plane_windows()
    with torch.inference_mode(), ExitStack() as stack:
        for runner in runners:
            stack.enter_context(runner)
        for band_index, band_start in enumerate(grid.starts[0]):
            inputs = _band_inputs(members, volume, grid, band_start, device)
            for first in range(0, len(plane), batch_size):
                starts = plane[first : first + batch_size]
                summed = passes.run(inputs, starts)
                if writer is None:
                    writer = _BandWriter(output(summed.shape[1]), grid, device=device)
                writer.blend(starts, summed, weights)
                if on_windows is not None:
                    on_windows(len(starts))
            assert writer is not None  # made by the band's first batch (a band has at least one window)
            writer.finish_band(band_index)
    return {
        "tiling": "sliding",
        "output_stride": 1,
        "windows": grid.count,
        "window": list(grid.window),
        "halo": None,
        "layouts": [r.layout for r in runners],
        "precision": resolved,
        "seconds": seconds,
    }


class _Passes:
    """Every network x TTA pass over one batch of windows, summed into a reused buffer.

    Buffers (the batch of input windows, the logits as contiguous float32 when the network
    gives another dtype or layout, the activated output, the sum) are allocated once and
    reused, so a batch costs no fresh memory besides the networks' own.
    """

    def __init__(
        self,
        members: Sequence[Member],
        runners: Sequence[NetworkRunner],
        transforms: Sequence[Transform],
        *,
        activation: str,
        tiling: Tiling,
        batch_size: int,
    ) -> None:
        self.members = members
        self.runners = runners
        self.transforms = transforms
        self.activation = activation
        self.tiling = tiling
        self.batch_size = batch_size
        # keyed by ("windows", preparation id) or (buffer name, shape)
        self._buffers: dict[tuple[str, int | tuple[int, ...]], torch.Tensor] = {}

    def run(self, inputs: dict[int, torch.Tensor], starts: Sequence[tuple[int, int]]) -> torch.Tensor:
        """The sum over passes of the activated, inverted outputs ``[n, C, Z, Y, X]``."""
        count = len(starts)
        total: torch.Tensor | None = None
        windows = {key: self._gather(key, band, starts) for key, band in inputs.items()}
        for member, runner in zip(self.members, self.runners):
            for transform in self.transforms:
                logits = runner(transform.apply(windows[id(member.prepare)]))
                staging = None if is_contiguous_float32(logits) else self._buffer("staging", logits, count)
                if total is None and transform.is_identity:
                    total = activate(logits, self.activation, out=self._buffer("total", logits, count), staging=staging)
                    continue
                activated = activate(
                    logits, self.activation, out=self._buffer("activated", logits, count), staging=staging
                )
                activated = transform.invert(activated)
                if total is None:
                    total = self._buffer("total", activated, count).copy_(activated)
                else:
                    total.add_(activated)
        assert total is not None  # set by the first pass (there is at least one member and transform)
        return total

    def _gather(self, key: int, band: torch.Tensor, starts: Sequence[tuple[int, int]]) -> torch.Tensor:
        _, height, width = self.tiling.window
        shape = (self.batch_size, 1, *self.tiling.window)
        windows = self._buffers.get(("windows", key))
        if windows is None:
            windows = self._buffers[("windows", key)] = torch.empty(shape, dtype=torch.float32, device=band.device)
        for index, (y, x) in enumerate(starts):
            windows[index].copy_(band[:, :, y : y + height, x : x + width])
        return windows[: len(starts)]

    def _buffer(self, name: str, like: torch.Tensor, count: int) -> torch.Tensor:
        shape = (self.batch_size, *like.shape[1:])
        buffer = self._buffers.get((name, shape))
        if buffer is None:
            buffer = self._buffers[(name, shape)] = torch.empty(shape, dtype=torch.float32, device=like.device)
        return buffer[:count]


def _band_inputs(
    members: Sequence[Member], volume: Any, tiling: Tiling, band_start: int, device: torch.device
) -> dict[int, torch.Tensor]:
    """Each distinct preparation's input band ``[1, window_z, Y, X]`` (zero-padded) on ``device``."""
    depth = tiling.window[0]
    raw = np.asarray(volume[band_start : band_start + depth], dtype=np.float32)
    inputs: dict[int, torch.Tensor] = {}
    for member in members:
        key = id(member.prepare)
        if key in inputs:
            continue
        block = raw if member.prepare is None else np.asarray(member.prepare(raw), dtype=np.float32)
        padded_shape = (depth, *tiling.padded_shape[1:])
        if block.shape != padded_shape:
            padded = np.zeros(padded_shape, dtype=np.float32)
            padded[: block.shape[0], : block.shape[1], : block.shape[2]] = block
            block = padded
        inputs[key] = torch.from_numpy(np.ascontiguousarray(block)).to(device)[None]
    return inputs


class _BandWriter:
    """The float32 blending buffer of one z band and the flushing of finished planes."""

    def __init__(self, out: Any, tiling: Tiling, *, device: torch.device) -> None:
        self.out = _ChunkAlignedWriter(out)
        self.tiling = tiling
        self.channels = int(out.shape[0])
        depth = tiling.window[0]
        self.buffer = torch.zeros((self.channels, depth, *tiling.padded_shape[1:]), dtype=torch.float32, device=device)
        inverse_z, inverse_y, inverse_x = tiling.inverse_weight_sums()
        self.inverse_z = torch.from_numpy(inverse_z).to(device)
        plane = inverse_y[: tiling.shape[1], None] * inverse_x[None, : tiling.shape[2]]
        self.inverse_plane = torch.from_numpy(plane).to(device)
        self.finished = torch.empty((depth, *tiling.shape[1:]), dtype=torch.float32, device=device)
        # torch converts float32 to float16 several times faster than numpy's astype
        self.stored = torch.empty(self.finished.shape, dtype=_torch_dtype(self.out.dtype))

    def blend(self, starts: Sequence[tuple[int, int]], outputs: torch.Tensor, weights: torch.Tensor) -> None:
        """Add each window's output times the importance map into the buffer."""
        _, height, width = self.tiling.window
        for (y, x), output in zip(starts, outputs):
            self.buffer[:, :, y : y + height, x : x + width].addcmul_(output, weights)

    def finish_band(self, index: int) -> None:
        """Write the planes no later band reaches, then shift the rest to the buffer's top."""
        starts = self.tiling.starts[0]
        band_start = starts[index]
        end = starts[index + 1] if index + 1 < len(starts) else band_start + self.tiling.window[0]
        valid = max(0, min(end, self.tiling.shape[0]) - band_start)
        if valid:
            height, width = self.tiling.shape[1:]
            finished, stored = self.finished[:valid], self.stored[:valid]
            scale_z = self.inverse_z[band_start : band_start + valid, None, None]
            for channel in range(self.channels):
                torch.mul(self.buffer[channel, :valid, :height, :width], self.inverse_plane, out=finished)
                finished.mul_(scale_z)
                direct = self.out.planes(channel, band_start, valid)
                (stored if direct is None else direct).copy_(finished)
                if direct is None:
                    self.out.write(channel, band_start, stored.numpy())
        if index + 1 < len(starts):
            self._shift(end - band_start)

    def _shift(self, planes: int) -> None:
        """Move planes ``[planes:]`` to the top and zero the rest, in non-overlapping blocks."""
        depth = self.buffer.shape[1]
        keep = depth - planes
        for top in range(0, keep, planes):
            rows = min(planes, keep - top)
            self.buffer[:, top : top + rows] = self.buffer[:, top + planes : top + planes + rows]
        self.buffer[:, keep:] = 0.0


def _output_itemsize(output: Callable[[int], Any]) -> int:
    """Bytes per value of the output (float16 unless the callable says otherwise)."""
    dtype = getattr(output, "dtype", None)
    return np.dtype(dtype).itemsize if dtype is not None else 2


def _output_chunks(output: Callable[[int], Any]) -> tuple[int, int, int]:
    """The spatial chunk shape of the output array, when the callable carries one."""
    chunks = getattr(output, "chunks", None)
    # the chunks of a (C, Z, Y, X) array: three spatial sides after the channel's
    return cast("tuple[int, int, int]", tuple(int(c) for c in chunks[1:])) if chunks else (1, 1, 1)


def _torch_dtype(dtype: npt.DTypeLike) -> torch.dtype:
    """The torch dtype of a numpy dtype (float16 or float32 outputs)."""
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


class _ChunkAlignedWriter:
    """Writes z-ranges of each channel so that every zarr chunk is written whole, once.

    A range that ends inside a chunk keeps its last planes (fewer than a chunk's depth,
    in the output dtype) until the next range completes the chunk; rewriting a
    compressed chunk would cost a decompress and a second compress.  Arrays without
    chunks are written through; a C-contiguous numpy array (or memory map) is written
    in place by the caller through :meth:`planes`, sparing a single-threaded copy.
    """

    def __init__(self, out: Any) -> None:
        self.out = out
        self.dtype = out.dtype
        self.channels = int(out.shape[0])
        self.depth = int(out.shape[1])
        chunks = getattr(out, "chunks", None)
        self.chunk_depth = int(chunks[1]) if chunks else 1
        self._held: dict[int, tuple[int, np.ndarray]] = {}

    def planes(self, channel: int, start: int, count: int) -> torch.Tensor | None:
        """Planes ``[start, start + count)`` of ``channel`` as a writable CPU tensor sharing the
        output's memory, when the output is a C-contiguous numpy array; else None (use :meth:`write`)."""
        out = self.out
        if not (isinstance(out, np.ndarray) and out.flags.c_contiguous and out.flags.writeable):
            return None
        return torch.from_numpy(out[channel, start : start + count])

    def write(self, channel: int, start: int, block: np.ndarray) -> None:
        """Write planes ``[start, start + len(block))`` of ``channel`` (consecutive calls per channel)."""
        if channel in self._held:
            held_start, held = self._held.pop(channel)
            start, block = held_start, np.concatenate([held, block])
        stop = start + len(block)
        aligned = stop if stop == self.depth else stop // self.chunk_depth * self.chunk_depth
        if aligned > start:
            self.out[channel, start:aligned] = block[: aligned - start]
        if aligned < stop:
            keep = max(aligned, start)
            self._held[channel] = (keep, block[keep - start :].copy())
