"""Write matplotlib figures as PNG files, atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .atomic import atomic_path


def figure_png(figure: Any) -> bytes:
    """A figure rendered as PNG bytes (Agg, the figure's own size and dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_png(path: Path, figure: Any, *, overwrite: bool = False) -> None:
    """Write a figure to ``path`` as PNG; it appears only when complete."""
    data = figure_png(figure)
    with atomic_path(Path(path), overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
