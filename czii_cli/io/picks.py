"""Read and write picks: submission CSV, annotation CSV, copick overlays.

Formats, told apart by content:

* submission / solution CSV: ``[id,]experiment,particle_type,x,y,z[,score]``;
* annotation CSV: ``dataset_id,image_name,x,y,z,label`` (``label`` a class name or
  label index), one file or a folder of them; the run of a row is its ``dataset_id``
  when that is the CSV's file stem (``TS_5_4.csv`` holding ``dataset_id`` ``TS_5_4``),
  else its ``image_name`` without a volume extension (``TS_5_4.mrc`` -> ``TS_5_4``; also
  ``.rec``, ``.map``, ``.mrcs``, ``.zarr``), else the file stem;
* copick: a project root or config file, an overlay root, an ``ExperimentRuns``
  folder, a run's ``Picks`` folder, or one picks JSON.  Points are in Å.

All coordinates are in Å, columns x, y, z.  Text is read as UTF-8 with an optional byte
order mark; a file that is not text, or non-finite coordinates, are a DataError naming it.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import DEFAULT_CATALOG, Catalog
from ..errors import DataError, OutputExistsError
from ..picks import Picks, concat
from . import copick
from .atomic import atomic_path, atomic_text, refuse_partial
from .names import file_in_folder

SUBMISSION_COLUMNS = ["id", "experiment", "particle_type", "x", "y", "z"]
ANNOTATION_COLUMNS = ["dataset_id", "image_name", "x", "y", "z", "label"]
VOLUME_EXTENSIONS = (".mrc", ".mrcs", ".rec", ".map", ".zarr")


def read_picks(
    path: Path | str, *, catalog: Catalog = DEFAULT_CATALOG, selection: copick.PicksSelection = copick.GROUND_TRUTH
) -> Picks:
    """Read picks from any supported file or folder.

    Parameters
    ----------
    path : path or "-"
        The picks source; ``-`` reads CSV from stdin.
    catalog : Catalog
        Used to turn integer labels of annotation CSVs into class names.
    selection : PicksSelection
        Whose picks to read from a copick project, overlay or ``Picks`` folder (users
        and sessions, decided over the whole source); by default the ground truth:
        ``curation``, else the single user present.  A single picks JSON is read as is.
    """
    if str(path) == "-":
        return _read_csv_text(sys.stdin.read().removeprefix("\ufeff"), source="<stdin>", catalog=catalog)
    path = Path(path)
    refuse_partial(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if copick.find_config(path) is not None:
        project = copick.open_project(path)
        return _read_experiment_runs(
            project.overlay_root / "ExperimentRuns", selection, source=str(project.config_path)
        )
    if path.is_dir():
        return _read_folder(path, catalog, selection)
    if path.suffix.lower() == ".json":
        return _read_copick_file(path, run=_run_of_picks_file(path))
    return _read_csv_text(read_text_file(path), source=str(path), catalog=catalog)


def read_text_file(path: Path) -> str:
    """The text of a picks file: UTF-8, a leading byte order mark dropped.

    A file that is not text (binary data, another encoding) is a DataError naming it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise DataError(f"{path}: not a readable text file ({err.strerror or err})") from None
    if "\x00" in text:
        raise DataError(f"{path}: not a text file (it holds NUL bytes)")
    return text


def _read_folder(path: Path, catalog: Catalog, selection: copick.PicksSelection) -> Picks:
    if path.name == "ExperimentRuns":
        return _read_experiment_runs(path, selection)
    if (path / "ExperimentRuns").is_dir():
        return _read_experiment_runs(path / "ExperimentRuns", selection)
    if (path / "Picks").is_dir():
        return _read_picks_files({path.name: copick.picks_files_in(path / "Picks")}, selection, source=str(path))
    if path.name == "Picks":
        return _read_picks_files({path.parent.name: copick.picks_files_in(path)}, selection, source=str(path))
    if (path / "train_annotations").is_dir():
        path = path / "train_annotations"
    csvs = sorted(path.glob("*.csv"))
    if not csvs:
        raise DataError(f"{path}: no picks found (no CSV files, no copick overlay)")
    return concat(_read_csv_text(read_text_file(p), source=str(p), catalog=catalog, run=p.stem) for p in csvs)


