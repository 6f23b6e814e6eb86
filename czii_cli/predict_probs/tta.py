"""Test-time augmentation: flips and x-y quarter turns, each inverted exactly.

A transform flips some axes of a batch ``[B, C, Z, Y, X]`` and then turns it by ``k``
quarter turns in the y-x plane; its inverse turns back by ``-k`` and repeats the
flips.  Both are exact permutations of voxels, so a network that is the identity map
returns its input under every set.

Sets (each includes the identity):

* ``none``: identity;
* ``flips``: identity, flip z, flip y, flip x (4 passes);
* ``rot90``: identity and 1, 2, 3 quarter turns in y-x (4 passes);
* ``all``: identity, 3 quarter turns in y-x and 3 single-axis flips (7 passes, the
  2nd place's set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UsageError

_AXIS = {"z": 2, "y": 3, "x": 4}


@dataclass(frozen=True)
class Transform:
    """Flip ``flips`` (axis letters), then turn ``quarter_turns`` times in the y-x plane."""

    flips: str = ""
    quarter_turns: int = 0

    @property
    def name(self) -> str:
        parts = [f"flip-{axis}" for axis in self.flips]
        if self.quarter_turns:
            parts.append(f"rot90x{self.quarter_turns}")
        return "+".join(parts) or "identity"

    @property
    def is_identity(self) -> bool:
        return not self.flips and not self.quarter_turns

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        """Transform a batch ``[B, C, Z, Y, X]``."""
        if self.flips:
            batch = torch.flip(batch, dims=[_AXIS[a] for a in self.flips])
        if self.quarter_turns:
            batch = torch.rot90(batch, self.quarter_turns, dims=(3, 4))
        return batch

    def invert(self, batch: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`apply` on a network output ``[B, C, Z, Y, X]``."""
        if self.quarter_turns:
            batch = torch.rot90(batch, -self.quarter_turns, dims=(3, 4))
        if self.flips:
            batch = torch.flip(batch, dims=[_AXIS[a] for a in self.flips])
        return batch


_IDENTITY = Transform()
_FLIPS = (Transform("z"), Transform("y"), Transform("x"))
_TURNS = (Transform(quarter_turns=1), Transform(quarter_turns=2), Transform(quarter_turns=3))

TTA_SETS: dict[str, tuple[Transform, ...]] = {
    "none": (_IDENTITY,),
    "flips": (_IDENTITY, *_FLIPS),
    "rot90": (_IDENTITY, *_TURNS),
    "all": (_IDENTITY, *_TURNS, *_FLIPS),
}


def tta_transforms(name: str) -> tuple[Transform, ...]:
    """The transforms of a TTA set by name (see the module docstring).

    Examples
    --------
    >>> [t.name for t in tta_transforms("flips")]
    ['identity', 'flip-z', 'flip-y', 'flip-x']
    """
    try:
        return TTA_SETS[name]
    except KeyError:
        raise UsageError(f"unknown TTA set {name!r} (choose from {', '.join(TTA_SETS)})") from None
