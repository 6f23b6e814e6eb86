"""Ensembles of probability maps, voxel by voxel, block by block.

Modes (``w`` the weights, normalised to sum to 1):

* ``mean``: ``sum_i w_i p_i``;
* ``logit``: maps are brought to logits, averaged with the weights, and activated
  again.  Sigmoid maps: ``log(p / (1 - p))`` then sigmoid; softmax maps: ``log p``
  (logits up to a per-voxel constant, which softmax ignores) then softmax over the
  classes; logit maps (``predict-probs --logits``) are used as they are, and activated
  with the activation they were the logits of.  Probabilities are clipped to
  ``[1e-6, 1 - 1e-6]`` first, so 0 and 1 stay finite;
* ``max``: element-wise maximum (no weights);
* ``rank``: each class channel of every map after the first is rank-matched onto the
  first map's values (:mod:`.rank`), then the maps are averaged with the weights.

Mean and max need maps of one kind (all probabilities of one activation, or all logits);
rank takes any kind and keeps the first map's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import DataError, UsageError
from .rank import float16_keys, rank_lookup, value_histogram

MODES = ("mean", "logit", "max", "rank")
EPSILON = 1e-6
BLOCK = 64


@dataclass(frozen=True)
class MapKind:
    """What a map's values are.

    Attributes
    ----------
    activation : str or None
        ``softmax`` or ``sigmoid`` (probabilities), ``logits``, or None when unrecorded.
    logits_of : str or None
        For logit maps, the activation they are the logits of.
    """

    activation: str | None
    logits_of: str | None = None

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> MapKind:
        """Read a probs artifact's ``extra`` (``activation``, ``logits_of``)."""
        return cls(extra.get("activation"), extra.get("logits_of"))

    @property
    def family(self) -> str | None:
        """The activation that turns this map's logits into probabilities."""
        return self.logits_of if self.activation == "logits" else self.activation


def check_weights(weights: Sequence[float] | None, count: int, *, mode: str) -> np.ndarray:
    """Validated weights normalised to sum 1 (equal weights when None).

    Examples
    --------
    >>> check_weights([3, 1], 2, mode="mean")
    array([0.75, 0.25])
    """
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r} for maps (choose from {', '.join(MODES)})")
    if weights is None:
        return np.full(count, 1.0 / count)
    if mode == "max":
        raise UsageError("weights do not apply to mode 'max'")
    values = np.asarray(weights, dtype=np.float64)
    if len(values) != count:
        raise UsageError(f"{len(values)} weights for {count} inputs")
    if (values < 0).any() or not values.sum() > 0:
        raise UsageError(f"weights must be non-negative with a positive sum, got {values.tolist()}")
    normalised: np.ndarray = values / values.sum()
    return normalised


def output_kind(kinds: Sequence[MapKind], *, mode: str) -> MapKind:
    """The kind of the ensemble's map; a DataError when the inputs cannot be combined so."""
    if mode == "rank":
        return kinds[0]
    if mode == "logit":
        recorded = {kind.family for kind in kinds}
        families = {family for family in recorded if family is not None}
        if None in recorded or families - {"softmax", "sigmoid"}:
            raise DataError("mode 'logit' needs maps that record softmax or sigmoid (or logits of one)")
        if len(families) > 1:
            raise DataError(f"mode 'logit' cannot mix activations ({', '.join(sorted(families))})")
        return MapKind(families.pop())
    if len(set(kinds)) > 1:
        described = ", ".join(sorted({str(k.activation) for k in kinds}))
        raise DataError(
            f"mode {mode!r} cannot combine maps of different kinds ({described}); try mode 'logit' or 'rank'"
        )
    return kinds[0]


def to_logits(values: np.ndarray, kind: MapKind) -> np.ndarray:
    """A block ``[C, ...]`` as logits (see the module docstring), float32.

    Examples
    --------
    >>> to_logits(np.array([0.5, 0.75]), MapKind("sigmoid")).round(4)
    array([0.    , 1.0986], dtype=float32)
    """
    values = np.asarray(values, dtype=np.float32)
    if kind.activation == "logits":
        return values
    clipped = np.clip(values, EPSILON, 1.0 - EPSILON)
    logits: np.ndarray = np.log(clipped) - np.log1p(-clipped) if kind.activation == "sigmoid" else np.log(clipped)
    return logits


def activate(logits: np.ndarray, family: str) -> np.ndarray:
    """Sigmoid, or softmax over the first (class) axis, of a float32 block."""
    if family == "sigmoid":
        with np.errstate(over="ignore"):  # exp overflows to inf for very negative logits: sigmoid 0
            sigmoid: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return sigmoid
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    softmax: np.ndarray = shifted / shifted.sum(axis=0, keepdims=True)
    return softmax


