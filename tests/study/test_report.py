"""The HTML report is self-contained and renders in headless Chromium."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from stylefa.study.report import figures
from stylefa.study.report.page import build_report, fmt


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
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3200",
           f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert image.shape[0] >= 1000 and image.shape[1] >= 1000
    # The figure (dark FA panels and a blue/red difference map) is drawn, not a broken-image icon.
    assert (image.sum(axis=2) < 100).sum() > 5000
    red = (image[..., 0] > 150) & (image[..., 2] < 100)
    blue = (image[..., 2] > 150) & (image[..., 0] < 100)
    assert red.sum() > 500 and blue.sum() > 500


def test_report_opens_with_banner_findings_and_renders_the_model_card(tmp_path):
    from stylefa.study.report.sections import model_card_html

    entry = {"n": 12, "mean": 0.8, "std": 0.01, "median": 0.8, "ci95": [0.78, 0.82]}
    summary = {"n_slices": 12, "condition_order": ["none"],
               "conditions": {"none": {"original": {"brain": {"ssim": entry, "mse": dict(entry, mean=0.003,
                                                                                           ci95=[0.002, 0.004])}}}},
               "context": {"simulated": True, "demo_model": True, "resolution": 64, "steps": 100,
                           "stylefa_version": "9.9", "runtime": 120.0, "torch": "x"}}
    card = "# Card\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n<script>alert(1)</script>\n"
    html = build_report(title="t", settings={}, summary=summary, figures={}, model_card=card,
                        perceptual={}, notes=[])
    assert html.index("Simulated data") < html.index("<h2>Findings</h2>") < html.index("Projection accuracy")
    assert "[reproduced]" not in html and "reproduced</span> Projections of unmodified slices: SSIM 0.800" in html
    assert "120 s (2.0 min)" in html and "9.9" in html
    rendered = model_card_html(card)
    assert "<table>" in rendered and "<td>1</td>" in rendered and "<h3>Card</h3>" in rendered
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered
