"""From a density map to a tomogram: CTF, missing wedge and noise, all in Fourier space.

The tomogram is ``H * (density + sigma * white noise)`` where ``H`` is one real transfer
function on the ``rfftn`` grid:

* a phase-contrast CTF ``-sin(chi + phi)`` with ``chi = pi * lambda * defocus * k^2``
  (no spherical aberration: it matters only beyond the 10 Å Nyquist limit) and
  ``phi = arcsin(amplitude contrast)``, under a B-factor envelope ``exp(-B k^2 / 4)``.  It
  is a band pass: weak at low frequencies, strongest around 1/30 Å, oscillating past the
  first zero.  Its sign makes proteins (denser than the solvent) dark, as in real
  tomograms;
* a missing wedge for a tilt series of +-``tilt_max_deg`` about the y axis: Fourier
  components with ``|k_z| > tan(tilt_max) * |k_x|`` are zeroed.

Noise passes through the same reconstruction as the signal, so it shares the band pass
and the wedge.  **SNR** is the variance of the filtered signal over the variance of the
filtered noise, both over the whole volume; ``sigma`` is set from the realised variances
of this very volume and noise, so the output's SNR is exact.  Two options serve the
variation between runs: a given reference signal variance (so that particles made
darker, or gold beads added, do not raise the noise with them), and a spatial profile of
the noise amplitude (thicker ice on one side of the field of view is noisier).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.fft


@dataclass(frozen=True)
class ImagingParameters:
    """Microscope and reconstruction settings (defaults: a typical 300 kV tilt series)."""

    voltage_kv: float = 300.0
    defocus_um: tuple[float, float] = (2.5, 4.0)  # underfocus, drawn uniformly per run
    amplitude_contrast: float = 0.07
    bfactor: float = 3000.0  # Å^2
    tilt_max_deg: float = 60.0


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å.

    Examples
    --------
    >>> round(electron_wavelength(300.0), 4)
    0.0197
    """
    volts = voltage_kv * 1e3
    return 12.2643 / math.sqrt(volts * (1.0 + 0.978466e-6 * volts))


