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
    denoised = np.where(mask[..., None], denoised, data).astype(np.float32)
    return denoised, np.where(mask, sigma, 0.0).astype(np.float32)


def remove_gibbs(data: np.ndarray, slice_axis: int = 2, n_points: int = 3) -> np.ndarray:
    """Gibbs ringing removed from ``data`` (X, Y, Z, N) float32, slice by slice along ``slice_axis``."""
    from dipy.denoise.gibbs import gibbs_removal

    result = gibbs_removal(np.array(data, dtype=np.float32), slice_axis=slice_axis, n_points=n_points, inplace=True)
    return np.asarray(result, dtype=np.float32)
