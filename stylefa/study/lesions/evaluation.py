"""Lesion detection and healing, per patient: the GAN residual against simple baselines.

Every lesion slice (a patient's lesion mask placed on a lesion-free FA slice) is projected
twice with the same seed: lesioned (``L`` -> ``P``) and without the lesion (the control,
``O`` -> ``C``). Each method gives a score map, scored on the same pixels (the slice's brain
mask) against the same label (the lesion mask):

- ``residual``  = |P - L|        (the GAN residual)
- ``residual_wplus`` = |P+ - L|  (the residual of a W+ projection, when asked for)
- ``normative`` = |z(L)|         (``stylefa.study.lesions.baselines.NormativeModel``)
- ``template``  = |L - template| (``stylefa.study.lesions.baselines.TemplateFA``)

Per patient (all its lesion slices pooled, on every scan it was placed on) and pooled over
patients: voxel AUROC, average precision (AUPRC), best-possible Dice and Dice at the
**healthy threshold** (the ``HEALTHY_PERCENTILE``-th percentile of the method's scores on the
brain pixels of all lesion-free control slices: chosen without labels). 95 % CIs by cluster
bootstrap: a patient's slices (>= ``MIN_BOOTSTRAP_CLUSTERS`` slices needed), the pooled
numbers' patients, drawn with replacement. Per-patient means get a percentile bootstrap over
patients and methods are compared by paired Wilcoxon signed-rank tests over patients.

Slices with fewer than ``MIN_SLICE_LESION_PIXELS`` lesion pixels get no per-slice AUROC/AP/Dice
(flagged ``per_slice_metrics = False``); their pixels still count in their patient's pool. A
patient with fewer lesion pixels than that in total is flagged ``below_min_pixels`` and left
out of the means over patients and the paired tests (its pixels stay in the pooled numbers).

Slice level: does a global score separate lesioned slices from their lesion-free controls?
AUROC (lesioned = positive) of SSIM (negated: lower = more anomalous), MSE and LPIPS of each
projection against its input inside the brain (LPIPS: whole image) and of each method's mean
score inside the brain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stylefa import image_metrics as metrics
from stylefa.study import stats
from stylefa.study.lesions import detection, healing

METHODS = ("residual", "residual_wplus", "normative", "template")
METHOD_LABELS = {"residual": "GAN residual |projection − input|",
                 "residual_wplus": "GAN residual after W+ projection", "normative": "normative |z|",
                 "template": "|FA − template FA|"}
MIN_SLICE_LESION_PIXELS = 20
MIN_BOOTSTRAP_CLUSTERS = 3
HEALTHY_PERCENTILE = 99.0
N_BOOT = 1000
PATIENT_METRICS = ("auroc", "ap", "best_dice", "dice_healthy")
SLICE_SCORES = ("ssim", "mse", "lpips", "residual_mean", "normative_mean", "template_mean")


@dataclass
class LesionSlice:
    """One lesion slice and its control, with every method's scores (arrays [R, R])."""

    patient: str
    subject: str
    slice_key: str
    z_mm: float
    lesion: np.ndarray  # bool, inside the brain
    brain: np.ndarray
    original: np.ndarray
    lesioned: np.ndarray
    projection: np.ndarray
    control: np.ndarray  # projection of the original (same seed)
    scores: dict = field(default_factory=dict)  # method -> score of the lesioned input
    healthy: dict = field(default_factory=dict)  # method -> score of the lesion-free original
    normative_mean: np.ndarray | None = None
    lpips: dict = field(default_factory=dict)  # "lesioned" / "control" -> LPIPS vs input
    # Other projections scored as residuals: method -> (projection of L, projection of O).
    extra: dict = field(default_factory=dict)

    @property
    def lesion_pixels(self) -> int:
        return int(self.lesion.sum())


def score_slice(item: LesionSlice, normative=None, template=None, plane=None) -> LesionSlice:
    """Fill ``item.scores`` / ``item.healthy`` for every available method."""
    item.scores["residual"] = np.abs(item.projection.astype(np.float64) - item.lesioned)
    item.healthy["residual"] = np.abs(item.control.astype(np.float64) - item.original)
    for method, (projection, control) in item.extra.items():
        item.scores[method] = np.abs(projection.astype(np.float64) - item.lesioned)
        item.healthy[method] = np.abs(control.astype(np.float64) - item.original)
    if normative is not None:
        item.scores["normative"] = normative.score(item.lesioned, item.z_mm)
        item.healthy["normative"] = normative.score(item.original, item.z_mm)
        item.normative_mean = normative.mean_at(item.z_mm)
    if template is not None:
        item.scores["template"] = template.score(item.lesioned, plane)
        item.healthy["template"] = template.score(item.original, plane)
    return item


def _nan_ci(values) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [math.nan, math.nan]
    return [float(x) for x in np.percentile(v, [2.5, 97.5])]


