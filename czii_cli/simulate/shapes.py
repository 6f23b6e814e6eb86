"""Density templates of particles, built analytically from rotated coordinates.

A template is a tuple of primitives (solid ellipsoids and spherical shells) in units of
the particle's radius, in the particle's own frame.  Rendering evaluates every primitive
at the voxels around the particle centre, after rotating those voxels into the particle
frame, and keeps the largest density: no interpolation, exact sub-voxel centres, and soft
edges (a linear ramp one voxel wide) so small particles do not alias.

The six competition classes have their own shapes, sized after the real complexes
(radii from the catalog, in Å):

* ``apo-ferritin``: a hollow shell (outer 0.95 r, inner 0.62 r; the iron-free cage);
* ``beta-amylase``: a compact tetramer of four lobes on a tetrahedron (extent ~0.8 r);
* ``beta-galactosidase``: four flattened lobes in D2 symmetry around a central hole;
* ``ribosome``: a large subunit and a smaller, flatter subunit offset along one axis;
* ``thyroglobulin``: an elongated dimer of two ellipsoids side by side;
* ``virus-like-particle``: a thin capsid (0.9 r .. 0.74 r) studded with 32 capsomer
  bumps and a faint packaged-RNA core.

Any other class name falls back to a slightly anisotropic globule of the class radius.
Off-target proteins are random unions of a few ellipsoids (:func:`random_blob`).

Real complexes are not uniform inside (RNA is denser than protein, domains pack
unevenly), so every template also carries a texture: a fixed sum of plane waves with
wavelengths of 3-6 voxels that modulates its density by about +-30 %.  The texture is
seeded by the class name, so all copies of a class share it, as identical complexes do,
and it turns with the particle.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

EDGE_VOXELS = 1.0  # width of the soft edge of every primitive
TEXTURE_WAVES = 8
TEXTURE_WAVELENGTHS_VOXELS = (3.0, 6.0)
TEXTURE_AMPLITUDE = 0.3
GOLD_DENSITY = 10.0  # relative to protein (1.0): about the ratio of their mean inner potentials over ice


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid; lengths in units of the particle radius, axes z, y, x."""

    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    density: float = 1.0

    def occupancy(self, points: np.ndarray, *, edge: float) -> np.ndarray:
        """Fraction of each point inside the ellipsoid (soft edge of width ``edge``)."""
        scaled = (points - np.asarray(self.centre, np.float32)) / np.asarray(self.semi_axes, np.float32)
        distance = (np.sqrt(np.einsum("ij,ij->i", scaled, scaled)) - 1.0) * min(self.semi_axes)
        return _ramp(distance, edge)

    @property
    def extent(self) -> float:
        """Largest distance from the particle centre that the ellipsoid reaches."""
        return float(np.linalg.norm(self.centre) + max(self.semi_axes))


@dataclass(frozen=True)
class Shell:
    """A hollow sphere between radii ``inner`` and ``outer`` (units of the particle radius)."""

    centre: tuple[float, float, float]
    outer: float
    inner: float
    density: float = 1.0

    def occupancy(self, points: np.ndarray, *, edge: float) -> np.ndarray:
        """Fraction of each point inside the shell wall (soft edges of width ``edge``)."""
        offset = points - np.asarray(self.centre, np.float32)
        radius = np.sqrt(np.einsum("ij,ij->i", offset, offset))
        return _ramp(np.maximum(radius - self.outer, self.inner - radius), edge)

    @property
    def extent(self) -> float:
        """Largest distance from the particle centre that the shell reaches."""
        return float(np.linalg.norm(self.centre) + self.outer)


Primitive = Ellipsoid | Shell


