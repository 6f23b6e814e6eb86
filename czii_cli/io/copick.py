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
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError

CONFIG_NAMES = ("copick_config.json", "copick.json", "config.json")
CONFIG_KEYS = ("pickable_objects", "static_root", "overlay_root", "config_type")


@dataclass(frozen=True)
class CopickProject:
    """A copick filesystem project on disk."""

    config_path: Path
    config: dict
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

    def tomogram_path(
        self, run: str, tomo_type: str | None = None, voxel_spacing: float | None = None
    ) -> Path:
        """Locate a run's tomogram; the type may be omitted when there is only one."""
        vs_dirs = self.voxel_spacing_dirs(run)
        if voxel_spacing is not None:
            vs_dirs = [d for d in vs_dirs if abs(_spacing_of(d) - voxel_spacing) < 1e-3]
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
                    f"({', '.join(types)}); choose one with --tomo-type"
                )
        for vs_dir in vs_dirs:
            candidate = vs_dir / f"{tomo_type}.zarr"
            if candidate.exists():
                return candidate
        raise DataError(
            f"{self.config_path}: run {run!r} has no tomogram of type {tomo_type!r} "
            f"(types: {', '.join(self.tomo_types(run))})"
        )

    def picks_files(self, run: str) -> dict[str, Path]:
        """Map each particle name to its picks file in a run.

        Where several users picked the same particle, ``curation`` wins, then the
        alphabetically first file.
        """
        picks_dir = self.overlay_root / "ExperimentRuns" / run / "Picks"
        return picks_files_in(picks_dir)


def picks_files_in(picks_dir: Path) -> dict[str, Path]:
    """Map particle names to picks files in one ``Picks`` folder (both namings)."""
    found: dict[str, Path] = {}
    if not picks_dir.is_dir():
        return found
    for path in sorted(picks_dir.glob("*.json")):
        particle = particle_of_picks_file(path)
        curated = path.name.startswith("curation_")
        if particle not in found or (curated and not found[particle].name.startswith("curation_")):
            found[particle] = path
    return found


def particle_of_picks_file(path: Path) -> str:
    """The particle a picks file holds: from its content, else from its name."""
    try:
        name = json.loads(path.read_text(encoding="utf-8-sig")).get("pickable_object_name")
    except (ValueError, OSError, AttributeError):
        name = None
    if name:
        return str(name)
    stem = path.stem
    return stem.split("_", 2)[2] if stem.count("_") >= 2 else stem


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


def check_config(document: object, *, source: str) -> dict:
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


def config_document(name: str, catalog_json: list[dict], root: Path) -> dict:
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
        [0, 117, 220, 128], [255, 164, 5, 128], [43, 206, 72, 128], [240, 163, 255, 128],
        [153, 63, 0, 128], [76, 0, 92, 128], [0, 92, 49, 128], [148, 255, 181, 128],
    ]
    return palette[(label - 1) % len(palette)]


def picks_document(run: str, particle: str, xyz_angstrom, *, user: str, session: str) -> dict:
    """A copick picks JSON document for points given in Å (``N x 3``, x/y/z)."""
    identity = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    return {
        "pickable_object_name": particle,
        "user_id": user,
        "session_id": session,
        "run_name": run,
        "voxel_spacing": None,
        "unit": "angstrom",
        "points": [
            {
                "location": {"x": float(x), "y": float(y), "z": float(z)},
                "transformation_": identity,
                "instance_id": 0,
                "score": 1.0,
            }
            for x, y, z in xyz_angstrom
        ],
        "trust_orientation": True,
    }
