"""Find and load training data: artifact pairs, copick projects, MRC + CSV datasets.

Each DATA argument of ``czii train`` is one of

* a folder of czii artifacts made by ``czii normalize`` and ``czii make-labels``: a
  ``tomogram`` artifact and a ``labels`` or ``heatmap`` artifact are paired by the
  ``run`` in their metadata, so the names do not matter (``TS_5_4.zarr`` +
  ``TS_5_4.labels.zarr`` is the convention).  The label artifact carries its classes,
  target settings and picks; a tomogram whose metadata records normalization statistics
  is used as is.  Tomograms without labels are skipped; other files are ignored.
* a copick project (config file or root folder): every run with picks, tomogram type
  ``--tomo-type`` (``denoised`` when there are several);
* an MRC + CSV dataset: a folder with ``train_images/<run>.mrc`` and
  ``train_annotations/<run>.csv`` (annotation or submission CSV).

Copick and MRC runs are normalized and labelled on the fly with the same library code
the ``normalize`` and ``make-labels`` commands use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..catalog import DEFAULT_CATALOG, Catalog, catalog_from_mapping
from ..errors import DataError, NonFiniteError
from ..io import copick
from ..io.artifacts import ArtifactMeta, Volume, read_artifact, sniff
from ..io.copick import GROUND_TRUTH, PicksSelection
from ..io.picks import read_picks
from ..io.volumes import VolumeRequest, read_tomogram
from ..make_labels import TargetSpec, make_target, picks_from_label_metadata
from ..normalize import apply_normalization, normalization_stats
from ..picks import Picks, check_classes
from ..resample import bin_volume, binned_origin


@dataclass(frozen=True)
class RunSource:
    """Where one training run comes from (nothing loaded yet).

    Attributes
    ----------
    run : str
    tomogram : Path
        Any input :func:`~czii_cli.io.volumes.read_volume` accepts.
    request : VolumeRequest
        Run and tomogram type inside a copick project.
    labels : Path or None
        A label artifact, or None to paint the target from ``picks``.
    picks : Picks or None
        Picks of this run, for sources labelled on the fly.
    catalog : Catalog or None
        The classes the source itself declares (label artifact, copick config).
    """

    run: str
    tomogram: Path
    request: VolumeRequest
    labels: Path | None = None
    picks: Picks | None = None
    catalog: Catalog | None = None


@dataclass
class TrainingVolume:
    """One run in memory, ready for cropping.

    Attributes
    ----------
    run : str
    image : ndarray, float32 (Z, Y, X)
        Normalized tomogram.
    target : ndarray
        ``uint8 (Z, Y, X)`` label map or ``float16 (C, Z, Y, X)`` heatmap.
    picks : Picks
        Reference picks in Å (class-balanced crops, validation).
    voxel_size : float
    origin : tuple of float (zyx, Å)
    normalization : dict
        ``{"method", "clip"}`` used for the image.
    source : str
    """

    run: str
    image: np.ndarray
    target: np.ndarray
    picks: Picks
    voxel_size: float
    origin: tuple[float, float, float]
    normalization: dict[str, Any]
    source: str


def find_runs(
    paths: Sequence[Path],
    *,
    tomo_type: str | None = None,
    catalog: Catalog | None = None,
    selection: PicksSelection = GROUND_TRUTH,
) -> list[RunSource]:
    """List the training runs in each DATA argument (see the module docstring).

    ``selection`` chooses whose picks of a copick project are the targets (by default
    ``curation``, else the single user present).  ``catalog`` turns integer labels of
    annotation CSVs into class names (default: the competition's classes).  Raises a
    :class:`DataError` for a path that holds no usable runs and for a run found twice.
    """
    sources: list[RunSource] = []
    for path in map(Path, paths):
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        if copick.find_config(path) is not None:
            found = _copick_runs(path, tomo_type, selection)
        elif (path / "train_images").is_dir():
            found = _mrc_csv_runs(path, catalog or DEFAULT_CATALOG)
        elif path.is_dir():
            found = _artifact_runs(path)
        else:
            raise DataError(
                f"{path}: not training data (expected a folder of artifacts, a copick project "
                "or a folder with train_images/ and train_annotations/)"
            )
        if not found:
            raise DataError(f"{path}: no training runs found")
        sources.extend(found)
    seen: dict[str, RunSource] = {}
    for source in sources:
        if source.run in seen:
            raise DataError(f"run {source.run!r} appears twice: {seen[source.run].tomogram} and {source.tomogram}")
        seen[source.run] = source
    return sources


def _copick_runs(path: Path, tomo_type: str | None, selection: PicksSelection) -> list[RunSource]:
    project = copick.open_project(path)
    catalog = catalog_from_mapping(project.config, source=str(project.config_path))
    picks = read_picks(path, catalog=catalog, selection=selection)
    return [
        RunSource(
            run, path, VolumeRequest(run=run, tomo_type=tomo_type), picks=picks.where(experiment=run), catalog=catalog
        )
        for run in picks.experiments
    ]


def _mrc_csv_runs(path: Path, catalog: Catalog) -> list[RunSource]:
    images = sorted((path / "train_images").glob("*.mrc"))
    if not (path / "train_annotations").is_dir():
        raise DataError(f"{path}: has train_images/ but no train_annotations/")
    picks = read_picks(path / "train_annotations", catalog=catalog)
    return [
        RunSource(mrc.stem, mrc, VolumeRequest(run=mrc.stem), picks=picks.where(experiment=mrc.stem)) for mrc in images
    ]


def _is_artifact_candidate(path: Path) -> bool:
    if path.name.startswith(".") or path.name.endswith(".json"):
        return False
    if path.is_dir():
        return any((path / name).exists() for name in ("zarr.json", ".zgroup"))
    return sniff(path) in ("zip", "npy")


def _artifact_runs(folder: Path) -> list[RunSource]:
    tomograms: dict[str, list[Path]] = {}
    labels: dict[str, list[Path]] = {}
    metas = {}
    for path in sorted(folder.iterdir()):
        if not _is_artifact_candidate(path):
            continue
        try:
            meta = read_artifact(path).meta
        except DataError:
            continue
        run = meta.run or path.name.split(".")[0]
        if meta.kind == "tomogram":
            tomograms.setdefault(run, []).append(path)
        elif meta.kind in ("labels", "heatmap"):
            labels.setdefault(run, []).append(path)
            metas[path] = meta
    sources = []
    for run, label_paths in sorted(labels.items()):
        if len(label_paths) > 1:
            names = ", ".join(p.name for p in label_paths)
            raise DataError(f"{folder}: run {run!r} has several label artifacts ({names}); keep one per folder")
        images = tomograms.get(run, [])
        if len(images) != 1:
            problem = "no tomogram artifact" if not images else f"{len(images)} tomogram artifacts"
            raise DataError(f"{folder}: run {run!r} has labels ({label_paths[0].name}) but {problem}")
        meta = metas[label_paths[0]]
        catalog_json = meta.extra.get("catalog")
        catalog = catalog_from_mapping(catalog_json, source=str(label_paths[0])) if catalog_json else None
        sources.append(RunSource(run, images[0], VolumeRequest(run=run), labels=label_paths[0], catalog=catalog))
    return sources


def label_spec_of(source: RunSource) -> TargetSpec | None:
    """The target settings a label artifact recorded, or None for on-the-fly sources."""
    if source.labels is None:
        return None
    return _recorded_spec(read_artifact(source.labels).meta)


def _recorded_spec(meta: ArtifactMeta) -> TargetSpec:
    kind = meta.extra.get("target", "heatmap" if meta.kind == "heatmap" else "spheres")
    return TargetSpec.from_json({**meta.extra, "target": kind})


def load_run(source: RunSource, *, catalog: Catalog, spec: TargetSpec, normalization: dict[str, Any]) -> TrainingVolume:
    """Read, normalize and label one run.

    Parameters
    ----------
    source : RunSource
    catalog : Catalog
        The classes of the model; a label artifact must list the same names.
    spec : TargetSpec
        Target to paint for on-the-fly sources; a label artifact must be of the same kind.
    normalization : dict
        ``{"method", "clip"}`` for tomograms that are not normalized yet.
    """
    volume = read_tomogram(source.tomogram, source.request)
    raw = volume.load(np.float32)
    stats = volume.meta.extra.get("normalization") if source.labels is not None else None
    if stats is None:
        stats = normalization_stats(
            raw, method=normalization["method"], clip=normalization["clip"], source=volume.source
        )
        image = apply_normalization(raw, stats)
    else:
        image = raw
        bad = int(image.size - np.count_nonzero(np.isfinite(image)))
        if bad:
            raise NonFiniteError(
                f"{volume.source}: {bad} of {image.size} voxels are not finite (NaN or infinite)",
                count=bad,
                total=image.size,
            )
    if source.labels is None:
        picks = source.picks if source.picks is not None else Picks.empty()
        check_classes(picks, catalog.names, source=str(source.tomogram))
        target = make_target(
            volume.spatial_shape,
            picks,
            catalog=catalog,
            spec=spec,
            voxel_size=volume.meta.voxel_size,
            origin_zyx=volume.meta.origin,
        )
    else:
        picks, target = _read_labels(source, source.labels, volume, catalog=catalog, spec=spec)
    return TrainingVolume(
        run=source.run,
        image=image,
        target=target,
        picks=picks,
        voxel_size=volume.meta.voxel_size,
        # A tomogram's origin is zyx: three coordinates.
        origin=cast(tuple[float, float, float], tuple(volume.meta.origin)),
        normalization={"method": stats["method"], "clip": stats.get("clip")},
        source=volume.source,
    )


def _read_labels(
    source: RunSource, labels_path: Path, volume: Volume, *, catalog: Catalog, spec: TargetSpec
) -> tuple[Picks, np.ndarray]:
    from ..io.artifacts import check_same_grid

    labels = read_artifact(labels_path)
    check_same_grid(volume, labels)
    if list(labels.meta.classes) != catalog.names:
        raise DataError(f"{labels.source}: classes {list(labels.meta.classes)} differ from the model's {catalog.names}")
    recorded = _recorded_spec(labels.meta)
    if recorded.kind != spec.kind:
        raise DataError(f"{labels.source}: a {recorded.kind} target, but training uses {spec.kind}")
    picks = picks_from_label_metadata(labels.meta.extra, run=source.run)
    if picks is None:
        raise DataError(f"{labels.source}: records no picks; remake it with czii make-labels")
    return picks, labels.load(np.float16 if spec.kind == "heatmap" else np.uint8)


def bin_training_volume(volume: TrainingVolume, *, factor: int, catalog: Catalog, spec: TargetSpec) -> TrainingVolume:
    """One run at a coarser working resolution: image binned and normalized again, target painted again.

    The image is binned by ``factor`` (block means, :func:`czii_cli.resample.bin_volume`)
    and normalized again by the run's own method over the binned voxels (a z-scored
    image binned has less spread than one), as ``predict-probs``
    prepares a tomogram for a model of the binned voxel size; the target is painted from
    the run's picks (Å) on the binned grid, whose origin is the centre of the first
    block.  Settings of ``spec`` in voxels (``sigma``, ``dilate``) are binned voxels.

    Parameters
    ----------
    volume : TrainingVolume
        A run as :func:`load_run` gives it.
    factor : int
        Voxels per block along each axis; 1 returns ``volume``.
    catalog : Catalog
    spec : TargetSpec

    Returns
    -------
    TrainingVolume
        Voxel size ``factor`` times larger, the same normalization method.
    """
    if factor == 1:
        return volume
    binned = bin_volume(volume.image, factor=factor, source=volume.source)
    method, clip = volume.normalization["method"], volume.normalization.get("clip")
    stats = normalization_stats(binned, method=method, clip=clip, source=volume.source)
    voxel_size = volume.voxel_size * factor
    origin = binned_origin(volume.origin, voxel_size=volume.voxel_size, factor=factor)
    target = make_target(
        binned.shape, volume.picks, catalog=catalog, spec=spec, voxel_size=voxel_size, origin_zyx=origin
    )
    return TrainingVolume(
        run=volume.run,
        image=apply_normalization(binned, stats),
        target=target,
        picks=volume.picks,
        voxel_size=voxel_size,
        origin=origin,
        normalization={"method": stats["method"], "clip": stats.get("clip")},
        source=volume.source,
    )
