"""Pictures of tomogram slices with probability overlays, picks and truth.

Pure helpers behind ``czii view``: choosing slices, averaging a slab of z-planes,
robust gray contrast, composing a probability overlay, classifying picks against truth
(TP / FP / FN, the competition's matching) and placing circle marks, then drawing the
panels with matplotlib into a figure whose pixel size depends only on the volume shape
and the number of panels.

Mark positions are in voxels of the slice: ``x_px`` is the column (voxel x index),
``y_px`` the row (voxel y index); a pick at x = 120 Å in a 10 Å tomogram with origin 0
sits at column 12.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .catalog import BACKGROUND, Catalog
from .coords import angstrom_to_voxel
from .picks import Picks

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import LineStyleType

STATUS_LABELS = {
    "tp": "TP: pick on a truth particle",
    "fp": "FP: pick, no truth near",
    "fn": "FN: truth particle missed",
    "pick": "pick",
    "truth": "truth",
}
STATUS_STYLES: dict[str, tuple[LineStyleType, float]] = {  # matplotlib line style and width (points) of each mark kind
    "tp": ("solid", 1.8),
    "fp": ((0, (3.0, 2.0)), 1.8),
    "fn": ((0, (1.0, 1.5)), 2.0),
    "pick": ("solid", 1.6),
    "truth": ("solid", 1.6),
}
# Mostly Okabe-Ito colours (colour-blind safe), saturated so they stand out on gray.
PALETTE = ("#E69F00", "#56B4E9", "#00C08B", "#F0E442", "#E377C2", "#A16BFF", "#D55E00", "#0072B2")
DPI = 100
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM, PANEL_GAP = 64, 230, 64, 52, 56
MIN_PANEL_AREA_HEIGHT = 280  # room for the legend next to flat volumes
TARGET_PANEL_PIXELS = (400, 1000)  # small volumes are enlarged, big ones shrunk, into this range


@dataclass(frozen=True)
class Mark:
    """One circle to draw on a slice.

    Attributes
    ----------
    x_px, y_px : float
        Centre in voxels of the slice (column = x index, row = y index).
    radius_px : float
        Radius in voxels where the particle's sphere cuts the slice.
    class_name : str
        Particle class (sets the colour).
    status : str
        ``tp``, ``fp`` (picks judged against truth), ``fn`` (truth nobody picked),
        ``pick`` (no truth given) or ``truth`` (no picks given).
    """

    x_px: float
    y_px: float
    radius_px: float
    class_name: str
    status: str


@dataclass(frozen=True)
class Panel:
    """What one panel shows: a gray image, an optional RGBA overlay and marks."""

    z_index: int
    image: np.ndarray
    overlay: np.ndarray | None
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class FigureLayout:
    """Pixel geometry of a figure of side-by-side panels (PNG rows count from the top).

    Attributes
    ----------
    width_px, height_px : int
        Size of the PNG.
    panel_width_px, panel_height_px : int
        Size of each image panel.
    panel_lefts_px : tuple of int
        Left edge of each panel.
    panel_top_px : int
        Top edge of the panels.
    shape_yx : tuple of int
        Voxels shown per panel (rows, columns).
    """

    width_px: int
    height_px: int
    panel_width_px: int
    panel_height_px: int
    panel_lefts_px: tuple[int, ...]
    panel_top_px: int
    shape_yx: tuple[int, int]

    def to_pixel(self, panel: int, x: float, y: float) -> tuple[float, float]:
        """PNG (column, row) of voxel position (``x``, ``y``) in panel ``panel``."""
        ny, nx = self.shape_yx
        column = self.panel_lefts_px[panel] + (x + 0.5) * self.panel_width_px / nx
        row = self.panel_top_px + (y + 0.5) * self.panel_height_px / ny
        return column, row


def figure_layout(shape_yx: Sequence[int], *, panels: int) -> FigureLayout:
    """Deterministic figure geometry for ``panels`` slices of ``shape_yx`` voxels.

    Each panel's longer side is scaled into 400-1000 pixels: small volumes are
    enlarged by a whole factor (crisp voxels), volumes over 1000 voxels are shrunk,
    others are shown one voxel per pixel.

    Examples
    --------
    >>> layout = figure_layout((32, 40), panels=2)
    >>> layout.panel_width_px, layout.panel_height_px, layout.width_px, layout.height_px
    (400, 320, 1150, 436)
    """
    ny, nx = (int(v) for v in shape_yx)
    longest = max(ny, nx)
    low, high = TARGET_PANEL_PIXELS
    if longest < low:
        scale = float(math.ceil(low / longest))
    elif longest > high:
        scale = high / longest
    else:
        scale = 1.0
    width, height = max(1, round(nx * scale)), max(1, round(ny * scale))
    lefts = tuple(MARGIN_LEFT + i * (width + PANEL_GAP) for i in range(panels))
    total_width = MARGIN_LEFT + panels * width + (panels - 1) * PANEL_GAP + MARGIN_RIGHT
    return FigureLayout(
        width_px=total_width,
        height_px=MARGIN_TOP + max(height, MIN_PANEL_AREA_HEIGHT) + MARGIN_BOTTOM,
        panel_width_px=width,
        panel_height_px=height,
        panel_lefts_px=lefts,
        panel_top_px=MARGIN_TOP,
        shape_yx=(ny, nx),
    )


# ----------------------------------------------------------------------------- matching


def match_flags(
    picks: Picks, truth: Picks, *, catalog: Catalog, distance_multiplier: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Judge each pick and each truth particle with the competition's matching rule.

    A truth particle is found when a pick of the same class and experiment lies within
    ``distance_multiplier * radius`` of it (pairs from :func:`czii_cli.score.reach_pairs`,
    so FN = truth not found, exactly as in the metric).
    Each found particle claims one pick, nearest pairs first; claimed picks are TP, the
    rest FP, so duplicates near one particle count as FP as they do in the score.

    Returns
    -------
    pick_is_tp : ndarray of bool, shape (len(picks),)
    truth_is_found : ndarray of bool, shape (len(truth),)

    Examples
    --------
    >>> truth = Picks.from_points("r", "ribosome", [[0, 0, 0], [500, 0, 0]])
    >>> picks = Picks.from_points("r", "ribosome", [[10, 0, 0], [20, 0, 0]])
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> match_flags(picks, truth, catalog=DEFAULT_CATALOG)
    (array([ True, False]), array([ True, False]))
    """
    from .score import reach_pairs

    pick_is_tp = np.zeros(len(picks), dtype=bool)
    truth_is_found = np.zeros(len(truth), dtype=bool)
    for experiment in sorted(set(picks.experiment.tolist()) & set(truth.experiment.tolist())):
        for name in sorted(set(picks.particle_type.tolist()) & set(truth.particle_type.tolist())):
            pick_rows = np.flatnonzero((picks.experiment == experiment) & (picks.particle_type == name))
            truth_rows = np.flatnonzero((truth.experiment == experiment) & (truth.particle_type == name))
            pick_xyz, truth_xyz = picks.xyz[pick_rows], truth.xyz[truth_rows]
            near_pick, near_truth = reach_pairs(pick_xyz, truth_xyz, distance_multiplier * catalog.get(name).radius)
            truth_is_found[truth_rows[near_truth]] = True
            distance = np.linalg.norm(pick_xyz[near_pick] - truth_xyz[near_truth], axis=1)
            claimed_truth, claimed_picks = set(), set()
            for index in np.lexsort((near_pick, near_truth, distance)).tolist():
                p, t = int(near_pick[index]), int(near_truth[index])
                if t not in claimed_truth and p not in claimed_picks:
                    claimed_truth.add(t)
                    claimed_picks.add(p)
                    pick_is_tp[pick_rows[p]] = True
    return pick_is_tp, truth_is_found


