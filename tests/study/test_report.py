"""The HTML report is self-contained and renders in headless Chromium."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from stylefa.study import figures
from stylefa.study.report import build_report, fmt


def _report(tmp_path):
    a = np.tile(np.linspace(0, 1, 48), (48, 1))
    png, _ = figures.projection_panel(a, a[::-1], tmp_path / "fig1", ssim=0.5, mse=0.1)
    entry = {"n": 3, "mean": 0.91, "std": 0.01, "median": 0.91, "ci95": [0.9, 0.92]}
    summary = {
        "n_slices": 3, "condition_order": ["none", "noise:0.1"],
        "conditions": {"none": {"original": {"brain": {"ssim": entry, "mse": entry}, "cortex": {"ssim": entry}}},
                       "noise:0.1": {"original": {"brain": {"ssim": entry}}}},
        "tests": {"noise:0.1 vs none": {"brain": {"ssim": {"n": 3, "median_difference": -0.1, "p_value": 0.25}}}},
    }
    return build_report(title="t <&>", settings={"steps": 3}, summary=summary,
                        figures={"Fig. 1": [(png, "caption <x>")]}, model_card="card & co", perceptual={"name": "mse"},
                        notes=["a note"])


def test_report_is_self_contained(tmp_path):
    html = _report(tmp_path)
    sources = re.findall(r'<img[^>]*src="([^"]*)"', html)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")
    assert base64.b64decode(sources[0].split(",", 1)[1])[:4] == b"\x89PNG"
    assert "t &lt;&amp;&gt;" in html and "card &amp; co" in html and "caption &lt;x&gt;" in html
    assert "0.9100 [0.9000, 0.9200]" in html
    assert not re.search(r'(src|href)="(?!data:)', html)


def test_fmt():
    assert fmt(float("nan")) == "–" and fmt(float("inf")) == "∞" and fmt(0.5) == "0.5000" and fmt(1e-5) == "1.000e-05"


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian package `chromium`); cannot check rendering")
    page = tmp_path / "report.html"
    page.write_text(_report(tmp_path))
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
           f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert image.shape[0] >= 1000 and image.shape[1] >= 1000
    # The figure (dark FA panels and a blue/red difference map) is drawn, not a broken-image icon.
    assert (image.sum(axis=2) < 100).sum() > 5000
    red = (image[..., 0] > 150) & (image[..., 2] < 100)
    blue = (image[..., 2] > 150) & (image[..., 0] < 100)
    assert red.sum() > 500 and blue.sum() > 500
