"""The ``ensemble`` stage on files: maps into one map, or pick lists into one list.

:func:`ensemble_files` reads the inputs, combines them (:func:`~czii_cli.ensemble.ensemble_maps`
block by block, or :func:`~czii_cli.ensemble.fuse_picks`) and writes the result
atomically; it returns what it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..io.artifacts import Volume
    from ..pick_settings import PickSettings

PICK_SUFFIXES = (".csv", ".json")
"""Inputs with these suffixes are pick lists, fused with mode ``cluster`` only."""


def ensemble_files(
    inputs: Sequence[Path],
    output: Path | str,
    *,
    mode: str = "mean",
    weights: Sequence[float] | None = None,
    catalog: Catalog | None = None,
    overwrite: bool = False,
    on_plan: Callable[[int], None] | None = None,
    on_block: Callable[[], None] | None = None,
) -> Path | str:
    """Combine probability maps into one, or fuse pick lists into one (mode ``cluster``).

    Parameters
    ----------
    inputs : sequence of Path
        Probability maps (czii artifacts of one run with the same classes, shape, voxel
        size and origin), or with mode ``cluster`` pick lists (CSV or copick).
    output : Path or "-"
        The float16 probs artifact, or the fused picks CSV; ``-`` writes to stdout.
    mode : str
        ``mean``, ``logit``, ``max`` or ``rank`` (:data:`czii_cli.ensemble.MODES`) for
        maps; ``cluster`` for pick lists.
    weights : sequence of float, optional
        One weight per input (default: equal).
    catalog : Catalog, optional
        Particle classes of pick lists (default: the six competition classes).
    overwrite : bool
        Replace an existing ``output``.
    on_plan : callable, optional
        Maps only: called with the number of blocks once they are planned.
    on_block : callable, optional
        Maps only: called after each block is written (for progress).

    Returns
    -------
    Path or str
        ``output``.

    Raises
    ------
    UsageError
        A pick list without mode ``cluster``, an unknown mode, or bad weights.
    DataError
        Inputs that do not match.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> header = "experiment,particle_type,x,y,z,score\\n"
    >>> for name, x in (("a", 100), ("b", 104)):
    ...     _ = (folder / f"{name}.csv").write_text(f"{header}TS_1,ribosome,{x},0,0,1\\n")
    >>> out = ensemble_files([folder / "a.csv", folder / "b.csv"], folder / "e.csv", mode="cluster")
    >>> out.read_text().splitlines()[1]
    '0,TS_1,ribosome,102,0,0,1'
    """
    if mode == "cluster":
        return _fuse_pick_lists(inputs, output, weights=weights, catalog=catalog, overwrite=overwrite)
    picks_like = [p for p in inputs if Path(p).suffix.lower() in PICK_SUFFIXES]
    if picks_like:
        raise UsageError(f"{picks_like[0]}: pick lists are fused with mode 'cluster'")
    return _combine_maps(
        inputs, output, mode=mode, weights=weights, overwrite=overwrite, on_plan=on_plan, on_block=on_block
    )


def _fuse_pick_lists(
    inputs: Sequence[Path],
    output: Path | str,
    *,
    weights: Sequence[float] | None,
    catalog: Catalog | None,
    overwrite: bool,
) -> Path | str:
    from ..catalog import DEFAULT_CATALOG
    from ..io.picks import read_picks, write_picks_csv
    from .picks import fuse_picks

    catalog = catalog or DEFAULT_CATALOG
    fused = fuse_picks([read_picks(path, catalog=catalog) for path in inputs], catalog=catalog, weights=weights)
    write_picks_csv(output, fused, overwrite=overwrite)
    return output


def _combine_maps(
    inputs: Sequence[Path],
    output: Path | str,
    *,
    mode: str,
    weights: Sequence[float] | None,
    overwrite: bool,
    on_plan: Callable[[int], None] | None,
    on_block: Callable[[], None] | None,
) -> Path | str:
    from ..io.artifacts import create_artifact
    from ..io.matching_maps import read_matching_maps
    from ..pick_settings import KEY as PICK_SETTINGS_KEY
    from .maps import MapKind, block_slices, check_weights, ensemble_maps, output_kind

    check_weights(weights, len(inputs), mode=mode)
    maps = read_matching_maps(list(inputs))
    kinds = [MapKind.from_extra(m.meta.extra) for m in maps]
    kind = output_kind(kinds, mode=mode)
    first = maps[0].meta
    listed = None if weights is None else list(weights)
    extra: dict[str, Any] = {
        "activation": kind.activation,
        "catalog": first.extra.get("catalog"),
        "ensemble": {"mode": mode, "weights": listed, "inputs": [m.source for m in maps]},
    }
    if kind.logits_of:
        extra["logits_of"] = kind.logits_of
    shared = shared_pick_settings(maps, mode=mode)
    if shared is not None:
        extra[PICK_SETTINGS_KEY] = shared.to_json()
    meta = first.evolve(extra=extra).with_step(
        "ensemble", args={"mode": mode, "weights": listed}, inputs=[m.source for m in maps]
    )
    if on_plan is not None:
        on_plan(len(block_slices(maps[0].shape)))
    with create_artifact(output, shape=maps[0].shape, dtype="float16", meta=meta, overwrite=overwrite) as out:
        ensemble_maps(
            [m.data for m in maps],
            out,
            mode=mode,
            weights=weights,
            kinds=kinds,
            on_block=on_block,
        )
    return output


def shared_pick_settings(maps: Sequence[Volume], *, mode: str) -> PickSettings | None:
    """The inputs' pick thresholds when a mean keeps their meaning and all inputs agree on them."""
    from ..pick_settings import common_settings, recorded_settings

    if mode != "mean":
        return None
    return common_settings([recorded_settings(m.meta.extra, source=m.source) for m in maps])