def slice_marks(
    picks: Picks | None,
    truth: Picks | None,
    *,
    z_index: int,
    voxel_size: float,
    catalog: Catalog,
    origin_zyx: Sequence[float] = (0.0, 0.0, 0.0),
    distance_multiplier: float = 0.5,
) -> list[Mark]:
    """Circles to draw on slice ``z_index`` for the particles that cut it.

    A particle of radius r at distance dz (Å) from the slice appears with radius
    ``sqrt(r^2 - dz^2)``; particles with ``|dz| >= r`` are not drawn.  With both picks
    and truth, picks are ``tp``/``fp`` and unfound truth is ``fn`` (found truth is shown
    by its TP pick); with one of them only (``None`` for the other), marks are ``pick``
    or ``truth``.

    Parameters
    ----------
    picks, truth : Picks or None
        Positions in Å of one tomogram (match by class and experiment).
    z_index : int
        The slice.
    voxel_size : float
        Voxel edge in Å.
    catalog : Catalog
        Radii of the classes.
    origin_zyx : sequence of float
        Position of voxel (0, 0, 0) in Å.
    distance_multiplier : float
        Match distance as a fraction of the class radius (the competition's 0.5).

    Returns
    -------
    list of Mark
        Picks first, then truth, each in input order.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> picks = Picks.from_points("r", "ribosome", [[120.0, 50.0, 30.0]])
    >>> mark, = slice_marks(picks, None, z_index=3, voxel_size=10.0, catalog=DEFAULT_CATALOG)
    >>> mark.x_px, mark.y_px, mark.radius_px, mark.status
    (12.0, 5.0, 15.0, 'pick')
    """
    judged = picks is not None and truth is not None
    picks = picks if picks is not None else Picks.empty()
    truth = truth if truth is not None else Picks.empty()
    if judged:
        pick_is_tp, truth_is_found = match_flags(picks, truth, catalog=catalog, distance_multiplier=distance_multiplier)
        pick_status = np.where(pick_is_tp, "tp", "fp")
        truth = truth.subset(~truth_is_found)
        truth_status = np.full(len(truth), "fn")
    else:
        pick_status = np.full(len(picks), "pick")
        truth_status = np.full(len(truth), "truth")
    marks = []
    for table, statuses in ((picks, pick_status), (truth, truth_status)):
        zyx = angstrom_to_voxel(table.xyz, voxel_size=voxel_size, origin_zyx=origin_zyx)
        for (z, y, x), name, status in zip(zyx, table.particle_type, statuses):
            radius = catalog.get(name).radius
            dz = (z - z_index) * voxel_size
            if abs(dz) < radius:
                marks.append(Mark(float(x), float(y), math.sqrt(radius**2 - dz**2) / voxel_size, name, str(status)))
    return marks


