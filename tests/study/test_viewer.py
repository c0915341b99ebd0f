"""The report's interactive viewer: its data round-trip, and the page driven in headless Chromium."""

import io
import zlib

import numpy as np
from PIL import Image

from stylefa.study.report.page import build_report
from stylefa.study.report.viewer import build_blocks, viewer_section

from .browser import Browser
from .stubs import GRID, R, StubSource, stub_cases as _cases

def _report(tmp_path):
    source = StubSource()
    cases, projections = _cases(source)
    blocks = build_blocks(cases, projections, source)
    html = build_report(title="viewer test", settings={}, summary={"n_slices": 3}, figures={}, model_card=None,
                        perceptual={}, notes=[], viewer=viewer_section(blocks))
    page = tmp_path / "report.html"
    page.write_text(html)
    return page, blocks, cases, projections


def test_blocks_hold_the_arrays_to_uint16_precision(tmp_path):
    _, blocks, cases, projections = _report(tmp_path)
    assert [b.scan for b in blocks] == ["sub-01", "sub-02"]
    raw = zlib.decompress(blocks[0].payload)
    by_id = {c.target_id: c for c in cases}
    for condition in blocks[0].manifest["conditions"]:
        for level in condition["levels"]:
            case = by_id[f"{level['slice']}__{condition['name']}"]
            for key, expected in (("input", case.modified), ("projection", projections[case.target_id])):
                values = np.frombuffer(raw, "<u2", R * R, level[key]).reshape(R, R) / 65535
                np.testing.assert_allclose(values, expected, atol=0.5 / 65535 + 1e-7)
            if case.lesion is not None:
                np.testing.assert_array_equal(np.frombuffer(raw, np.uint8, R * R, level["lesion"]).reshape(R, R),
                                              case.lesion)
    assert [c["name"] for c in blocks[0].manifest["conditions"]] == ["none", "noise:0.1", "lesion:p07"]
    assert [lv["z"] for lv in blocks[0].manifest["conditions"][0]["levels"]] == [0.0, 4.0, 8.0]


# Reads a canvas through a copy made for reading, so the test's own readbacks raise no
# performance warning in the page's log (which must stay empty).
PIXELS = """window.pixels = (c) => { const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
  const x = t.getContext('2d', {willReadFrequently: true}); x.drawImage(c, 0, 0);
  return x.getImageData(0, 0, c.width, c.height).data; }; true"""


def _panel_stats(browser):
    browser.evaluate(PIXELS)
    return browser.evaluate("""(() => {
      const out = {};
      for (const c of document.querySelectorAll('#sfv-panels canvas')) {
        const d = pixels(c);
        let sum = 0, sq = 0, hash = 0;
        for (let i = 0; i < d.length; i += 4) { const v = d[i] + d[i+1] + d[i+2]; sum += v; sq += v * v;
          hash = (hash * 31 + v) % 1000000007; }
        const n = d.length / 4;
        out[c.dataset.panel] = {std: Math.sqrt(sq / n - (sum / n) ** 2), hash,
                                visible: c.parentElement.style.display !== 'none'};
      }
      return out; })()""")


