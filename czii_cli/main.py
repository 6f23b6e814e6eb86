"""The ``czii`` root command: registers every subcommand and maps errors to exit codes."""

from __future__ import annotations

import os
import sys

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
from .errors import CziiError, NoOutputError, OutputExistsError
from .io.atomic import OutputError, os_reason, write_error


class CziiGroup(TyperGroup):
    """Turn :class:`CziiError` into one stderr line and its exit code, never a traceback.

    An ``OSError`` that no command turned into a CziiError (disk full, read-only disk, a
    full or closed stdout) is one line too, naming its file (stdout when it names none),
    exit 1.  Standard output is flushed here, so that a write error at exit is reported
    rather than passed off as success.
    """

    def invoke(self, ctx):
        try:
            with user_warnings():
                result = super().invoke(ctx)
            sys.stdout.flush()
            return result
        except CziiError as err:
            if isinstance(err, OutputError) and err.target == "-":
                _detach_stdout()
            error_line(_for_the_command_line(err))
            ctx.exit(err.exit_code)
        except OSError as err:
            if err.filename is None:  # file writes are reported by io.atomic: this is stdout
                _detach_stdout()
                error_line(str(write_error("-", err)))
            else:
                error_line(f"{err.filename}: {os_reason(err)}")
            ctx.exit(1)
        except KeyboardInterrupt:
            error_line("interrupted")
            ctx.exit(130)
        except MemoryError:
            error_line("out of memory; try a smaller --batch-size or window")
            ctx.exit(1)


def _for_the_command_line(err: CziiError) -> str:
    """The error's message, naming the flag where the library names a setting."""
    if isinstance(err, OutputExistsError):
        return f"{err.path}: output exists; pass --overwrite to replace it{err.note}"
    if isinstance(err, NoOutputError):
        return "no output given and stdout is a terminal; pass -o OUT (or pipe to a file)"
    return str(err)


def _detach_stdout() -> None:
    """After a failed write to stdout, point it at /dev/null so that exiting does not fail again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (tests capture it)
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, descriptor)
        os.close(null)
    except OSError:
        pass


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
