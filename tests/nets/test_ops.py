"""FIR resampling, resampling convolution, bias+activation and modulated convolution,
checked against independent oracles (scipy.signal, explicit numpy loops) and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from stylefa.nets import ops
from stylefa.nets.layers import modulated_conv2d

RNG = np.random.default_rng(1234)
TAPS = [1.0, 3.0, 3.0, 1.0]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _zero_insert_np(x: np.ndarray, up: int) -> np.ndarray:
    out = np.zeros(x.shape[:-2] + (x.shape[-2] * up, x.shape[-1] * up))
    out[..., ::up, ::up] = x
    return out


def _upfirdn2d_oracle(x, f, up, down, pad, gain):
    """Definition with scipy: zero insertion, pad/crop, true 2-D convolution, decimation."""
    x0, x1, y0, y1 = pad
    out = []
    for img in x.reshape(-1, *x.shape[-2:]):
        u = _zero_insert_np(img, up)
        u = np.pad(u, [(max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))])
        u = u[max(-y0, 0) : u.shape[0] - max(-y1, 0), max(-x0, 0) : u.shape[1] - max(-x1, 0)]
        v = scipy.signal.convolve2d(u, f * gain, mode="valid")
        out.append(v[::down, ::down])
    return np.stack(out).reshape(*x.shape[:-2], *out[0].shape)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize(
    "up,down,pad,gain",
    [
        (1, 1, (1, 2, 0, 1), 1.0), (1, 1, (2, 2, 1, 1), 3.0), (2, 1, (2, 1, 2, 1), 4.0), (1, 2, (1, 1, 1, 1), 1.0),
        (3, 2, (2, 0, -1, 3), 2.0),
    ],
)
def test_upfirdn2d_matches_scipy_definition(up, down, pad, gain, impl):
    x = torch.from_numpy(RNG.standard_normal((2, 3, 7, 6)))
    f2 = RNG.standard_normal((4, 3))  # non-symmetric, non-square: catches flips and axis swaps
    got = ops.upfirdn2d(x, torch.from_numpy(f2), up=up, down=down, padding=pad, gain=gain, impl=impl)
    want = _upfirdn2d_oracle(_np(x), f2, up, down, pad, gain)
    np.testing.assert_allclose(_np(got), want, atol=1e-12)


def test_separable_filter_equals_outer_product():
    x = torch.from_numpy(RNG.standard_normal((1, 2, 9, 9)))
    taps = torch.tensor([1.0, 2.0, 5.0, 1.0], dtype=torch.float64)
    sep = ops.upfirdn2d(x, taps, up=2, padding=[2, 1, 2, 1])
    full = ops.upfirdn2d(x, torch.outer(taps, taps), up=2, padding=[2, 1, 2, 1])
    np.testing.assert_allclose(_np(sep), _np(full), atol=1e-12)


def test_setup_filter_normalises_and_builds_2d():
    f = ops.setup_filter(TAPS)
    assert f.shape == (4, 4) and f.dtype == torch.float32
    np.testing.assert_allclose(f.numpy(), np.outer(TAPS, TAPS) / 64.0, rtol=1e-7)
    assert ops.setup_filter([1] * 8).ndim == 1  # long filters stay separable


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_upsample2d_matches_scipy_upfirdn(impl):
    """Separable [1,3,3,1] upsampling = scipy.signal.upfirdn along each axis, same crop."""
    x = RNG.standard_normal((2, 3, 5, 6))
    f = ops.setup_filter(TAPS).double()
    got = _np(ops.upsample2d(torch.from_numpy(x), f, impl=impl))
    taps = np.array(TAPS) / sum(TAPS) * 2  # per-axis share of gain up**2
    rows = scipy.signal.upfirdn(taps, x, up=2, axis=-1)[..., 1 : 1 + 2 * x.shape[-1]]
    want = scipy.signal.upfirdn(taps, rows, up=2, axis=-2)[..., 1 : 1 + 2 * x.shape[-2], :]
    assert got.shape == (2, 3, 10, 12)
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_downsample2d_matches_scipy_upfirdn(impl):
    x = RNG.standard_normal((2, 3, 8, 6))
    f = ops.setup_filter(TAPS).double()
    got = _np(ops.downsample2d(torch.from_numpy(x), f, impl=impl))
    taps = np.array(TAPS) / sum(TAPS)
    rows = scipy.signal.upfirdn(taps, x, down=2, axis=-1)[..., 1 : 1 + x.shape[-1] // 2]
    want = scipy.signal.upfirdn(taps, rows, down=2, axis=-2)[..., 1 : 1 + x.shape[-2] // 2, :]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_upsample_polyphase_handles_asymmetric_filters():
    x = torch.from_numpy(RNG.standard_normal((1, 2, 4, 5)))
    f = torch.from_numpy(RNG.standard_normal((4, 8)))
    for flip in (False, True):
        fast = ops.upsample2d(x, f, flip_filter=flip, impl="fast")
        ref = ops.upsample2d(x, f, flip_filter=flip, impl="reference")
        np.testing.assert_allclose(_np(fast), _np(ref), atol=1e-12)


def _full_conv(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    return scipy.signal.convolve2d(a, k, mode="full")


def test_conv2d_upsample_equals_zero_insert_convolve_filter():
    """Up-conv (SynthesisLayer conv0): true convolution of the zero-inserted input with
    the kernel, then with the FIR filter (gain 4); crop 2 pixels at the top/left."""
    x = RNG.standard_normal((1, 2, 4, 5))
    w = RNG.standard_normal((3, 2, 3, 3))
    f = np.outer(TAPS, TAPS) / 64.0
    got = _np(ops.conv2d_resample(torch.from_numpy(x), torch.from_numpy(w), f=torch.from_numpy(f), up=2,
                                  padding=1, flip_weight=False))
    assert got.shape == (1, 3, 8, 10)
    for o in range(3):
        acc = sum(_full_conv(_zero_insert_np(x[0, i], 2), w[o, i]) for i in range(2))
        want = _full_conv(acc, f * 4)[2:10, 2:12]
        np.testing.assert_allclose(got[0, o], want, atol=1e-12)


def test_conv2d_downsample_equals_filter_then_strided_correlation():
    x = RNG.standard_normal((1, 2, 8, 6))
    w = RNG.standard_normal((3, 2, 3, 3))
    f = np.outer(TAPS, TAPS) / 64.0
    got = _np(ops.conv2d_resample(torch.from_numpy(x), torch.from_numpy(w), f=torch.from_numpy(f), down=2, padding=1))
    assert got.shape == (1, 3, 4, 3)
    for o in range(3):
        acc = sum(_full_conv(_full_conv(x[0, i], f), w[o, i, ::-1, ::-1]) for i in range(2))
        np.testing.assert_allclose(got[0, o], acc[3::2, 3::2][:4, :3], atol=1e-12)


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2)])
def test_conv2d_resample_1x1_fast_paths(up, down):
    x = torch.from_numpy(RNG.standard_normal((2, 3, 6, 6)))
    w = torch.from_numpy(RNG.standard_normal((4, 3, 1, 1)))
    f = ops.setup_filter(TAPS).double()
    fast = ops.conv2d_resample(x, w, f=f, up=up, down=down, impl="fast")
    ref = ops.conv2d_resample(x, w, f=f, up=up, down=down, impl="reference")
    # Oracle: channel mixing commutes with per-channel filtering.
    mixed = torch.einsum("oi,nihw->nohw", w[:, :, 0, 0], x)
    resampled = ops.upsample2d(mixed, f, impl="reference") if up > 1 else ops.downsample2d(mixed, f, impl="reference")
    np.testing.assert_allclose(_np(fast), _np(resampled), atol=1e-12)
    np.testing.assert_allclose(_np(ref), _np(resampled), atol=1e-12)


def _bias_act_oracle(x, b, alpha, gain, clamp):
    y = x + b.reshape(1, -1, 1, 1)
    y = np.where(y >= 0, y, alpha * y) * gain
    return np.clip(y, -clamp, clamp) if clamp is not None else y


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("act,alpha,clamp", [("lrelu", 0.2, None), ("lrelu", 0.2, 1.5), ("linear", 1.0, 0.7)])
def test_bias_act_matches_formula(impl, act, alpha, clamp):
    x = RNG.standard_normal((2, 5, 3, 4)) * 2
    b = RNG.standard_normal(5)
    gain = np.sqrt(2) if act == "lrelu" else 1.0
    got = ops.bias_act(torch.from_numpy(x), torch.from_numpy(b), act=act, clamp=clamp, impl=impl)
    np.testing.assert_allclose(_np(got), _bias_act_oracle(x, b, alpha, gain, clamp), atol=1e-12)


def test_bias_act_fused_gradients_including_double_backward():
    # Values kept away from 0 and from the clamp level, where the derivative jumps.
    base = RNG.uniform(0.2, 1.0, (2, 3, 4, 4)) * RNG.choice([-1, 1], (2, 3, 4, 4))
    base[0, 0, 0, :2] = [3.0, -3.0]  # clamped region (zero gradient)
    x = torch.from_numpy(base).requires_grad_(True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def fn(x, b):
        return ops.bias_act(x, b, act="lrelu", gain=1.3, clamp=2.0)

    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def _double(*shape):
    return torch.from_numpy(RNG.standard_normal(shape)).requires_grad_(True)


def test_resampling_ops_gradcheck():
    f = ops.setup_filter(TAPS).double()
    x = _double(1, 2, 4, 4)
    w = _double(3, 2, 3, 3)
    assert torch.autograd.gradcheck(lambda x: ops.upsample2d(x, f), (x,))
    assert torch.autograd.gradcheck(lambda x: ops.downsample2d(x, f), (x,))
    assert torch.autograd.gradcheck(
        lambda x, w: ops.conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False), (x, w)
    )
    assert torch.autograd.gradcheck(lambda x, w: ops.conv2d_resample(x, w, f=f, down=2, padding=1), (x, w))


def _modconv_oracle(x, weight, styles, demodulate):
    """Per-sample loop: scale the kernel by the style, normalise each output filter,
    correlate (F.conv2d convention) with zero padding."""
    n, _, h, w = x.shape
    o, i, kh, kw = weight.shape
    out = np.zeros((n, o, h, w))
    for s in range(n):
        k = weight * styles[s][None, :, None, None]
        if demodulate:
            k = k / np.sqrt((k**2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        for oc in range(o):
            out[s, oc] = sum(
                scipy.signal.correlate2d(x[s, ic], k[oc, ic], mode="same") for ic in range(i)
            )
    return out


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_modulated_conv2d_matches_per_sample_loop(demodulate, fused, impl):
    x = RNG.standard_normal((3, 4, 5, 5))
    weight = RNG.standard_normal((2, 4, 3, 3))
    styles = RNG.standard_normal((3, 4))
    got = modulated_conv2d(
        torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(styles), padding=1,
        demodulate=demodulate, fused_modconv=fused, impl=impl,
    )
    np.testing.assert_allclose(_np(got), _modconv_oracle(x, weight, styles, demodulate), atol=1e-10)


def test_modulated_conv2d_fused_equals_nonfused_with_upsampling_and_gradients():
    f = ops.setup_filter(TAPS).double()
    x, weight, styles = _double(2, 2, 3, 3), _double(2, 2, 3, 3), _double(2, 2)
    noise = torch.from_numpy(RNG.standard_normal((2, 1, 6, 6)))
    outs = []
    for fused in (True, False):
        def fn(x, weight, styles, fused=fused):
            return modulated_conv2d(x, weight, styles, noise=noise, up=2, padding=1, resample_filter=f,
                                    flip_weight=False, fused_modconv=fused)
        assert torch.autograd.gradcheck(fn, (x, weight, styles))
        outs.append(fn(x, weight, styles))
    np.testing.assert_allclose(_np(outs[0]), _np(outs[1]), atol=1e-12)


def test_normalize_2nd_moment():
    x = torch.from_numpy(RNG.standard_normal((4, 16)) * 3)
    y = ops.normalize_2nd_moment(x)
    np.testing.assert_allclose((_np(y) ** 2).mean(axis=1), 1.0, atol=1e-6)