def copick_picks_files(runs_dir: Path) -> dict[str, list[copick.PicksFile]]:
    """Every picks file under an ``ExperimentRuns`` folder, by run."""
    if not runs_dir.is_dir():
        return {}
    return {
        run_dir.name: copick.picks_files_in(run_dir / "Picks")
        for run_dir in sorted(runs_dir.iterdir())
        if run_dir.is_dir()
    }


def copick_files_of(path: Path) -> dict[str, list[copick.PicksFile]] | None:
    """The picks files by run of a copick source (project, overlay, ``ExperimentRuns``, a
    run folder or its ``Picks`` folder); None when ``path`` is no such source."""
    path = Path(path)
    if copick.find_config(path) is not None:
        return copick_picks_files(copick.open_project(path).overlay_root / "ExperimentRuns")
    if not path.is_dir():
        return None
    if path.name == "ExperimentRuns":
        return copick_picks_files(path)
    if (path / "ExperimentRuns").is_dir():
        return copick_picks_files(path / "ExperimentRuns")
    if (path / "Picks").is_dir():
        return {path.name: copick.picks_files_in(path / "Picks")}
    if path.name == "Picks":
        return {path.parent.name: copick.picks_files_in(path)}
    return None


def read_picks_by_user(
    path: Path, *, user_id: str | None = None, session_id: str | None = None
) -> dict[tuple[str, str], Picks]:
    """The picks of a copick source per (user, session), optionally only those matching
    the glob patterns; every user and session when both are None."""
    by_run = copick_files_of(path)
    if by_run is None:
        raise DataError(f"{path}: not a copick project, overlay or Picks folder")
    entries = [
        (run, e)
        for run, files in by_run.items()
        for e in files
        if (user_id is None or fnmatchcase(e.user_id, user_id))
        and (session_id is None or fnmatchcase(e.session_id, session_id))
    ]
    groups: dict[tuple[str, str], list[Picks]] = {}
    for run, entry in sorted(
        entries, key=lambda item: (item[1].user_id, item[1].session_id, item[0], item[1].particle)
    ):
        groups.setdefault((entry.user_id, entry.session_id), []).append(_read_copick_file(entry.path, run=run))
    return {key: concat(parts) for key, parts in groups.items()}


def _read_experiment_runs(runs_dir: Path, selection: copick.PicksSelection, *, source: str | None = None) -> Picks:
    return _read_picks_files(copick_picks_files(runs_dir), selection, source=source or str(runs_dir.parent))


def _read_picks_files(
    by_run: dict[str, list[copick.PicksFile]], selection: copick.PicksSelection, *, source: str
) -> Picks:
    """Read the files a selection keeps, the choice made over all runs at once."""
    every = [entry for entries in by_run.values() for entry in entries]
    chosen = {entry.path for entry in copick.select_picks_files(every, selection, source=source)}
    return concat(
        _read_copick_file(entry.path, run=run)
        for run, entries in by_run.items()
        for entry in sorted(entries, key=lambda e: (e.particle, e.user_id, e.session_id))
        if entry.path in chosen
    )


def _run_of_picks_file(path: Path) -> str:
    parent = path.resolve().parent
    return parent.parent.name if parent.name == "Picks" else path.stem


def _read_copick_file(path: Path, *, run: str) -> Picks:
    text = read_text_file(path)
    try:
        document = json.loads(text)
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
    check_finite_points(xyz, source=path)
    if score is not None and not np.isfinite(score).all():
        raise DataError(f"{path}: non-finite score in a copick picks file")
    return Picks.from_points(run, particle, xyz, score)


def check_finite_points(xyz: np.ndarray, *, source: Path | str) -> None:
    """Refuse picks whose coordinates are NaN or infinite, naming the file and the count."""
    bad = int(np.count_nonzero(~np.isfinite(xyz).all(axis=1))) if len(xyz) else 0
    if bad:
        raise DataError(f"{source}: {bad} of {len(xyz)} points have non-finite coordinates (NaN or infinite)")


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
            stem = run or Path(source).stem
            experiment = [_annotation_run(r, columns, stem) for r in body]
            particle = [_label_name(r[columns["label"]], catalog, source) for r in body]
        else:
            raise DataError(
                f"{source}: unknown CSV columns {header}; expected "
                "experiment,particle_type,x,y,z or dataset_id,image_name,x,y,z,label"
            )
        xyz = np.array([[float(r[columns[a]]) for a in "xyz"] for r in body], dtype=np.float64)
        score = np.array([float(r[columns["score"]]) for r in body], dtype=np.float64) if "score" in columns else None
    except (IndexError, ValueError) as err:
        raise DataError(f"{source}: malformed row in picks CSV ({err})") from None
    if len(xyz) and not np.isfinite(xyz).all():
        raise DataError(f"{source}: non-finite coordinates in picks CSV")
    return Picks(np.array(experiment, dtype=object), np.array(particle, dtype=object), xyz.reshape(-1, 3), score)


