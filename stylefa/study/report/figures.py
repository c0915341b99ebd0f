"""Publication figures (PNG for the report, PDF for papers), drawn without pyplot state.

Fig. 1  target | projection | signed difference (projection - target, RdBu_r, symmetric limits)
Fig. 2  original and each modification (top), their projections (middle), difference of
        each projection from the unmodified original (bottom)
Fig. 3  FLAIR | lesioned FA | projection | |projection - lesioned FA| with the lesion outline
Fig. 4  distribution of a metric per condition (box plots with the individual slices)

Images are shown in the dataset's orientation (row 0 anterior; subject's left on the left).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FA_CMAP = "gray"
DIFF_CMAP = "RdBu_r"
ABS_DIFF_CMAP = "magma"
DPI = 160


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def save_figure(fig, stem: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically; returns both paths."""
    from stylefa.fileio import atomic_path

    stem = Path(stem)
    paths = []
    for suffix in (".png", ".pdf"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=DPI, facecolor="white")
        paths.append(path)
    return paths[0], paths[1]


FA_LABEL = "FA (0–1, unitless)"
DIFF_LABEL = "ΔFA (projection − reference)"
ABS_DIFF_LABEL = "|ΔFA|"
# Sized for one journal column (3.5 in) or one page width (7.2 in); text >= 7 pt at print size.
COLUMN_IN, PAGE_IN = 3.5, 7.2
MAX_CONDITIONS_PER_FIGURE = 5


def _show_fa(ax, image, title=None):
    im = ax.imshow(np.asarray(image), cmap=FA_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    _clean(ax, title)
    return im


def orientation_marks(ax, color: str = "white") -> None:
    """'L' / 'R' at the image's sides: images are neurological (the subject's left on the left)."""
    for x, text, ha in ((0.02, "L", "left"), (0.98, "R", "right")):
        ax.text(x, 0.5, text, transform=ax.transAxes, color=color, fontsize=7, fontweight="bold",
                ha=ha, va="center")


def _colorbar(fig, im, axes, label: str):
    cbar = fig.colorbar(im, ax=axes, shrink=0.85, pad=0.02)
    cbar.set_label(label, fontsize=7)
    cbar.ax.tick_params(labelsize=7)
    return cbar


def chunk_columns(columns: list, size: int = MAX_CONDITIONS_PER_FIGURE) -> list[list]:
    """Split Fig. 2's conditions into figures of at most ``size``; the first column (``none``)
    is repeated in every part so each part has its reference."""
    if len(columns) <= size:
        return [columns]
    head, rest = columns[:1], columns[1:]
    step = size - 1
    return [head + rest[i : i + step] for i in range(0, len(rest), step)]


def _clean(ax, title=None):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8)


def symmetric_limit(*differences, brain=None, floor: float = 0.05) -> float:
    """A colour limit shared by difference maps: the 99.5th percentile of |difference|."""
    values = []
    for d in differences:
        d = np.abs(np.asarray(d))
        values.append(d[brain] if brain is not None and brain.shape == d.shape and brain.any() else d.ravel())
    limit = float(np.percentile(np.concatenate(values), 99.5)) if values else floor
    return max(limit, floor)


def projection_panel(target, projection, stem, *, title: str = "", ssim: float | None = None,
                     mse: float | None = None, brain=None) -> tuple[Path, Path]:
    """Fig. 1 for one slice."""
    target = np.asarray(target)
    projection = np.asarray(projection)
    diff = projection - target
    limit = symmetric_limit(diff, brain=brain)
    fig = _figure(PAGE_IN, 2.6)
    axes = fig.subplots(1, 3)
    _show_fa(axes[0], target, "target")
    fa_im = _show_fa(axes[1], projection, "projection")
    _colorbar(fig, fa_im, axes[:2].tolist(), FA_LABEL)
    orientation_marks(axes[0])
    im = axes[2].imshow(diff, cmap=DIFF_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    _clean(axes[2], "projection − target")
    orientation_marks(axes[2], color="black")
    _colorbar(fig, im, axes[2], DIFF_LABEL)
    scores = []
    if ssim is not None:
        scores.append(f"SSIM {ssim:.4f}")
    if mse is not None:
        scores.append(f"MSE {mse:.2e}")
    if scores:
        axes[1].text(0.02, 0.02, "   ".join(scores), transform=axes[1].transAxes, color="yellow",
                     fontsize=7, va="bottom", ha="left")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, stem)


