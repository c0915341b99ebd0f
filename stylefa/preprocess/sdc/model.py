"""The susceptibility-distortion forward model of a phase-encoded EPI image (numpy, no torch).

Convention (docs/preprocess_sdc.md, brief L_INTERFACES): an off-resonance field ``field_hz`` (Hz) on
the undistorted grid displaces the signal of voxel ``x`` along the phase-encoding axis by
``d(x) = pe.sign * pe.readout_time * field_hz(x)`` voxels, and intensity is conserved, so the
observed image ``I_pe`` and the undistorted one ``I_true`` satisfy

    I_true(x) = I_pe(x + d(x) e_axis) * (1 + dd/dx_axis(x)).

Source: Andersson, Skare & Ashburner 2003, NeuroImage 20:870 (eq. 2, the "Jacobian modulation"
of topup); Chang & Fitzpatrick 1992 (intensity conservation along the PE axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stylefa.errors import InputError

_AXES = {"i": 0, "j": 1, "k": 2}


@dataclass(frozen=True)
class PhaseEncoding:
    """Phase-encoding axis and polarity of one EPI series (BIDS ``PhaseEncodingDirection``).

    ``axis``: voxel axis 0/1/2 (i/j/k); ``sign``: +1 for 'j', -1 for 'j-';
    ``readout_time``: BIDS ``TotalReadoutTime`` in seconds (> 0)."""

    axis: int
    sign: int
    readout_time: float

    def __post_init__(self):
        if self.axis not in (0, 1, 2) or self.sign not in (1, -1):
            raise InputError(f"phase encoding needs axis 0/1/2 and sign +1/-1, got axis {self.axis!r}, sign {self.sign!r}")
        if not np.isfinite(self.readout_time) or not 0 < self.readout_time < 1:
            raise InputError(f"TotalReadoutTime must be in seconds, 0 < t < 1, got {self.readout_time!r}")

    @classmethod
    def from_bids(cls, direction: str, total_readout_time: float) -> "PhaseEncoding":
        """From BIDS ``PhaseEncodingDirection`` ('i', 'j-', ...) and ``TotalReadoutTime`` (s).

        Raises ``InputError`` for anything else (e.g. a bare ``PhaseEncodingAxis``-like 'y')."""
        text = str(direction).strip()
        if text.rstrip("-") not in _AXES or len(text) > 2 or (len(text) == 2 and text[1] != "-"):
            raise InputError(f"PhaseEncodingDirection must be one of i, i-, j, j-, k, k-; got {direction!r}")
        return cls(_AXES[text[0]], -1 if text.endswith("-") else 1, float(total_readout_time))

    @property
    def label(self) -> str:
        return "ijk"[self.axis] + ("-" if self.sign < 0 else "")


def displacement_voxels(field_hz: np.ndarray, pe: PhaseEncoding) -> np.ndarray:
    """Displacement (voxels along ``pe.axis``, same shape as ``field_hz``) = sign * readout * field."""
    return (pe.sign * pe.readout_time) * np.asarray(field_hz, dtype=np.float64)


def pe_jacobian(field_hz: np.ndarray, pe: PhaseEncoding) -> np.ndarray:
    """``1 + dd/dx_axis`` (dimensionless, same shape as the field), central differences."""
    d = displacement_voxels(field_hz, pe)
    return 1.0 + np.gradient(d, axis=pe.axis)


def _sample_along(volume: np.ndarray, axis: int, positions: np.ndarray, order: int) -> np.ndarray:
    """``volume`` sampled at fractional ``positions`` (clamped to the axis) along ``axis``, other
    coordinates on the grid: a 1-D linear or cubic B-spline interpolant (mirror boundary), the same
    values as ``scipy.ndimage.map_coordinates(mode="mirror")`` at a fraction of its cost."""
    if order not in (1, 3):
        raise InputError(f"interpolation order must be 1 (linear) or 3 (cubic), got {order!r}")
    n = volume.shape[axis]
    values = volume.astype(np.float64, copy=False)
    if order == 3:
        values = ndimage.spline_filter1d(values, order=3, axis=axis, mode="mirror")
    pos = np.broadcast_to(np.clip(positions, 0, n - 1), volume.shape)
    base = np.floor(pos).astype(np.int64)
    t = pos - base
    if order == 1:
        taps, weights = (0, 1), ((1 - t), t)
    else:
        taps = (-1, 0, 1, 2)
        weights = ((1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6)
    out = np.zeros(volume.shape)
    for tap, weight in zip(taps, weights):
        index = np.abs(base + tap)  # mirror about 0 and about n - 1
        index = np.where(index > n - 1, 2 * (n - 1) - index, index)
        out += weight * np.take_along_axis(values, index, axis=axis)
    return out


def _check_grid(image: np.ndarray, field_hz: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (3, 4) or image.shape[:3] != np.shape(field_hz):
        raise InputError(f"image shape {image.shape} does not match the field's {np.shape(field_hz)} grid")
    return image


def unwarp(image: np.ndarray, field_hz: np.ndarray, pe: PhaseEncoding, jacobian: bool = True,
           order: int = 3) -> np.ndarray:
    """Undistorted image ``I_pe(x + d(x)) * (1 + dd/dx)`` from an observed one.

    ``image``: (X, Y, Z) or (X, Y, Z, N) as stored; ``field_hz``: (X, Y, Z) Hz. Interpolation is a
    B-spline of ``order`` (3: cubic, 1: linear) along the PE axis, edge value beyond the edge.
    Returns float32 of the image's shape. Raises ``InputError`` when the grids differ."""
    image = _check_grid(image, field_hz)
    d = displacement_voxels(field_hz, pe)
    positions = np.arange(image.shape[pe.axis]).reshape([-1 if a == pe.axis else 1 for a in range(3)]) + d
    scale = pe_jacobian(field_hz, pe) if jacobian else 1.0
    volumes = image[..., None] if image.ndim == 3 else image
    out = np.stack([_sample_along(volumes[..., n], pe.axis, positions, order) * scale
                    for n in range(volumes.shape[3])], axis=-1)
    return (out[..., 0] if image.ndim == 3 else out).astype(np.float32)