def cluster_bootstrap(ranked: detection.RankedPixels, n_clusters: int, threshold: float, n_boot: int,
                      seed: int) -> dict[str, list[float]]:
    """95 % percentile CIs of the metrics when clusters (slices, patients) are drawn with replacement."""
    if n_clusters < MIN_BOOTSTRAP_CLUSTERS:
        return {m: [math.nan, math.nan] for m in PATIENT_METRICS}
    draws = ranked.bootstrap(n_clusters, n_boot, seed, threshold)
    return {m: _nan_ci(draws[m]) for m in PATIENT_METRICS}


def _pool(items: list[LesionSlice], method: str, group_of) -> detection.RankedPixels:
    scores = np.concatenate([it.scores[method][it.brain] for it in items])
    labels = np.concatenate([it.lesion[it.brain] for it in items])
    groups = np.concatenate([np.full(int(it.brain.sum()), group_of(i, it)) for i, it in enumerate(items)])
    return detection.RankedPixels(scores, labels, groups)


def _metric_row(ranked, threshold, clusters, n_boot, seed) -> dict:
    point = ranked.metrics(None, threshold)
    cis = cluster_bootstrap(ranked, clusters, threshold, n_boot, seed)
    row = dict(point)
    for m in PATIENT_METRICS:
        row[f"{m}_ci95"] = cis[m]
    return row


def slice_rows(items: list[LesionSlice], methods) -> list[dict]:
    """Per lesion slice: pixel counts, healing indices, per-slice detection and global scores."""
    rows = []
    for it in items:
        enough = it.lesion_pixels >= MIN_SLICE_LESION_PIXELS
        row = {"patient": it.patient, "subject": it.subject, "slice": it.slice_key, "z_mm": it.z_mm,
               "lesion_pixels": it.lesion_pixels, "brain_pixels": int(it.brain.sum()), "per_slice_metrics": enough,
               "healing_index": healing.healing_index(it.projection, it.lesioned, it.original, it.lesion),
               "healing_index_control": healing.control_healing_index(it.projection, it.control, it.original,
                                                                      it.lesioned, it.lesion),
               "healing_index_normative": math.nan if it.normative_mean is None else healing.healing_index(
                   it.projection, it.lesioned, np.nan_to_num(it.normative_mean, nan=0.0),
                   it.lesion & np.isfinite(it.normative_mean))}
        for m in methods:
            ranked = detection.RankedPixels(it.scores[m][it.brain], it.lesion[it.brain])
            values = ranked.metrics() if enough else {}
            for metric in ("auroc", "ap", "best_dice"):
                row[f"{metric}_{m}"] = values.get(metric, math.nan)
        for role, image, reference in (("lesioned", it.projection, it.lesioned), ("control", it.control, it.original)):
            row[f"ssim_{role}"] = metrics.ssim(reference, image, it.brain)
            row[f"mse_{role}"] = metrics.mse(reference, image, it.brain)
            row[f"lpips_{role}"] = it.lpips.get(role, math.nan)
        for m in methods:
            row[f"{m}_mean_lesioned"] = float(it.scores[m][it.brain].mean())
            row[f"{m}_mean_control"] = float(it.healthy[m][it.brain].mean())
        rows.append(row)
    return rows


def slice_level(rows: list[dict], methods) -> dict:
    """Slice-level AUROC (lesioned vs control slices) and paired Wilcoxon per global score."""
    out = {}
    for name in ("ssim", "mse", "lpips") + tuple(f"{m}_mean" for m in methods):
        les = np.array([r[f"{name}_lesioned"] for r in rows], dtype=np.float64)
        ctl = np.array([r[f"{name}_control"] for r in rows], dtype=np.float64)
        ok = np.isfinite(les) & np.isfinite(ctl)
        if not ok.any():
            continue
        sign = -1.0 if name == "ssim" else 1.0  # higher = more anomalous
        scores = sign * np.r_[les[ok], ctl[ok]]
        labels = np.r_[np.ones(ok.sum(), bool), np.zeros(ok.sum(), bool)]
        keys = [r["slice"] + "|" + r["patient"] for r, good in zip(rows, ok) if good]
        out[name] = {"auroc": detection.auroc(scores, labels), "n_pairs": int(ok.sum()),
                     "orientation": "lower = lesioned" if sign < 0 else "higher = lesioned",
                     "mean_lesioned": float(les[ok].mean()), "mean_control": float(ctl[ok].mean()),
                     "wilcoxon": stats.paired_wilcoxon(dict(zip(keys, les[ok])), dict(zip(keys, ctl[ok])))}
    return out