# ----------------------------------------------------------------------------- slices


def slice_occupancy(
    picks: Picks, *, depth: int, voxel_size: float, catalog: Catalog, origin_z: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``depth`` z-planes, the particles whose sphere cuts it and their area.

    Uses the same rule as :func:`slice_marks` (``|dz| < radius``).

    Returns
    -------
    counts : ndarray of int, shape (depth,)
        Number of particles cut by each plane.
    area : ndarray of float, shape (depth,)
        Total area of their cross-sections on each plane, in voxels.

    Examples
    --------
    >>> from czii_cli.catalog import DEFAULT_CATALOG
    >>> picks = Picks.from_points("r", "apo-ferritin", [[0.0, 0.0, 30.0]])
    >>> counts, area = slice_occupancy(picks, depth=12, voxel_size=10.0, catalog=DEFAULT_CATALOG)
    >>> counts
    array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    >>> int(area.argmax())
    3
    """
    z = (picks.xyz[:, 2] - origin_z) / voxel_size
    radius = np.array([catalog.get(name).radius for name in picks.particle_type], dtype=np.float64) / voxel_size
    dz = np.arange(depth)[None, :] - z[:, None]
    cut = np.abs(dz) < radius[:, None]
    area = np.where(cut, np.pi * (radius[:, None] ** 2 - dz**2), 0.0)
    return cut.sum(axis=0), area.sum(axis=0)


def choose_slices(counts: np.ndarray, *, area: np.ndarray | None = None, count: int = 1) -> list[int]:
    """Pick ``count`` well-separated slices holding the most particles, in ascending order.

    Slices are taken greedily by particle count, ties going to the larger total
    cross-section ``area`` (when given; it favours particle centres), then to the slice
    nearest the middle; each choice rules out its neighbours within
    ``depth // (2 * count)`` planes.  With no particles at all this gives the middle
    slice (and slices spread around it).

    Examples
    --------
    >>> choose_slices(np.array([0, 0, 3, 5, 1, 0, 0, 2, 0, 0]), count=2)
    [3, 7]
    >>> choose_slices(np.array([1, 1, 1, 0]), area=np.array([1.0, 3.0, 2.0, 0.0]))
    [1]
    >>> choose_slices(np.zeros(9, dtype=int))
    [4]
    """
    counts = np.asarray(counts)
    depth = len(counts)
    if not 1 <= count <= depth:
        raise ValueError(f"cannot choose {count} slices out of {depth}")
    area = np.zeros(depth) if area is None else np.asarray(area, dtype=np.float64)
    separation = max(1, depth // (2 * count))
    middle = (depth - 1) / 2
    order = np.lexsort((np.abs(np.arange(depth) - middle), -area, -counts))
    chosen: list[int] = []
    for z in order.tolist():
        if all(abs(z - c) >= separation for c in chosen):
            chosen.append(z)
            if len(chosen) == count:
                break
    return sorted(chosen)


def slab_mean(volume: Any, *, z_index: int, planes: int = 1) -> np.ndarray:
    """Mean of ``planes`` z-planes centred on ``z_index`` (cut at the volume's ends).

    ``volume`` may be lazy (zarr, memory map): only the slab is read.

    Examples
    --------
    >>> slab_mean(np.arange(4.0).reshape(4, 1, 1), z_index=0, planes=3)
    array([[0.5]], dtype=float32)
    """
    half = planes // 2
    start, stop = max(0, z_index - half), min(volume.shape[0], z_index + half + 1)
    mean: np.ndarray = (
        np.asarray(volume[start:stop], dtype=np.float32).mean(axis=0, dtype=np.float64).astype(np.float32)
    )
    return mean


def display_range(
    images: Sequence[np.ndarray], *, percentiles: tuple[float, float] = (1.0, 99.0)
) -> tuple[float, float]:
    """Gray range shared by all panels: the given percentiles of their pixels.

    A constant image gets a range of width 1 around its value (shown mid-gray).

    Examples
    --------
    >>> display_range([np.arange(101.0).reshape(1, 101)])
    (1.0, 99.0)
    >>> display_range([np.full((2, 2), 3.0)])
    (2.5, 3.5)
    """
    values = np.concatenate([np.asarray(i, dtype=np.float64).ravel() for i in images])
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if not high > low:
        return low - 0.5, low + 0.5
    return low, high


# ----------------------------------------------------------------------------- colours


def class_colors(names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A fixed colour per class name, in the given order (palette repeats after 8).

    Examples
    --------
    >>> class_colors(["a", "b"])["a"]
    (0.9019607843137255, 0.6235294117647059, 0.0)
    """
    colors: dict[str, tuple[float, float, float]] = {}
    for i, name in enumerate(dict.fromkeys(names)):
        hex_color = PALETTE[i % len(PALETTE)]
        red, green, blue = (int(hex_color[k : k + 2], 16) / 255 for k in (1, 3, 5))
        colors[name] = (red, green, blue)
    return colors


def probability_overlay(
    probs: np.ndarray,
    *,
    channel_names: Sequence[str],
    colors: dict[str, tuple[float, float, float]],
    max_alpha: float = 0.8,
) -> np.ndarray:
    """RGBA overlay of one slice of a probability map, background channel skipped.

    Each pixel takes the colour of its most probable class and an opacity of
    ``max_alpha`` times that probability (clipped to 0..1).

    Parameters
    ----------
    probs : ndarray, shape (C, Y, X)
        Probabilities of each channel on the slice.
    channel_names : sequence of str
        Name of each channel; ``background`` is skipped.
    colors : dict
        RGB (0..1) of each non-background channel.
    max_alpha : float
        Opacity of a pixel of probability 1.

    Returns
    -------
    ndarray of float32, shape (Y, X, 4)

    Examples
    --------
    >>> p = np.array([[[0.9, 0.0]], [[0.1, 0.5]]])  # background, a
    >>> probability_overlay(p, channel_names=["background", "a"], colors={"a": (1.0, 0.0, 0.0)}, max_alpha=0.5)[0]
    array([[1.  , 0.  , 0.  , 0.05],
           [1.  , 0.  , 0.  , 0.25]], dtype=float32)
    """
    keep = [i for i, name in enumerate(channel_names) if name != BACKGROUND]
    if not keep:
        raise ValueError("the probability map has no channel besides background")
    particle_probs = np.clip(np.asarray(probs, dtype=np.float32)[keep], 0.0, 1.0)
    palette = np.array([colors[channel_names[i]] for i in keep], dtype=np.float32)
    overlay = np.empty(particle_probs.shape[1:] + (4,), dtype=np.float32)
    overlay[..., :3] = palette[particle_probs.argmax(axis=0)]
    overlay[..., 3] = max_alpha * particle_probs.max(axis=0)
    return overlay


def build_panels(
    volume: Any,
    *,
    z_indices: Sequence[int],
    slab: int,
    voxel_size: float,
    catalog: Catalog,
    colors: dict[str, tuple[float, float, float]],
    origin_zyx: Sequence[float] = (0.0, 0.0, 0.0),
    probs: Any = None,
    channel_names: Sequence[str] = (),
    picks: Picks | None = None,
    truth: Picks | None = None,
    distance_multiplier: float = 0.5,
) -> list[Panel]:
    """Gather what each chosen slice shows: slab image, probability overlay, marks.

    ``volume`` (Z, Y, X) and ``probs`` (C, Z, Y, X) may be lazy arrays; only the chosen
    planes are read.  The overlay uses the probabilities of the central plane.
    """
    panels = []
    for z in z_indices:
        overlay = None
        if probs is not None:
            overlay = probability_overlay(np.asarray(probs[:, z]), channel_names=channel_names, colors=colors)
        marks = slice_marks(
            picks,
            truth,
            z_index=z,
            voxel_size=voxel_size,
            catalog=catalog,
            origin_zyx=origin_zyx,
            distance_multiplier=distance_multiplier,
        )
        panels.append(Panel(z, slab_mean(volume, z_index=z, planes=slab), overlay, tuple(marks)))
    return panels


def legend_statuses(*, has_picks: bool, has_truth: bool) -> tuple[str, ...]:
    """Mark kinds a picture can hold: TP/FP/FN when picks meet truth, else plain picks or truth."""
    if has_picks and has_truth:
        return ("tp", "fp", "fn")
    return ("pick",) * has_picks + ("truth",) * has_truth


# ----------------------------------------------------------------------------- drawing


def render_slices(
    panels: Sequence[Panel],
    *,
    gray_range: tuple[float, float],
    colors: dict[str, tuple[float, float, float]],
    title: str,
    statuses: Sequence[str] = (),
) -> Figure:
    """Draw the panels side by side with a legend; returns a matplotlib Figure.

    The figure's size follows :func:`figure_layout` (at :data:`DPI`); axes are in
    voxels.  Circles get a thin dark halo so they stay visible on any gray.

    Parameters
    ----------
    panels : sequence of Panel
        One per slice, all of the same shape, drawn left to right.
    gray_range : (float, float)
        Values shown black and white (see :func:`display_range`).
    colors : dict
        RGB (0..1) of each class; the legend lists them all.
    title : str
        Line above the panels (run, voxel size, ...); each panel is titled with its z.
    statuses : sequence of str
        Mark kinds the legend explains (see :func:`legend_statuses`).
    """
    from matplotlib import patheffects
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    layout = figure_layout(panels[0].image.shape, panels=len(panels))
    figure = Figure(figsize=(layout.width_px / DPI, layout.height_px / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    ny, nx = layout.shape_yx
    extent = (-0.5, nx - 0.5, ny - 0.5, -0.5)
    for index, panel in enumerate(panels):
        axes = figure.add_axes(
            (
                layout.panel_lefts_px[index] / layout.width_px,
                1 - (layout.panel_top_px + layout.panel_height_px) / layout.height_px,
                layout.panel_width_px / layout.width_px,
                layout.panel_height_px / layout.height_px,
            )
        )
        axes.imshow(
            panel.image,
            cmap="gray",
            vmin=gray_range[0],
            vmax=gray_range[1],
            interpolation="nearest",
            extent=extent,
            aspect="auto",
        )
        if panel.overlay is not None:
            axes.imshow(panel.overlay, interpolation="nearest", extent=extent, aspect="auto")
        for mark in panel.marks:
            linestyle, width = STATUS_STYLES[mark.status]
            halo = patheffects.withStroke(linewidth=width + 1.6, foreground="black", alpha=0.7)
            axes.add_patch(
                Circle(
                    (mark.x_px, mark.y_px),
                    mark.radius_px,
                    fill=False,
                    edgecolor=colors[mark.class_name],
                    linestyle=linestyle,
                    linewidth=width,
                    path_effects=[halo],
                )
            )
        axes.set_xlim(extent[0], extent[1])
        axes.set_ylim(extent[2], extent[3])
        axes.set_title(f"z = {panel.z_index}{_mark_summary(panel.marks)}", fontsize=10)
        axes.set_xlabel("x (voxels)", fontsize=9)
        if index == 0:
            axes.set_ylabel("y (voxels)", fontsize=9)
        axes.tick_params(labelsize=8)
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor=color,
            markeredgewidth=2.0,
            label=name,
        )
        for name, color in colors.items()
    ]
    for status in statuses:
        linestyle, width = STATUS_STYLES[status]
        handles.append(Line2D([], [], color="0.25", linestyle=linestyle, linewidth=width, label=STATUS_LABELS[status]))
    figure.legend(
        handles=handles,
        loc="upper left",
        fontsize=8,
        frameon=False,
        handlelength=2.6,
        bbox_to_anchor=(1 - (MARGIN_RIGHT - 12) / layout.width_px, 1 - MARGIN_TOP / layout.height_px),
    )
    figure.suptitle(title, x=MARGIN_LEFT / layout.width_px, ha="left", y=1 - 10 / layout.height_px, fontsize=11)
    return figure


def _mark_summary(marks: Sequence[Mark]) -> str:
    counts = {status: sum(m.status == status for m in marks) for status in STATUS_STYLES}
    parts = [f"{counts[s]} {s.upper() if s in ('tp', 'fp', 'fn') else s + 's'}" for s in STATUS_STYLES if counts[s]]
    return ("   " + ", ".join(parts)) if parts else ""
