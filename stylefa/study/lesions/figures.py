"""Figures of the lesion evaluation (PNG + PDF, no pyplot state).

Fig. 6  per-patient voxel AUROC and AUPRC of each method: one dot per patient with its 95 %
        cluster-bootstrap CI, lines joining a patient's dots across methods, and the pooled
        value over all patients (black, CI over patients)
Fig. 7  healing index per lesion slice: vs the original, control-corrected and vs the
        normative mean (box plots with the slices as dots)
"""

from __future__ import annotations

import math

import numpy as np

from stylefa.study.report.figures import _figure, save_figure


def _num(value) -> float:
    return math.nan if value is None else float(value)  # summary.json stores NaN as null


def method_comparison(summary: dict, stem):
    """Fig. 6 from ``summary['lesions']`` (as evaluated, or read back from summary.json)."""
    methods = summary["methods"]
    patients = summary["patients"]
    fig = _figure(max(5.0, 2.2 * len(methods) + 1.5), 3.3)
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "auroc", "voxel AUROC"), (axes[1], "ap", "AUPRC (average precision)")):
        rng = np.random.default_rng(0)
        for name, entry in patients.items():
            jitter = rng.uniform(-0.12, 0.12)
            xs = np.arange(len(methods)) + jitter
            values = [_num(entry["methods"][m][metric]) for m in methods]
            faded = entry["below_min_pixels"]
            ax.plot(xs, values, color="0.8", linewidth=0.5, zorder=1)
            for x, m, v in zip(xs, methods, values):
                lo, hi = map(_num, entry["methods"][m][f"{metric}_ci95"])
                if all(math.isfinite(t) for t in (v, lo, hi)):
                    ax.errorbar(x, v, yerr=[[v - lo], [hi - v]], color="tab:blue", alpha=0.35, linewidth=0.7,
                                zorder=2)
                ax.scatter([x], [v], s=12, color="tab:gray" if faded else "tab:blue", zorder=3, linewidths=0)
        for i, m in enumerate(methods):
            pooled = summary["pooled"][m]
            v = _num(pooled[metric])
            lo, hi = map(_num, pooled[f"{metric}_ci95"])
            if math.isfinite(v):
                err = [[v - lo], [hi - v]] if math.isfinite(lo) and math.isfinite(hi) else None
                ax.errorbar(i + 0.3, v, yerr=err, fmt="D", color="black", markersize=4, capsize=3, zorder=4)
        if metric == "auroc":
            ax.axhline(0.5, color="0.6", linestyle=":", linewidth=0.8)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, fontsize=8)
        ax.set_ylabel(label, fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Lesion detection per patient ({len(patients)} patients)", fontsize=10)
    return save_figure(fig, stem)


def healing_distribution(slice_rows: list[dict], stem):
    names = [("healing_index", "vs original"), ("healing_index_control", "control-corrected"),
             ("healing_index_normative", "vs normative mean")]
    data = [np.array([_num(r[key]) for r in slice_rows], dtype=float) for key, _ in names]
    data = [d[np.isfinite(d)] for d in data]
    keep = [i for i, d in enumerate(data) if d.size]
    fig = _figure(4.6, 3.2)
    ax = fig.subplots()
    if keep:
        ax.boxplot([data[i] for i in keep], positions=[i + 1 for i in keep], widths=0.5, showfliers=False,
                   medianprops={"color": "black"})
    # A few slices with a shallow lesion give extreme ratios: show them on the axis limits as triangles.
    finite = np.concatenate([data[i] for i in keep]) if keep else np.zeros(1)
    lo = min(-0.25, float(np.percentile(finite, 2)))
    hi = max(1.25, float(np.percentile(finite, 98)))
    rng = np.random.default_rng(0)
    outside = 0
    for i in keep:
        x = i + 1 + rng.uniform(-0.15, 0.15, data[i].size)
        inside = (data[i] >= lo) & (data[i] <= hi)
        ax.scatter(x[inside], data[i][inside], s=7, alpha=0.6, color="tab:purple", linewidths=0)
        for mask, y, marker in ((data[i] > hi, hi, "^"), (data[i] < lo, lo, "v")):
            ax.scatter(x[mask], np.full(mask.sum(), y), s=14, marker=marker, color="tab:purple", linewidths=0,
                       clip_on=False)
        outside += int((~inside).sum())
    pad = 0.03 * (hi - lo)
    ax.set_ylim(lo - pad, hi + pad)
    if outside:
        ax.text(0.99, 0.01, f"{outside} value(s) beyond the axis (triangles)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="0.4")
    ax.axhline(1.0, color="tab:green", linestyle="--", linewidth=0.8)
    ax.axhline(0.0, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels([label for _, label in names], fontsize=8)
    ax.set_ylabel("healing index (1 = healed, 0 = reproduced)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(f"Healing index, {len(slice_rows)} lesion slices", fontsize=10)
    return save_figure(fig, stem)
