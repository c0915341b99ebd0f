import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from stylefa.study import stats


def test_bootstrap_ci_matches_normal_theory_and_is_seeded():
    rng = np.random.default_rng(0)
    v = rng.normal(0.8, 0.05, 400)
    lo, hi = stats.bootstrap_mean_ci(v, n_boot=4000, seed=1)
    se = v.std(ddof=1) / math.sqrt(v.size)
    assert lo < v.mean() < hi
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert stats.bootstrap_mean_ci(v, n_boot=500, seed=3) == stats.bootstrap_mean_ci(v, n_boot=500, seed=3)
    assert stats.bootstrap_mean_ci([0.5]) == (0.5, 0.5)
    assert all(math.isnan(x) for x in stats.bootstrap_mean_ci([math.nan]))


def test_summarize_ignores_nan():
    s = stats.summarize([1.0, 2.0, math.nan, 3.0], n_boot=100)
    assert s["n"] == 3 and s["mean"] == 2.0 and s["median"] == 2.0 and s["std"] == 1.0


def test_paired_wilcoxon_matches_pairs_by_key():
    rng = np.random.default_rng(2)
    a = {f"s{i}": float(rng.normal(0.8, 0.02)) for i in range(30)}
    b = {k: v - 0.01 + float(rng.normal(0, 0.005)) for k, v in a.items()}
    b["extra"] = 0.0
    a["s0"] = math.nan
    keys = [f"s{i}" for i in range(1, 30)]
    expected = wilcoxon([a[k] for k in keys], [b[k] for k in keys])
    got = stats.paired_wilcoxon(a, b)
    assert got["n"] == 29
    assert got["p_value"] == pytest.approx(expected.pvalue)
    assert got["statistic"] == pytest.approx(expected.statistic)
    assert math.isnan(stats.paired_wilcoxon({"a": 1.0}, {"a": 1.0})["p_value"])


@pytest.mark.parametrize("n", [3, 4, 5, 6, 8])
def test_min_possible_p_is_scipys_exact_p_for_all_positive_differences(n):
    x = np.arange(1.0, n + 1) + 10.0
    y = np.zeros(n)
    assert stats.min_possible_p(n) == pytest.approx(wilcoxon(x, y, method="exact").pvalue)


def test_paired_wilcoxon_reports_mean_difference_with_ci():
    rng = np.random.default_rng(5)
    a = {f"s{i}": float(v) for i, v in enumerate(rng.normal(0.7, 0.03, 40))}
    b = {k: v + 0.05 for k, v in a.items()}
    got = stats.paired_wilcoxon(a, b)
    assert got["mean_difference"] == pytest.approx(-0.05)
    lo, hi = got["ci95"]
    assert lo <= -0.05 + 1e-12 and hi >= -0.05 - 1e-12
    assert got["min_possible_p"] == pytest.approx(2 / 2**40)