def distort(image: np.ndarray, field_hz: np.ndarray, pe: PhaseEncoding) -> np.ndarray:
    """Forward model: the EPI image that ``field_hz`` makes of an undistorted ``image`` (X, Y, Z).

    Inverts ``y = x + d(x)`` line by line (monotone while ``1 + dd/dx > 0``) and conserves
    intensity: ``I_pe(y) = I_true(x(y)) / (1 + dd/dx(x(y)))``, linear interpolation. Written
    independently of :func:`unwarp` so that the two check each other. Raises ``InputError`` when
    the Jacobian is not positive everywhere (the field folds the image)."""
    image = _check_grid(image, field_hz)
    if image.ndim != 3:
        raise InputError(f"distort takes one (X, Y, Z) volume, got shape {image.shape}")
    jac = pe_jacobian(field_hz, pe)
    if np.any(jac <= 0):
        raise InputError(f"the field folds the image along the PE axis (min Jacobian {jac.min():.3f} <= 0)")
    true = np.moveaxis(image.astype(np.float64), pe.axis, -1)
    d = np.moveaxis(displacement_voxels(field_hz, pe), pe.axis, -1)
    jac = np.moveaxis(jac, pe.axis, -1)
    grid = np.arange(true.shape[-1], dtype=np.float64)
    out = np.zeros_like(true)
    for index in np.ndindex(true.shape[:-1]):
        # where each observed grid point y came from; outside the displaced line there is no signal
        source = np.interp(grid, grid + d[index], grid, left=np.nan, right=np.nan)
        inside = np.isfinite(source)
        out[index][inside] = (np.interp(source[inside], grid, true[index])
                              / np.interp(source[inside], grid, jac[index]))
    return np.moveaxis(out, -1, pe.axis).astype(np.float32)
