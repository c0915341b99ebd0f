"""The report's lesion section, from ``summary['lesions']`` (schema in docs/study.md)."""

from __future__ import annotations

from stylefa.study.report.markup import _e, fmt, mean_ci, table

METRIC_LABELS = (("auroc", "AUROC"), ("ap", "AUPRC"), ("best_dice", "best Dice"),
                 ("dice_healthy", "Dice @ healthy thr."))


def _value_ci(entry: dict, metric: str, digits: int = 3) -> str:
    lo, hi = entry.get(f"{metric}_ci95", [None, None])
    value = fmt(entry.get(metric), digits)
    if lo is None or hi is None or lo != lo or hi != hi:
        return value
    return f"{value} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def lesion_section(lesions: dict) -> str:
    methods = lesions.get("methods", [])
    settings = lesions.get("settings", {})
    labels = lesions.get("method_labels", {})
    parts = ["<h2>Lesions: healing and detection against baselines</h2>"]
    pixels = lesions.get("lesion_pixels", {})
    parts.append(
        f"<p>{lesions.get('n_patients', 0)} patient mask(s) on {lesions.get('n_slices', 0)} lesion slice(s), "
        f"{pixels.get('total', 0)} lesion pixels in all (per slice: median "
        f"{fmt(pixels.get('per_slice', {}).get('median'), 1)}). Each lesion slice is also projected without its "
        "lesion (same seed: the control). Methods, scored on the same brain pixels against the same lesion "
        "mask: " + "; ".join(f"<b>{_e(m)}</b> = {_e(labels.get(m, m))}" for m in methods) + ". "
        f"Dice @ healthy thr. uses the {fmt(settings.get('healthy_percentile'), 0)}th percentile of each method's "
        "scores on the lesion-free controls (chosen without labels); best Dice picks the threshold with the "
        f"labels (an upper bound). Slices with fewer than {settings.get('min_slice_lesion_pixels')} lesion pixels "
        f"get no per-slice scores ({lesions.get('n_slices_below_min_pixels', 0)} such slice(s)); their pixels "
        "count in their patient's pool. 95% CIs: cluster bootstrap over a patient's slices (at least "
        f"{settings.get('min_bootstrap_clusters')} needed) and over patients for the pooled row.</p>")
    for note in lesions.get("notes", []):
        parts.append(f"<p class='note'>{_e(note)}</p>")

    healing = lesions.get("healing", {})
    rows = [[_e(label), str(healing.get(key, {}).get("n", 0)), mean_ci(healing.get(key), 3),
             fmt(healing.get(key, {}).get("median"), 3)]
            for key, label in (("healing_index", "vs original FA"), ("healing_index_control", "control-corrected"),
                               ("healing_index_normative", "vs normative mean"))]
    parts.append("<h3>Healing index (1 = lesion healed, 0 = lesion reproduced)</h3>")
    parts.append(table(["reference", "slices", "mean [95% CI]", "median"], rows))

    pooled = lesions.get("pooled", {})
    means = lesions.get("mean_over_patients", {})
    rows = []
    for m in methods:
        rows.append([_e(m), "pooled pixels"] + [_value_ci(pooled.get(m, {}), k) for k, _ in METRIC_LABELS])
        rows.append([_e(m), "mean over patients"] + [mean_ci(means.get(m, {}).get(k), 3) for k, _ in METRIC_LABELS])
    parts.append("<h3>Detection, all patients</h3>")
    parts.append(table(["method", "how"] + [label for _, label in METRIC_LABELS], rows, left=2))

    tests = lesions.get("tests", {})
    if tests:
        rows = []
        for pair, by_metric in tests.items():
            for k, label in METRIC_LABELS:
                t = by_metric.get(k)
                if t:
                    rows.append([_e(pair), label, str(t["n"]), fmt(t["median_difference"], 3),
                                 fmt(t.get("p_value"), 3)])
        parts.append("<h3>Paired Wilcoxon signed-rank tests over patients</h3>")
        parts.append(table(["methods", "metric", "patients", "median difference", "p"], rows, left=2))

    rows = []
    for patient, entry in lesions.get("patients", {}).items():
        for m in methods:
            values = entry["methods"].get(m, {})
            rows.append([_e(patient) + (" (FLAIR)" if entry.get("flair") else ""), _e(m), str(entry["n_slices"]),
                         str(entry["lesion_pixels"]) + (" (below minimum)" if entry["below_min_pixels"] else "")]
                        + [_value_ci(values, k) for k, _ in METRIC_LABELS])
    parts.append("<h3>Per patient</h3>")
    parts.append(table(["patient", "method", "slices", "lesion pixels"] + [label for _, label in METRIC_LABELS],
                       rows, left=2))

    level = lesions.get("slice_level", {})
    if level:
        rows = [[_e(name), str(e["n_pairs"]), fmt(e["auroc"], 3), _e(e["orientation"]), fmt(e["mean_lesioned"], 4),
                 fmt(e["mean_control"], 4), fmt(e["wilcoxon"].get("p_value"), 3)] for name, e in level.items()]
        parts.append("<h3>Slice level: do global scores flag lesioned slices?</h3>")
        parts.append("<p class='note'>Each lesioned slice against its own lesion-free control (same subject, same "
                     "level). SSIM/MSE inside the brain and LPIPS of the whole image, projection vs its input; "
                     "&lt;method&gt;_mean = that method's mean score inside the brain. AUROC 0.5 = no separation.</p>")
        parts.append(table(["score", "pairs", "slice AUROC", "orientation", "mean lesioned", "mean control",
                            "Wilcoxon p"], rows))
    return "".join(parts)
