"""The study's claims, checked against a ``summary.json``: one sentence each, with a verdict.

The study that stylefa reproduces (docs/study.md) made five claims about projections of FA slices
that the demo and any re-run should be read against:

1. projections of unmodified slices are close but not identical to their targets
   (SSIM ~ 0.85, MSE < 0.0045 in the study);
2. inputs with Gaussian noise project farther from the original than unmodified ones;
3. so do inputs with salt & pepper noise;
4. blurred and inpainted inputs project *closer* to the original than noisy ones
   ("deceptively close": the projection looks like a plausible, complete slice);
5. lesions are "healed" by the projection, so |projection - lesioned input| shows them
   (a lesion detector better than chance: AUROC > 0.5).

``findings(summary)`` turns the statistics that ``stylefa.study.tables`` wrote into one
``Finding`` per claim and condition: the measured effect with its 95 % bootstrap CI, the
two-sided paired Wilcoxon p and the number of paired slices, marked

- ``reproduced``: the effect is significant (p < alpha) in the claimed direction (claims 2-4),
  or its CI lies inside the claimed range (claims 1, 5);
- ``not reproduced``: significant in the other direction, no significant difference although
  there were enough pairs (``MIN_PAIRS_FOR_NULL``), or the CI lies outside the claimed range;
- ``inconclusive``: anything else, in particular too few pairs for the test to reach alpha at
  all (fewer than 6 pairs: the exact test's smallest p is 2 / 2**n > 0.05), which is stated
  instead of a meaningless p.

Everything is computed from the summary dictionary (pure Python, no I/O); SSIM and MSE are
those inside the brain, vs the unmodified original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
ALPHA = 0.05
# Below this many pairs a non-significant test says little (power): "inconclusive", not "not reproduced".
MIN_PAIRS_FOR_NULL = 12
# Claim 1: the study's values, and the range we accept as "close but imperfect".
STUDY_SSIM, STUDY_MSE = 0.85, 0.0045
CLOSE_SSIM_RANGE = (0.70, 0.99)
REGION = "brain"


@dataclass(frozen=True)
class Finding:
    claim: str  # short name of the study's claim
    verdict: str  # REPRODUCED | NOT_REPRODUCED | INCONCLUSIVE
    sentence: str  # the measured effect, CI, p, n in words

    def to_dict(self) -> dict:
        return {"claim": self.claim, "verdict": self.verdict, "sentence": self.sentence}


def _ok(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def format_p(p) -> str:
    if not _ok(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _num(value, digits: int = 3) -> str:
    if not _ok(value):
        return "n/a"
    return f"{value:.{digits}f}".replace("-", "−")


def _effect(test: dict, name: str = "ΔSSIM", digits: int = 3) -> str:
    lo, hi = (test.get("ci95") or [math.nan, math.nan])[:2]
    return f"{name} {_num(test.get('mean_difference'), digits)} [{_num(lo, digits)}, {_num(hi, digits)}]"


def directional_verdict(test: dict | None, expected_sign: int, alpha: float = ALPHA) -> tuple[str, str]:
    """Verdict and the statistics part of the sentence for a paired test of ``A - B`` whose
    claimed direction is ``expected_sign`` (+1: A larger, -1: A smaller)."""
    if not test or test.get("n", 0) < 2:
        n = 0 if not test else test.get("n", 0)
        return INCONCLUSIVE, f"n = {n} paired slice(s): too few for any test"
    n = int(test["n"])
    stats = f"{_effect(test)}, n = {n}"
    min_p = test.get("min_possible_p", 2.0 / 2.0**n)
    p = test.get("p_value")
    if min_p > alpha:
        return INCONCLUSIVE, (f"{stats}; with n = {n} pairs a Wilcoxon test cannot reach p < {alpha:g} "
                              f"(smallest possible p = {min_p:.3g}), so this is no test at all")
    if not _ok(p):
        return INCONCLUSIVE, f"{stats}; no test possible ({test.get('note', 'no differences')})"
    stats = f"{_effect(test)}, {format_p(p)}, n = {n}"
    sign = 1 if test.get("mean_difference", 0) > 0 else -1
    if p < alpha:
        return (REPRODUCED, stats) if sign == expected_sign else (NOT_REPRODUCED, stats + " (opposite direction)")
    if n >= MIN_PAIRS_FOR_NULL:
        return NOT_REPRODUCED, stats + " (no significant difference)"
    return INCONCLUSIVE, stats + f" (not significant with only {n} pairs)"


def _conditions(summary: dict, prefix: str) -> list[str]:
    order = summary.get("condition_order") or list(summary.get("conditions", {}))
    return [c for c in order if c.startswith(prefix)]


def _test(summary: dict, section: str, a: str, b: str, metric: str = "ssim") -> dict | None:
    """Test of ``a - b``; looks the pair up in either order and flips the sign if needed."""
    tests = summary.get(section, {})
    entry = tests.get(f"{a} vs {b}", {}).get(REGION, {}).get(metric)
    if entry:
        return entry
    entry = tests.get(f"{b} vs {a}", {}).get(REGION, {}).get(metric)
    if not entry:
        return None
    flipped = dict(entry)
    for key in ("mean_difference", "median_difference"):
        if _ok(entry.get(key)):
            flipped[key] = -entry[key]
    if entry.get("ci95"):
        lo, hi = entry["ci95"]
        flipped["ci95"] = [-hi if _ok(hi) else hi, -lo if _ok(lo) else lo]
    return flipped


def _unmodified(summary: dict, baseline: str) -> Finding:
    claim = "unmodified slices project close but imperfectly"
    entry = summary.get("conditions", {}).get(baseline, {}).get("original", {}).get(REGION, {})
    ssim, mse = entry.get("ssim"), entry.get("mse")
    if not ssim:
        return Finding(claim, INCONCLUSIVE, f"No unmodified ('{baseline}') projections were measured.")
    lo, hi = ssim["ci95"]
    text = (f"Projections of unmodified slices: SSIM {_num(ssim['mean'])} [{_num(lo)}, {_num(hi)}] inside the brain"
            + (f", MSE {mse['mean']:.4f} [{mse['ci95'][0]:.4f}, {mse['ci95'][1]:.4f}]" if mse else "")
            + f", n = {ssim['n']} (study: SSIM ≈ {STUDY_SSIM}, MSE < {STUDY_MSE}; "
              f"accepted as 'close but imperfect': SSIM within {CLOSE_SSIM_RANGE[0]}–{CLOSE_SSIM_RANGE[1]}"
              f" and MSE < {STUDY_MSE}).")
    mse_ok = mse is not None and _ok(mse["mean"]) and mse["mean"] < STUDY_MSE
    if ssim["n"] < 2:
        verdict = INCONCLUSIVE
    elif CLOSE_SSIM_RANGE[0] <= lo and hi < CLOSE_SSIM_RANGE[1] and mse_ok:
        verdict = REPRODUCED
    elif hi < CLOSE_SSIM_RANGE[0] or lo >= CLOSE_SSIM_RANGE[1]:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return Finding(claim, verdict, text)


def _versus_baseline(summary: dict, condition: str, baseline: str, label: str) -> Finding:
    verdict, stats = directional_verdict(_test(summary, "tests", condition, baseline), expected_sign=-1)
    return Finding(f"{label} project farther than unmodified",
                   verdict, f"{label} ({condition}) project farther from the original than unmodified slices: {stats}.")


def _closer_than_noise(summary: dict, condition: str, noise: str, label: str) -> Finding:
    verdict, stats = directional_verdict(_test(summary, "pairwise", condition, noise), expected_sign=+1)
    return Finding(f"{label} deceptively close (closer than noise)", verdict,
                   f"{label} ({condition}) project closer to the original than noisy ones ({noise}): {stats}.")


def lesion_auroc_ci(lesions: dict, method: str) -> tuple[float, float, str]:
    """The 95 % CI of ``method``'s pooled AUROC: over patients (cluster bootstrap), or, with a
    single patient (the demo's synthetic mask), over that patient's slices."""
    lo, hi = (lesions["pooled"][method].get("auroc_ci95") or [math.nan, math.nan])[:2]
    if not (_ok(lo) and _ok(hi)) and lesions.get("n_patients") == 1:
        only = next(iter((lesions.get("patients") or {}).values()), {})
        lo, hi = ((only.get("methods") or {}).get(method, {}).get("auroc_ci95") or [math.nan, math.nan])[:2]
        return lo, hi, "slices"
    return lo, hi, "patients"


def _lesions(summary: dict) -> Finding:
    """Claim 5 from ``summary['lesions']`` (``stylefa.study.lesions.evaluation``): the pooled voxel AUROC
    of the GAN residual with its CI, the healing index, and the baselines scored the same way."""
    claim = "lesions are healed, the difference map shows them"
    lesions = summary.get("lesions") or {}
    residual = (lesions.get("pooled") or {}).get("residual") or {}
    auroc = residual.get("auroc")
    if not _ok(auroc):
        return Finding(claim, INCONCLUSIVE, "No lesions were projected.")
    lo, hi, over = lesion_auroc_ci(lesions, "residual")
    text = (f"|projection − lesioned input| finds the lesions better than chance: voxel AUROC {_num(auroc)} "
            f"[{_num(lo)}, {_num(hi)}] (CI over {over}), {lesions.get('n_patients', 0)} lesion mask(s), "
            f"{lesions.get('n_slices', 0)} slice(s)")
    healing = (lesions.get("healing") or {}).get("healing_index") or {}
    if _ok(healing.get("mean")):
        h_lo, h_hi = (healing.get("ci95") or [math.nan, math.nan])[:2]
        text += (f"; healing index {_num(healing['mean'], 2)} [{_num(h_lo, 2)}, {_num(h_hi, 2)}] "
                 "(1 = healed back to the original FA, 0 = lesion reproduced)")
    labels = lesions.get("method_labels") or {}
    baselines = [f"{labels.get(m, m)} {_num(lesions['pooled'][m].get('auroc'))}"
                 for m in lesions.get("methods", []) if m != "residual" and m in lesions["pooled"]]
    if baselines:
        text += "; baselines scored on the same voxels: AUROC " + ", ".join(baselines)
    if not (_ok(lo) and _ok(hi)):
        return Finding(claim, INCONCLUSIVE, text + " (too few masks or slices for an interval).")
    verdict = REPRODUCED if lo > 0.5 else NOT_REPRODUCED if hi <= 0.5 else INCONCLUSIVE
    return Finding(claim, verdict, text + ".")


def findings(summary: dict, baseline: str = "none") -> list[Finding]:
    """One ``Finding`` per claim (and per matching condition) of the study, from a summary."""
    out = [_unmodified(summary, baseline)]
    noises = _conditions(summary, "noise:")
    for condition in noises:
        out.append(_versus_baseline(summary, condition, baseline, "Noisy inputs"))
    for condition in _conditions(summary, "saltpepper:"):
        out.append(_versus_baseline(summary, condition, baseline, "Salt & pepper inputs"))
    for prefix, label in (("blur:", "Blurred inputs"), ("inpaint:", "Inpainted inputs")):
        for condition in _conditions(summary, prefix):
            for noise in noises:
                out.append(_closer_than_noise(summary, condition, noise, label))
    out.append(_lesions(summary))
    return out


def caveats(context: dict) -> list[str]:
    """Warnings that belong beside the findings, from ``summary["context"]``."""
    out = []
    if context.get("simulated"):
        out.append("The slices are SIMULATED (stylefa cohort: warped copies of the MNI FA template with noise), "
                   "not scans of people.")
    if context.get("demo_model"):
        out.append("The generator is the small shipped demo model (trained for minutes-to-hours on a CPU), "
                   "not a full-size StyleGAN2 like the study's.")
    res = context.get("resolution")
    if res and res < 256:
        out.append(f"Images are {res}×{res} px (the study used 256×256); SSIM and MSE are not directly comparable.")
    steps = context.get("steps")
    if steps and steps < 1000:
        out.append(f"Each projection ran {steps} optimisation steps (the study: 1000).")
    return out
