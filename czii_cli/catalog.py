"""Particle classes: name, radius (Å), score weight and label index.

The default catalog holds the six particle classes of the CZII CryoET Object
Identification competition.  A copick project config (its ``pickable_objects``) or a
small JSON file can replace it; see :func:`catalog_from_mapping`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import DataError

BACKGROUND = "background"
"""Name of channel 0 of a softmax probability map, and of label 0 of a label map."""


@dataclass(frozen=True)
class ParticleClass:
    """One particle class.

    Attributes
    ----------
    name : str
        Class name as written in picks files (``apo-ferritin``).
    radius : float
        Particle radius in Å.
    weight : float
        Weight of the class in the competition score (0 excludes it).
    label : int
        Index of the class in label maps (0 is background).
    """

    name: str
    radius: float
    weight: float
    label: int


@dataclass(frozen=True)
class Catalog:
    """An ordered set of particle classes, sorted by label index."""

    classes: tuple[ParticleClass, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        labels = [c.label for c in self.classes]
        if not self.classes:
            raise DataError("the class catalog is empty")
        if len(set(names)) != len(names):
            raise DataError(f"class names repeat in the catalog: {names}")
        if len(set(labels)) != len(labels) or min(labels) < 1:
            raise DataError(f"class labels must be distinct integers >= 1, got {labels}")
        for c in self.classes:
            if not c.radius > 0:
                raise DataError(f"class {c.name!r} has a non-positive radius {c.radius}")
            if c.radius == float("inf"):
                raise DataError(f"class {c.name!r} has an infinite radius")
            if not 0 <= c.weight < float("inf"):
                raise DataError(f"class {c.name!r} has a weight {c.weight} that is not a non-negative number")
        object.__setattr__(self, "classes", tuple(sorted(self.classes, key=lambda c: c.label)))

    def __iter__(self) -> Iterator[ParticleClass]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        """Class names in label order."""
        return [c.name for c in self.classes]

    @property
    def total_weight(self) -> float:
        """Sum of all class weights: the denominator of the final score."""
        return float(sum(c.weight for c in self.classes))

    def get(self, name: str) -> ParticleClass:
        """Return the class called ``name``; an unknown name is a :class:`DataError`."""
        for c in self.classes:
            if c.name == name:
                return c
        raise DataError(f"unknown particle class {name!r} (known: {', '.join(self.names)})")

    def by_label(self, label: int) -> ParticleClass:
        """Return the class with label index ``label``."""
        for c in self.classes:
            if c.label == label:
                return c
        raise DataError(f"no particle class has label {label}")

    def to_json(self) -> list[dict[str, Any]]:
        """Plain-JSON form, as stored in artifacts and model files."""
        return [{"name": c.name, "radius": c.radius, "weight": c.weight, "label": c.label} for c in self.classes]


DEFAULT_CATALOG = Catalog(
    (
        ParticleClass("apo-ferritin", 60.0, 1.0, 1),
        ParticleClass("beta-amylase", 65.0, 0.0, 2),
        ParticleClass("beta-galactosidase", 90.0, 2.0, 3),
        ParticleClass("ribosome", 150.0, 1.0, 4),
        ParticleClass("thyroglobulin", 130.0, 2.0, 5),
        ParticleClass("virus-like-particle", 135.0, 1.0, 6),
    )
)


def catalog_from_mapping(document: Mapping[str, Any] | list[Any], *, source: str) -> Catalog:
    """Build a catalog from a parsed copick config or czii class file.

    Parameters
    ----------
    document : mapping or list
        Either a copick config (``{"pickable_objects": [...]}``; entries with
        ``is_particle: false`` are skipped, ``metadata.weight`` sets the weight, default
        1), a czii class file (``{"classes": [...]}``) or a bare list of classes, each
        ``{"name", "radius", "weight"?, "label"?}``.
    source : str
        Where the document came from, for error messages.

    Returns
    -------
    Catalog

    Examples
    --------
    >>> cat = catalog_from_mapping([{"name": "ribosome", "radius": 150}], source="x")
    >>> cat.get("ribosome").label, cat.get("ribosome").weight
    (1, 1.0)
    """
    if isinstance(document, Mapping) and "pickable_objects" in document:
        objects = document["pickable_objects"]
        if not isinstance(objects, list):
            raise DataError(f"{source}: pickable_objects must be a list of objects, found {type(objects).__name__}")
        entries = [o for o in objects if not isinstance(o, Mapping) or o.get("is_particle", True)]
    elif isinstance(document, Mapping) and "classes" in document:
        entries = document["classes"]
    elif isinstance(document, list):
        entries = document
    else:
        raise DataError(f"{source}: expected a copick config or a list of classes")
    if not isinstance(entries, list):
        raise DataError(f"{source}: classes must be a list of objects, found {type(entries).__name__}")
    classes = []
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise DataError(f"{source}: class entry {index} is not an object (found {type(entry).__name__})")
        try:
            metadata = entry.get("metadata") or {}
            weight = entry.get("weight", metadata.get("weight", 1.0))
            classes.append(
                ParticleClass(
                    name=str(entry["name"]),
                    radius=float(entry["radius"]),
                    weight=float(weight),
                    label=int(entry.get("label", index)),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataError(f"{source}: class entry {index} is malformed ({err!r})") from None
    try:
        return Catalog(tuple(classes))
    except DataError as err:
        raise DataError(f"{source}: {err}") from None