def _annotation_run(row: list[str], columns: dict[str, int], stem: str) -> str:
    """The run of an annotation CSV row (see the module notes)."""
    dataset = row[columns["dataset_id"]].strip() if "dataset_id" in columns else ""
    if dataset and dataset == stem:
        return dataset
    image = row[columns["image_name"]].strip() if "image_name" in columns else ""
    return run_of_image_name(image) if image else stem


def run_of_image_name(name: str) -> str:
    """The run an annotation CSV's ``image_name`` stands for: the name without a volume extension.

    Examples
    --------
    >>> run_of_image_name("TS_5_4.mrc"), run_of_image_name("TS_5_4"), run_of_image_name("a/TS_6_4.ZARR")
    ('TS_5_4', 'TS_5_4', 'TS_6_4')
    """
    base = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    for extension in VOLUME_EXTENSIONS:
        if base.lower().endswith(extension) and len(base) > len(extension):
            return base[: -len(extension)]
    return base


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
            stem = (
                particle if naming == "particle" else copick.picks_file_name(user, session, particle)[: -len(".json")]
            )
            name = file_in_folder(picks_dir, stem, ".json", source="the picks", what="particle name").name
            document = copick.picks_document(run, particle, subset.xyz, user=user, session=session, scores=subset.score)
            _write_json_atomic(picks_dir / name, document, overwrite=overwrite)
            written.append(picks_dir / name)
    return written


def copick_picks_targets(
    project: copick.CopickProject, *, run: str, particles: Sequence[str], user: str, session: str
) -> list[Path]:
    """Where :func:`write_run_to_copick` puts one run's picks: one file per particle."""
    source = str(project.config_path)
    user = copick.check_identity(user, what="user_id", source=source)
    session = copick.check_identity(session, what="session_id", source=source)
    folder = project.picks_dir(run)
    return [
        folder
        / copick.check_name(copick.picks_file_name(user, session, particle), what="picks file name", source=source)
        for particle in particles
    ]


def write_run_to_copick(
    project: copick.CopickProject,
    picks: Picks,
    *,
    run: str,
    particles: Sequence[str],
    user: str,
    session: str,
    voxel_spacing: float | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write one run's picks into a project's overlay, one copick file per particle.

    Every particle in ``particles`` gets its file, an empty one when it has no picks, so
    a complete run is one whose files all exist.  Picks of other runs are ignored.  Each
    file is written atomically; an existing one is an error unless ``overwrite``.

    Parameters
    ----------
    project : CopickProject
    picks : Picks
        Locations in Å; the score column, when present, becomes each point's ``score``.
    run : str
        The run; it must be in the project.
    particles : sequence of str
        The classes to write (usually every class channel of the map).
    user, session : str
        The writer's identity: file ``<user>_<session>_<particle>.json``.
    voxel_spacing : float, optional
        Stored as the document's ``voxel_spacing`` (Å).
    overwrite : bool
        Replace existing files.

    Returns
    -------
    list of Path
        The files written, in the order of ``particles``.
    """
    if run not in project.runs():
        raise DataError(
            f"{project.config_path}: no run {run!r} to write picks into (runs: {', '.join(project.runs())})"
        )
    targets = copick_picks_targets(project, run=run, particles=particles, user=user, session=session)
    for target in targets:
        if target.exists() and not overwrite:
            raise OutputExistsError(target)
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    of_run = picks.where(experiment=run)
    for particle, target in zip(particles, targets):
        subset = of_run.where(particle_type=particle)
        document = copick.picks_document(
            run,
            particle,
            subset.xyz,
            user=user,
            session=session,
            scores=subset.score,
            voxel_spacing=voxel_spacing,
            trust_orientation=False,
        )
        _write_json_atomic(target, document, overwrite=overwrite)
    return targets


def _write_json_atomic(path: Path, document: dict[str, Any], *, overwrite: bool) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(document, indent=1))
