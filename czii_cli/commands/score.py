"""Score picks against reference picks with the competition's F-beta metric.

PRED is a picks CSV (submission format) or a copick project/overlay; GT is a copick
project (root or config), an overlay ExperimentRuns folder, a folder of annotation CSVs or
a solution CSV; both are recognised by content.  By default a reference within radius x
--distance-multiplier of any candidate is one true positive, FP = candidates - TP,
counts are summed per class over experiments and the weighted F-beta (--beta 4) is
divided by the sum of all class weights, exactly as in the competition; --matching
one-to-one pairs each candidate with at most one reference.  Experiments found only in
PRED are ignored; when no experiment of PRED is in GT a warning names those of each side.
A copick config that names no particle classes is an error.
The score is the last line of stdout; --format table adds a per-class
table on stderr (the default when stderr is a terminal), --format json prints one JSON
document (and nothing else) to stdout.  --plot F.png draws the per-class bars of
precision, recall and F-beta.  From copick projects, GT is the picks of --user-id /
--session-id (default curation, else the single user present) and PRED those of
--pred-user-id / --pred-session-id (default: the single user present), so predictions
written into a project are never taken for the truth.

[bold]Examples[/bold]

  czii score submission.csv train/copick_config.json
  czii score picks.csv solution.csv --format table --per-experiment
  czii score picks.csv train_annotations/ --matching one-to-one --format json | jq .score
  czii score picks.csv truth/ --plot score.png
  czii score project/copick_config.json project/copick_config.json --pred-user-id czii --user-id curation
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    Classes,
    Overwrite,
    PredSessionId,
    PredUserId,
    Quiet,
    SessionId,
    UserId,
    pred_selection,
    truth_selection,
)

if TYPE_CHECKING:
    from ..score import ScoreReport

FORMATS = ("auto", "plain", "table", "json")

Beta = Annotated[float, typer.Option("--beta", help="F-beta's recall weight.")]
DistanceMultiplier = Annotated[
    float, typer.Option("--distance-multiplier", help="Match distance as a fraction of the class radius.")
]
Matching = Annotated[str, typer.Option("--matching", help="any (competition) or one-to-one.")]


def command(
    pred: Annotated[Path, typer.Argument(help="Candidate picks: CSV, copick project or overlay; '-' reads CSV.")],
    gt: Annotated[Path, typer.Argument(help="Reference picks: copick project, overlay, annotation folder, CSV.")],
    beta: Beta = 4.0,
    distance_multiplier: DistanceMultiplier = 0.5,
    matching: Matching = "any",
    output_format: Annotated[
        str, typer.Option("--format", help="auto (table on a terminal, else plain), plain, table or json.")
    ] = "auto",
    per_experiment: Annotated[
        bool, typer.Option("--per-experiment", help="Add the breakdown of each experiment (table or json).")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="PNG of per-class precision, recall and F-beta bars.", show_default=False),
    ] = None,
    overwrite: Overwrite = False,
    classes: Classes = None,
    user_id: UserId = None,
    session_id: SessionId = None,
    pred_user_id: PredUserId = None,
    pred_session_id: PredSessionId = None,
    quiet: Quiet = False,
) -> None:
    from ..console import console, set_verbosity, warn
    from ..errors import UsageError
    from ..io.catalog_file import load_catalog
    from ..score import check_metric_options, score_files

    set_verbosity(quiet=quiet)
    check_metric_options(beta=beta, distance_multiplier=distance_multiplier, matching=matching)
    if output_format not in FORMATS:
        raise UsageError(f"unknown --format {output_format!r} (choose from {', '.join(FORMATS)})")
    if output_format == "plain" and per_experiment:
        raise UsageError("--per-experiment needs --format table or json")
    if output_format == "auto":
        output_format = "table" if (console.is_terminal and not quiet) or per_experiment else "plain"
    if plot is not None:
        from ..io.atomic import check_output

        check_output(plot, overwrite=overwrite)
    report = score_files(
        pred,
        gt,
        catalog=load_catalog(classes),
        beta=beta,
        distance_multiplier=distance_multiplier,
        matching=matching,
        pred_selection=pred_selection(pred_user_id, pred_session_id),
        gt_selection=truth_selection(user_id, session_id),
        plot=plot,
        overwrite=overwrite,
        on_warning=warn,
    )
    if output_format == "json":
        document = {"pred": str(pred), "gt": str(gt), **report.to_json()}
        if not per_experiment:
            document.pop("per_experiment", None)
        typer.echo(json.dumps(document, indent=2))
        return
    if output_format == "table":
        print_score_table(report, title=f"{pred} vs {gt}")
        if per_experiment:
            for name, part in report.per_experiment.items():
                print_score_table(part, title=f"experiment {name}")
    typer.echo(f"{report.score:.6f}")


def print_score_table(report: ScoreReport, *, title: str) -> None:
    """Per-class tp, fp, fn, precision, recall, F-beta and weight on stderr."""
    from rich.table import Table

    from ..console import console

    table = Table(title=title, title_justify="left")
    for column in ("class", "tp", "fp", "fn", "precision", "recall", f"F{report.beta:g}", "weight"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, part in report.per_class.items():
        table.add_row(
            name,
            str(part.tp),
            str(part.fp),
            str(part.fn),
            f"{part.precision:.4f}",
            f"{part.recall:.4f}",
            f"{part.fbeta:.4f}",
            f"{part.weight:g}",
        )
    table.add_section()
    table.add_row("score", "", "", "", "", "", f"{report.score:.4f}", "", style="bold")
    console.print(table)