def evaluate_lesions(items: list[LesionSlice], *, n_boot: int = N_BOOT, seed: int = 0,
                     notes: list[str] | None = None, flair_patients=()) -> tuple[list[dict], list[dict], dict]:
    """(per-slice rows, per-patient rows, the summary['lesions'] dict); see the module docstring."""
    methods = [m for m in METHODS if all(m in it.scores for it in items)]
    thresholds = {m: detection.healthy_threshold(np.concatenate([it.healthy[m][it.brain] for it in items]),
                                                 HEALTHY_PERCENTILE) for m in methods}
    patients: dict[str, list[LesionSlice]] = {}
    for it in items:
        patients.setdefault(it.patient, []).append(it)
    patient_rows, patient_summary = [], {}
    for p_index, (patient, group) in enumerate(patients.items()):
        pixels = sum(it.lesion_pixels for it in group)
        below = pixels < MIN_SLICE_LESION_PIXELS
        entry = {"subjects": sorted({it.subject for it in group}), "n_slices": len(group), "lesion_pixels": pixels,
                 "brain_pixels": int(sum(it.brain.sum() for it in group)), "below_min_pixels": below,
                 "flair": patient in flair_patients, "methods": {}}
        for m in methods:
            ranked = _pool(group, m, lambda i, it: i)
            row = _metric_row(ranked, thresholds[m], len(group), n_boot, seed + p_index)
            entry["methods"][m] = row
            patient_rows.append({"patient": patient, "subjects": " ".join(entry["subjects"]), "method": m,
                                 "n_slices": len(group), "lesion_pixels": pixels,
                                 "brain_pixels": entry["brain_pixels"], "below_min_pixels": below,
                                 "healthy_threshold": thresholds[m], **_flat(row)})
        patient_summary[patient] = entry
    names = list(patients)
    pooled = {}
    for m in methods:
        ranked = _pool(items, m, lambda i, it: names.index(it.patient))
        pooled[m] = _metric_row(ranked, thresholds[m], len(names), n_boot, seed)
        patient_rows.append({"patient": "ALL", "subjects": " ".join(sorted({it.subject for it in items})),
                             "method": m, "n_slices": len(items),
                             "lesion_pixels": sum(it.lesion_pixels for it in items),
                             "brain_pixels": int(sum(it.brain.sum() for it in items)), "below_min_pixels": False,
                             "healthy_threshold": thresholds[m], **_flat(pooled[m])})
    counted = [p for p, e in patient_summary.items() if not e["below_min_pixels"]]
    means = {m: {metric: stats.summarize([patient_summary[p]["methods"][m][metric] for p in counted],
                                         n_boot=n_boot, seed=seed)
                 for metric in PATIENT_METRICS} for m in methods}
    tests = {}
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            tests[f"{a} vs {b}"] = {
                metric: stats.paired_wilcoxon({p: patient_summary[p]["methods"][a][metric] for p in counted},
                                              {p: patient_summary[p]["methods"][b][metric] for p in counted})
                for metric in PATIENT_METRICS}
    rows = slice_rows(items, methods)
    summary = {
        "methods": methods,
        "method_labels": {m: METHOD_LABELS[m] for m in methods},
        "settings": {"min_slice_lesion_pixels": MIN_SLICE_LESION_PIXELS, "healthy_percentile": HEALTHY_PERCENTILE,
                     "min_bootstrap_clusters": MIN_BOOTSTRAP_CLUSTERS, "n_boot": n_boot},
        "healthy_thresholds": thresholds,
        "n_patients": len(names),
        "n_slices": len(items),
        "n_slices_below_min_pixels": sum(not r["per_slice_metrics"] for r in rows),
        "lesion_pixels": {"total": sum(it.lesion_pixels for it in items),
                          "per_slice": stats.summarize([it.lesion_pixels for it in items], n_boot=n_boot, seed=seed)},
        "patients": patient_summary,
        "pooled": pooled,
        "mean_over_patients": means,
        "tests": tests,
        "healing": {name: stats.summarize([r[name] for r in rows], n_boot=n_boot, seed=seed)
                    for name in ("healing_index", "healing_index_control", "healing_index_normative")},
        "slice_level": slice_level(rows, methods),
        "notes": list(notes or []),
    }
    return rows, patient_rows, summary


def _flat(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key.endswith("_ci95"):
            out[key[:-5] + "_ci_lo"], out[key[:-5] + "_ci_hi"] = value
        else:
            out[key] = value
    return out


PATIENT_COLUMNS = ("patient", "subjects", "method", "n_slices", "lesion_pixels", "brain_pixels", "below_min_pixels",
                   "auroc", "auroc_ci_lo", "auroc_ci_hi", "ap", "ap_ci_lo", "ap_ci_hi", "best_dice", "best_dice_ci_lo",
                   "best_dice_ci_hi", "best_dice_threshold", "healthy_threshold", "dice_healthy",
                   "dice_healthy_ci_lo", "dice_healthy_ci_hi")


def slice_columns(methods) -> tuple[str, ...]:
    cols = ["patient", "subject", "slice", "z_mm", "lesion_pixels", "brain_pixels", "per_slice_metrics",
            "healing_index", "healing_index_control", "healing_index_normative"]
    cols += [f"{metric}_{m}" for m in methods for metric in ("auroc", "ap", "best_dice")]
    cols += [f"{name}_{role}" for name in ("ssim", "mse", "lpips") for role in ("lesioned", "control")]
    cols += [f"{m}_mean_{role}" for m in methods for role in ("lesioned", "control")]
    return tuple(cols)
