"""Image-similarity metrics between a projection and its target, on FA arrays in [0, 1].

SSIM follows Wang et al. (2004) exactly as ``skimage.metrics.structural_similarity`` computes
it with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``:
a separable Gaussian window (sigma 1.5 px, truncated at 3.5 sigma, i.e. 11 taps) with
symmetric ("reflect", ``d c b a | a b c d``) edge handling, population covariances,
``C1 = (0.01 * 1)^2`` and ``C2 = (0.03 * 1)^2``. The whole-image score is the mean of the
SSIM map after cropping a 5-pixel border (the window radius), as skimage does; masked scores
(brain, tissue regions) are the mean of the uncropped map inside the mask, since a brain
mask is already away from the border.

Two implementations: numpy/scipy (``ssim_map``) for single images and torch
(``ssim_map_torch``) for batches; both are tested against skimage.
"""

from __future__ import annotations

import math

import numpy as np

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 1.0
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5 -> an 11 x 11 window


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 2:
        raise ValueError(f"expected 2-D images, got shape {a.shape}")
    return a, b


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {shape}")
    return mask


def _ssim_from_moments(ux, uy, uxx, uyy, uxy):
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two 2-D images in [0, 1] (float64, same shape as the inputs)."""
    from scipy.ndimage import gaussian_filter

    a, b = _check_pair(a, b)

    def smooth(x):
        return gaussian_filter(x, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    return _ssim_from_moments(smooth(a), smooth(b), smooth(a * a), smooth(b * b), smooth(a * b))


def _crop_border(image: np.ndarray) -> np.ndarray:
    r = SSIM_RADIUS
    return image[..., r:-r, r:-r]


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM: skimage's border-cropped mean, or the mean inside ``mask`` when given."""
    smap = ssim_map(a, b)
    return reduce_ssim_map(smap, mask)


def reduce_ssim_map(smap: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Whole-image SSIM from a map (border cropped like skimage) or its mean inside ``mask``."""
    mask = _check_mask(mask, smap.shape)
    if mask is None:
        if min(smap.shape) <= 2 * SSIM_RADIUS:
            raise ValueError(f"image {smap.shape} is too small for an 11 x 11 SSIM window")
        return float(_crop_border(smap).mean(dtype=np.float64))
    if not mask.any():
        return math.nan
    return float(smap[mask].mean(dtype=np.float64))


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error (FA units squared), over the image or inside ``mask``."""
    a, b = _check_pair(a, b)
    mask = _check_mask(mask, a.shape)
    diff = (a - b) ** 2
    if mask is None:
        return float(diff.mean())
    if not mask.any():
        return math.nan
    return float(diff[mask].mean())


def mae(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error (FA units), over the image or inside ``mask``."""
    a, b = _check_pair(a, b)
    mask = _check_mask(mask, a.shape)
    diff = np.abs(a - b)
    if mask is None:
        return float(diff.mean())
    if not mask.any():
        return math.nan
    return float(diff[mask].mean())


def psnr_from_mse(value: float) -> float:
    """PSNR in dB for data range 1: ``10 log10(1 / MSE)``; infinite for identical images."""
    if math.isnan(value):
        return math.nan
    if value <= 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / value)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    return psnr_from_mse(mse(a, b, mask))


# --------------------------------------------------------------------------- torch version


def _gaussian_taps_torch(dtype, device):
    import torch

    offsets = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def _symmetric_indices(n: int, radius: int, device):
    """Source indices for scipy's "reflect" padding (edge sample repeated), any ``n`` >= 1."""
    import torch

    idx = torch.arange(-radius, n + radius, device=device)
    period = 2 * n
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - 1 - idx, idx)


def _smooth_torch(x, taps):
    """Separable Gaussian over the last two axes of ``x`` [N, C, H, W] with symmetric padding."""
    import torch.nn.functional as F

    n, c, h, w = x.shape
    rows = _symmetric_indices(h, SSIM_RADIUS, x.device)
    cols = _symmetric_indices(w, SSIM_RADIUS, x.device)
    k = taps.numel()
    x = x.index_select(2, rows)
    x = F.conv2d(x.reshape(n * c, 1, h + 2 * SSIM_RADIUS, w), taps.view(1, 1, k, 1))
    x = x.index_select(3, cols)
    x = F.conv2d(x, taps.view(1, 1, 1, k))
    return x.reshape(n, c, h, w)


def ssim_map_torch(a, b):
    """Batched SSIM maps of tensors [N, 1, H, W] (or [N, H, W]) in [0, 1]; same shape out.

    Differentiable; runs on whatever device/dtype the inputs have (use float64 on CPU for
    agreement with skimage to ~1e-12, float32 gives ~1e-6).
    """
    squeeze = a.dim() == 3
    if squeeze:
        a, b = a.unsqueeze(1), b.unsqueeze(1)
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two [N, C, H, W] tensors of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    taps = _gaussian_taps_torch(a.dtype, a.device)
    stacked = _smooth_torch(_cat5(a, b), taps)
    ux, uy, uxx, uyy, uxy = stacked.chunk(5, dim=1)
    smap = _ssim_from_moments(ux, uy, uxx, uyy, uxy)
    return smap.squeeze(1) if squeeze else smap


def _cat5(a, b):
    import torch

    # One convolution pass over all five moment images instead of five passes.
    return torch.cat([a, b, a * a, b * b, a * b], dim=1)


def ssim_torch(a, b):
    """Batched whole-image SSIM (border-cropped mean, like skimage): tensor [N]."""
    smap = ssim_map_torch(a, b)
    if smap.dim() == 3:
        smap = smap.unsqueeze(1)
    return _crop_border(smap).mean(dim=(1, 2, 3))
