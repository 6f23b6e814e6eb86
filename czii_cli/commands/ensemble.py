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
    from ..console import info, make_progress, set_verbosity
    from ..ensemble.job import PICK_SUFFIXES, ensemble_files
    from ..errors import UsageError
    from ..io.catalog_file import load_catalog
    from ..io.outputs import artifact_target
    from .options import weights_option

    set_verbosity(quiet=quiet)
    parsed = weights_option(weights)
    if mode == "cluster":
        target = "-" if output is None else output
        ensemble_files(inputs, target, mode=mode, weights=parsed, catalog=load_catalog(classes), overwrite=overwrite)
    else:
        picks_like = [p for p in inputs if p.suffix.lower() in PICK_SUFFIXES]
        if picks_like:
            raise UsageError(f"{picks_like[0]}: pick lists are merged with --mode cluster")
        with make_progress() as progress:
            task = progress.add_task("ensemble", total=None, status="")
            ensemble_files(
                inputs,
                artifact_target(output),
                mode=mode,
                weights=parsed,
                overwrite=overwrite,
                on_plan=lambda blocks: progress.update(task, total=blocks),
                on_block=lambda: progress.advance(task),
            )
    info(f"ensembled {len(inputs)} inputs ({mode})")