@dataclass(frozen=True)
class Texture:
    """A density modulation ``1 + amplitude * t(p)``, ``t`` a sum of plane waves of unit variance.

    ``wavevectors`` (rows z, y, x) are in radians per voxel, in the particle frame.
    """

    wavevectors: np.ndarray
    phases: np.ndarray
    amplitude: float = TEXTURE_AMPLITUDE

    @classmethod
    def random(cls, rng: np.random.Generator) -> Texture:
        """Waves of random directions and phases, wavelengths in ``TEXTURE_WAVELENGTHS_VOXELS``."""
        directions = rng.normal(size=(TEXTURE_WAVES, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(*TEXTURE_WAVELENGTHS_VOXELS, size=(TEXTURE_WAVES, 1))
        return cls(2 * np.pi * directions / wavelengths, rng.uniform(0, 2 * np.pi, size=TEXTURE_WAVES))

    def factor(self, points_voxels: np.ndarray) -> np.ndarray:
        """The modulation at each point (``N x 3``, voxels from the particle centre), never negative."""
        waves = np.cos(points_voxels @ self.wavevectors.T.astype(np.float32) + self.phases.astype(np.float32))
        variation = waves.sum(axis=1) / np.float32(np.sqrt(TEXTURE_WAVES / 2))
        modulation: np.ndarray = np.maximum(1.0 + np.float32(self.amplitude) * variation, 0.0)
        return modulation


@dataclass(frozen=True)
class Template:
    """A particle's shape (primitives in units of its radius) and its texture."""

    primitives: tuple[Primitive, ...]
    texture: Texture

    @property
    def extent(self) -> float:
        """Radius (units of the particle radius) of the ball that holds the whole template."""
        return max(p.extent for p in self.primitives)


def _class_texture(name: str) -> Texture:
    return Texture.random(np.random.default_rng(zlib.crc32(name.encode())))


def _ramp(signed_distance: np.ndarray, edge: float) -> np.ndarray:
    """1 well inside (negative distance), 0 well outside, linear across ``edge``."""
    return np.clip(0.5 - signed_distance / edge, 0.0, 1.0)


def _sphere_points(count: int, radius: float) -> np.ndarray:
    """``count`` nearly even points on a sphere (Fibonacci lattice), rows z, y, x."""
    index = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * index / count)
    azimuth = np.pi * (1.0 + 5.0**0.5) * index
    return radius * np.stack([np.cos(polar), np.sin(polar) * np.sin(azimuth), np.sin(polar) * np.cos(azimuth)], axis=1)


def _tetrahedron(distance: float) -> np.ndarray:
    vertices = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    scaled: np.ndarray = vertices / np.sqrt(3.0) * distance
    return scaled


def _apo_ferritin() -> tuple[Primitive, ...]:
    return (Shell((0.0, 0.0, 0.0), outer=0.95, inner=0.62),)


def _beta_amylase() -> tuple[Primitive, ...]:
    return tuple(Ellipsoid(tuple(c), (0.4, 0.4, 0.4)) for c in _tetrahedron(0.4))


def _beta_galactosidase() -> tuple[Primitive, ...]:
    return tuple(Ellipsoid((0.0, sy * 0.38, sx * 0.42), (0.45, 0.38, 0.42)) for sy in (-1, 1) for sx in (-1, 1))


def _ribosome() -> tuple[Primitive, ...]:
    large = Ellipsoid((0.2, 0.0, 0.0), (0.62, 0.7, 0.7))
    small = Ellipsoid((-0.52, 0.06, 0.0), (0.3, 0.5, 0.66))
    return (large, small)


def _thyroglobulin() -> tuple[Primitive, ...]:
    return tuple(Ellipsoid((0.0, sy * 0.36, 0.0), (0.3, 0.35, 0.62)) for sy in (-1, 1))


def _virus_like_particle() -> tuple[Primitive, ...]:
    capsid = Shell((0.0, 0.0, 0.0), outer=0.9, inner=0.74)
    core = Ellipsoid((0.0, 0.0, 0.0), (0.6, 0.6, 0.6), density=0.25)
    bumps = tuple(Ellipsoid(tuple(c), (0.12, 0.12, 0.12)) for c in _sphere_points(32, 0.88))
    return (capsid, core, *bumps)


def _globule() -> tuple[Primitive, ...]:
    return (Ellipsoid((0.0, 0.0, 0.0), (0.8, 0.88, 0.95)),)


CLASS_SHAPES = {
    "apo-ferritin": _apo_ferritin(),
    "beta-amylase": _beta_amylase(),
    "beta-galactosidase": _beta_galactosidase(),
    "ribosome": _ribosome(),
    "thyroglobulin": _thyroglobulin(),
    "virus-like-particle": _virus_like_particle(),
}
GENERIC_SHAPE = _globule()


def class_template(name: str) -> Template:
    """The template of a particle class; unknown names get a generic globule.

    The texture depends on the name only, so every copy of a class looks the same.

    Examples
    --------
    >>> [type(p).__name__ for p in class_template("apo-ferritin").primitives]
    ['Shell']
    >>> class_template("my-protein").primitives == GENERIC_SHAPE
    True
    """
    return Template(CLASS_SHAPES.get(name, GENERIC_SHAPE), _class_texture(name))


def random_blob(rng: np.random.Generator) -> Template:
    """An off-target protein: a union of 2-4 random ellipsoids within the unit radius."""
    lobes = []
    for _ in range(int(rng.integers(2, 5))):
        semi_axes = rng.uniform(0.3, 0.6, size=3)
        direction = rng.normal(size=3)
        reach = rng.uniform(0.0, 1.0 - semi_axes.max())
        centre = direction / np.linalg.norm(direction) * reach
        lobes.append(Ellipsoid(tuple(centre), tuple(semi_axes), density=float(rng.uniform(0.7, 1.0))))
    return Template(tuple(lobes), Texture.random(rng))


def gold_bead() -> Template:
    """A gold fiducial: a uniform solid ball of density ``GOLD_DENSITY``, no texture.

    Examples
    --------
    >>> volume = np.zeros((15, 15, 15), np.float32)
    >>> render_template(volume, gold_bead(), centre_zyx=np.full(3, 7.0), radius=5.0, rotation=np.eye(3))
    >>> float(volume[7, 7, 7]) == GOLD_DENSITY
    True
    """
    flat = Texture(np.zeros((1, 3)), np.zeros(1), amplitude=0.0)
    return Template((Ellipsoid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), density=GOLD_DENSITY),), flat)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3 x 3 rotation matrix (a normalised Gaussian quaternion).

    Examples
    --------
    >>> matrix = random_rotation(np.random.default_rng(0))
    >>> bool(np.allclose(matrix @ matrix.T, np.eye(3))), round(float(np.linalg.det(matrix)), 6)
    (True, 1.0)
    """
    quaternion = rng.normal(size=4)
    return Rotation.from_quat(quaternion / np.linalg.norm(quaternion)).as_matrix()


def render_template(
    volume: np.ndarray,
    template: Template,
    *,
    centre_zyx: np.ndarray,
    radius: float,
    rotation: np.ndarray,
) -> None:
    """Add a rotated particle's density into ``volume`` (in place, clipped at the borders).

    Parameters
    ----------
    volume : ndarray, float32, indexed [z, y, x]
        The density map to add to.
    template : Template
        The particle's primitives (in units of ``radius``) and texture.
    centre_zyx : array of 3 floats
        Particle centre in voxels (sub-voxel positions are rendered exactly).
    radius : float
        Particle radius in voxels.
    rotation : ndarray, 3 x 3
        Rotation matrix taking particle-frame vectors (z, y, x) to the volume frame.

    Examples
    --------
    >>> volume = np.zeros((21, 21, 21), np.float32)
    >>> render_template(volume, class_template("apo-ferritin"), centre_zyx=np.array([10.0, 10, 10]),
    ...                 radius=8.0, rotation=np.eye(3))
    >>> bool(volume[10, 10, 10] < volume[10, 10, 3])  # hollow centre, dense wall
    True
    """
    centre = np.asarray(centre_zyx, dtype=np.float64)
    half = template.extent * radius + EDGE_VOXELS
    low = np.maximum(np.floor(centre - half).astype(int), 0)
    high = np.minimum(np.ceil(centre + half).astype(int) + 1, volume.shape)
    if np.any(high <= low):
        return
    offsets = [np.arange(lo, hi, dtype=np.float32) - np.float32(c) for lo, hi, c in zip(low, high, centre)]
    grid = np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    body_voxels = grid @ np.asarray(rotation, dtype=np.float32)
    body = body_voxels / np.float32(radius)
    edge = EDGE_VOXELS / radius
    density = np.zeros(len(body), dtype=np.float32)
    for primitive in template.primitives:
        np.maximum(density, primitive.density * primitive.occupancy(body, edge=edge), out=density)
    density *= template.texture.factor(body_voxels)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
    volume[box] += density.reshape(high - low)
