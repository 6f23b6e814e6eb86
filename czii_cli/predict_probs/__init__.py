"""Sliding-window inference with Gaussian blending, TTA and on-the-fly ensembles.

* :func:`predict_volume`: a whole normalized volume in memory -> ``[C, Z, Y, X]`` float32;
* :func:`predict_into`: the streaming engine behind it, writing finished z-ranges into
  any array (a zarr artifact for full tomograms) with bounded memory;
* :mod:`.windows` (tiling and weights), :mod:`.tta` (transform sets),
  :mod:`.runner` (device, precision, memory layout), :mod:`.members` (model files to ensemble members),
  :mod:`.stride` (maps at output stride 2, on the light net's half-resolution grid).
"""

from .predict import Member, predict_into, predict_volume
from .runner import resolve_device, resolve_precision
from .tta import TTA_SETS, tta_transforms
from .windows import Tiling, window_starts

__all__ = [
    "Member",
    "TTA_SETS",
    "Tiling",
    "predict_into",
    "predict_volume",
    "resolve_device",
    "resolve_precision",
    "tta_transforms",
    "window_starts",
]
