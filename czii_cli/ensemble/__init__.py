"""Ensembles: probability maps combined voxel by voxel, pick lists fused point by point.

* :mod:`.maps`: ``mean``, ``logit``, ``max`` and ``rank`` ensembles of probability
  maps, block by block (:func:`ensemble_maps`, :func:`combine_block`);
* :mod:`.rank`: rank matching through float16 value histograms (bounded memory);
* :mod:`.picks`: weighted box fusion for points (:func:`fuse_picks`).
"""

from .maps import MODES, MapKind, combine_block, ensemble_maps
from .picks import fuse_picks

__all__ = ["MODES", "MapKind", "combine_block", "ensemble_maps", "fuse_picks"]