def frequencies(shape_zyx: Sequence[int], *, voxel_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spatial frequencies (1/Å) of the ``rfftn`` grid, shaped to broadcast: kz, ky, kx."""
    nz, ny, nx = shape_zyx
    kz = scipy.fft.fftfreq(nz, d=voxel_size).astype(np.float32)[:, None, None]
    ky = scipy.fft.fftfreq(ny, d=voxel_size).astype(np.float32)[None, :, None]
    kx = scipy.fft.rfftfreq(nx, d=voxel_size).astype(np.float32)[None, None, :]
    return kz, ky, kx


def wedge_mask(shape_zyx: Sequence[int], *, tilt_max_deg: float) -> np.ndarray:
    """True where a tilt series of +-``tilt_max_deg`` about y samples Fourier space.

    The mask is on the ``rfftn`` grid, shaped ``(nz, 1, nx // 2 + 1)`` to broadcast over y.

    Examples
    --------
    >>> mask = wedge_mask((8, 8, 8), tilt_max_deg=60.0)
    >>> bool(mask[0, 0, 1]), bool(mask[3, 0, 0])  # the x axis is sampled, the z axis is not
    (True, False)
    """
    kz, _, kx = frequencies(shape_zyx, voxel_size=1.0)
    sampled: np.ndarray = np.abs(kz) <= np.float32(math.tan(math.radians(tilt_max_deg))) * np.abs(kx)
    return sampled


def transfer_function(
    shape_zyx: Sequence[int], *, voxel_size: float, defocus_um: float, parameters: ImagingParameters
) -> np.ndarray:
    """The real transfer function ``H`` (CTF x envelope x wedge) on the ``rfftn`` grid."""
    kz, ky, kx = frequencies(shape_zyx, voxel_size=voxel_size)
    k2 = kz**2 + ky**2 + kx**2
    envelope = np.exp(np.float32(-parameters.bfactor / 4.0) * k2)
    phase = np.float32(math.pi * electron_wavelength(parameters.voltage_kv) * defocus_um * 1e4)
    k2 *= phase
    k2 += np.float32(math.asin(parameters.amplitude_contrast))
    transfer: np.ndarray = np.sin(k2, out=k2)
    transfer *= -envelope
    del envelope
    transfer *= wedge_mask(shape_zyx, tilt_max_deg=parameters.tilt_max_deg)
    return transfer


def spectral_variance(spectrum: np.ndarray, *, shape_zyx: Sequence[int]) -> float:
    """Variance of the real volume whose ``rfftn`` is ``spectrum`` (Parseval's theorem)."""
    power = spectrum.real**2
    power += spectrum.imag**2
    nx = shape_zyx[-1]
    doubled_end = spectrum.shape[-1] - (1 if nx % 2 == 0 else 0)  # the Nyquist column counts once
    total = (
        power[..., 0].sum(dtype=np.float64)
        + 2.0 * power[..., 1:doubled_end].sum(dtype=np.float64)
        + power[..., doubled_end:].sum(dtype=np.float64)
        - float(power[0, 0, 0])
    )
    variance: float = total / float(np.prod(shape_zyx)) ** 2
    return variance


def form_image(
    density: np.ndarray,
    *,
    voxel_size: float,
    snr: float,
    rng: np.random.Generator,
    defocus_um: float,
    parameters: ImagingParameters = ImagingParameters(),
    signal_variance: float | None = None,
    noise_profile: np.ndarray | None = None,
) -> np.ndarray:
    """Image a density map: CTF band pass, missing wedge and noise at ``snr``.

    Parameters
    ----------
    density : ndarray, float32, [z, y, x]
        Scattering density (protein 1, solvent 0).
    voxel_size : float
        Å per voxel.
    snr : float
        Filtered-signal variance over filtered-noise variance; ``inf`` gives no noise.
        An empty density gets noise of unit variance.
    rng : numpy Generator
        Source of the noise.
    defocus_um : float
        Underfocus in µm.
    parameters : ImagingParameters
    signal_variance : float, optional
        Filtered-signal variance that sets the noise level (noise variance =
        ``signal_variance / snr``); default: that of ``density`` itself.
    noise_profile : ndarray, optional
        Non-negative amplitude of the white noise at each voxel, broadcastable to the
        volume (e.g. ``[1, y, x]``), applied before the transfer function; the noise is
        then rescaled so that its filtered variance over the volume is still the one
        ``snr`` asks for.  Default: uniform.

    Returns
    -------
    ndarray, float32, [z, y, x]

    Examples
    --------
    >>> density = np.zeros((16, 16, 16), np.float32)
    >>> density[6:10, 6:10, 6:10] = 1.0
    >>> clean = form_image(density, voxel_size=10.0, snr=np.inf, rng=np.random.default_rng(0), defocus_um=3.0)
    >>> bool(clean[8, 8, 8] < clean.mean())  # proteins appear dark
    True
    """
    shape = density.shape
    transfer = transfer_function(shape, voxel_size=voxel_size, defocus_um=defocus_um, parameters=parameters)
    spectrum = scipy.fft.rfftn(density, workers=-1)
    spectrum *= transfer
    if np.isfinite(snr):
        if signal_variance is None:
            signal_variance = spectral_variance(spectrum, shape_zyx=shape)
        noise = rng.standard_normal(shape, dtype=np.float32)
        if noise_profile is not None:
            noise *= np.asarray(noise_profile, dtype=np.float32)
        noise_spectrum = scipy.fft.rfftn(noise, workers=-1)
        del noise
        noise_spectrum *= transfer
        noise_variance = spectral_variance(noise_spectrum, shape_zyx=shape)
        wanted = signal_variance / snr if signal_variance > 0 else 1.0
        noise_spectrum *= np.float32(math.sqrt(wanted / noise_variance))
        spectrum += noise_spectrum
        del noise_spectrum
    del transfer
    return scipy.fft.irfftn(spectrum, s=shape, workers=-1, overwrite_x=True).astype(np.float32, copy=False)


def filtered_variance(
    density: np.ndarray, *, voxel_size: float, defocus_um: float, parameters: ImagingParameters = ImagingParameters()
) -> float:
    """Variance of ``density`` after the transfer function: the signal variance SNR refers to.

    Examples
    --------
    >>> density = np.zeros((16, 16, 16), np.float32)
    >>> density[6:10, 6:10, 6:10] = 1.0
    >>> clean = form_image(density, voxel_size=10.0, snr=np.inf, rng=np.random.default_rng(0), defocus_um=3.0)
    >>> bool(np.isclose(filtered_variance(density, voxel_size=10.0, defocus_um=3.0), clean.var(), rtol=1e-4))
    True
    """
    transfer = transfer_function(density.shape, voxel_size=voxel_size, defocus_um=defocus_um, parameters=parameters)
    spectrum = scipy.fft.rfftn(density, workers=-1)
    spectrum *= transfer
    return spectral_variance(spectrum, shape_zyx=density.shape)


def ice_profile(shape_zyx: Sequence[int], *, gradient: float, direction_deg: float) -> np.ndarray:
    """Noise amplitude across the field of view for an ice-thickness gradient, ``[1, y, x]``.

    The amplitude grows linearly from ``1 - gradient / 2`` to ``1 + gradient / 2`` along
    the direction ``direction_deg`` in the x-y plane (0 = +x, 90 = +y), measured over the
    extent of the volume; z (the beam direction) is uniform.

    Parameters
    ----------
    shape_zyx : sequence of 3 ints
    gradient : float
        Relative change of the noise amplitude across the field, in ``[0, 2)``.
    direction_deg : float
        Direction of thickening, degrees.

    Examples
    --------
    >>> profile = ice_profile((4, 3, 5), gradient=1.0, direction_deg=0.0)
    >>> profile.shape, [round(float(v), 3) for v in profile[0, 0]]
    ((1, 3, 5), [0.5, 0.75, 1.0, 1.25, 1.5])
    """
    _, ny, nx = (int(s) for s in shape_zyx)
    angle = math.radians(direction_deg)
    y = np.arange(ny, dtype=np.float64)[:, None] - (ny - 1) / 2
    x = np.arange(nx, dtype=np.float64)[None, :] - (nx - 1) / 2
    along = math.cos(angle) * x + math.sin(angle) * y
    span = float(along.max() - along.min())
    position = along / span if span > 0 else np.zeros_like(along)
    return (1.0 + gradient * position).astype(np.float32)[None]
