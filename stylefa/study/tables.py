"""metrics.csv rows and summary.json statistics from projections (pure numpy)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from stylefa import image_metrics as metrics
from stylefa.study import stats

METRIC_COLUMNS = ("ssim", "mse", "psnr", "mae")
ROW_COLUMNS = ("slice", "subject", "z_mm", "condition", "comparison", "region", "n_pixels",
               "ssim", "mse", "psnr", "mae", "lpips")


def image_rows(base: dict, reference: np.ndarray, projection: np.ndarray, regions: dict) -> list[dict]:
    """One row per region (``None`` = whole image) comparing ``projection`` with ``reference``."""
    smap = metrics.ssim_map(reference, projection)
    rows = []
    for region, mask in regions.items():
        n_pixels = reference.size if mask is None else int(np.count_nonzero(mask))
        mse = metrics.mse(reference, projection, mask)
        rows.append(dict(base, region=region, n_pixels=n_pixels, ssim=metrics.reduce_ssim_map(smap, mask),
                         mse=mse, psnr=metrics.psnr_from_mse(mse), mae=metrics.mae(reference, projection, mask),
                         lpips=base.get("lpips", math.nan) if region == "whole" else math.nan))
    return rows


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def summarize_rows(rows: list[dict], *, baseline: str = "none", n_boot: int = 2000, seed: int = 0) -> dict:
    """Means with bootstrap CIs per (condition, comparison, region, metric) and paired
    Wilcoxon tests of every condition against ``baseline`` (same slices, vs original)."""
    groups: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        key = (row["condition"], row["comparison"], row["region"])
        for metric in METRIC_COLUMNS + ("lpips",):
            value = row.get(metric)
            if _finite(value) or (metric == "psnr" and value == math.inf):
                groups[key][metric][row["slice"]] = float(value)
    summary: dict = {"conditions": {}, "tests": {}}
    for (condition, comparison, region), by_metric in groups.items():
        entry = summary["conditions"].setdefault(condition, {}).setdefault(comparison, {}).setdefault(region, {})
        for metric, values in by_metric.items():
            finite = [v for v in values.values() if math.isfinite(v)]
            if finite:
                entry[metric] = stats.summarize(finite, n_boot=n_boot, seed=seed)
    for (condition, comparison, region), by_metric in groups.items():
        if condition == baseline or comparison != "original":
            continue
        base = groups.get((baseline, "original", region))
        if base is None:
            continue
        tests = summary["tests"].setdefault(f"{condition} vs {baseline}", {}).setdefault(region, {})
        for metric in ("ssim", "mse"):
            if metric in by_metric and metric in base and set(by_metric[metric]) & set(base[metric]):
                tests[metric] = stats.paired_wilcoxon(by_metric[metric], base[metric])
        if not tests:  # e.g. lesions sit on other slices than the baseline: nothing to pair
            del summary["tests"][f"{condition} vs {baseline}"][region]
            if not summary["tests"][f"{condition} vs {baseline}"]:
                del summary["tests"][f"{condition} vs {baseline}"]
    summary["pairwise"] = pairwise_tests(groups, baseline)
    return summary


def pairwise_tests(groups: dict, baseline: str, regions: tuple[str, ...] = ("brain",)) -> dict:
    """Paired tests between every two corruption conditions (not the baseline, not lesions),
    on the same slices, vs the original: ``{"A vs B": {region: {metric: test}}}`` where the
    difference is A - B. This is the study's question (does noise move a projection farther
    than blur or inpainting?), which tests against the baseline alone cannot answer."""
    names = []
    for condition, comparison, _ in groups:
        if comparison == "original" and condition != baseline and not condition.startswith("lesion:") \
                and condition not in names:
            names.append(condition)
    out: dict = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for region in regions:
                ga, gb = groups.get((a, "original", region)), groups.get((b, "original", region))
                if not ga or not gb:
                    continue
                for metric in ("ssim", "mse"):
                    if metric in ga and metric in gb and set(ga[metric]) & set(gb[metric]):
                        out.setdefault(f"{a} vs {b}", {}).setdefault(region, {})[metric] = \
                            stats.paired_wilcoxon(ga[metric], gb[metric])
    return out

