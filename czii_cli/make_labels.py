"""Training targets painted from picks: spheres, Gaussian heatmaps or centre points.

The competition's top solutions trained on one of three kinds of target, all made here
on the tomogram's voxel grid from picks in Å:

* ``spheres``: a ``uint8`` label map.  Each particle becomes a ball of radius
  ``radius_scale * r`` (``r`` the class radius, in voxels); a voxel covered by several
  balls takes the label of the nearest centre, the first pick winning exact ties, so the
  map does not depend on the order of overlapping classes.
* ``heatmap``: one ``float16`` Gaussian channel per class (``[c, z, y, x]``), peak 1 at
  each centre, ``exp(-d^2 / (2 sigma^2))``, cut off beyond 3 sigma; overlaps take the
  maximum.  ``sigma`` is ``radius_scale * r / 2`` voxels unless given: the ball a
  ``spheres`` target would paint is then the two-sigma contour (value ``e^-2``).
* ``points``: a ``uint8`` label map with the voxel nearest each centre set, optionally
  dilated to the ``(2N + 1)^3`` cube around it (a max-pool of radius ``N``, as the 1st
  place did); overlapping cubes are resolved by the nearest centre as for spheres.

Label maps hold ``i + 1`` for the ``i``-th class of the catalog (label order); 0 is
background.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .catalog import Catalog
from .coords import angstrom_to_voxel
from .errors import DataError, UsageError
from .picks import Picks, check_classes

if TYPE_CHECKING:
    from .io.copick import PicksSelection
    from .io.volumes import VolumeRequest

TARGETS = ("spheres", "heatmap", "points")
DEFAULT_RADIUS_SCALE = 0.5
HEATMAP_TRUNCATE = 3.0


@dataclass(frozen=True)
class TargetSpec:
    """How to paint a target.

    Attributes
    ----------
    kind : str
        ``spheres``, ``heatmap`` or ``points``.
    radius_scale : float
        Default fraction of each class radius (spheres, and the heatmap's sigma rule).
    class_scales : dict of str to float
        Per-class fractions that replace ``radius_scale``.
    sigma : float or None
        Fixed heatmap sigma in voxels; ``None`` derives it from the radius.
    dilate : int
        Points only: half-width in voxels of the cube painted around each centre.
    """

    kind: str = "spheres"
    radius_scale: float = DEFAULT_RADIUS_SCALE
    class_scales: dict[str, float] = field(default_factory=dict)
    sigma: float | None = None
    dilate: int = 0

    def __post_init__(self) -> None:
        if self.kind not in TARGETS:
            raise UsageError(f"unknown target {self.kind!r} (choose from {', '.join(TARGETS)})")
        for name, value in [("default", self.radius_scale), *self.class_scales.items()]:
            if not np.isfinite(value) or value <= 0:
                raise UsageError(f"radius_scale for {name} must be positive, got {value}")
        if self.sigma is not None and not self.sigma > 0:
            raise UsageError(f"sigma must be positive, got {self.sigma}")
        if self.dilate < 0:
            raise UsageError(f"dilate must be >= 0, got {self.dilate}")

    def check_classes(self, names: Sequence[str]) -> None:
        """Raise a :class:`UsageError` for a per-class scale of a class not in ``names``."""
        unknown = sorted(set(self.class_scales) - set(names))
        if unknown:
            raise UsageError(f"radius_scale: unknown class {unknown[0]!r} (known: {', '.join(names)})")

    def scale_of(self, name: str) -> float:
        """The radius fraction used for class ``name``."""
        return float(self.class_scales.get(name, self.radius_scale))

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form, as stored in label artifacts and model files."""
        return {
            "target": self.kind,
            "radius_scale": {"default": self.radius_scale, **self.class_scales},
            "sigma": self.sigma,
            "dilate": self.dilate,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TargetSpec:
        """Inverse of :meth:`to_json`."""
        scales = dict(document.get("radius_scale") or {})
        default = float(scales.pop("default", DEFAULT_RADIUS_SCALE))
        return cls(
            kind=str(document.get("target", "spheres")),
            radius_scale=default,
            class_scales={str(k): float(v) for k, v in scales.items()},
            sigma=None if document.get("sigma") is None else float(document["sigma"]),
            dilate=int(document.get("dilate", 0)),
        )


@dataclass(frozen=True)
class Centres:
    """Particle centres on a voxel grid.

    Attributes
    ----------
    zyx : ndarray, shape (N, 3)
        Fractional voxel positions (z, y, x).
    channel : ndarray of int, shape (N,)
        Index of each particle's class in the catalog's label order (0-based).
    radius : ndarray, shape (N,)
        Class radius of each particle, in voxels.
    """

    zyx: np.ndarray
    channel: np.ndarray
    radius: np.ndarray


def centres_from_picks(
    picks: Picks, *, catalog: Catalog, voxel_size: float, origin_zyx: Sequence[float] = (0.0, 0.0, 0.0)
) -> Centres:
    """Convert picks in Å to voxel centres with class indices and radii in voxels.

    Unknown classes raise a :class:`~czii_cli.errors.DataError`.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> c = centres_from_picks(Picks.from_points("r", "ribosome", [[30.0, 20.0, 10.0]]),
    ...                        catalog=DEFAULT_CATALOG, voxel_size=10.0)
    >>> c.zyx.tolist(), c.channel.tolist(), c.radius.tolist()
    ([[1.0, 2.0, 3.0]], [3], [15.0])
    """
    check_classes(picks, catalog.names, source="picks")
    index = {name: i for i, name in enumerate(catalog.names)}
    channel = np.array([index[name] for name in picks.particle_type], dtype=np.int64)
    radii = np.array([c.radius for c in catalog], dtype=np.float64) / float(voxel_size)
    return Centres(
        zyx=angstrom_to_voxel(picks.xyz, voxel_size=voxel_size, origin_zyx=origin_zyx),
        channel=channel,
        radius=radii[channel] if len(channel) else np.empty(0),
    )


def _box(centre: np.ndarray, reach: float, shape: Sequence[int]) -> tuple[slice, ...] | None:
    """The voxel box holding every index within ``reach`` of ``centre``, clipped to the grid."""
    low = np.maximum(np.ceil(centre - reach).astype(int), 0)
    high = np.minimum(np.floor(centre + reach).astype(int) + 1, np.asarray(shape))
    if np.any(high <= low):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def _squared_distances(box: tuple[slice, ...], centre: np.ndarray) -> np.ndarray:
    z, y, x = (np.arange(s.start, s.stop, dtype=np.float64) - c for s, c in zip(box, centre))
    squared: np.ndarray = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2
    return squared.astype(np.float32)


def _paint_nearest(
    shape: Sequence[int], centres: np.ndarray, values: np.ndarray, reach: np.ndarray, *, cube: bool
) -> np.ndarray:
    """Paint each centre's ball (or cube) of ``reach``; a voxel takes its nearest centre's value."""
    out = np.zeros(tuple(shape), dtype=np.uint8)
    best = np.full(tuple(shape), np.inf, dtype=np.float32)
    for centre, value, r in zip(centres, values, reach):
        box = _box(centre, r, shape)
        if box is None:
            continue
        d2 = _squared_distances(box, centre)
        covered = np.ones(d2.shape, dtype=bool) if cube else d2 <= np.float32(r * r)
        wins = covered & (d2 < best[box])
        best[box][wins] = d2[wins]
        out[box][wins] = value
    return out


def sphere_labels(shape: Sequence[int], centres: Centres, *, scales: np.ndarray) -> np.ndarray:
    """Paint balls of radius ``scales[channel] * radius`` voxels as a ``uint8`` label map.

    Parameters
    ----------
    shape : (Z, Y, X)
    centres : Centres
    scales : ndarray, shape (n_classes,)
        Radius fraction per class.

    Examples
    --------
    >>> c = Centres(np.array([[4.0, 4.0, 4.0]]), np.array([0]), np.array([4.0]))
    >>> int((sphere_labels((9, 9, 9), c, scales=np.array([0.5])) == 1).sum())
    33
    """
    reach = np.asarray(scales, dtype=np.float64)[centres.channel] * centres.radius
    return _paint_nearest(shape, centres.zyx, centres.channel + 1, reach, cube=False)


def point_labels(shape: Sequence[int], centres: Centres, *, dilate: int = 0) -> np.ndarray:
    """Set the voxel nearest each centre (and its ``(2 dilate + 1)^3`` cube) to its label.

    Examples
    --------
    >>> c = Centres(np.array([[1.2, 0.9, 2.6]]), np.array([1]), np.array([6.0]))
    >>> np.argwhere(point_labels((3, 3, 4), c) == 2).tolist()
    [[1, 1, 3]]
    """
    rounded = np.floor(centres.zyx + 0.5)
    reach = np.full(len(rounded), float(dilate))
    return _paint_nearest(shape, rounded, centres.channel + 1, reach, cube=True)


def heatmap_sigmas(centres: Centres, *, scales: np.ndarray, sigma: float | None) -> np.ndarray:
    """Sigma per particle in voxels: ``sigma`` if fixed, else ``scale * radius / 2``."""
    if sigma is not None:
        return np.full(len(centres.zyx), float(sigma))
    sigmas: np.ndarray = np.asarray(scales, dtype=np.float64)[centres.channel] * centres.radius / 2.0
    return sigmas


def gaussian_heatmap(shape: Sequence[int], centres: Centres, *, n_classes: int, sigmas: np.ndarray) -> np.ndarray:
    """One Gaussian channel per class, peak 1 at each centre; overlaps take the maximum.

    Returns a ``float16`` array ``[n_classes, Z, Y, X]``; values beyond
    ``HEATMAP_TRUNCATE`` sigma are 0.

    Examples
    --------
    >>> c = Centres(np.array([[2.0, 3.0, 1.0]]), np.array([0]), np.array([6.0]))
    >>> h = gaussian_heatmap((5, 6, 4), c, n_classes=2, sigmas=np.array([1.0]))
    >>> np.argwhere(h == h.max()).tolist(), float(h.max()), float(h[1].max())
    ([[0, 2, 3, 1]], 1.0, 0.0)
    """
    out = np.zeros((n_classes, *shape), dtype=np.float16)
    for centre, channel, s in zip(centres.zyx, centres.channel, sigmas):
        box = _box(centre, HEATMAP_TRUNCATE * s, shape)
        if box is None:
            continue
        d2 = _squared_distances(box, centre)
        values = np.exp(-d2 / np.float32(2.0 * s * s))
        values[d2 > np.float32((HEATMAP_TRUNCATE * s) ** 2)] = 0.0
        region = out[(int(channel),) + box]
        np.maximum(region, values.astype(np.float16), out=region)
    return out


def make_target(
    shape: Sequence[int],
    picks: Picks,
    *,
    catalog: Catalog,
    spec: TargetSpec,
    voxel_size: float,
    origin_zyx: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Paint the target ``spec`` describes for picks of one tomogram.

    Parameters
    ----------
    shape : (Z, Y, X)
        The tomogram's grid.
    picks : Picks
        Picks in Å of this tomogram only (filter by experiment first).
    catalog : Catalog
        Classes in label order; fixes label values and heatmap channels.
    spec : TargetSpec
    voxel_size, origin_zyx : the tomogram's grid in Å.

    Returns
    -------
    ndarray
        ``uint8 [Z, Y, X]`` for spheres and points, ``float16 [C, Z, Y, X]`` for heatmaps.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> p = Picks.from_points("r", "apo-ferritin", [[50.0, 50.0, 50.0]])
    >>> labels = make_target((10, 10, 10), p, catalog=DEFAULT_CATALOG,
    ...                      spec=TargetSpec("spheres", radius_scale=1 / 3), voxel_size=10.0)
    >>> int((labels == 1).sum())
    33
    """
    centres = centres_from_picks(picks, catalog=catalog, voxel_size=voxel_size, origin_zyx=origin_zyx)
    scales = np.array([spec.scale_of(name) for name in catalog.names])
    if spec.kind == "spheres":
        return sphere_labels(shape, centres, scales=scales)
    if spec.kind == "points":
        return point_labels(shape, centres, dilate=spec.dilate)
    sigmas = heatmap_sigmas(centres, scales=scales, sigma=spec.sigma)
    return gaussian_heatmap(shape, centres, n_classes=len(catalog), sigmas=sigmas)


def label_metadata(picks: Picks, *, catalog: Catalog, spec: TargetSpec) -> dict[str, Any]:
    """The ``extra`` facts a label artifact records: target spec, catalog and the picks used.

    Keeping the picks (in Å, per class) lets ``czii train`` draw class-balanced crops and
    score validation runs from the label artifact alone.
    """
    by_class = {name: picks.where(particle_type=name).xyz.tolist() for name in catalog.names}
    return {**spec.to_json(), "catalog": catalog.to_json(), "picks": by_class}


def picks_from_label_metadata(extra: Mapping[str, Any], *, run: str) -> Picks | None:
    """The picks a label artifact recorded (see :func:`label_metadata`), or None."""
    from .picks import concat

    recorded = extra.get("picks")
    if not isinstance(recorded, Mapping):
        return None
    return concat(Picks.from_points(run, name, np.asarray(xyz, dtype=np.float64)) for name, xyz in recorded.items())


class PicksOfOtherRunsError(DataError):
    """The picks hold none of the tomogram's run, only others (exit code 1).

    Attributes
    ----------
    run : str or None
        The tomogram's run.
    """

    def __init__(self, message: str, *, run: str | None) -> None:
        super().__init__(message)
        self.run = run


class LabelsFile(NamedTuple):
    """What :func:`make_labels_file` wrote.

    Attributes
    ----------
    outputs : tuple of Path or str
        The artifact (``-`` when streamed), or the copick segmentations written.
    picks : int
        The number of picks painted.
    run : str or None
        The tomogram's run (only its picks are painted).
    shape : tuple of int
        The grid (z, y, x).
    """

    outputs: tuple[Path | str, ...]
    picks: int
    run: str | None
    shape: tuple[int, ...]


def make_labels_file(
    picks: Path,
    like: Path,
    output: Path | str | None,
    *,
    spec: TargetSpec,
    catalog: Catalog,
    request: VolumeRequest | None = None,
    selection: PicksSelection | None = None,
    project: Path | None = None,
    user: str = "czii",
    session: str = "0",
    preview: bool = False,
    overwrite: bool = False,
) -> LabelsFile:
    """Paint the picks of one run on the grid of a tomogram file, and write the target.

    Parameters
    ----------
    picks : Path
        Picks: a CSV, a copick project or overlay, ``-`` for CSV on stdin.
    like : Path
        The tomogram whose grid (shape, voxel size, origin) and run the target takes.
    output : Path or "-" or None
        The artifact; ``-`` streams a zip to stdout.  None with ``project``.
    spec : TargetSpec
        The kind of target and its sizes.
    catalog : Catalog
        The particle classes (label order, radii); every pick's class must be in it.
    request : VolumeRequest, optional
        Run, tomogram type and voxel-size override to read ``like`` with.
    selection : PicksSelection, optional
        Whose picks a copick project contributes (default: the ground truth).
    project : Path, optional
        A copick config: write the target into that project as segmentations of the
        run (under ``user`` and ``session``) instead of ``output``.
    preview : bool
        Also store a 2x downsampled level of the artifact.
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    LabelsFile

    Raises
    ------
    PicksOfOtherRunsError
        The picks hold runs, but not the tomogram's.
    DataError
        Unreadable inputs, or picks of classes not in ``catalog``.

    Examples
    --------
    >>> import tempfile
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> from czii_cli.io.artifacts import ArtifactMeta, read_artifact, write_artifact
    >>> folder = Path(tempfile.mkdtemp())
    >>> meta = ArtifactMeta(kind="tomogram", axes="zyx", voxel_size=10.0, run="TS_1")
    >>> _ = write_artifact(folder / "t.zarr", np.zeros((8, 8, 8), np.float32), meta)
    >>> _ = (folder / "p.csv").write_text("experiment,particle_type,x,y,z\\nTS_1,apo-ferritin,40,40,40\\n")
    >>> done = make_labels_file(folder / "p.csv", folder / "t.zarr", folder / "l.zarr",
    ...                         spec=TargetSpec("points"), catalog=DEFAULT_CATALOG)
    >>> done.picks, int(read_artifact(done.outputs[0]).data[4, 4, 4])
    (1, 1)
    """
    from .io import copick
    from .io.artifacts import write_artifact
    from .io.picks import read_picks
    from .io.volumes import VolumeRequest, read_volume

    volume = read_volume(like, request or VolumeRequest())
    all_picks = read_picks(picks, catalog=catalog, selection=selection or copick.GROUND_TRUTH)
    mine = all_picks.where(experiment=volume.meta.run)
    if len(all_picks) and not len(mine):
        raise PicksOfOtherRunsError(
            f"{picks}: no picks of run {volume.meta.run!r} (runs: {', '.join(all_picks.experiments)})",
            run=volume.meta.run,
        )
    check_classes(mine, catalog.names, source=str(picks))
    data = make_target(
        volume.spatial_shape,
        mine,
        catalog=catalog,
        spec=spec,
        voxel_size=volume.meta.voxel_size,
        origin_zyx=volume.meta.origin,
    )
    meta = volume.meta.evolve(
        kind="heatmap" if spec.kind == "heatmap" else "labels",
        axes="czyx" if spec.kind == "heatmap" else "zyx",
        classes=tuple(catalog.names),
        extra=label_metadata(mine, catalog=catalog, spec=spec),
    )
    meta = meta.with_step("make-labels", args=spec.to_json(), inputs=[str(picks), volume.source])
    outputs: tuple[Path | str, ...]
    if project is not None:
        from .io.copick_segmentations import write_target_to_copick

        outputs = tuple(
            write_target_to_copick(
                copick.open_output_project(project),
                data,
                meta,
                kind=spec.kind,
                user=user,
                session=session,
                overwrite=overwrite,
            )
        )
    elif output is None:
        raise UsageError("make_labels_file: give an output or a copick project")
    else:
        write_artifact(output, data, meta, overwrite=overwrite, preview=preview)
        outputs = (output,)
    return LabelsFile(outputs, len(mine), volume.meta.run, tuple(volume.spatial_shape))
