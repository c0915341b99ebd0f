"""Summary statistics for the study: means with bootstrap CIs, paired Wilcoxon tests.

- 95 % CI of a mean: percentile bootstrap (``n_boot`` resamples with replacement, seeded), the
  2.5th and 97.5th percentiles of the resampled means.
- Conditions are compared on the same slices (pairs matched by slice key) with the
  two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``); pairs with a NaN are dropped.
  Each test also reports the mean paired difference with its bootstrap CI and the smallest p
  the test can give with that many pairs (``2 / 2**n``, exact test without ties): below
  6 pairs it cannot reach 0.05 whatever the data, which the report says instead of a p.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_BOOTSTRAP = 2000


def bootstrap_mean_ci(values, n_boot: int = DEFAULT_BOOTSTRAP, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 500):  # chunks bound the memory of the resample matrix
        stop = min(n_boot, start + 500)
        means[start:stop] = v[rng.integers(0, v.size, size=(stop - start, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarize(values, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> dict:
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    lo, hi = bootstrap_mean_ci(finite, n_boot=n_boot, seed=seed)
    return {
        "n": int(finite.size),
        "mean": float(finite.mean()) if finite.size else math.nan,
        "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "median": float(np.median(finite)) if finite.size else math.nan,
        "ci95": [lo, hi],
    }


def paired_wilcoxon(a: dict, b: dict) -> dict:
    """Wilcoxon signed-rank test of ``a[key] - b[key]`` over the keys both have."""
    from scipy.stats import wilcoxon

    keys = sorted(set(a) & set(b))
    x = np.array([a[k] for k in keys], dtype=np.float64)
    y = np.array([b[k] for k in keys], dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"n": int(x.size), "median_difference": float(np.median(x - y)) if x.size else math.nan,
           "mean_difference": float(np.mean(x - y)) if x.size else math.nan,
           "ci95": list(bootstrap_mean_ci(x - y)), "min_possible_p": min_possible_p(int(x.size))}
    if x.size < 2 or np.all(x == y):
        out.update(statistic=math.nan, p_value=math.nan, note="too few pairs or no differences")
        return out
    result = wilcoxon(x, y)
    out.update(statistic=float(result.statistic), p_value=float(result.pvalue))
    return out


def min_possible_p(n: int) -> float:
    """Smallest two-sided p of an exact Wilcoxon signed-rank test on ``n`` pairs (all
    differences of one sign, no ties): ``2 / 2**n``, capped at 1."""
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0**n)
