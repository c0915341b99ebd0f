"""The self-contained HTML report: figures inlined as base64 PNG, no external resources."""

from __future__ import annotations

import json
from pathlib import Path

from stylefa.study.report import sections as report_sections
from stylefa.study.report.convergence import convergence_html
from stylefa.study.report.markup import _e, figure, fmt, mean_ci, table

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.7em; font-size: 0.8em; overflow-x: auto; }
.note { color: #555; font-size: 0.9em; }
"""


def build_report(*, title: str, settings: dict, summary: dict, figures: dict[str, list[tuple[Path, str]]],
                 model_card: str | None, perceptual: dict, notes: list[str], viewer: str = "") -> str:
    """The report's HTML; ``viewer``: the interactive viewer's section (``stylefa.study.report.viewer``)."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{STYLE}{report_sections.STYLE}</style></head><body><h1>{_e(title)}</h1>"]
    context = summary.get("context", {})
    parts += [report_sections.banner_html(context), report_sections.findings_html(summary),
              report_sections.provenance_html(context)]
    n_slices = summary.get("n_slices", 0)
    parts.append(f"<p>{n_slices} slice(s); conditions: {_e(', '.join(summary.get('condition_order', [])))}. "
                 "Each projection is compared with the <b>unmodified original</b> and with the "
                 "<b>modified input</b> it was projected from. Means with 95% bootstrap CIs.</p>")
    for note in notes:
        parts.append(f"<p class='note'>{_e(note)}</p>")

    conditions = summary.get("conditions", {})
    order = summary.get("condition_order", list(conditions))
    for comparison, label in (("original", "vs unmodified original"), ("input", "vs modified input")):
        rows = []
        for name in order:
            by_region = conditions.get(name, {}).get(comparison, {})
            brain = by_region.get("brain", {})
            whole = by_region.get("whole", {})
            rows.append([_e(name), str(brain.get("ssim", {}).get("n", "–")), mean_ci(brain.get("ssim")),
                         mean_ci(whole.get("ssim")), mean_ci(brain.get("mse"), 3), mean_ci(brain.get("psnr"), 2),
                         mean_ci(whole.get("lpips"))])
        parts.append(f"<h2>Projection accuracy {label}</h2>")
        parts.append(table(["condition", "n", "SSIM brain", "SSIM image", "MSE brain", "PSNR brain (dB)",
                            f"{summary.get('lpips_network', 'LPIPS')} image"], rows))

    region_names = [r for r in ("brain", "wm", "gm", "cortex", "deep", "removed")]
    rows = []
    for name in order:
        by_region = conditions.get(name, {}).get("original", {})
        rows.append([_e(name)] + [fmt(by_region.get(r, {}).get("ssim", {}).get("mean")) for r in region_names])
    parts.append("<h2>SSIM by tissue region (vs original)</h2>")
    parts.append("<p class='note'>Regions from MNI tissue priors (see docs/study.md): wm = white matter, "
                 "gm = grey matter, cortex = GM outside the central deep-GM box, deep = GM inside it, "
                 "removed = the inpainted rectangle.</p>")
    parts.append(table(["condition"] + region_names, rows))

    parts.append(report_sections.tests_html(summary))
    parts.append(convergence_html(summary))

    if summary.get("lesions"):
        from stylefa.study.lesions.report import lesion_section

        parts.append(lesion_section(summary["lesions"]))

    for section, items in figures.items():
        if items:
            parts.append(f"<h2>{_e(section)}</h2>")
            parts.extend(figure(path, caption) for path, caption in items)
    parts.append(viewer)

    parts.append("<h2>Perceptual network</h2>")
    parts.append(f"<pre>{_e(json.dumps(perceptual, indent=2))}</pre>")
    parts.append("<h2>Model card</h2>")
    parts.append(report_sections.model_card_html(model_card))
    parts.append("<h2>Settings</h2>")
    parts.append(f"<pre>{_e(json.dumps(settings, indent=2, default=str))}</pre>")
    parts.append("</body></html>\n")
    return "".join(parts)
