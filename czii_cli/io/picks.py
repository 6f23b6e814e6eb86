"""Read and write picks: submission CSV, annotation CSV, copick overlays.

Formats, told apart by content:

* submission / solution CSV: ``[id,]experiment,particle_type,x,y,z[,score]``;
* annotation CSV: ``dataset_id,image_name,x,y,z,label`` (``image_name`` is the run;
  ``label`` a class name or label index), one file or a folder of them;
* copick: a project root or config file, an overlay root, an ``ExperimentRuns``
  folder, a run's ``Picks`` folder, or one picks JSON.  Points are in Å.

All coordinates are in Å, columns x, y, z.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from ..catalog import DEFAULT_CATALOG, Catalog
from ..errors import DataError
from ..picks import Picks, concat
from . import copick
from .atomic import atomic_path, atomic_text, refuse_partial
from .names import file_in_folder

SUBMISSION_COLUMNS = ["id", "experiment", "particle_type", "x", "y", "z"]
ANNOTATION_COLUMNS = ["dataset_id", "image_name", "x", "y", "z", "label"]


def read_picks(path: Path | str, *, catalog: Catalog = DEFAULT_CATALOG) -> Picks:
    """Read picks from any supported file or folder.

    Parameters
    ----------
    path : path or "-"
        The picks source; ``-`` reads CSV from stdin.
    catalog : Catalog
        Used to turn integer labels of annotation CSVs into class names.
    """
    if str(path) == "-":
        return _read_csv_text(sys.stdin.read(), source="<stdin>", catalog=catalog)
    path = Path(path)
    refuse_partial(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if copick.find_config(path) is not None:
        project = copick.open_project(path)
        return _read_experiment_runs(project.overlay_root / "ExperimentRuns")
    if path.is_dir():
        return _read_folder(path, catalog)
    if path.suffix.lower() == ".json":
        return _read_copick_file(path, run=_run_of_picks_file(path))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable text file ({err})") from None
    return _read_csv_text(text, source=str(path), catalog=catalog)


def _read_folder(path: Path, catalog: Catalog) -> Picks:
    if path.name == "ExperimentRuns":
        return _read_experiment_runs(path)
    if (path / "ExperimentRuns").is_dir():
        return _read_experiment_runs(path / "ExperimentRuns")
    if (path / "Picks").is_dir():
        return _read_picks_dir(path / "Picks", run=path.name)
    if path.name == "Picks":
        return _read_picks_dir(path, run=path.parent.name)
    if (path / "train_annotations").is_dir():
        path = path / "train_annotations"
    csvs = sorted(path.glob("*.csv"))
    if not csvs:
        raise DataError(f"{path}: no picks found (no CSV files, no copick overlay)")
    return concat(_read_csv_text(p.read_text(), source=str(p), catalog=catalog, run=p.stem) for p in csvs)


def _read_experiment_runs(runs_dir: Path) -> Picks:
    if not runs_dir.is_dir():
        return Picks.empty()
    return concat(
        _read_picks_dir(run_dir / "Picks", run=run_dir.name)
        for run_dir in sorted(runs_dir.iterdir())
        if run_dir.is_dir()
    )


def _read_picks_dir(picks_dir: Path, *, run: str) -> Picks:
    files = copick.picks_files_in(picks_dir)
    return concat(_read_copick_file(files[name], run=run) for name in sorted(files))


def _run_of_picks_file(path: Path) -> str:
    parent = path.resolve().parent
    return parent.parent.name if parent.name == "Picks" else path.stem


def _read_copick_file(path: Path, *, run: str) -> Picks:
    try:
        document = json.loads(path.read_text())
        particle = document.get("pickable_object_name") or copick.particle_of_picks_file(path)
        run = document.get("run_name") or run
        points = document.get("points") or []
        xyz = np.array(
            [[p["location"]["x"], p["location"]["y"], p["location"]["z"]] for p in points], dtype=np.float64
        ).reshape(-1, 3)
        scores = [p.get("score") for p in points]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise DataError(f"{path}: not a copick picks file ({err!r})") from None
    score = np.array(scores, dtype=np.float64) if points and all(s is not None for s in scores) else None
    return Picks.from_points(run, particle, xyz, score)


def _read_csv_text(text: str, *, source: str, catalog: Catalog, run: str | None = None) -> Picks:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise DataError(f"{source}: empty file (expected a picks CSV header)")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if r]
    columns = {name: i for i, name in enumerate(header)}
    try:
        if {"experiment", "particle_type", "x", "y", "z"} <= columns.keys():
            experiment = [r[columns["experiment"]] for r in body]
            particle = [r[columns["particle_type"]] for r in body]
        elif {"x", "y", "z", "label"} <= columns.keys():
            if "image_name" in columns:
                experiment = [r[columns["image_name"]] for r in body]
            else:
                experiment = [run or Path(source).stem] * len(body)
            particle = [_label_name(r[columns["label"]], catalog, source) for r in body]
        else:
            raise DataError(
                f"{source}: unknown CSV columns {header}; expected "
                "experiment,particle_type,x,y,z or dataset_id,image_name,x,y,z,label"
            )
        xyz = np.array([[float(r[columns[a]]) for a in "xyz"] for r in body], dtype=np.float64)
        score = (
            np.array([float(r[columns["score"]]) for r in body], dtype=np.float64)
            if "score" in columns
            else None
        )
    except (IndexError, ValueError) as err:
        raise DataError(f"{source}: malformed row in picks CSV ({err})") from None
    if len(xyz) and not np.isfinite(xyz).all():
        raise DataError(f"{source}: non-finite coordinates in picks CSV")
    return Picks(np.array(experiment, dtype=object), np.array(particle, dtype=object), xyz.reshape(-1, 3), score)


def _label_name(value: str, catalog: Catalog, source: str) -> str:
    value = value.strip()
    if value.lstrip("-").isdigit():
        try:
            return catalog.by_label(int(value)).name
        except DataError as err:
            raise DataError(f"{source}: {err}") from None
    return value


def format_picks_csv(picks: Picks, *, start_id: int = 0) -> str:
    """Submission CSV text (``id,experiment,particle_type,x,y,z[,score]``), in Å."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = SUBMISSION_COLUMNS + (["score"] if picks.score is not None else [])
    writer.writerow(header)
    for i in range(len(picks)):
        x, y, z = picks.xyz[i]
        row = [start_id + i, picks.experiment[i], picks.particle_type[i], _num(x), _num(y), _num(z)]
        if picks.score is not None:
            row.append(f"{picks.score[i]:.6g}")
        writer.writerow(row)
    return buffer.getvalue()


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if np.isfinite(value) else "nan"


