"""Findings sentences and verdicts from constructed summaries (and from real statistics)."""

import math

import numpy as np
import pytest

from stylefa.study.report import findings as F
from stylefa.study.tables import summarize_rows


def _rows(values_by_condition: dict[str, list[float]], mse: float = 0.003) -> list[dict]:
    rows = []
    for condition, values in values_by_condition.items():
        for i, v in enumerate(values):
            rows.append({"slice": f"s{i:02d}", "condition": condition, "comparison": "original", "region": "brain",
                         "ssim": v, "mse": mse, "psnr": 25.0, "mae": 0.03, "lpips": math.nan})
    return rows


def _summary(n: int, shift: dict[str, float], base: float = 0.8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    none = base + rng.normal(0, 0.02, n)
    values = {"none": list(none)}
    for name, delta in shift.items():
        values[name] = list(none + delta + rng.normal(0, 0.005, n))
    summary = summarize_rows(_rows(values), n_boot=500)
    summary["condition_order"] = list(values)
    return summary



def test_clear_effects_are_reproduced_with_effect_ci_p_and_n():
    summary = _summary(16, {"noise:0.05": -0.12, "saltpepper:0.05": -0.2, "blur:2": -0.01})
    found = F.findings(summary)
    verdicts = {f.claim: f.verdict for f in found}
    assert verdicts["unmodified slices project close but imperfectly"] == F.REPRODUCED
    noise = next(f for f in found if "(noise:0.05) project farther" in f.sentence)
    assert noise.verdict == F.REPRODUCED
    assert "ΔSSIM −0.12" in noise.sentence and "n = 16" in noise.sentence and "p < 0.001" in noise.sentence
    blur = next(f for f in found if f.sentence.startswith("Blurred inputs (blur:2)"))
    # blur - noise = +0.11: the pairwise test stored as "noise vs blur" is flipped to blur - noise.
    assert blur.verdict == F.REPRODUCED and "ΔSSIM 0.11" in blur.sentence
    lo_hi = blur.sentence.split("[")[1].split("]")[0].split(", ")
    assert all(float(v.replace("−", "-")) > 0 for v in lo_hi)


def test_opposite_direction_is_not_reproduced():
    found = F.findings(_summary(16, {"noise:0.05": +0.05}))
    noise = next(f for f in found if "noise:0.05" in f.sentence)
    assert noise.verdict == F.NOT_REPRODUCED and "opposite direction" in noise.sentence


def test_no_difference_with_many_pairs_is_not_reproduced_but_with_few_is_inconclusive():
    many = next(f for f in F.findings(_summary(20, {"noise:0.05": 0.0})) if "noise" in f.sentence)
    assert many.verdict == F.NOT_REPRODUCED and "no significant difference" in many.sentence
    few = next(f for f in F.findings(_summary(8, {"noise:0.05": 0.0}, seed=3)) if "noise" in f.sentence)
    assert few.verdict == F.INCONCLUSIVE


@pytest.mark.parametrize("n", [2, 4, 5])
def test_too_few_pairs_says_so_instead_of_a_p_value(n):
    found = F.findings(_summary(n, {"noise:0.05": -0.2}))
    noise = next(f for f in found if "noise" in f.sentence)
    assert noise.verdict == F.INCONCLUSIVE
    assert "cannot reach p < 0.05" in noise.sentence and "p = 1" not in noise.sentence
    assert f"{2 / 2**n:.3g}" in noise.sentence


def test_unmodified_far_from_target_is_not_reproduced():
    summary = _summary(12, {}, base=0.43)
    first = F.findings(summary)[0]
    assert first.verdict == F.NOT_REPRODUCED and "SSIM 0.43" in first.sentence


def _lesion_summary(auroc, ci, n_patients=4, patient_ci=None):
    patients = {"p1": {"methods": {"residual": {"auroc": auroc, "auroc_ci95": patient_ci or [float("nan")] * 2}}}}
    return {"conditions": {}, "lesions": {
        "methods": ["residual", "normative"], "method_labels": {"normative": "normative |z|"},
        "n_patients": n_patients, "n_slices": 12, "patients": patients,
        "pooled": {"residual": {"auroc": auroc, "auroc_ci95": ci}, "normative": {"auroc": 0.9, "auroc_ci95": ci}},
        "healing": {"healing_index": {"n": 12, "mean": 0.62, "ci95": [0.5, 0.7]}}}}


def test_lesion_auroc_verdicts():
    nan = float("nan")
    assert F.findings(_lesion_summary(0.9, [0.85, 0.95]))[-1].verdict == F.REPRODUCED
    assert F.findings(_lesion_summary(0.35, [0.3, 0.4]))[-1].verdict == F.NOT_REPRODUCED
    assert F.findings(_lesion_summary(0.55, [0.4, 0.7]))[-1].verdict == F.INCONCLUSIVE
    assert F.findings(_lesion_summary(0.9, [nan, nan], n_patients=2))[-1].verdict == F.INCONCLUSIVE
    # one mask (the demo's synthetic lesion): the CI over its slices decides
    one = F.findings(_lesion_summary(0.8, [nan, nan], n_patients=1, patient_ci=[0.7, 0.9]))[-1]
    assert one.verdict == F.REPRODUCED and "CI over slices" in one.sentence
    text = F.findings(_lesion_summary(0.9, [0.85, 0.95]))[-1].sentence
    assert "healing index 0.62 [0.50, 0.70]" in text and "normative |z| 0.900" in text
    assert F.findings({"conditions": {}})[-1].verdict == F.INCONCLUSIVE


def test_missing_data_never_raises():
    found = F.findings({})
    assert found[0].verdict == F.INCONCLUSIVE and len(found) == 2


def test_caveats():
    text = " ".join(F.caveats({"simulated": True, "demo_model": True, "resolution": 64, "steps": 100}))
    assert "SIMULATED" in text and "demo model" in text and "64×64" in text and "100" in text
    assert F.caveats({}) == []
