"""copick filesystem projects, read and written without the copick library.

A project is described by a config JSON (``pickable_objects``, ``static_root``,
``overlay_root``).  Tomograms live at
``<static>/ExperimentRuns/<run>/VoxelSpacing<vs>/<tomo-type>.zarr`` (OME-Zarr, level 0 =
full resolution) and picks at ``<overlay>/ExperimentRuns/<run>/Picks/<file>.json``, where
the file is ``<particle>.json`` (competition download) or
``<user>_<session>_<particle>.json`` (as copick writes them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ..coords import same_voxel_size
from ..errors import DataError, UsageError
from .names import name_problem

CONFIG_NAMES = ("copick_config.json", "copick.json", "config.json")
CONFIG_KEYS = ("pickable_objects", "static_root", "overlay_root", "config_type")


@dataclass(frozen=True)
class CopickProject:
    """A copick filesystem project on disk."""

    config_path: Path
    config: dict[str, Any]
    static_root: Path
    overlay_root: Path

    def runs(self) -> list[str]:
        """Run names found under the static and overlay roots, sorted."""
        names: set[str] = set()
        for root in (self.static_root, self.overlay_root):
            runs_dir = root / "ExperimentRuns"
            if runs_dir.is_dir():
                names.update(p.name for p in runs_dir.iterdir() if p.is_dir())
        return sorted(names)

    def voxel_spacing_dirs(self, run: str) -> list[Path]:
        """The ``VoxelSpacing*`` folders of a run, finest first."""
        run_dir = self.static_root / "ExperimentRuns" / run
        if not run_dir.is_dir():
            raise DataError(f"{self.config_path}: no run {run!r} (runs: {', '.join(self.runs())})")
        dirs = [p for p in run_dir.iterdir() if p.is_dir() and p.name.startswith("VoxelSpacing")]
        return sorted(dirs, key=lambda p: _spacing_of(p))

    def tomo_types(self, run: str) -> list[str]:
        """Tomogram types available for a run (``denoised``, ``wbp``, ...)."""
        types = {
            p.name[: -len(".zarr")]
            for vs_dir in self.voxel_spacing_dirs(run)
            for p in vs_dir.iterdir()
            if p.name.endswith(".zarr")
        }
        return sorted(types)

    def tomogram_path(self, run: str, tomo_type: str | None = None, voxel_spacing: float | None = None) -> Path:
        """Locate a run's tomogram; the type may be omitted when there is only one."""
        vs_dirs = self.voxel_spacing_dirs(run)
        if voxel_spacing is not None:
            vs_dirs = [d for d in vs_dirs if same_voxel_size(_spacing_of(d), voxel_spacing)]
        if not vs_dirs:
            raise DataError(f"{self.config_path}: run {run!r} has no tomograms at that voxel spacing")
        if tomo_type is None:
            types = self.tomo_types(run)
            if len(types) == 1:
                tomo_type = types[0]
            elif "denoised" in types:
                tomo_type = "denoised"
            else:
                raise UsageError(
                    f"{self.config_path}: run {run!r} has several tomogram types "
                    f"({', '.join(types)}); choose one tomogram type"
                )
        for vs_dir in vs_dirs:
            candidate = vs_dir / f"{tomo_type}.zarr"
            if candidate.exists():
                return candidate
        raise DataError(
            f"{self.config_path}: run {run!r} has no tomogram of type {tomo_type!r} "
            f"(types: {', '.join(self.tomo_types(run))})"
        )

    def picks_dir(self, run: str) -> Path:
        """The ``Picks`` folder of a run in the overlay (it may not exist yet)."""
        return (
            self.overlay_root
            / "ExperimentRuns"
            / check_name(run, what="run name", source=str(self.config_path))
            / "Picks"
        )

    def segmentations_dir(self, run: str) -> Path:
        """The ``Segmentations`` folder of a run in the overlay (it may not exist yet)."""
        return (
            self.overlay_root
            / "ExperimentRuns"
            / check_name(run, what="run name", source=str(self.config_path))
            / "Segmentations"
        )

    def picks_files(self, run: str) -> list[PicksFile]:
        """Every picks file of a run, with its user, session and particle."""
        return picks_files_in(self.overlay_root / "ExperimentRuns" / run / "Picks")


# ----------------------------------------------------------------------------- picks files


