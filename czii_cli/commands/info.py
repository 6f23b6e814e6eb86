"""Describe any czii input: a volume or artifact, a picks file, a model file, a copick project.

Shows kind, shape, dtype, voxel size (Å), classes, run and provenance of volumes; counts
per experiment and class of picks; architecture, classes, target, normalization and
training summary of model files.  A rich table goes to stderr; --json prints JSON to
stdout instead.

[bold]Examples[/bold]

  czii info TS_5_4.mrc
  czii info probs.zarr --json | jq .provenance
  czii info model.pt
  czii info builtin:light-sim
  czii info project/copick_config.json
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Annotated

import typer

from .common import Run, SessionId, TomoType, UserId


def command(
    path: Annotated[Path, typer.Argument(help="File or folder to describe.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
    run: Run = None,
    tomo_type: TomoType = None,
    user_id: UserId = None,
    session_id: SessionId = None,
) -> None:
    from ..errors import DataError
    from ..pretrained import model_path

    path = model_path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    description = _describe(path, run=run, tomo_type=tomo_type, user_id=user_id, session_id=session_id)
    if as_json:
        typer.echo(json.dumps(description, indent=2, default=str))
    else:
        _print_table(description)


def _describe(
    path: Path, *, run: str | None, tomo_type: str | None, user_id: str | None = None, session_id: str | None = None
) -> dict:
    from ..info import describe_model, describe_picks, describe_volume
    from ..io import copick
    from ..io.picks import copick_files_of, read_picks
    from ..io.volumes import VolumeRequest, read_volume

    if _is_torch_file(path):
        from ..training.checkpoint import load_checkpoint

        return describe_model(load_checkpoint(path), source=str(path))
    if copick.find_config(path) is not None and run is None:
        project = copick.open_project(path)
        runs = project.runs()
        return {
            "type": "copick-project",
            "source": str(project.config_path),
            "classes": [o["name"] for o in project.config["pickable_objects"]],
            "runs": runs,
            "tomo_types": {
                r: project.tomo_types(r) for r in runs if (project.static_root / "ExperimentRuns" / r).is_dir()
            },
            "picks": _picks_per_user(path, user_id, session_id),
        }
    if path.is_dir() and not _is_zarr_dir(path) and copick_files_of(path) is not None:
        return {"type": "copick-picks", "source": str(path), "picks": _picks_per_user(path, user_id, session_id)}
    if path.suffix.lower() in (".csv", ".json") or (path.is_dir() and not _is_zarr_dir(path)):
        return describe_picks(read_picks(path), source=str(path))
    return describe_volume(read_volume(path, VolumeRequest(run=run, tomo_type=tomo_type)))


def _picks_per_user(path: Path, user_id: str | None, session_id: str | None) -> dict:
    """``{"user/session": {run: {class: count}}}`` for every user and session (or those matching)."""
    from ..errors import UsageError
    from ..info import describe_picks
    from ..io.picks import read_picks_by_user

    groups = read_picks_by_user(path, user_id=user_id, session_id=session_id)
    if not groups and (user_id is not None or session_id is not None):
        everyone = ", ".join(f"{u}/{s}" for u, s in read_picks_by_user(path)) or "none"
        raise UsageError(f"{path}: no picks match --user-id / --session-id (users and sessions found: {everyone})")
    return {
        f"{user}/{session}": describe_picks(picks, source=str(path))["counts"]
        for (user, session), picks in groups.items()
    }


def _is_torch_file(path: Path) -> bool:
    if not path.is_file() or not zipfile.is_zipfile(path):
        return path.suffix in (".pt", ".pth") and path.is_file()
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("data.pkl") for name in archive.namelist())


def _is_zarr_dir(path: Path) -> bool:
    return any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))


def _print_table(description: dict) -> None:
    from rich.table import Table

    from ..console import console

    table = Table(title=f"{description['type']}: {description['source']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in description.items():
        if key in ("type", "source"):
            continue
        if key == "picks" and description["type"] in ("copick-project", "copick-picks"):
            for owner, runs in value.items() or [("-", {})]:
                totals: dict[str, int] = {}
                for counts in runs.values():
                    for name, n in counts.items():
                        totals[name] = totals.get(name, 0) + n
                summary = ", ".join(f"{name} {n}" for name, n in sorted(totals.items())) or "none"
                table.add_row(f"picks {owner}", f"{len(runs)} run(s): {summary}")
            continue
        if key == "provenance":
            value = "\n".join(f"{p.get('command')} {p.get('version', '')} {p.get('time', '')}" for p in value) or "-"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        table.add_row(key, str(value))
    console.print(table)
