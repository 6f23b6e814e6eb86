"""Combine several models' probability maps, or several pick lists, into one.

Maps (czii probs artifacts of one run, with the same classes, shape, voxel size and
origin) are combined voxel by voxel, block by block, so memory stays small:
[bold]mean[/bold] averages probabilities (weighted by --weights); [bold]logit[/bold] averages
logits (log(p/(1-p)) for sigmoid maps, log p for softmax maps, --logits maps as they
are) and applies the activation again; [bold]max[/bold] keeps the element-wise maximum;
[bold]rank[/bold] (the competition winner's method) maps each later map onto the first
map's distribution by rank, per class, then averages.  The output is a float16 probs
artifact.  Pick lists (CSV or copick) are merged with [bold]--mode cluster[/bold]: picks of
one class and experiment within 0.5 x the class radius of the best-scoring pick form a
cluster, fused into one pick at the score-weighted mean position whose score is the
weighted mean score times the fraction of inputs that voted.

[bold]Examples[/bold]

  czii ensemble a.zarr b.zarr -o e.zarr
  czii ensemble a.zarr b.zarr --mode rank --weights 0.6,0.4 -o e.zarr
  czii ensemble unet.zarr segresnet.zarr --mode logit -o e.zarr
  czii ensemble a.csv b.csv c.csv --mode cluster -o fused.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Classes, Output, Overwrite, Quiet


def command(
    inputs: Annotated[
        list[Path], typer.Argument(help="Probability maps (czii artifacts), or pick lists with --mode cluster.")
    ],
    output: Output = None,
    mode: Annotated[str, typer.Option("--mode", help="mean, logit, max or rank (maps); cluster (picks).")] = "mean",
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="Comma-separated weight per input, e.g. 0.6,0.4.", show_default=False),
    ] = None,
    classes: Classes = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    from ..console import info, set_verbosity
    from ..errors import UsageError

    set_verbosity(quiet=quiet)
    parsed = _parse_weights(weights)
    if mode == "cluster":
        _fuse_pick_lists(inputs, output, weights=parsed, classes=classes, overwrite=overwrite)
    else:
        picks_like = [p for p in inputs if p.suffix.lower() in (".csv", ".json")]
        if picks_like:
            raise UsageError(f"{picks_like[0]}: pick lists are merged with --mode cluster")
        _combine_maps(inputs, output, mode=mode, weights=parsed, overwrite=overwrite)
    info(f"ensembled {len(inputs)} inputs ({mode})")


def _parse_weights(text: str | None) -> list[float] | None:
    from ..errors import UsageError

    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights must be comma-separated numbers, got {text!r}") from None


def _fuse_pick_lists(inputs, output, *, weights, classes, overwrite) -> None:
    from ..ensemble import fuse_picks
    from ..io.catalog_file import load_catalog
    from ..io.picks import read_picks, write_picks_csv

    catalog = load_catalog(classes)
    fused = fuse_picks([read_picks(path, catalog=catalog) for path in inputs], catalog=catalog, weights=weights)
    write_picks_csv("-" if output is None else output, fused, overwrite=overwrite)


def _combine_maps(inputs, output, *, mode, weights, overwrite) -> None:
    from ..console import make_progress
    from ..ensemble import MapKind, ensemble_maps
    from ..ensemble.maps import block_slices, check_weights, output_kind
    from ..io.artifacts import create_artifact
    from ..io.matching_maps import read_matching_maps
    from ..io.outputs import artifact_target
    from ..pick_settings import KEY as PICK_SETTINGS_KEY

    check_weights(weights, len(inputs), mode=mode)
    maps = read_matching_maps(inputs)
    kinds = [MapKind.from_extra(m.meta.extra) for m in maps]
    kind = output_kind(kinds, mode=mode)
    first = maps[0].meta
    extra = {
        "activation": kind.activation,
        "catalog": first.extra.get("catalog"),
        "ensemble": {"mode": mode, "weights": weights, "inputs": [m.source for m in maps]},
    }
    if kind.logits_of:
        extra["logits_of"] = kind.logits_of
    shared = _shared_pick_settings(maps, mode=mode)
    if shared is not None:
        extra[PICK_SETTINGS_KEY] = shared.to_json()
    meta = first.evolve(extra=extra).with_step(
        "ensemble", args={"mode": mode, "weights": weights}, inputs=[m.source for m in maps]
    )
    target = artifact_target(output)
    blocks = len(block_slices(maps[0].shape))
    with (
        make_progress() as progress,
        create_artifact(target, shape=maps[0].shape, dtype="float16", meta=meta, overwrite=overwrite) as out,
    ):
        task = progress.add_task("ensemble", total=blocks, status="")
        ensemble_maps(
            [m.data for m in maps],
            out,
            mode=mode,
            weights=weights,
            kinds=kinds,
            on_block=lambda: progress.advance(task),
        )


def _shared_pick_settings(maps, *, mode: str):
    """The inputs' pick thresholds when a mean keeps their meaning and all inputs agree on them."""
    from ..pick_settings import common_settings, recorded_settings

    if mode != "mean":
        return None
    return common_settings([recorded_settings(m.meta.extra, source=m.source) for m in maps])