def write_picks_csv(target: Path | str, picks: Picks, *, overwrite: bool = False) -> None:
    """Write a submission CSV to a file (atomically) or to stdout (``-``)."""
    text = format_picks_csv(picks)
    with atomic_text(target, overwrite=overwrite) as handle:
        handle.write(text)


def write_annotation_csv(target: Path, picks: Picks, *, dataset_id: str = "czii", overwrite: bool = False) -> None:
    """Write picks as an annotation CSV (``dataset_id,image_name,x,y,z,label``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ANNOTATION_COLUMNS)
    for i in range(len(picks)):
        x, y, z = picks.xyz[i]
        writer.writerow([dataset_id, picks.experiment[i], _num(x), _num(y), _num(z), picks.particle_type[i]])
    with atomic_text(target, overwrite=overwrite) as handle:
        handle.write(buffer.getvalue())


def write_copick_picks(
    overlay_root: Path,
    picks: Picks,
    *,
    user: str = "curation",
    session: str = "0",
    naming: str = "copick",
    overwrite: bool = False,
) -> list[Path]:
    """Write one copick picks JSON per (run, particle) under an overlay root.

    ``naming="copick"`` writes ``<user>_<session>_<particle>.json``; ``"particle"``
    writes ``<particle>.json`` as in the competition download.
    """
    written = []
    for run in picks.experiments:
        picks_dir = file_in_folder(Path(overlay_root) / "ExperimentRuns", run, source="the picks") / "Picks"
        picks_dir.mkdir(parents=True, exist_ok=True)
        for particle in picks.where(experiment=run).particle_types:
            subset = picks.where(experiment=run, particle_type=particle)
            name = file_in_folder(picks_dir, f"{particle}" if naming == "particle" else f"{user}_{session}_{particle}",
                                  ".json", source="the picks", what="particle name").name
            document = copick.picks_document(run, particle, subset.xyz, user=user, session=session)
            if subset.score is not None:
                for point, value in zip(document["points"], subset.score):
                    point["score"] = float(value)
            with atomic_path(picks_dir / name, overwrite=overwrite) as tmp:
                tmp.write_text(json.dumps(document, indent=1))
            written.append(picks_dir / name)
    return written
