"""Find per-class score cutoffs for the F-beta score that carry over, and write them as JSON.

PRED must carry a score column (czii postprocess writes one); GT is read like in
[bold]czii score[/bold].  For each class the search tries every distinct score as a cutoff
(keep picks with score >= cutoff) under the chosen metric.  --rule robust (the default)
keeps the lowest cutoff whose F-beta is within one reference's worth of the best (what the
best would lose if one of its particles were missed), so a handful of particles never set
an isolated high cutoff and recall, which F-beta favours, is kept; a class with no
reference or no true positive gets no cutoff (all its picks are kept).  --rule best keeps
the exact optimum on PRED, the highest cutoff among ties.  The written cutoff sits about
halfway to the next lower score, so rounded scores keep the same picks.
A table of F-beta before and after goes to stderr and the
tuned score is the last line of stdout.  --cv also reports the leave-one-experiment-out
score (tune on all experiments but one, count on the held-out one, sum the counts), which
shows how much of the gain carries over to unseen tomograms.  The file holds
{"thresholds": {class: cutoff}, "metric", "score_before", "score_after", "cv_score",
"provenance"} and is what [bold]czii postprocess --thresholds[/bold] applies to its picks'
scores (make those picks with the same method and --threshold as PRED); '-o -' prints it
to stdout instead of the score.  --plot F.png draws, per class, F-beta against the
cutoff and the precision-recall curve, with the chosen cutoff marked.  From copick
projects, GT is the picks of --user-id / --session-id (default curation, else the single
user) and PRED those of --pred-user-id / --pred-session-id (default: the single user).

[bold]Examples[/bold]

  czii tune oof_picks.csv train/copick_config.json -o thresholds.json
  czii tune oof_picks.csv solution.csv --cv -o thresholds.json -f
  czii tune val_picks.csv truth/ --rule best -o exact.json
  czii tune oof_picks.csv truth/ -o thresholds.json --plot tune.png
  czii tune project/ project/ --pred-user-id czii --user-id curation -o thresholds.json
  czii postprocess probs.zarr --threshold 0.1 --thresholds thresholds.json > picks.csv
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    Classes,
    Output,
    Overwrite,
    PredSessionId,
    PredUserId,
    Quiet,
    SessionId,
    UserId,
    pred_selection,
    truth_selection,
)
from .score import Beta, DistanceMultiplier, Matching

if TYPE_CHECKING:
    from ..tune import TuneResult


def command(
    pred: Annotated[Path, typer.Argument(help="Scored candidate picks (CSV with a score column, copick overlay).")],
    gt: Annotated[Path, typer.Argument(help="Reference picks: copick project, overlay, annotation folder, CSV.")],
    output: Output = None,
    beta: Beta = 4.0,
    distance_multiplier: DistanceMultiplier = 0.5,
    matching: Matching = "any",
    cv: Annotated[bool, typer.Option("--cv", help="Also report the leave-one-experiment-out score.")] = False,
    rule: Annotated[
        str, typer.Option("--rule", help="robust (carries over) or best (exact optimum on PRED).")
    ] = "robust",
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="PNG of F-beta against the cutoff and the precision-recall curve, per class.",
            show_default=False,
        ),
    ] = None,
    overwrite: Overwrite = False,
    classes: Classes = None,
    user_id: UserId = None,
    session_id: SessionId = None,
    pred_user_id: PredUserId = None,
    pred_session_id: PredSessionId = None,
    quiet: Quiet = False,
) -> None:
    from ..console import set_verbosity, warn
    from ..errors import UsageError
    from ..io.atomic import check_output, is_stdout
    from ..io.catalog_file import load_catalog
    from ..score import check_metric_options
    from ..tune import RULES, TooFewExperimentsError, tune_files

    set_verbosity(quiet=quiet)
    check_metric_options(beta=beta, distance_multiplier=distance_multiplier, matching=matching)
    if rule not in RULES:
        raise UsageError(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
    if output is None:
        raise UsageError("no output given; pass -o thresholds.json (or -o - for stdout)")
    check_output(output, overwrite=overwrite)
    if plot is not None:
        check_output(plot, overwrite=overwrite)
    try:
        result = tune_files(
            pred,
            gt,
            output,
            catalog=load_catalog(classes),
            beta=beta,
            distance_multiplier=distance_multiplier,
            matching=matching,
            cross_validation=cv,
            rule=rule,
            pred_selection=pred_selection(pred_user_id, pred_session_id),
            gt_selection=truth_selection(user_id, session_id),
            plot=plot,
            overwrite=overwrite,
            on_warning=warn,
        )
    except TooFewExperimentsError as err:
        raise UsageError(
            f"{err.source}: --cv needs references in at least two experiments, found {err.found}"
        ) from None
    if not quiet:
        print_tune_table(result)
    if not is_stdout(output):
        typer.echo(f"{result.after.score:.6f}")


def print_tune_table(result: TuneResult) -> None:
    """Per class: cutoff, picks kept, F-beta before and after (and under --cv) on stderr."""
    from rich import box
    from rich.table import Table

    from ..console import console

    title = f"F{result.after.beta:g} per class before and after tuning ({result.after.matching} matching)"
    keeps_all = "all"  # a class with candidates but no cutoff keeps all its picks
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ["class", "cutoff", "kept", "before", "after", "tp/fp/fn"] + (["cv"] if result.cv else []):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, after in result.after.per_class.items():
        before = result.before.per_class[name]
        cutoff = result.thresholds.get(name)
        table.add_row(
            name,
            keeps_all if cutoff is None else f"{cutoff:.6g}",
            f"{after.tp + after.fp}/{before.tp + before.fp}",
            f"{before.fbeta:.4f}",
            f"{after.fbeta:.4f}",
            f"{after.tp}/{after.fp}/{after.fn}",
            *([f"{result.cv.per_class[name].fbeta:.4f}"] if result.cv else []),
        )
    table.add_section()
    table.add_row(
        "score",
        "",
        "",
        f"{result.before.score:.4f}",
        f"{result.after.score:.4f}",
        "",
        *([f"{result.cv.score:.4f}"] if result.cv else []),
        style="bold",
    )
    console.print(table)
