"""The ``czii`` root command: registers every subcommand and maps errors to exit codes."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from . import __version__
from .commands import (
    ensemble,
    info,
    make_labels,
    normalize,
    postprocess,
    predict_probs,
    score,
    simulate,
    train,
    tune,
    view,
)
from .console import error_line, user_warnings
from .errors import CziiError


class CziiGroup(TyperGroup):
    """Turn :class:`CziiError` into one stderr line and its exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            with user_warnings():
                return super().invoke(ctx)
        except CziiError as err:
            error_line(str(err))
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            error_line("interrupted")
            ctx.exit(130)
        except MemoryError:
            error_line("out of memory; try a smaller --batch-size or window")
            ctx.exit(1)


app = typer.Typer(
    cls=CziiGroup,
    name="czii",
    help="Find macromolecules in cryo-electron tomograms.\n\n"
    "Stages pass volumes (.zarr / .npy), probability maps and CSV picks on disk:\n"
    "simulate -> normalize -> make-labels -> train -> predict-probs -> postprocess -> score.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMANDS = [
    ("simulate", simulate),
    ("normalize", normalize),
    ("make-labels", make_labels),
    ("train", train),
    ("predict-probs", predict_probs),
    ("postprocess", postprocess),
    ("ensemble", ensemble),
    ("tune", tune),
    ("score", score),
    ("view", view),
    ("info", info),
]


def reflow(doc: str) -> str:
    r"""Join the wrapped lines of each prose paragraph; keep indented (example) lines as they are.

    Examples
    --------
    >>> reflow("One\ntwo.\n\n  czii a\n  czii b\n")
    'One two.\n\n  czii a\n  czii b'
    """
    paragraphs = []
    for block in doc.strip().split("\n\n"):
        lines = block.splitlines()
        if all(line.startswith("  ") for line in lines):
            paragraphs.append("\n".join(lines))
        else:
            paragraphs.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


for _name, _module in COMMANDS:
    app.command(_name, help=reflow(_module.__doc__ or ""), no_args_is_help=True)(_module.command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"czii {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Find macromolecules in cryo-electron tomograms."""


def run() -> None:
    """Console-script entry point."""
    app()
