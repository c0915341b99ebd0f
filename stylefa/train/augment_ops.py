"""Low-level pieces of the ADA augmentation pipeline: filters, resampling, matrices.

Pure PyTorch (no custom CUDA kernels), so every op is differentiable twice, which R1
needs: the penalty differentiates D(augment(x)) with respect to x and is then itself
back-propagated. The filter taps and the resampling layout follow Karras et al. 2020,
"Training Generative Adversarial Networks with Limited Data", Appendix B.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Low-pass (scaling) filters of two Daubechies symlets. sym6 is the orthogonal wavelet the
# paper uses for the 2x up/down sampling around the geometric warp; sym2 seeds the
# four-band filter bank of the image-space filtering group.
SYM2 = (
    -0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025,
)
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)


def normalized_filter(taps) -> torch.Tensor:
    """1-D filter scaled to unit DC gain (sum of taps = 1), as float32."""
    f = torch.as_tensor(np.asarray(taps, dtype=np.float64), dtype=torch.float32)
    return f / f.sum()


def filter_bank(taps=SYM2, num_bands: int = 4) -> np.ndarray:
    """Rows are zero-phase band-pass filters splitting [0, pi] into octave bands.

    Band 0 is the lowest octave. Built by repeatedly upsampling the bank (inserting zeros
    between taps halves every band's frequency) and convolving with the half-band
    low-pass H(z)H(1/z)/2; the newly split-off top octave gets the high-pass
    H(-z)H(-1/z)/2. The rows sum to a unit impulse, so equal gains leave an image unchanged.
    """
    lo = np.asarray(taps, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo_halfband = np.convolve(lo, lo[::-1]) / 2
    hi_halfband = np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros((num_bands, 1))
    bank[0, 0] = 1.0
    for band in range(1, num_bands):
        stretched = np.zeros((num_bands, bank.shape[1] * 2 - 1))
        stretched[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo_halfband) for row in stretched])
        start = (bank.shape[1] - hi_halfband.size) // 2
        bank[band, start : start + hi_halfband.size] += hi_halfband
    return bank


def fir_resample(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int, int, int] = (0, 0, 0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), filter separably, decimate.

    ``pad`` is (left, right, top, bottom) in upsampled pixels. Without ``flip_filter`` the
    filter is applied as a true convolution; with it, as a correlation, so that an
    asymmetric filter H(z) used for upsampling and H(1/z) for downsampling compose into
    a perfect-reconstruction pair.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    left, right, top, bottom = pad
    x = F.pad(x, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    x = x[:, :, max(-top, 0) : x.shape[2] - max(-bottom, 0), max(-left, 0) : x.shape[3] - max(-right, 0)]
    taps = f.to(device=x.device, dtype=x.dtype) * (gain**0.5)
    if not flip_filter:
        taps = taps.flip(0)
    horizontal = taps.reshape(1, 1, 1, -1).expand(c, 1, 1, -1)
    vertical = taps.reshape(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(x, horizontal, groups=c)
    x = F.conv2d(x, vertical, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling whose output pixel grid is centred on the input's (gain 4 keeps DC)."""
    taps = f.numel()
    pad_lo, pad_hi = (taps + 1) // 2, (taps - 2) // 2
    return fir_resample(x, f, up=2, pad=(pad_lo, pad_hi, pad_lo, pad_hi), gain=4.0)


def downsample2x(x: torch.Tensor, f: torch.Tensor, crop: int = 0) -> torch.Tensor:
    """2x downsampling (filter applied as correlation), cropping ``crop`` fine pixels per side."""
    taps = f.numel()
    pad_lo, pad_hi = (taps - 1) // 2 - crop, (taps - 2) // 2 - crop
    return fir_resample(x, f, down=2, pad=(pad_lo, pad_hi, pad_lo, pad_hi), flip_filter=True)


# ---------------------------------------------------------------------------------------
# Homogeneous matrices, batched: every argument is a [batch] tensor or a Python number.


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    batch = like.shape[0]
    entries = [
        (v if isinstance(v, torch.Tensor) else torch.full([batch], float(v), device=like.device, dtype=like.dtype))
        for row in rows
        for v in row
    ]
    return torch.stack(entries, dim=-1).reshape(batch, len(rows), len(rows[0]))


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def translate3d(tx: torch.Tensor, ty: torch.Tensor, tz: torch.Tensor) -> torch.Tensor:
    return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], tx)


def scale3d(sx: torch.Tensor, sy: torch.Tensor, sz: torch.Tensor) -> torch.Tensor:
    return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], sx)


def rotate3d(axis: tuple[float, float, float], theta: torch.Tensor) -> torch.Tensor:
    """Rotation by ``theta`` about the unit vector ``axis`` (Rodrigues), homogeneous 4x4."""
    x, y, z = axis
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix(
        [
            [x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0],
            [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0],
            [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0],
            [0, 0, 0, 1],
        ],
        theta,
    )
