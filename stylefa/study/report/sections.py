"""Report sections a reviewer reads first: the banner, the findings in words, provenance,
the paired tests between conditions and the rendered model card.

All HTML here is built from ``summary.json`` (and the model card's Markdown); nothing is
typed in by hand. ``stylefa.study.report.build_report`` places these sections.
"""

from __future__ import annotations

import html
import math

from stylefa.study.report.findings import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, caveats, findings, format_p

STYLE = """
.banner { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.6em 0.9em; margin: 1em 0; }
.findings li { margin: 0.35em 0; }
.verdict { font-weight: bold; padding: 0 0.35em; border-radius: 3px; font-size: 0.85em; }
.v-reproduced { background: #d4edda; } .v-not-reproduced { background: #f8d7da; } .v-inconclusive { background: #e2e3e5; }
.caveats { color: #6b5400; font-size: 0.9em; }
.card table { font-size: 0.85em; } .card td, .card th { text-align: left; } .card img { max-width: 420px; }
"""

_VERDICT_CLASS = {REPRODUCED: "v-reproduced", NOT_REPRODUCED: "v-not-reproduced", INCONCLUSIVE: "v-inconclusive"}


def _e(text) -> str:
    return html.escape(str(text))


def banner_html(context: dict) -> str:
    """A yellow banner when the data are simulated or the model is the demo model."""
    lines = []
    if context.get("simulated"):
        lines.append("<b>Simulated data.</b> These slices come from <code>stylefa cohort</code> (warped copies of "
                     "the MNI FA template with noise), not from scans of people.")
    if context.get("demo_model"):
        lines.append("<b>Demo model.</b> The generator is the small 64×64 model shipped with stylefa for "
                     "demonstration; its numbers show what the tool does, not a scientific result.")
    return f"<div class='banner'>{'<br>'.join(lines)}</div>" if lines else ""


def findings_html(summary: dict) -> str:
    """'Findings' section: one sentence per claim with its verdict, then the caveats."""
    found = findings(summary)
    items = "".join(
        f"<li><span class='verdict {_VERDICT_CLASS[f.verdict]}'>{_e(f.verdict)}</span> {_e(f.sentence)}</li>"
        for f in found)
    counts = {v: sum(f.verdict == v for f in found) for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)}
    head = ", ".join(f"{n} {v}" for v, n in counts.items())
    notes = caveats(summary.get("context", {}))
    caveat_html = ("<p class='caveats'><b>Caveats.</b> " + " ".join(_e(c) for c in notes) + "</p>") if notes else ""
    return ("<h2>Findings</h2>"
            f"<p class='note'>The study's claims checked against these measurements ({head}). ΔSSIM = mean paired "
            "difference of SSIM inside the brain vs the unmodified original, [95% bootstrap CI], two-sided "
            "Wilcoxon signed-rank p, n = paired slices. Rules: docs/study.md (Findings).</p>"
            f"<ul class='findings'>{items}</ul>{caveat_html}")


def findings_text(summary: dict) -> list[str]:
    """The findings as plain lines (for the terminal)."""
    return [f"[{f.verdict}] {f.sentence}" for f in findings(summary)]


PROVENANCE_FIELDS = (("stylefa", "stylefa_version"), ("date (UTC)", "date"), ("runtime of this invocation", "runtime"),
                     ("hardware", "hardware"), ("torch", "torch"), ("device", "device"), ("threads", "threads"),
                     ("network", "network"), ("network sha256", "network_sha256"),
                     ("data: registration and tensor fit", "data_methods"))


def provenance_html(context: dict) -> str:
    rows = []
    for label, key in PROVENANCE_FIELDS:
        value = context.get(key)
        if value is None:
            continue
        if key == "runtime" and isinstance(value, (int, float)):
            value = f"{value:.0f} s ({value / 60:.1f} min)"
        rows.append(f"<tr><th class='l'>{_e(label)}</th><td class='l'>{_e(value)}</td></tr>")
    return "<h2>Provenance</h2><table>" + "".join(rows) + "</table>" if rows else ""


def _test_cells(t: dict) -> list[str]:
    lo, hi = (t.get("ci95") or [math.nan, math.nan])[:2]

    def num(v):
        return "–" if v is None or not math.isfinite(v) else f"{v:+.4f}"

    min_p = t.get("min_possible_p", 1.0)
    if t.get("n", 0) < 2:
        p = "too few pairs"
    elif min_p > 0.05:
        p = f"n too small (min p {min_p:.3g})"
    else:
        p = format_p(t.get("p_value")).replace("p = ", "").replace("p ", "")
    return [str(t.get("n", 0)), f"{num(t.get('mean_difference'))} [{num(lo)}, {num(hi)}]", _e(p)]


def tests_html(summary: dict) -> str:
    """Paired tests vs the baseline and between conditions (SSIM inside the brain)."""
    parts = []
    for section, title in (("tests", "Each condition vs unmodified (A − none)"),
                           ("pairwise", "Conditions compared with each other (A − B)")):
        rows = []
        for pair, by_region in summary.get(section, {}).items():
            t = by_region.get("brain", {}).get("ssim")
            if t:
                cells = [_e(pair)] + _test_cells(t)
                rows.append("<tr>" + "".join(f"<td class='{'l' if i == 0 else ''}'>{c}</td>"
                                             for i, c in enumerate(cells)) + "</tr>")
        if rows:
            parts.append(f"<h3>{_e(title)}</h3><table><tr><th class='l'>comparison</th><th>n pairs</th>"
                         "<th>mean ΔSSIM brain [95% CI]</th><th>Wilcoxon p</th></tr>" + "".join(rows) + "</table>")
    if not parts:
        return ""
    return ("<h2>Paired tests (SSIM inside the brain, vs original)</h2><p class='note'>With fewer than 6 pairs "
            "the exact Wilcoxon test cannot reach p &lt; 0.05 whatever the data; the table says so instead of "
            "printing a p.</p>" + "".join(parts))


def model_card_html(card: str | None) -> str:
    """The model card rendered from Markdown (tables, code blocks); images are dropped because
    the report is self-contained and the card's images live next to the checkpoint."""
    if not card:
        return "<p class='note'>The checkpoint has no model card.</p>"
    import re

    import markdown

    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", card)
    md = markdown.Markdown(extensions=["tables", "fenced_code"], output_format="html")
    # Raw HTML in the card is shown as text, not run: a user's checkpoint may carry any card.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    body = md.convert(text)
    # The card's own headings sit below the report's "Model card" heading.
    body = re.sub(r"<(/?)h([1-4])>", lambda m: f"<{m.group(1)}h{int(m.group(2)) + 2}>", body)
    return f"<div class='card'>{body}</div>"
