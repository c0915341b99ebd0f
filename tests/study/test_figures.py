"""Figures are written as PNG + PDF and are not blank."""

import numpy as np
from PIL import Image

from stylefa.study.report import figures


def _slice(seed=0, n=64):
    yy, xx = np.mgrid[:n, :n]
    brain = (yy - n / 2) ** 2 / (0.4 * n) ** 2 + (xx - n / 2) ** 2 / (0.35 * n) ** 2 < 1
    rng = np.random.default_rng(seed)
    return np.clip((0.4 + 0.3 * np.sin(xx / 4)) * brain + rng.normal(0, 0.02, (n, n)) * brain, 0, 1), brain


def _check(paths):
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000
    image = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert image.shape[0] > 300 and image.std() > 20  # drawn content, not a blank page


def test_all_figures(tmp_path):
    target, brain = _slice()
    projection = np.clip(target + 0.03 * brain * np.cos(np.arange(64) / 5), 0, 1)
    _check(figures.projection_panel(target, projection, tmp_path / "fig1", title="s0", ssim=0.95, mse=1e-3, brain=brain))
    cols = [{"name": n, "modified": target, "projection": projection, "ssim": 0.9} for n in ("none", "noise:0.1", "blur:2")]
    _check(figures.conditions_panel(target, cols, tmp_path / "fig2", brain=brain))
    lesion = np.zeros_like(brain)
    lesion[28:34, 20:26] = True
    _check(figures.lesion_panel(target * (1 - 0.4 * lesion), projection, lesion, tmp_path / "fig3", flair=target,
                                original=target, brain=brain, scores={"AUROC": 0.8}))
    _check(figures.metric_distributions({"none": [0.9, 0.95, 0.93], "noise:0.1": [0.8, 0.85, float("nan")]},
                                        tmp_path / "fig4", metric="SSIM"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"fig{i}.{ext}" for i in range(1, 5) for ext in ("png", "pdf")
    )


def test_conditions_are_split_with_the_reference_in_each_part():
    cols = [{"name": n} for n in ["none"] + [f"c{i}" for i in range(8)]]
    parts = figures.chunk_columns(cols, size=5)
    assert [len(p) for p in parts] == [5, 5] and all(p[0]["name"] == "none" for p in parts)
    assert [c["name"] for p in parts for c in p[1:]] == [f"c{i}" for i in range(8)]
    assert figures.chunk_columns(cols[:4], size=5) == [cols[:4]]


def test_flair_window_makes_hyperintense_lesions_bright():
    brain = np.ones((20, 20), bool)
    flair = np.full((20, 20), 100.0)
    flair[5:8, 5:8] = 180.0
    shown = figures._flair_display(flair, brain)
    assert shown[6, 6] == 1.0 and shown[0, 0] == 0.0
