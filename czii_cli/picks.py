"""Particle picks as a small columnar table: experiment, particle type, x/y/z in Å, score.

Pure in-memory structure; reading and writing files lives in :mod:`czii_cli.io.picks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Picks:
    """A table of particle positions.

    Attributes
    ----------
    experiment : ndarray of str, shape (N,)
        Run name of each pick.
    particle_type : ndarray of str, shape (N,)
        Class name of each pick.
    xyz : ndarray of float64, shape (N, 3)
        Position in Å, columns x, y, z.
    score : ndarray of float64, shape (N,), or None
        Confidence of each pick, when known.
    """

    experiment: np.ndarray
    particle_type: np.ndarray
    xyz: np.ndarray
    score: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.experiment)
        object.__setattr__(self, "experiment", np.asarray(self.experiment, dtype=object).reshape(n))
        object.__setattr__(self, "particle_type", np.asarray(self.particle_type, dtype=object).reshape(n))
        object.__setattr__(self, "xyz", np.asarray(self.xyz, dtype=np.float64).reshape(n, 3))
        if self.score is not None:
            object.__setattr__(self, "score", np.asarray(self.score, dtype=np.float64).reshape(n))

    @classmethod
    def empty(cls, *, with_score: bool = False) -> Picks:
        """A table with no rows."""
        return cls(
            np.empty(0, dtype=object),
            np.empty(0, dtype=object),
            np.empty((0, 3)),
            np.empty(0) if with_score else None,
        )

    @classmethod
    def from_points(
        cls,
        experiment: str,
        particle_type: str,
        xyz: np.ndarray,
        score: np.ndarray | None = None,
    ) -> Picks:
        """Picks of one class in one experiment."""
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        n = len(xyz)
        return cls(np.full(n, experiment, dtype=object), np.full(n, particle_type, dtype=object), xyz, score)

    def __len__(self) -> int:
        return len(self.experiment)

    def subset(self, mask: np.ndarray) -> Picks:
        """Rows where ``mask`` is true (or the rows at the given indices)."""
        return Picks(
            self.experiment[mask],
            self.particle_type[mask],
            self.xyz[mask],
            None if self.score is None else self.score[mask],
        )

    def where(self, *, experiment: str | None = None, particle_type: str | None = None) -> Picks:
        """Rows of one experiment and/or one class."""
        mask = np.ones(len(self), dtype=bool)
        if experiment is not None:
            mask &= self.experiment == experiment
        if particle_type is not None:
            mask &= self.particle_type == particle_type
        return self.subset(mask)

    @property
    def experiments(self) -> list[str]:
        """Distinct experiment names, sorted."""
        return sorted(set(self.experiment.tolist()))

    @property
    def particle_types(self) -> list[str]:
        """Distinct class names, sorted."""
        return sorted(set(self.particle_type.tolist()))

    def sorted(self) -> Picks:
        """Stable order: experiment, class, then z, y, x."""
        if len(self) == 0:
            return self
        order = np.lexsort((self.xyz[:, 0], self.xyz[:, 1], self.xyz[:, 2], self.particle_type, self.experiment))
        return self.subset(order)

    def with_score(self, score: np.ndarray) -> Picks:
        """A copy with a new score column."""
        return Picks(self.experiment, self.particle_type, self.xyz, score)


def concat(parts: Iterable[Picks]) -> Picks:
    """Stack several tables; the score column survives only if every part has one."""
    parts = [p for p in parts]
    if not parts:
        return Picks.empty()
    scored = all(p.score is not None for p in parts)
    return Picks(
        np.concatenate([p.experiment for p in parts]),
        np.concatenate([p.particle_type for p in parts]),
        np.concatenate([p.xyz for p in parts]),
        np.concatenate([p.score for p in parts]) if scored else None,
    )


def check_classes(picks: Picks, known: Sequence[str], *, source: str) -> None:
    """Raise a DataError naming the first particle type not in ``known``."""
    from .errors import DataError

    unknown = sorted(set(picks.particle_type.tolist()) - set(known))
    if unknown:
        raise DataError(f"{source}: unknown particle class {unknown[0]!r} (known: {', '.join(known)})")
