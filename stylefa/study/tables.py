"""metrics.csv rows and summary.json statistics from projections (pure numpy)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from stylefa.study import metrics, stats

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
    return summary