@dataclass(frozen=True)
class PicksFile:
    """One picks JSON in a project: whose picks, of which particle, in which run.

    Attributes
    ----------
    path : Path
    user_id, session_id : str
        From the document's ``user_id`` / ``session_id``, else from the copick file name
        ``<user>_<session>_<particle>.json``; a competition-style ``<particle>.json``
        without them counts as ``curation`` / ``0``.
    particle : str
        From ``pickable_object_name``, else from the file name.
    """

    path: Path
    user_id: str
    session_id: str
    particle: str


@dataclass(frozen=True)
class PicksSelection:
    """Which users' and sessions' picks to read from a project (glob patterns).

    Attributes
    ----------
    user_id, session_id : str or None
        ``fnmatch`` patterns (``czii``, ``octopi*``); None leaves the choice to the
        default rule: ``prefer`` when that user is present, else the single user
        present, else a :class:`UsageError` listing the users and sessions found.  A
        user chosen by default that has several sessions must have its session named;
        a user named explicitly without a session contributes all its sessions.
    prefer : str or None
        The user chosen by default (``curation`` for ground truth); None for picks that
        are not ground truth, which are chosen by default only when one user is present.
    parameters : str
        How the caller names the two parameters, for messages.
    """

    user_id: str | None = None
    session_id: str | None = None
    prefer: str | None = "curation"
    parameters: str = "user_id / session_id"


GROUND_TRUTH = PicksSelection()


def picks_files_in(picks_dir: Path) -> list[PicksFile]:
    """Every picks file in one ``Picks`` folder (both namings), sorted by name.

    A competition-style ``<particle>.json`` and a copick-named file of the same user,
    session and particle are one set of picks: the copick-named file is kept.
    """
    if not picks_dir.is_dir():
        return []
    found: dict[tuple[str, str, str], PicksFile] = {}
    for path in sorted(picks_dir.glob("*.json")):
        entry = describe_picks_file(path)
        key = (entry.user_id, entry.session_id, entry.particle)
        if key not in found or _has_copick_name(path):
            found[key] = entry
    return sorted(found.values(), key=lambda e: e.path.name)


def _has_copick_name(path: Path) -> bool:
    return path.stem.count("_") >= 2


def describe_picks_file(path: Path) -> PicksFile:
    """User, session and particle of one picks file: from its content, else its name."""
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError, UnicodeDecodeError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    parts = path.stem.split("_", 2) if _has_copick_name(path) else None
    user = document.get("user_id") or (parts[0] if parts else "curation")
    session = document.get("session_id")
    session = str(session) if session not in (None, "") else (parts[1] if parts else "0")
    particle = document.get("pickable_object_name") or (parts[2] if parts else path.stem)
    return PicksFile(path=path, user_id=str(user), session_id=session, particle=str(particle))


def particle_of_picks_file(path: Path) -> str:
    """The particle a picks file holds: from its content, else from its name."""
    return describe_picks_file(path).particle


def users_and_sessions(files: Sequence[PicksFile]) -> dict[str, list[str]]:
    """The sessions of each user, both sorted."""
    table: dict[str, set[str]] = {}
    for entry in files:
        table.setdefault(entry.user_id, set()).add(entry.session_id)
    return {user: sorted(sessions) for user, sessions in sorted(table.items())}


def format_users(table: dict[str, list[str]]) -> str:
    """``curation (sessions 0), czii (sessions 0, 1)``, or ``none``."""
    if not table:
        return "none"
    return ", ".join(f"{user} (session{'s' if len(s) > 1 else ''} {', '.join(s)})" for user, s in table.items())


