"""Write matplotlib figures as PNG files (atomically) or to a piped stdout."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from .atomic import atomic_path, is_stdout, stdout_errors


def figure_png(figure: Any, *, dpi: float | None = None) -> bytes:
    """A figure rendered as PNG bytes (Agg), with no software stamp, so equal figures give equal bytes.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure to render.
    dpi : float, optional
        Resolution; default: the figure's own.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi="figure" if dpi is None else dpi, metadata={"Software": None})
    return buffer.getvalue()


def write_png(target: Path | str, figure: Any, *, overwrite: bool = False, dpi: float | None = None) -> None:
    """Write a figure as PNG to ``target``: stdout for ``-``, else a file that appears only when complete."""
    data = figure_png(figure, dpi=dpi)
    if is_stdout(target):
        with stdout_errors():
            sys.stdout.buffer.write(data)
        return
    with atomic_path(Path(target), overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
