"""Schedules and the noise regulariser against independent formulations."""


import numpy as np
import pytest
import torch

from stylefa.project.noise_reg import noise_regularization, renormalize_noise_
from stylefa.project.schedules import learning_rate, w_noise_scale


def test_learning_rate_matches_vectorised_formula_every_step():
    steps = 1000
    t = np.arange(steps) / steps
    # Piecewise by hand: linear ramp-up to 5%, flat, cosine ramp-down over the last 25%.
    up = np.clip(t / 0.05, 0, 1)
    down = np.where(t < 0.75, 1.0, 0.5 * (1 + np.cos(np.pi * (t - 0.75) / 0.25)))
    expected = 0.1 * up * down
    got = np.array([learning_rate(s, steps, 0.1, 0.25, 0.05) for s in range(steps)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got[0] == 0.0 and got[50] == pytest.approx(0.1) and got[875] == pytest.approx(0.05)


def test_w_noise_scale_decays_quadratically_to_zero_at_75_percent():
    steps, w_std = 1000, 3.0
    got = np.array([w_noise_scale(s, steps, w_std, 0.05, 0.75) for s in range(steps)])
    assert got[0] == pytest.approx(0.15)
    assert got[375] == pytest.approx(0.15 * 0.25)  # half way to the end of the ramp: (1/2)^2
    assert np.all(got[750:] == 0) and np.all(got[:750] > 0)
    assert np.all(np.diff(got[:751]) < 0)


def naive_regularizer(noise_map: np.ndarray) -> float:
    """Loops over pixels; explicit wrap-around neighbours; explicit 2x2 means."""
    total = 0.0
    x = noise_map.astype(np.float64)
    while True:
        h, w = x.shape
        sx = sy = 0.0
        for i in range(h):
            for j in range(w):
                sx += x[i, j] * x[i, (j - 1) % w]
                sy += x[i, j] * x[(i - 1) % h, j]
        total += (sx / (h * w)) ** 2 + (sy / (h * w)) ** 2
        if h <= 8:
            return total
        x = np.array([[x[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean() for j in range(w // 2)] for i in range(h // 2)])


def test_noise_regularizer_matches_loops_per_target():
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(3, 1, size, size, generator=gen) for size in (4, 8, 32)]
    # a smooth (highly autocorrelated) map for one target, so values differ a lot
    maps[2][1] = torch.linspace(-1, 1, 32)[None, :, None].expand(1, 32, 32)
    got = noise_regularization(maps)
    expected = [sum(naive_regularizer(m[b, 0].numpy()) for m in maps) for b in range(3)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert len({round(v, 6) for v in expected}) == 3  # per-target values, not one batch-wide value


def test_renormalize_is_per_target():
    gen = torch.Generator().manual_seed(1)
    maps = [torch.randn(2, 1, 8, 8, generator=gen) * torch.tensor([1.0, 5.0]).view(2, 1, 1, 1) + 3]
    single = maps[0][1:].clone()
    renormalize_noise_(maps)
    renormalize_noise_([single])
    assert torch.allclose(maps[0].mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(maps[0].square().mean(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)
    assert torch.equal(maps[0][1:], single)
