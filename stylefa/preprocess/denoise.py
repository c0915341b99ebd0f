"""MP-PCA denoising and Gibbs-ringing removal (dipy), the first two steps of ``dwifslpreproc``-
style preprocessing (MRtrix3 runs ``dwidenoise`` then ``mrdegibbs`` before topup/eddy).

- Denoising: Marchenko-Pastur PCA over local patches (Veraart et al. 2016, NeuroImage 142:394;
  dipy ``localpca.mppca``). It returns the noise standard deviation per voxel (the noise map,
  same units as the signal). It needs more volumes than a few: series with fewer than
  ``MIN_VOLUMES_FOR_MPPCA`` (b=0-only EPI) are left as they are.
- Gibbs removal: local sub-voxel shifts (Kellner et al. 2016, MRM 76:1574; dipy
  ``gibbs.gibbs_removal``), in the acquisition's slice planes (2-D, as MRtrix3 ``mrdegibbs``).
"""

from __future__ import annotations

import numpy as np

MIN_VOLUMES_FOR_MPPCA = 6


def head_mask(data: np.ndarray) -> np.ndarray:
    """A generous head mask (X, Y, Z) for the patch search: mean image above 5% of its 99th
    percentile, dilated by 3 voxels (MP-PCA patches at the edge need their neighbours)."""
    from scipy.ndimage import binary_dilation

    mean = data.mean(axis=3)
    mask = mean > 0.05 * np.percentile(mean, 99)
    return binary_dilation(mask, iterations=3)


def denoise_mppca(data: np.ndarray, patch_radius: int = 2) -> tuple[np.ndarray, np.ndarray | None]:
    """MP-PCA denoised ``data`` (X, Y, Z, N) float32 and the noise map sigma (X, Y, Z) float32
    (0 outside the head); unchanged data and None when N < ``MIN_VOLUMES_FOR_MPPCA``."""
    from dipy.denoise.localpca import mppca

    if data.shape[3] < MIN_VOLUMES_FOR_MPPCA:
        return data, None
    mask = head_mask(data)
    denoised, sigma = mppca(data, mask=mask, patch_radius=patch_radius, return_sigma=True, suppress_warning=True)
    # dipy returns NaN where its patch weights sum to 0 (seen at a few voxels of the shared Siemens
    # series, 0/0 in localpca); those voxels keep their data and get no noise estimate (0).
    covered = mask & np.isfinite(sigma) & np.isfinite(denoised).all(axis=3)
    denoised = np.where(covered[..., None], denoised, data).astype(np.float32)
    return denoised, np.where(covered, sigma, 0.0).astype(np.float32)


GIBBS_CHUNK_VALUES = 1 << 18  # values per call of dipy's 1-D search (~1 MB float32)


def _search_lines(slices: np.ndarray, n_points: int) -> np.ndarray:
    """dipy's 1-D sub-voxel-shift search along the last axis of ``slices`` (K, A, B), every line at once."""
    from dipy.denoise.gibbs import _gibbs_removal_1d

    lines = np.ascontiguousarray(slices).reshape(-1, slices.shape[-1])
    return _gibbs_removal_1d(lines, axis=1, n_points=n_points).reshape(slices.shape)


def remove_gibbs(data: np.ndarray, slice_axis: int = 2, n_points: int = 3) -> np.ndarray:
    """Gibbs ringing removed from ``data`` (X, Y, Z[, N]) float32, in the planes across ``slice_axis``.

    The result equals dipy's ``gibbs_removal`` (tested); dipy runs its 1-D sub-voxel-shift search
    one slice at a time, so on a whole series it costs minutes. Every line of every slice is
    independent, so here all slices of all volumes go through dipy's own 1-D search at once (one
    large array per direction), then are combined with dipy's k-space weights, as it does per slice.
    """
    from dipy.denoise.gibbs import _weights
    from scipy import fft

    array = np.asarray(data, dtype=np.float32)
    volumes = array if array.ndim == 4 else array[..., None]
    stack = np.moveaxis(volumes, (slice_axis, 3), (0, 1))  # (S, N, A, B)
    shape = stack.shape
    stack = stack.reshape(-1, shape[2], shape[3])
    m, a, b = stack.shape
    along_b = np.empty_like(stack)
    along_a = np.empty_like(stack)
    # In chunks of slices: dipy's search makes ~90 full passes over its input, so a whole 100-volume
    # series at once (~10^8 values) runs from main memory instead of cache (measured: 900 CPU s).
    step = max(1, GIBBS_CHUNK_VALUES // (a * b))
    for start in range(0, m, step):
        part = stack[start:start + step]
        along_b[start:start + step] = _search_lines(part, n_points)
        along_a[start:start + step] = _search_lines(part.transpose(0, 2, 1), n_points).transpose(0, 2, 1)
    g0, g1 = _weights((a, b))
    axes = (1, 2)
    spectrum = (fft.fftshift(fft.fft2(along_b, axes=axes), axes=axes) * g1
                + fft.fftshift(fft.fft2(along_a, axes=axes), axes=axes) * g0)
    result = np.abs(fft.ifft2(spectrum, axes=axes)).astype(np.float32).reshape(shape)
    result = np.moveaxis(result, (0, 1), (slice_axis, 3))
    return result if array.ndim == 4 else result[..., 0]
