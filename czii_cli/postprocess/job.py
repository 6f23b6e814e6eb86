"""One probability map into picks: the unit of work of ``postprocess``, and its batch jobs.

:func:`postprocess_file` turns one map file into a picks CSV (or stdout) and returns what
it wrote; it is the stage for Python users.  Underneath, :func:`open_probs` opens a map
once (lazily) and checks its channels against the class catalog, and
:func:`picks_of_map` picks the opened map with one method and its thresholds.

The batch jobs (:func:`picks_job`, :func:`csv_job`, :func:`copick_job`) are top-level
functions of plain, picklable arguments, so they run the same in this process, in a
local worker process or as a task on a Dask worker.  Each takes either a map already
opened (in this process, so no input is opened twice) or its path (a worker opens it
itself).  Every output appears under its name only when complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..catalog import BACKGROUND, DEFAULT_CATALOG, Catalog, catalog_from_mapping
from ..errors import DataError, NonFiniteError, OutputExistsError, UsageError
from ..pick_settings import PickSettings, recorded_settings
from .common import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from ..io.artifacts import Volume
    from ..io.copick import CopickProject
    from ..picks import Picks

DEFAULT_METHOD = "cc"


@dataclass(frozen=True)
class ProbsMap:
    """One opened probability map and what its picks are made with.

    Attributes
    ----------
    name : str
        The input as given (``-`` for stdin): what messages call it.
    volume : Volume
        The map, ``[c, z, y, x]``, opened lazily.
    catalog : Catalog
        The particle classes its channels are checked against (radii of the picks).
    experiment : str
        The map's run, else the input's file stem (see :func:`experiment_of`).
    """

    name: str
    volume: Volume
    catalog: Catalog
    experiment: str

    @property
    def particles(self) -> list[str]:
        """The class channels, in channel order, background excepted."""
        return [c for c in self.volume.meta.classes if c != BACKGROUND]


class PicksWritten(NamedTuple):
    """What :func:`postprocess_file` wrote: the CSV (``-`` for stdout) and its number of picks."""

    output: Path | str
    picks: int


@dataclass(frozen=True)
class PickJob:
    """The settings of every batch job of one ``postprocess`` run, but the input.

    Attributes
    ----------
    settings : PickSettings
        Method, binarization thresholds and score cutoffs (may differ per input, when
        a map records its own).
    options : mapping of str to value
        The method's keyword options (:func:`czii_cli.postprocess.option_names`).
    catalog : Catalog, optional
        Particle classes; default: each map's own, else the competition's.
    voxel_size : float, optional
        Overrides each map's voxel size (Å).
    """

    settings: PickSettings
    options: Mapping[str, object] = field(default_factory=dict)
    catalog: Catalog | None = None
    voxel_size: float | None = None


def experiment_of(name: str, run: str | None = None) -> str:
    """An input's experiment: its run, else its file stem (``stdin`` for ``-``).

    Examples
    --------
    >>> experiment_of("maps/TS_5_4.zarr"), experiment_of("-"), experiment_of("p.zarr", "TS_6_4")
    ('TS_5_4', 'stdin', 'TS_6_4')
    """
    return run or ("stdin" if name == "-" else Path(name).stem)


def open_probs(
    path: Path, *, name: str | None = None, catalog: Catalog | None = None, voxel_size: float | None = None
) -> ProbsMap:
    """Open one probability map lazily and check its channels.

    Parameters
    ----------
    path : Path
        A probs or heatmap artifact (zarr directory or zip, ``.npy`` with its sidecar).
    name : str, optional
        The input as given, for messages and the experiment name; default: ``path``.
    catalog : Catalog, optional
        The particle classes; default: the map's own, else the six competition classes.
    voxel_size : float, optional
        Overrides the map's voxel size (Å).

    Returns
    -------
    ProbsMap

    Raises
    ------
    DataError
        Not a ``czyx`` probs or heatmap artifact, channel names that do not match the
        channels, or a channel that is no class of the catalog.
    """
    from ..io.volumes import VolumeRequest, read_volume

    name = str(path) if name is None else name
    volume = read_volume(path, VolumeRequest(voxel_size=voxel_size))
    meta = volume.meta
    if meta.kind not in ("probs", "heatmap") or meta.axes != "czyx":
        raise DataError(f"{name}: expected a probs or heatmap artifact with axes czyx, found {meta.kind} {meta.axes}")
    if catalog is None:
        catalog = (
            catalog_from_mapping(meta.extra["catalog"], source=name) if "catalog" in meta.extra else DEFAULT_CATALOG
        )
    if len(meta.classes) != volume.shape[0]:
        raise DataError(f"{name}: {len(meta.classes)} channel names for {volume.shape[0]} channels")
    for channel in meta.classes:
        if channel != BACKGROUND and channel not in catalog.names:
            raise DataError(f"{name}: channel {channel!r} is not a known class (known: {', '.join(catalog.names)})")
    return ProbsMap(name, volume, catalog, experiment_of(name, meta.run))


def picks_of_map(probs: ProbsMap, settings: PickSettings, *, options: Mapping[str, object] | None = None) -> Picks:
    """Picks of one opened probability map, in Å, with a score column.

    Parameters
    ----------
    probs : ProbsMap
        The map (:func:`open_probs`).
    settings : PickSettings
        The method, the binarization threshold of each class (``default_threshold`` for
        those not in ``pick_thresholds``) and the per-class minimum pick score
        (``cutoffs``; a class not in it keeps every pick).
    options : mapping, optional
        The method's keyword options (:func:`czii_cli.postprocess.extract_picks`).

    Returns
    -------
    Picks
        In the order :func:`~czii_cli.postprocess.extract_picks` gives them.

    Raises
    ------
    NonFiniteError
        The map holds NaN or infinite values (the message names the input).
    """
    from ..tune import apply_thresholds
    from . import extract_picks

    names = list(probs.volume.meta.classes)
    method_options: dict[str, Any] = dict(options or {})
    try:
        picks = extract_picks(
            probs.volume.data,
            classes=names,
            catalog=probs.catalog,
            method=settings.method,
            thresholds={c: settings.threshold_of(c) for c in names},
            voxel_size=probs.volume.meta.voxel_size,
            origin_zyx=probs.volume.meta.origin,
            run=probs.experiment,
            **method_options,
        )
    except NonFiniteError as err:
        raise NonFiniteError(f"{probs.name}: {err}", count=err.count, total=err.total) from None
    return apply_thresholds(picks, settings.cutoffs) if settings.cutoffs else picks


def tuned_settings(probs: ProbsMap) -> PickSettings | None:
    """The pick settings ``probs`` records (from its model's validation), if any.

    They hold for the method they were tuned with (``method`` of the result).
    """
    return recorded_settings(probs.volume.meta.extra, source=probs.name)


def check_class_names(values: Mapping[str, float], catalog: Catalog, *, source: str) -> None:
    """Refuse per-class values of a class that ``catalog`` does not know (a UsageError naming ``source``).

    Examples
    --------
    >>> check_class_names({"ribosome": 0.2}, DEFAULT_CATALOG, source="threshold")
    """
    unknown = sorted(set(values) - set(catalog.names))
    if unknown:
        raise UsageError(f"{source}: unknown class {unknown[0]!r} (known: {', '.join(catalog.names)})")


def postprocess_file(
    probs: Path,
    output: Path | str,
    *,
    method: str = DEFAULT_METHOD,
    threshold: float | None = None,
    class_thresholds: Mapping[str, float] | None = None,
    cutoffs: Mapping[str, float] | None = None,
    options: Mapping[str, object] | None = None,
    catalog: Catalog | None = None,
    voxel_size: float | None = None,
    overwrite: bool = False,
) -> PicksWritten:
    """Turn one probability map into a picks CSV (submission format with a score column).

    Parameters
    ----------
    probs : Path
        A probs or heatmap artifact (see :func:`open_probs`).
    output : Path or "-"
        The CSV; ``-`` writes it to stdout.  It appears only when complete.
    method : str
        One of :data:`czii_cli.postprocess.METHODS`.
    threshold, class_thresholds : optional
        The binarization threshold of every class (default 0.15) and those of the
        classes named.  With neither these nor ``cutoffs`` given, a map that records
        the settings its model tuned for ``method`` is picked with those.
    cutoffs : mapping of str to float, optional
        Per-class minimum pick score (from ``czii tune``).
    options : mapping, optional
        The method's keyword options.
    catalog : Catalog, optional
        Particle classes; default: the map's own, else the competition's six.
    voxel_size : float, optional
        Overrides the map's voxel size (Å).
    overwrite : bool
        Replace an existing ``output``.

    Returns
    -------
    PicksWritten
        The output and its number of picks.

    Raises
    ------
    UsageError
        An unknown method or option, a bad option value, a threshold or cutoff of a
        class the catalog does not know, or an existing output without ``overwrite``.
    DataError
        An unreadable map, or one with non-finite values.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from czii_cli.io.artifacts import ArtifactMeta, write_artifact
    >>> folder = Path(tempfile.mkdtemp())
    >>> data = np.zeros((2, 8, 8, 8), np.float32)
    >>> data[1, 2:5, 3:6, 4:7] = 0.5
    >>> meta = ArtifactMeta(kind="probs", axes="czyx", voxel_size=10.0, run="TS_1",
    ...                     classes=("background", "apo-ferritin"))
    >>> _ = write_artifact(folder / "p.zarr", data, meta)
    >>> postprocess_file(folder / "p.zarr", folder / "picks.csv").picks
    1
    """
    from ..io.atomic import check_output
    from ..io.picks import write_picks_csv

    check_output(Path(output), overwrite=overwrite)
    opened = open_probs(probs, catalog=catalog, voxel_size=voxel_size)
    per_class = dict(class_thresholds or {})
    check_class_names(per_class, opened.catalog, source="class_thresholds")
    check_class_names(dict(cutoffs or {}), opened.catalog, source="cutoffs")
    settings = PickSettings(
        method=method,
        default_threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        pick_thresholds=per_class,
        cutoffs=dict(cutoffs or {}),
    )
    if threshold is None and class_thresholds is None and cutoffs is None:
        tuned = tuned_settings(opened)
        settings = tuned if tuned is not None and tuned.method == method else settings
    picks = picks_of_map(opened, settings, options=options).sorted()
    write_picks_csv(output, picks, overwrite=overwrite)
    return PicksWritten(output, len(picks))


# ----------------------------------------------------------------------------- batch jobs


def _opened(probs: Path | ProbsMap, name: str, job: PickJob) -> ProbsMap:
    if isinstance(probs, ProbsMap):
        return probs
    return open_probs(probs, name=name, catalog=job.catalog, voxel_size=job.voxel_size)


def picks_job(probs: Path | ProbsMap, *, name: str, job: PickJob) -> Picks:
    """Picks of one map (the batch job for one merged CSV).

    Parameters
    ----------
    probs : Path or ProbsMap
        The map, opened already or its path.
    name : str
        The input as given (for messages; ``-`` names stdin).
    job : PickJob
        Method, thresholds, options, catalog and voxel size.
    """
    return picks_of_map(_opened(probs, name, job), job.settings, options=job.options)


def csv_job(probs: Path | ProbsMap, *, name: str, output: Path, job: PickJob, overwrite: bool = False) -> int:
    """Write the picks of one map to its own CSV (the batch job for a folder of CSVs).

    The CSV appears at ``output`` only when complete.  Returns the number of picks.
    """
    from ..io.picks import write_picks_csv

    picks = picks_job(probs, name=name, job=job).sorted()
    write_picks_csv(output, picks, overwrite=overwrite)
    return len(picks)


def copick_job(
    probs: Path | ProbsMap,
    *,
    name: str,
    project: Path,
    run: str,
    user: str,
    session: str,
    job: PickJob,
    overwrite: bool = False,
) -> int:
    """Write the picks of one map into a copick project (the batch job for a copick output).

    One ``<user>_<session>_<class>.json`` per class channel of the map (background
    excepted), see :func:`czii_cli.io.picks.write_run_to_copick`.  Returns the number of picks.
    """
    from ..io.copick import open_project
    from ..io.picks import write_run_to_copick

    opened = _opened(probs, name, job)
    picks = picks_of_map(opened, job.settings, options=job.options).sorted()
    write_run_to_copick(
        open_project(project),
        picks,
        run=run,
        particles=opened.particles,
        user=user,
        session=session,
        voxel_spacing=opened.volume.meta.voxel_size,
        overwrite=overwrite,
    )
    return len(picks)


def plan_copick(
    project: CopickProject,
    maps: Sequence[ProbsMap],
    *,
    user: str,
    session: str,
    skip_existing: bool,
    overwrite: bool,
) -> tuple[list[ProbsMap], list[ProbsMap]]:
    """Split the maps to write into a copick project into those to do and those done.

    Every map's run must be in the project and no two maps may be of one run.  A map
    is done when ``skip_existing`` and all its picks files exist; otherwise an existing
    file is an error unless ``overwrite`` or ``skip_existing`` (a run left incomplete is
    redone).

    Returns
    -------
    (todo, done) : lists of ProbsMap

    Raises
    ------
    DataError
        A run that is not in the project.
    UsageError
        Two maps of one run.
    OutputExistsError
        A picks file that exists, without ``overwrite`` or ``skip_existing``.
    """
    from ..io.picks import copick_picks_targets

    runs = project.runs()
    targets = {}
    for probs in maps:
        if probs.experiment not in runs:
            raise DataError(
                f"{probs.name}: run {probs.experiment!r} is not in {project.config_path} (runs: {', '.join(runs)})"
            )
        targets[probs.name] = copick_picks_targets(
            project, run=probs.experiment, particles=probs.particles, user=user, session=session
        )
    given = [probs.experiment for probs in maps]
    repeated = sorted({run for run in given if given.count(run) > 1})
    if repeated:
        raise UsageError(f"several inputs are run {repeated[0]!r}; their picks in {project.config_path} would collide")
    todo, done = [], []
    for probs in maps:
        if skip_existing and all(t.exists() for t in targets[probs.name]):
            done.append(probs)
            continue
        if not (overwrite or skip_existing):
            for target in targets[probs.name]:
                if target.exists():
                    raise OutputExistsError(target)
        todo.append(probs)
    return todo, done


def merged_picks(parts: Sequence[Picks]) -> tuple[Picks, bool]:
    """The picks of several maps as one sorted table, and whether two maps share an experiment.

    Examples
    --------
    >>> from czii_cli.picks import Picks
    >>> merged, shared = merged_picks([Picks.empty(), Picks.empty()])
    >>> len(merged), shared
    (0, False)
    """
    from ..picks import concat

    runs = [found.experiments for found in parts if len(found)]
    shared = len({run for names in runs for run in names}) < len(runs)
    return concat(parts).sorted(), shared
