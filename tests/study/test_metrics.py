"""Metrics against independent oracles: scikit-image, scikit-learn, closed forms."""

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from stylefa import image_metrics as metrics


def _pair(seed=0, shape=(48, 40)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    a = 0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    a = np.clip(a + rng.normal(0, 0.05, shape), 0, 1)
    b = np.clip(a + rng.normal(0, 0.1, shape), 0, 1)
    return a, b


def _skimage_ssim(a, b, full=False):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, full=full
    )


@pytest.mark.parametrize("seed,shape", [(0, (48, 40)), (1, (64, 64)), (2, (11, 17))])
def test_ssim_matches_skimage(seed, shape):
    a, b = _pair(seed, shape)
    expected, expected_map = _skimage_ssim(a, b, full=True)
    assert abs(metrics.ssim(a, b) - expected) <= 1e-6
    np.testing.assert_allclose(metrics.ssim_map(a, b), expected_map, atol=1e-9)


def test_ssim_identical_is_one_and_masked_mean():
    a, b = _pair(3)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    mask = np.zeros(a.shape, bool)
    mask[10:30, 5:25] = True
    _, smap = _skimage_ssim(a, b, full=True)
    assert metrics.ssim(a, b, mask) == pytest.approx(smap[mask].mean(), abs=1e-9)
    assert math.isnan(metrics.ssim(a, b, np.zeros_like(mask)))


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-9), ("float32", 1e-5)])
def test_ssim_torch_batched_matches_skimage(dtype, tol):
    torch = pytest.importorskip("torch")
    pairs = [_pair(s, (40, 52)) for s in range(3)]
    a = torch.tensor(np.stack([p[0] for p in pairs])[:, None], dtype=getattr(torch, dtype))
    b = torch.tensor(np.stack([p[1] for p in pairs])[:, None], dtype=getattr(torch, dtype))
    got = metrics.ssim_torch(a, b).double().numpy()
    maps = metrics.ssim_map_torch(a, b).double().numpy()
    for i, (x, y) in enumerate(pairs):
        expected, expected_map = _skimage_ssim(x, y, full=True)
        assert abs(got[i] - expected) <= max(tol, 1e-6 if dtype == "float64" else tol)
        np.testing.assert_allclose(maps[i, 0], expected_map, atol=tol * 10)


def test_ssim_torch_is_differentiable():
    torch = pytest.importorskip("torch")
    a, b = _pair(4, (24, 24))
    x = torch.tensor(a[None, None], requires_grad=True)
    metrics.ssim_torch(x, torch.tensor(b[None, None])).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ssim_torch_tiny_image_reflection_matches_scipy():
    # Images narrower than the window radius need repeated symmetric reflection.
    torch = pytest.importorskip("torch")
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(5)
    x = rng.random((3, 4))
    taps = metrics._gaussian_taps_torch(torch.float64, "cpu")
    got = metrics._smooth_torch(torch.tensor(x)[None, None], taps)[0, 0].numpy()
    np.testing.assert_allclose(got, gaussian_filter(x, 1.5, truncate=3.5, mode="reflect"), atol=1e-12)


def test_mse_psnr_mae_closed_form_and_skimage():
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    a, b = _pair(6)
    assert metrics.mse(a, b) == pytest.approx(mean_squared_error(a, b), rel=1e-12)
    assert metrics.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), rel=1e-12)
    zeros = np.zeros((4, 4))
    halves = np.full((4, 4), 0.5)
    assert metrics.mse(zeros, halves) == pytest.approx(0.25)
    assert metrics.mae(zeros, halves) == pytest.approx(0.5)
    assert metrics.psnr(zeros, halves) == pytest.approx(10 * math.log10(4))
    assert metrics.psnr(a, a) == math.inf
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True
    c = zeros.copy()
    c[0, 0] = 1.0
    assert metrics.mse(zeros, c, mask) == pytest.approx(0.5)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.mse(np.zeros((4, 4)), np.zeros((4, 5)))
