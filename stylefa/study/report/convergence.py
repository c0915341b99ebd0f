"""Has the projection converged, and is a condition effect more than optimiser luck?

From the loss curves and part-way renderings that ``stylefa.study.runner`` keeps beside each
projection: SSIM inside the brain vs the unmodified original at several steps of every
projection (mean per condition = the convergence curve that justifies the step count), each
target's final loss, and, with ``restarts`` > 1, the spread of SSIM over restarts of the same
target (differently seeded noise inputs and w perturbations).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stylefa import image_metrics as metrics


def convergence_summary(cases, folder: Path, restart_of: dict[str, str] | None = None) -> dict:
    """``{"steps", "conditions": {name: {"ssim_brain": [mean per step], "n"}}, "targets": [...],
    "restarts": {...}}``; targets without stored curves are skipped."""
    from stylefa.study.runner import read_convergence

    steps: list[int] | None = None
    per_condition: dict[str, list[list[float]]] = {}
    targets = []
    for case in cases:
        record = read_convergence(folder, case.target_id)
        if record is None:
            continue
        if steps is None:
            steps = list(record["steps"])
        if list(record["steps"]) != steps:
            continue
        ssims = [metrics.reduce_ssim_map(metrics.ssim_map(case.original, r), case.brain) for r in record["renders"]]
        per_condition.setdefault(case.condition, []).append(ssims)
        targets.append({"target": case.target_id, "slice": case.slice_key, "condition": case.condition,
                        "final_loss": record["final_loss"], "final_distance": record.get("final_distance"),
                        "ssim_brain": ssims, "loss_steps": record["loss_steps"], "loss": record["loss"],
                        "distance": record.get("distance")})
    out = {"steps": steps or [], "conditions": {}, "targets": targets}
    for name, rows in per_condition.items():
        a = np.asarray(rows, dtype=np.float64)
        out["conditions"][name] = {"n": int(a.shape[0]), "ssim_brain": [float(v) for v in np.nanmean(a, axis=0)]}
    if restart_of:
        out["restarts"] = restart_spread(targets, restart_of)
    return out


def restart_spread(targets: list[dict], restart_of: dict[str, str]) -> dict:
    """Per condition: mean over targets of the SD (and range) of final SSIM across restarts."""
    groups: dict[str, dict[str, list[float]]] = {}
    for t in targets:
        base = restart_of.get(t["target"], t["target"])
        groups.setdefault(t["condition"], {}).setdefault(base, []).append(t["ssim_brain"][-1])
    out = {}
    for condition, by_target in groups.items():
        spreads = [(float(np.std(v, ddof=1)), float(np.ptp(v))) for v in by_target.values() if len(v) > 1]
        if spreads:
            out[condition] = {"targets": len(spreads), "restarts": max(len(v) for v in by_target.values()),
                              "mean_sd_ssim": float(np.mean([s for s, _ in spreads])),
                              "max_range_ssim": float(np.max([r for _, r in spreads]))}
    return out


def convergence_figure(summary: dict, stem) -> tuple[Path, Path]:
    """Left: mean SSIM (brain, vs original) vs step per condition. Right: every target's
    perceptual-distance curve."""
    from stylefa.study.report.figures import _figure, save_figure

    fig = _figure(7.2, 2.9)
    left, right = fig.subplots(1, 2)
    steps = summary["steps"]
    colours = {}
    for i, (name, entry) in enumerate(summary["conditions"].items()):
        colours[name] = f"C{i % 10}"
        left.plot(steps, entry["ssim_brain"], marker="o", ms=3, lw=1.2, color=colours[name],
                  label=f"{name} (n={entry['n']})")
    left.set_xlabel("projection step", fontsize=8)
    left.set_ylabel("SSIM brain vs original", fontsize=8)
    left.tick_params(labelsize=7)
    left.grid(alpha=0.3)
    left.legend(fontsize=6, frameon=False)
    # The perceptual distance, not the loss: the loss is dominated early on by the noise
    # regulariser (weight 1e5), which hides whether the image still changes.
    for t in summary["targets"]:
        right.plot(t["loss_steps"], t.get("distance") or t["loss"], lw=0.6, alpha=0.5,
                   color=colours.get(t["condition"], "grey"))
    right.set_yscale("log")
    right.set_xlabel("projection step", fontsize=8)
    right.set_ylabel("perceptual distance per target", fontsize=8)
    right.tick_params(labelsize=7)
    right.grid(alpha=0.3)
    return save_figure(fig, stem)


def convergence_html(summary: dict, worst: int = 8) -> str:
    """A short table: SSIM gained in the last part of the projection per condition, and the
    targets with the highest final loss (where projections may have jumped to another level)."""
    import html

    conv = summary.get("convergence") or {}
    if not conv.get("steps"):
        return ""
    steps = conv["steps"]
    rows = []
    for name, entry in conv["conditions"].items():
        s = entry["ssim_brain"]
        gain = s[-1] - s[-2] if len(s) > 1 else math.nan
        rows.append(f"<tr><td class='l'>{html.escape(name)}</td><td>{entry['n']}</td>"
                    + "".join(f"<td>{v:.3f}</td>" for v in s) + f"<td>{gain:+.4f}</td></tr>")
    head = "".join(f"<th>step {k}</th>" for k in steps)
    parts = ["<h2>Convergence and optimiser luck</h2>",
             "<p class='note'>Mean SSIM inside the brain vs the unmodified original after each number of "
             "projection steps (the same projections, rendered part-way). A last column near zero means more steps "
             "would not change the result.</p>",
             f"<table><tr><th class='l'>condition</th><th>n</th>{head}<th>last gain</th></tr>{''.join(rows)}</table>"]
    targets = sorted(conv.get("targets", []), key=lambda t: -(t.get("final_distance") or t["final_loss"]))[:worst]
    if targets:
        def num(v):
            return "–" if v is None else f"{v:.4g}"

        body = "".join(f"<tr><td class='l'>{html.escape(t['target'])}</td><td>{num(t.get('final_distance'))}</td>"
                       f"<td>{num(t['final_loss'])}</td><td>{t['ssim_brain'][-1]:.3f}</td></tr>" for t in targets)
        parts.append(f"<p class='note'>Targets farthest from their input at the end (perceptual distance; all "
                     f"targets: summary.json, convergence.targets). A projection that jumped to another slice "
                     f"level shows up here with a low SSIM:</p><table><tr><th class='l'>target</th>"
                     f"<th>final distance</th><th>final loss</th><th>SSIM brain</th></tr>{body}</table>")
    spread = conv.get("restarts") or {}
    if spread:
        body = "".join(f"<tr><td class='l'>{html.escape(c)}</td><td>{e['targets']}</td><td>{e['restarts']}</td>"
                       f"<td>{e['mean_sd_ssim']:.4f}</td><td>{e['max_range_ssim']:.4f}</td></tr>"
                       for c, e in spread.items())
        parts.append("<p class='note'>Restarts: the same target projected again with other random noise inputs "
                     "and w perturbations. Compare the SD with the differences between conditions.</p>"
                     "<table><tr><th class='l'>condition</th><th>targets</th><th>restarts</th>"
                     f"<th>mean SD of SSIM</th><th>largest range</th></tr>{body}</table>")
    return "".join(parts)
