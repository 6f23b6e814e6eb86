"""Options shared by the subcommands, so short flags mean the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Output = Annotated[
    Path | None,
    typer.Option("-o", "--output", help="Output path; '-' writes to stdout.", show_default=False),
]
Outputs = Annotated[
    str | None,
    typer.Option(
        "-o",
        "--output",
        metavar="<path>",
        help="Output path; a folder (existing, or written with a trailing '/') gets one output per input; "
        "'-' writes to stdout.",
        show_default=False,
    ),
]
Overwrite = Annotated[bool, typer.Option("-f", "--overwrite", help="Replace an existing output.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors and warnings on stderr.")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="More detail on stderr.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same output.")]
Jobs = Annotated[int, typer.Option("-j", "--jobs", min=1, help="Worker processes.")]
Classes = Annotated[
    Path | None,
    typer.Option(
        "--classes",
        help="Particle catalog: a copick config (pickable_objects) or a JSON class list. "
        "Default: the six competition classes.",
        show_default=False,
    ),
]
Run = Annotated[str | None, typer.Option("--run", help="Run (experiment) to read from a copick project.")]
TomoType = Annotated[
    str | None, typer.Option("--tomo-type", help="Tomogram type in a copick project (denoised, wbp, ...).")
]


def voxel_size_option(value: float | None) -> float | None:
    """The one check of every ``--voxel-size``: a positive, finite number of Å (or not given)."""
    from ..coords import valid_voxel_size
    from ..errors import UsageError

    if value is None:
        return None
    try:
        return valid_voxel_size(value)
    except UsageError as err:
        raise UsageError(f"--voxel-size: {err}") from None


VoxelSize = Annotated[
    float | None,
    typer.Option(
        "--voxel-size",
        help="Voxel size in Å; overrides the input's own.",
        show_default=False,
        callback=voxel_size_option,
    ),
]
UserId = Annotated[
    str | None,
    typer.Option(
        "--user-id",
        help="copick projects: whose picks to read (glob pattern). Default: curation, else the single user present.",
        show_default=False,
    ),
]
SessionId = Annotated[
    str | None,
    typer.Option(
        "--session-id",
        help="copick projects: which sessions' picks to read (glob pattern). Default: the chosen user's only session.",
        show_default=False,
    ),
]
PredUserId = Annotated[
    str | None,
    typer.Option(
        "--pred-user-id",
        help="copick projects: whose picks are the predictions (glob pattern). Default: the single user present.",
        show_default=False,
    ),
]
PredSessionId = Annotated[
    str | None,
    typer.Option(
        "--pred-session-id", help="copick projects: the predictions' sessions (glob pattern).", show_default=False
    ),
]


def truth_selection(user_id: str | None, session_id: str | None):
    """The picks a ground-truth source contributes (``--user-id`` / ``--session-id``)."""
    from ..io.copick import PicksSelection

    return PicksSelection(user_id=user_id, session_id=session_id, parameters="--user-id / --session-id")


def pred_selection(user_id: str | None, session_id: str | None):
    """The picks a predictions source contributes (``--pred-user-id`` / ``--pred-session-id``)."""
    from ..io.copick import PicksSelection

    return PicksSelection(
        user_id=user_id, session_id=session_id, prefer=None, parameters="--pred-user-id / --pred-session-id"
    )


Preview = Annotated[
    bool,
    typer.Option(
        "--preview", help="Also store a 2x downsampled level (in the OME-Zarr multiscales) for quick viewing."
    ),
]