def select_picks_files(files: Sequence[PicksFile], selection: PicksSelection, *, source: str) -> list[PicksFile]:
    """The picks files a selection keeps, decided over all ``files`` at once.

    Parameters
    ----------
    files : sequence of PicksFile
        Every picks file in scope (a project: all its runs), so that the default user
        is the same in every run.
    selection : PicksSelection
        Patterns, or None for the default rule (see :class:`PicksSelection`).
    source : str
        The project, for messages.

    Returns
    -------
    list of PicksFile
        Raises a :class:`UsageError` naming the users and sessions found when the
        patterns match nothing or the default rule cannot choose.

    Examples
    --------
    >>> from pathlib import Path
    >>> files = [PicksFile(Path(f"{u}_0_ribosome.json"), u, "0", "ribosome") for u in ("curation", "czii")]
    >>> [f.user_id for f in select_picks_files(files, GROUND_TRUTH, source="p")]
    ['curation']
    >>> [f.user_id for f in select_picks_files(files, PicksSelection(user_id="c*"), source="p")]
    ['curation', 'czii']
    """
    if not files:
        return []
    table = users_and_sessions(files)
    found = f"users and sessions found: {format_users(table)}"
    user_pattern, session_pattern = selection.user_id, selection.session_id
    if user_pattern is None:
        users = [u for u in table if session_pattern is None or any(fnmatchcase(s, session_pattern) for s in table[u])]
        if selection.prefer is not None and selection.prefer in users:
            user_pattern = selection.prefer
        elif len(users) == 1:
            user_pattern = users[0]
        else:
            whose = f"no {selection.prefer!r} picks and " if selection.prefer else ""
            raise UsageError(f"{source}: {whose}picks of several users; choose with {selection.parameters} ({found})")
    chosen = [
        f
        for f in files
        if fnmatchcase(f.user_id, user_pattern)
        and (session_pattern is None or fnmatchcase(f.session_id, session_pattern))
    ]
    if not chosen:
        wanted = f"user {user_pattern!r}" + ("" if session_pattern is None else f", session {session_pattern!r}")
        raise UsageError(f"{source}: no picks of {wanted} ({found})")
    if session_pattern is None:
        sessions = users_and_sessions(chosen)
        several = {u: s for u, s in sessions.items() if len(s) > 1}
        if several and selection.user_id is None:
            user = next(iter(several))
            raise UsageError(
                f"{source}: user {user!r} has several sessions ({', '.join(several[user])}); "
                f"choose with {selection.parameters} ({found})"
            )
    return chosen


# ----------------------------------------------------------------------------- names


def check_name(name: str, *, what: str, source: str) -> str:
    """Refuse a name read from data or given by a user that cannot be one path component.

    The rule is :func:`czii_cli.io.names.name_problem`'s, the one every output name follows.
    """
    problem = name_problem(str(name))
    if problem is not None:
        raise DataError(f"{source}: {what} {str(name)!r} cannot be a file or folder name: it {problem}")
    return str(name)


def check_identity(value: str, *, what: str, source: str) -> str:
    """A user or session id to write under: a plain name without ``_`` or glob characters.

    copick splits ``<user>_<session>_<name>`` at the first two underscores, so neither may
    hold one.
    """
    text = check_name(value, what=what, source=source)
    bad = sorted(set(text) & set("_*?[] "))
    if bad:
        raise UsageError(f"{source}: {what} {text!r} may not contain {' '.join(map(repr, bad))}")
    return text


COPICK_PREFIX = "copick:"


def copick_target(output: str | Path | None) -> Path | None:
    """The project config an output of the form ``copick:PATH`` names, else None.

    Examples
    --------
    >>> copick_target("copick:project/copick_config.json"), copick_target("picks.csv")
    (PosixPath('project/copick_config.json'), None)
    """
    if output is None or not str(output).startswith(COPICK_PREFIX):
        return None
    return Path(str(output)[len(COPICK_PREFIX) :])


def open_output_project(path: Path) -> CopickProject:
    """The project an output goes into; an output must be an existing project (UsageError)."""
    if find_config(path) is None:
        raise UsageError(f"{path}: not a copick project to write into (no config with pickable_objects)")
    return open_project(path)


def _spacing_of(vs_dir: Path) -> float:
    try:
        return float(vs_dir.name[len("VoxelSpacing") :])
    except ValueError:
        return float("inf")