def test_viewer_in_headless_chromium(tmp_path):
    page, blocks, cases, projections = _report(tmp_path)
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert browser.evaluate("window.stylefaViewer.ready.then(() => true)") is True
        assert browser.evaluate("window.stylefaViewer.decoded()") == [0]  # lazy: only the scan shown
        stats = _panel_stats(browser)
        for panel in ("input", "projection", "difference"):
            assert stats[panel]["visible"] and stats[panel]["std"] > 20, (panel, stats[panel])
        assert not stats["flair"]["visible"]  # the unmodified condition has no FLAIR
        # A screenshot of the panels is not blank either.
        browser.evaluate("document.getElementById('sfv').scrollIntoView()")
        # Clip rectangles are in document coordinates.
        rect = browser.evaluate("(() => { const r = document.getElementById('sfv-panels').getBoundingClientRect();"
                                " return {x: r.left, y: r.top + window.scrollY, width: 3 * 264, height: 256}; })()")
        shot = np.asarray(Image.open(io.BytesIO(browser.screenshot(rect))).convert("RGB"), float)
        assert shot.shape[0] >= 250 and shot.std() > 30
        before = browser.screenshot(rect)

        # The slider, moved with the keyboard, shows the next level.
        z_before = browser.evaluate("document.getElementById('sfv-z').textContent")
        browser.evaluate("document.getElementById('sfv-level').focus()")
        browser.key("ArrowRight", 39)
        assert browser.evaluate("new Promise(r => setTimeout(() => r(window.stylefaViewer.state.level), 200))") == 1
        after = _panel_stats(browser)
        assert after["input"]["hash"] != stats["input"]["hash"]
        assert after["difference"]["hash"] != stats["difference"]["hash"]
        assert browser.evaluate("document.getElementById('sfv-z').textContent") != z_before
        assert browser.screenshot(rect) != before

        # The value under the cursor is the array's value at that pixel, in every panel.
        canvas = browser.evaluate("(() => { const r = document.querySelector('canvas[data-panel=input]')"
                                  ".getBoundingClientRect(); return [r.left, r.top, r.width]; })()")
        row, col = 11, 20
        scale = canvas[2] / R
        browser.mouse("mouseMoved", canvas[0] + (col + 0.5) * scale, canvas[1] + (row + 0.5) * scale)
        text = browser.evaluate("document.getElementById('sfv-readout').textContent")
        case = next(c for c in cases if c.target_id == "sub-01_L01__none")
        q_in = round(float(case.modified[row, col]) * 65535) / 65535
        q_proj = round(float(projections[case.target_id][row, col]) * 65535) / 65535
        assert f"input {q_in:.4f}" in text and f"projection {q_proj:.4f}" in text, text
        assert f"difference {q_proj - q_in:.4f}" in text, text
        x = GRID.center_mm[0] - GRID.fov_mm / 2 + (col + 0.5) * GRID.pixel_size_mm
        assert f"x {x:.1f} mm" in text and "z 4.0 mm" in text, text

        # The mouse wheel over an image scrolls to the next level.
        browser.mouse("mouseWheel", canvas[0] + 10, canvas[1] + 10, deltaX=0, deltaY=120)
        assert browser.evaluate("new Promise(r => setTimeout(() => r(window.stylefaViewer.state.level), 200))") == 2

        # Arrow keys over the focused panels step back.
        browser.evaluate("document.getElementById('sfv-panels').focus()")
        browser.key("ArrowDown", 40)
        assert browser.evaluate("new Promise(r => setTimeout(() => r(window.stylefaViewer.state.level), 200))") == 1

        # A URL fragment opens a condition; the lesion condition shows FLAIR and a cyan outline.
        browser.open(page.as_uri() + "#scan=sub-01&condition=lesion%3Ap07&level=0")
        assert browser.wait_for("window.stylefaViewer.state.condition === 2 && window.stylefaViewer.state.level === 0")
        stats = _panel_stats(browser)
        assert stats["flair"]["visible"] and stats["flair"]["std"] > 20
        cyan = browser.evaluate("""(() => { const d = document.querySelector('canvas[data-panel=input]')
            .getContext('2d').getImageData(0, 0, 256, 256).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] < 80 && d[i+1] > 180 && d[i+2] > 180) n++; return n; })()""")
        assert cyan > 50, cyan

        # Another scan is decoded only when chosen.
        browser.evaluate("(() => { const s = document.getElementById('sfv-scan'); s.value = '1';"
                         " s.dispatchEvent(new Event('change')); })()")
        assert browser.evaluate("new Promise(r => setTimeout(() => r(window.stylefaViewer.decoded()), 300))") == [0, 1]
        assert browser.evaluate("window.stylefaViewer.state.scan") == 1
        problems = browser.problems()
        assert problems == [], problems
    finally:
        browser.close()


def test_the_browser_check_sees_external_requests_and_errors(tmp_path):
    # The offline check above would pass vacuously if the driver missed requests or errors.
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img src='http://stylefa.invalid/x.png'>"
                    "<script>console.error('boom'); undefined_function();</script></body></html>")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        problems = browser.problems()
    finally:
        browser.close()
    assert any(p.startswith("request: http://stylefa.invalid") for p in problems), problems
    assert any(p.startswith("console error") for p in problems), problems
    assert any(p.startswith("exception") for p in problems), problems