def combine_block(
    blocks: Sequence[np.ndarray],
    *,
    mode: str,
    weights: np.ndarray,
    kinds: Sequence[MapKind],
    lookups: Sequence[Sequence[np.ndarray]] | None = None,
) -> np.ndarray:
    """Combine the same block ``[C, ...]`` of several maps.

    Parameters
    ----------
    blocks : sequence of ndarray
        One block per map, all of one shape.
    mode : str
        ``mean``, ``logit``, ``max`` or ``rank``.
    weights : ndarray
        From :func:`check_weights`.
    kinds : sequence of MapKind
        What each map holds.
    lookups : sequence of sequence of ndarray, optional
        ``rank`` only: per map after the first, per channel, the table of
        :func:`czii_cli.ensemble.rank.rank_lookup`.

    Returns
    -------
    ndarray, float32

    Examples
    --------
    >>> a, b = np.array([[0.2, 0.8]]), np.array([[0.4, 0.4]])
    >>> kinds = [MapKind("sigmoid")] * 2
    >>> combine_block([a, b], mode="max", weights=np.array([0.5, 0.5]), kinds=kinds)
    array([[0.4, 0.8]], dtype=float32)
    """
    if mode == "max":
        maximum: np.ndarray = np.maximum.reduce([np.asarray(b, dtype=np.float32) for b in blocks])
        return maximum
    if mode == "logit":
        family = output_kind(kinds, mode="logit").activation
        assert family is not None  # output_kind refuses maps without an activation in mode 'logit'
        # a sum of arrays (one term per map) is an array
        mean = cast(np.ndarray, sum(np.float32(w) * to_logits(b, k) for w, b, k in zip(weights, blocks, kinds)))
        return activate(mean, family).astype(np.float32, copy=False)
    if mode == "rank":
        if lookups is None:
            raise UsageError("mode 'rank' needs lookups (from rank_tables)")
        matched = [np.asarray(blocks[0]).astype(np.float16).astype(np.float32)]
        for block, tables in zip(blocks[1:], lookups):
            matched.append(np.stack([table[float16_keys(channel)] for table, channel in zip(tables, block)]))
        blocks = matched
    total = cast(np.ndarray, sum(np.float32(w) * np.asarray(b, dtype=np.float32) for w, b in zip(weights, blocks)))
    return total.astype(np.float32)


def block_slices(shape: Sequence[int], *, block: int = BLOCK) -> list[tuple[slice, ...]]:
    """Blocks ``[:, z0:z1, y0:y1, :]`` of ``block`` planes and rows, covering a czyx shape."""
    _, depth, height, _ = shape
    return [
        (slice(None), slice(z, min(z + block, depth)), slice(y, min(y + block, height)), slice(None))
        for z in range(0, depth, block)
        for y in range(0, height, block)
    ]


def rank_tables(sources: Sequence[Any], *, block: int = BLOCK) -> list[list[np.ndarray]]:
    """Per map after the first, per channel, the lookup onto the first map (one pass)."""
    channels = sources[0].shape[0]
    histograms = [[np.zeros(1 << 16, dtype=np.int64) for _ in range(channels)] for _ in sources]
    for index in block_slices(sources[0].shape, block=block):
        for source, per_channel in zip(sources, histograms):
            values = np.asarray(source[index])
            for channel in range(channels):
                per_channel[channel] += value_histogram(values[channel])
    reference = histograms[0]
    return [[rank_lookup(reference[c], other[c]) for c in range(channels)] for other in histograms[1:]]


def ensemble_maps(
    sources: Sequence[Any],
    out: Any,
    *,
    mode: str,
    weights: Sequence[float] | None = None,
    kinds: Sequence[MapKind],
    block: int = BLOCK,
    on_block: Callable[[], None] | None = None,
) -> MapKind:
    """Combine maps ``[C, Z, Y, X]`` block by block into ``out``; returns the output's kind.

    ``sources`` and ``out`` are array-likes (numpy, memory maps, zarr arrays) of one
    shape; each block ``[:, z0:z0+block, y0:y0+block, :]`` is read from every source,
    combined and written once, so memory holds one block per map (about
    ``C x block^2 x X x 4`` bytes each).  ``rank`` reads the sources twice (histograms,
    then values).

    Examples
    --------
    >>> a = np.full((2, 3, 3, 3), 0.2, dtype=np.float32)
    >>> out = np.zeros_like(a)
    >>> kinds = [MapKind("softmax")] * 2
    >>> ensemble_maps([a, a + 0.4], out, mode="mean", weights=[3, 1], kinds=kinds).activation
    'softmax'
    >>> round(float(out[0, 0, 0, 0]), 6)
    0.3
    """
    normalised = check_weights(weights, len(sources), mode=mode)
    kind = output_kind(kinds, mode=mode)
    lookups = rank_tables(sources, block=block) if mode == "rank" else None
    for index in block_slices(sources[0].shape, block=block):
        blocks = [np.asarray(source[index]) for source in sources]
        out[index] = combine_block(blocks, mode=mode, weights=normalised, kinds=kinds, lookups=lookups).astype(
            out.dtype, copy=False
        )
        if on_block is not None:
            on_block()
    return kind