def find_config(path: Path) -> Path | None:
    """Return the copick config for a project root or config path, or None."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8-sig"))
        except (ValueError, OSError):
            return None
        return path if is_config_document(document) else None
    if path.is_dir():
        for name in CONFIG_NAMES:
            if (path / name).is_file() and find_config(path / name):
                return path / name
    return None


def is_config_document(document: object) -> bool:
    """Whether a parsed JSON document is meant as a copick config (has one of its keys).

    A config that lacks ``pickable_objects`` still counts, so that it is refused by
    :func:`check_config` rather than read as something else.
    """
    return isinstance(document, dict) and any(key in document for key in CONFIG_KEYS)


def check_config(document: object, *, source: str) -> dict[str, Any]:
    """Validate the parts of a copick config czii reads; return it.

    ``pickable_objects`` must be a non-empty list of objects, each with a ``name``;
    ``static_root`` and ``overlay_root``, when given, must be strings.

    Raises
    ------
    DataError
        Naming ``source`` and the first problem found.
    """
    if not isinstance(document, dict):
        raise DataError(f"{source}: a copick config must be a JSON object, found {type(document).__name__}")
    objects = document.get("pickable_objects")
    if objects is None:
        raise DataError(f"{source}: the copick config has no pickable_objects: it names no particle classes")
    if not isinstance(objects, list):
        raise DataError(f"{source}: pickable_objects must be a list of objects, found {type(objects).__name__}")
    if not objects:
        raise DataError(f"{source}: pickable_objects is empty: the copick config names no particle classes")
    for index, entry in enumerate(objects, start=1):
        if not isinstance(entry, dict):
            raise DataError(f"{source}: pickable_objects entry {index} is not an object (found {type(entry).__name__})")
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise DataError(f"{source}: pickable_objects entry {index} has no name")
    for key in ("static_root", "overlay_root"):
        value = document.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{source}: {key} must be a path or local:// URL string, found {value!r}")
    return document


def open_project(path: Path) -> CopickProject:
    """Open a copick project from its config file or its root folder."""
    config_path = find_config(path)
    if config_path is None:
        raise DataError(f"{path}: not a copick project (no config with pickable_objects)")
    try:
        document = json.loads(config_path.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError) as err:
        raise DataError(f"{config_path}: not a readable copick config ({err})") from None
    config = check_config(document, source=str(config_path))
    base = config_path.parent
    return CopickProject(
        config_path=config_path,
        config=config,
        static_root=_resolve_root(config.get("static_root"), base, "static"),
        overlay_root=_resolve_root(config.get("overlay_root"), base, "overlay"),
    )


def _resolve_root(url: str | None, base: Path, default: str) -> Path:
    """Turn a ``local://`` root into a path; fall back to ``<base>/<default>``."""
    if url:
        text = url[len("local://") :] if url.startswith("local://") else url
        candidate = Path(text) if Path(text).is_absolute() else base / text
        if candidate.exists():
            return candidate
    return base / default


def config_document(name: str, catalog_json: list[dict[str, Any]], root: Path) -> dict[str, Any]:
    """A copick config for a project at ``root`` with ``static/`` and ``overlay/`` folders."""
    objects = [
        {
            "name": c["name"],
            "is_particle": True,
            "label": c["label"],
            "radius": c["radius"],
            "color": _color(c["label"]),
            "map_threshold": None,
            "metadata": {"weight": c["weight"]},
        }
        for c in catalog_json
    ]
    return {
        "name": name,
        "description": "Written by czii",
        "version": "1.0.0",
        "pickable_objects": objects,
        "overlay_root": f"local://{root.resolve() / 'overlay'}",
        "overlay_fs_args": {"auto_mkdir": True},
        "static_root": f"local://{root.resolve() / 'static'}",
    }


def _color(label: int) -> list[int]:
    palette = [
        [0, 117, 220, 128],
        [255, 164, 5, 128],
        [43, 206, 72, 128],
        [240, 163, 255, 128],
        [153, 63, 0, 128],
        [76, 0, 92, 128],
        [0, 92, 49, 128],
        [148, 255, 181, 128],
    ]
    return palette[(label - 1) % len(palette)]


IDENTITY_4X4 = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0))


def picks_file_name(user: str, session: str, particle: str) -> str:
    """The name copick gives a picks file: ``<user>_<session>_<particle>.json``.

    Examples
    --------
    >>> picks_file_name("czii", "0", "ribosome")
    'czii_0_ribosome.json'
    """
    return f"{user}_{session}_{particle}.json"


def picks_document(
    run: str,
    particle: str,
    xyz_angstrom: Iterable[Iterable[float]],
    *,
    user: str,
    session: str,
    scores: Iterable[float] | None = None,
    voxel_spacing: float | None = None,
    trust_orientation: bool = True,
) -> dict[str, Any]:
    """A copick picks JSON document for points given in Å (``N x 3``, x/y/z).

    Each point has its ``location`` in Å, an identity ``transformation_`` (czii does not
    estimate orientations), ``instance_id`` 0 and its ``score`` (1.0 when ``scores`` is
    None).
    """
    xyz = [tuple(float(v) for v in row) for row in xyz_angstrom]
    values = [1.0] * len(xyz) if scores is None else [float(v) for v in scores]
    return {
        "pickable_object_name": particle,
        "user_id": user,
        "session_id": session,
        "run_name": run,
        "voxel_spacing": None if voxel_spacing is None else float(voxel_spacing),
        "unit": "angstrom",
        "points": [
            {
                "location": {"x": x, "y": y, "z": z},
                "transformation_": [list(row) for row in IDENTITY_4X4],
                "instance_id": 0,
                "score": score,
            }
            for (x, y, z), score in zip(xyz, values)
        ],
        "trust_orientation": trust_orientation,
    }
