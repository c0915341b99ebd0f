"""GRE field maps: phase difference -> Hz, and comparing two field maps on a common grid.

BIDS "Case 1: phase difference map and at least one magnitude image": ``field_hz = dphi / (2 pi (TE2 -
TE1))`` with ``dphi`` in radians. Siemens stores the phase difference as integers -4096..4096 for
-pi..pi (older versions 0..4095 for 0..2pi); any integer-coded range is wrapped back to (-pi, pi].
Sources: BIDS specification, "Magnetic resonance imaging > Field maps > Case 1"; Jezzard & Balaban
1995 MRM 34:65 (field mapping from two echoes).
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from stylefa.errors import InputError


def _load(path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    try:
        image = nib.load(os.fspath(path))
        data = np.asarray(image.dataobj, dtype=np.float64)
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise InputError(f"cannot read as NIfTI ({type(exc).__name__}: {exc})", path) from exc
    data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
    if data.ndim != 3:
        raise InputError(f"expected a 3-D image, got shape {data.shape}", path)
    return data, image.affine


def phase_to_radians(phase: np.ndarray, path=None) -> np.ndarray:
    """Phase difference in radians, wrapped to (-pi, pi]: radians as given, or Siemens integer codes
    (+-4096 <-> +-pi; 0..4095 <-> 0..2pi). Raises ``InputError`` for any other range."""
    low, high = float(np.nanmin(phase)), float(np.nanmax(phase))
    if low >= -np.pi - 1e-3 and high <= 2 * np.pi + 1e-3:
        radians = phase
    elif low >= -4096.5 and high <= 4096.5:
        radians = phase * (np.pi / 4096) if low < 0 else phase * (2 * np.pi / 4096)
    else:
        raise InputError(f"phase difference range {low:g}..{high:g} is neither radians nor Siemens -4096..4096", path)
    return np.angle(np.exp(1j * radians))


def phase_wraps(phase_rad: np.ndarray, mask: np.ndarray) -> int:
    """Number of neighbour pairs inside ``mask`` whose phase jumps by more than pi (wraps or noise)."""
    count = 0
    for axis in range(3):
        both = np.logical_and(np.take(mask, range(1, mask.shape[axis]), axis=axis),
                              np.take(mask, range(mask.shape[axis] - 1), axis=axis))
        count += int(np.count_nonzero((np.abs(np.diff(phase_rad, axis=axis)) > np.pi) & both))
    return count


def gre_field_hz(phasediff_path, magnitude_path, echo_time1: float, echo_time2: float,
                 unwrap: bool | None = None, erode_voxels: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Field (Hz) of a GRE phase-difference field map, on the field map's grid.

    ``echo_time1``/``echo_time2``: BIDS ``EchoTime1``/``EchoTime2`` (s). ``unwrap``: None unwraps
    (scikit-image ``unwrap_phase``, Herraez et al. 2002) only when phase jumps > pi are found
    inside the brain, True always, False never. The brain mask is dipy ``median_otsu`` of the
    magnitude, eroded by ``erode_voxels`` (the phase is noise at the edge).
    Returns ``(field_hz (X, Y, Z) float32 Hz, affine 4x4, mask (X, Y, Z) bool)``.
    Raises ``InputError`` naming the file for unreadable images, different grids, bad echo times."""
    from dipy.segment.mask import median_otsu

    if not (0 <= echo_time1 < echo_time2 < 1):
        raise InputError(f"need 0 <= EchoTime1 < EchoTime2 < 1 s, got {echo_time1!r}, {echo_time2!r}", phasediff_path)
    phase, affine = _load(phasediff_path)
    magnitude, mag_affine = _load(magnitude_path)
    if magnitude.shape != phase.shape or not np.allclose(affine, mag_affine, atol=1e-3):
        raise InputError(f"magnitude grid {magnitude.shape} differs from the phase difference's {phase.shape}", magnitude_path)
    mask = median_otsu(magnitude.astype(np.float32), median_radius=2, numpass=1)[1]
    if erode_voxels:
        mask = ndimage.binary_erosion(mask, iterations=erode_voxels)
    radians = phase_to_radians(phase, phasediff_path)
    if unwrap or (unwrap is None and phase_wraps(radians, mask) > 0.001 * mask.sum()):
        from skimage.restoration import unwrap_phase

        unwrapped = np.asarray(unwrap_phase(np.ma.array(radians, mask=~mask), rng=0).filled(0.0))
        # the unwrapped phase is defined up to 2 pi k: keep the brain's median in (-pi, pi]
        radians = unwrapped - 2 * np.pi * np.round(np.median(unwrapped[mask]) / (2 * np.pi))
    field = radians / (2 * np.pi * (echo_time2 - echo_time1))
    return np.where(mask, field, 0.0).astype(np.float32), affine, mask