def conditions_panel(original, columns: list[dict], stem, *, title: str = "", brain=None) -> tuple[Path, Path]:
    """Fig. 2: ``columns`` of ``{"name", "modified", "projection", "ssim"}``, the first usually ``none``."""
    original = np.asarray(original)
    n = len(columns)
    diffs = [np.asarray(c["projection"]) - original for c in columns]
    limit = symmetric_limit(*diffs, brain=brain)
    fig = _figure(min(PAGE_IN, 1.3 * n + 1.2), 4.6)
    axes = np.atleast_2d(fig.subplots(3, n)).reshape(3, n)
    im = fa_im = None
    for j, column in enumerate(columns):
        fa_im = _show_fa(axes[0, j], column["modified"], column["name"])
        _show_fa(axes[1, j], column["projection"])
        im = axes[2, j].imshow(diffs[j], cmap=DIFF_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        _clean(axes[2, j])
        if column.get("ssim") is not None:
            axes[1, j].text(0.03, 0.03, f"SSIM {column['ssim']:.3f}", transform=axes[1, j].transAxes,
                            color="yellow", fontsize=7)
    axes[0, 0].set_ylabel("input", fontsize=9)
    axes[1, 0].set_ylabel("projection", fontsize=9)
    axes[2, 0].set_ylabel("projection − original", fontsize=7)
    orientation_marks(axes[0, 0])
    _colorbar(fig, fa_im, axes[:2, :].ravel().tolist(), FA_LABEL)
    _colorbar(fig, im, axes[2, :].tolist(), "ΔFA (projection − original)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, stem)


def _flair_display(flair, brain):
    flair = np.asarray(flair, dtype=np.float64)
    inside = flair[brain & (flair > 0)] if brain is not None else flair[flair > 0]
    if inside.size == 0:
        return flair
    # Window from the median brain intensity up: normal tissue goes dark grey, and the
    # hyperintense lesions (the reason to show a FLAIR) stand out bright.
    lo, hi = np.percentile(inside, [50, 99.8])
    return np.clip((flair - lo) / max(hi - lo, 1e-9), 0, 1)


def lesion_panel(lesioned, projection, lesion, stem, *, flair=None, original=None, brain=None,
                 title: str = "", scores: dict | None = None,
                 flair_title: str = "FLAIR") -> tuple[Path, Path]:
    """Fig. 3: (FLAIR) | (original FA) | lesioned FA | projection | |projection - lesioned| + outline."""
    lesioned = np.asarray(lesioned)
    projection = np.asarray(projection)
    lesion = np.asarray(lesion, dtype=bool)
    abs_diff = np.abs(projection - lesioned)
    panels = []
    if flair is not None:
        panels.append((flair_title, _flair_display(flair, brain), "gray", (0, 1)))
    if original is not None:
        panels.append(("original FA", original, FA_CMAP, (0, 1)))
    panels += [("lesioned FA", lesioned, FA_CMAP, (0, 1)), ("projection", projection, FA_CMAP, (0, 1))]
    n = len(panels) + 1
    fig = _figure(min(PAGE_IN, 1.5 * n + 0.8), 2.3)
    axes = fig.subplots(1, n)
    for ax, (name, image, cmap, (lo, hi)) in zip(axes, panels):
        ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        _clean(ax, name)
    limit = max(float(np.percentile(abs_diff[brain] if brain is not None and brain.any() else abs_diff, 99.5)), 0.05)
    im = axes[-1].imshow(abs_diff, cmap=ABS_DIFF_CMAP, vmin=0, vmax=limit, interpolation="nearest")
    if lesion.any():
        for ax in (axes[-1], axes[len(panels) - 2]):
            ax.contour(lesion.astype(float), levels=[0.5], colors="cyan", linewidths=0.6)
    _clean(axes[-1], "|projection − lesioned|")
    orientation_marks(axes[0])
    _colorbar(fig, im, axes[-1], ABS_DIFF_LABEL)
    if scores:
        text = "  ".join(f"{k} {v:.3f}" for k, v in scores.items() if v is not None and np.isfinite(v))
        axes[-1].text(0.02, 0.02, text, transform=axes[-1].transAxes, color="white", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, stem)


def metric_distributions(values_by_condition: dict[str, list[float]], stem, *, metric: str,
                         title: str = "") -> tuple[Path, Path]:
    """Fig. 4: box plot per condition with the slices as jittered dots."""
    names = list(values_by_condition)
    data = [np.asarray([v for v in values_by_condition[n] if np.isfinite(v)], dtype=float) for n in names]
    fig = _figure(max(3.5, 0.75 * len(names) + 1.5), 3.2)
    ax = fig.subplots()
    keep = [i for i, d in enumerate(data) if d.size]
    ax.boxplot([data[i] for i in keep], positions=[i + 1 for i in keep], widths=0.55, showfliers=False,
               medianprops={"color": "black"})
    rng = np.random.default_rng(0)
    for i in keep:
        ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, data[i].size), data[i], s=6, alpha=0.6, color="tab:blue",
                   linewidths=0)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel(metric, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, stem)
