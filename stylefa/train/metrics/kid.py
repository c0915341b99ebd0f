"""Kernel Inception Distance (Bińkowski et al. 2018), as the reference computes it.

Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
``num_subsets`` random subsets of ``m = min(n_real, n_gen, max_subset_size)`` items drawn
without replacement. The reference draws the subsets from NumPy's global, unseeded RNG; we
use a seeded ``numpy.random.Generator`` so a result can be reproduced, and do the products
in float64 (the reference uses float32; the difference is ~1e-7 relative).
"""

from __future__ import annotations

import numpy as np


def kernel_inception_distance(
    real_features: np.ndarray,
    gen_features: np.ndarray,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> float:
    real = np.asarray(real_features, np.float64)
    gen = np.asarray(gen_features, np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError("feature arrays must be [N, D] with the same D")
    dim = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 real and 2 generated images")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3
        across = (x @ y.T / dim + 1) ** 3
        total += (within.sum() - np.trace(within)) / (m - 1) - across.sum() * 2 / m
    return float(total / num_subsets / m)