def _smooth_inside(field: np.ndarray, mask: np.ndarray, fwhm_mm: float, voxel_mm: np.ndarray) -> np.ndarray:
    """Gaussian smoothing that ignores values outside ``mask`` (normalised convolution)."""
    sigma = fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / voxel_mm
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    smooth = ndimage.gaussian_filter(np.where(mask, field, 0.0), sigma)
    return np.where(weight > 1e-3, smooth / np.maximum(weight, 1e-3), 0.0)


def compare_fields(field_a: np.ndarray, affine_a: np.ndarray, field_b: np.ndarray, affine_b: np.ndarray,
                   mask_a: np.ndarray | None = None, mask_b: np.ndarray | None = None,
                   smooth_b_fwhm_mm: float = 0.0) -> dict:
    """Agreement of two field maps (Hz) on ``field_a``'s grid, inside both masks.

    ``field_b`` (optionally smoothed inside ``mask_b`` with a Gaussian of ``smooth_b_fwhm_mm``, e.g. a
    GRE map brought to the EPI resolution) is resampled through world coordinates (linear).
    Returns JSON-able: ``n_voxels``, ``r`` (Pearson; unchanged by a constant offset), ``slope`` (b on a),
    ``offset_hz`` (median b - a), ``median_abs_diff_hz``/``p95_abs_diff_hz`` raw and ``*_demeaned``
    after removing each field's median (a constant offset only shifts the image, see the docs).
    Raises ``InputError`` when the masks do not overlap."""
    field_a, field_b = np.asarray(field_a, np.float64), np.asarray(field_b, np.float64)
    mask_a = np.ones(field_a.shape, bool) if mask_a is None else np.asarray(mask_a, bool)
    mask_b = np.ones(field_b.shape, bool) if mask_b is None else np.asarray(mask_b, bool)
    voxel_b = np.sqrt((np.asarray(affine_b)[:3, :3] ** 2).sum(axis=0))
    if smooth_b_fwhm_mm > 0:
        field_b = _smooth_inside(field_b, mask_b, smooth_b_fwhm_mm, voxel_b)
    a_to_b = np.linalg.inv(affine_b) @ np.asarray(affine_a, np.float64)
    coords = np.tensordot(a_to_b[:3, :3], np.indices(field_a.shape, dtype=np.float64), axes=1)
    coords += a_to_b[:3, 3].reshape(3, 1, 1, 1)
    b_on_a = ndimage.map_coordinates(field_b, coords, order=1, mode="constant", cval=np.nan)
    inside_b = ndimage.map_coordinates(mask_b.astype(np.float64), coords, order=1, mode="constant", cval=0.0) > 0.999
    both = mask_a & inside_b & np.isfinite(b_on_a)
    if both.sum() < 10:
        raise InputError(f"the two field maps overlap in only {int(both.sum())} voxels inside their masks")
    x, y = field_a[both], b_on_a[both]
    diff = y - x
    centred = (y - np.median(y)) - (x - np.median(x))
    return {"n_voxels": int(both.sum()), "r": float(np.corrcoef(x, y)[0, 1]),
            "slope": float(np.polyfit(x, y, 1)[0]), "offset_hz": float(np.median(diff)),
            "median_abs_diff_hz": float(np.median(np.abs(diff))), "p95_abs_diff_hz": float(np.percentile(np.abs(diff), 95)),
            "median_abs_diff_hz_demeaned": float(np.median(np.abs(centred))),
            "p95_abs_diff_hz_demeaned": float(np.percentile(np.abs(centred), 95)),
            "smooth_b_fwhm_mm": float(smooth_b_fwhm_mm)}
