"""Per-patient lesion evaluation, control seeding, mask globs and FLAIR pairing."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from stylefa.errors import InputError
from stylefa.study.lesions import evaluation as lesion_eval
from stylefa.study.lesions.masks import expand_paths, pair_flairs


def _slice(rng, patient, lesion_size, shift=0.3, key="s"):
    brain = np.zeros((24, 24), bool)
    brain[2:22, 2:22] = True
    lesion = np.zeros_like(brain)
    side = int(math.sqrt(lesion_size))
    lesion[8 : 8 + side, 8 : 8 + lesion_size // side] = True
    original = np.where(brain, 0.5 + 0.05 * rng.standard_normal(brain.shape), 0.0)
    lesioned = np.where(lesion, original * 0.6, original)
    control = original + 0.02 * rng.standard_normal(brain.shape)
    projection = control - 0.5 * (original - lesioned)  # half the lesion carried
    item = lesion_eval.LesionSlice(patient, "sub-01", f"{key}_{patient}", 10.0, lesion, brain, original, lesioned,
                                   projection, control)
    lesion_eval.score_slice(item)
    item.scores["normative"] = np.abs(lesioned - 0.5) + shift * rng.random(brain.shape)
    item.healthy["normative"] = np.abs(original - 0.5) + shift * rng.random(brain.shape)
    return item


def _evaluated():
    rng = np.random.default_rng(0)
    items = [_slice(rng, "p1", 36, key=f"a{i}") for i in range(3)]
    items += [_slice(rng, "p2", 9, key=f"b{i}") for i in range(2)]
    return items, lesion_eval.evaluate_lesions(items, n_boot=200, seed=1)


def test_evaluate_lesions_against_sklearn_and_numpy():
    items, (slice_rows, patient_rows, summary) = _evaluated()
    assert summary["methods"] == ["residual", "normative"]
    # The healthy threshold is the 99th percentile of the controls' in-brain scores.
    healthy = np.concatenate([it.healthy["residual"][it.brain] for it in items])
    assert summary["healthy_thresholds"]["residual"] == pytest.approx(np.percentile(healthy, 99))
    # Per patient: all its slices' brain pixels pooled, scored like scikit-learn.
    p1 = items[:3]
    s = np.concatenate([it.scores["residual"][it.brain] for it in p1])
    y = np.concatenate([it.lesion[it.brain] for it in p1])
    entry = summary["patients"]["p1"]["methods"]["residual"]
    assert entry["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert entry["ap"] == pytest.approx(average_precision_score(y, s))
    t = summary["healthy_thresholds"]["residual"]
    assert entry["dice_healthy"] == pytest.approx(2 * np.sum((s > t) & y) / (np.sum(s > t) + y.sum()))
    assert entry["auroc_ci95"][0] <= entry["auroc"] <= entry["auroc_ci95"][1]
    # p2 has 2 slices (< 3: no CI) and 18 lesion pixels (< 20: flagged, out of the means and tests).
    p2 = summary["patients"]["p2"]
    assert p2["below_min_pixels"] and p2["lesion_pixels"] == 18
    assert all(math.isnan(v) for v in p2["methods"]["residual"]["auroc_ci95"])
    assert summary["mean_over_patients"]["residual"]["auroc"]["n"] == 1
    # Slices below the minimum get no per-slice scores.
    for row in slice_rows:
        assert row["per_slice_metrics"] == (row["lesion_pixels"] >= lesion_eval.MIN_SLICE_LESION_PIXELS)
        assert math.isnan(row["auroc_residual"]) != row["per_slice_metrics"]
    # The constructed projection carries half of every lesion on top of the control.
    for row in slice_rows:
        assert row["healing_index_control"] == pytest.approx(0.5)
    # Pooled row: every pixel of both patients.
    s_all = np.concatenate([it.scores["normative"][it.brain] for it in items])
    y_all = np.concatenate([it.lesion[it.brain] for it in items])
    assert summary["pooled"]["normative"]["auroc"] == pytest.approx(roc_auc_score(y_all, s_all))
    all_rows = [r for r in patient_rows if r["patient"] == "ALL"]
    assert [r["method"] for r in all_rows] == ["residual", "normative"]
    assert all_rows[0]["lesion_pixels"] == 3 * 36 + 2 * 9
    # Slice level: lesioned slices against their controls, AUROC as scikit-learn computes it.
    mse_l = [r["mse_lesioned"] for r in slice_rows]
    mse_c = [r["mse_control"] for r in slice_rows]
    assert summary["slice_level"]["mse"]["auroc"] == pytest.approx(
        roc_auc_score([1] * 5 + [0] * 5, mse_l + mse_c))
    ssim_l = [r["ssim_lesioned"] for r in slice_rows]
    ssim_c = [r["ssim_control"] for r in slice_rows]
    assert summary["slice_level"]["ssim"]["auroc"] == pytest.approx(
        roc_auc_score([1] * 5 + [0] * 5, -np.array(ssim_l + ssim_c)))


def test_lesion_report_section_and_figures(tmp_path):
    import json

    from stylefa.study.lesions.figures import healing_distribution, method_comparison
    from stylefa.study.lesions.report import lesion_section
    from stylefa.study.study import _json_safe

    _, (slice_rows, _, summary) = _evaluated()
    summary = json.loads(json.dumps(_json_safe(summary)))  # as the report reads it back from summary.json
    html = lesion_section(summary)
    assert "Healing index" in html and "Per patient" in html and "Slice level" in html
    assert "18 (below minimum)" in html  # lesion pixel counts, small patients flagged
    entry = summary["patients"]["p1"]["methods"]["residual"]
    assert f"{entry['auroc']:.3f} [{entry['auroc_ci95'][0]:.3f}, {entry['auroc_ci95'][1]:.3f}]" in html
    for draw, stem in ((lambda st: method_comparison(summary, st), "fig5"),
                       (lambda st: healing_distribution(slice_rows, st), "fig6")):
        png, pdf = draw(tmp_path / stem)
        assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"


def test_control_projection_uses_the_lesion_seed():
    """Same seed id + same image = the same projection; the control differs only by its input."""
    from stylefa.nets.checkpoint import create_networks
    from stylefa.nets.config import GeneratorConfig, MappingConfig, SynthesisConfig
    from stylefa.project.config import ProjectConfig
    from stylefa.project.perceptual import PerceptualSpec, load_perceptual
    from stylefa.study.runner import Target, project_targets

    g = GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, mapping=MappingConfig(num_layers=1),
                        synthesis=SynthesisConfig(channel_base=64, channel_max=8))
    G = create_networks(g)["G"]
    image = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    config = ProjectConfig(steps=2, w_avg_samples=16)
    distance = load_perceptual(PerceptualSpec(name="mse"), device="cpu")

    def run(folder, targets):
        return project_targets(G, targets, config, distance, folder, batch_size=2, w_avg_samples=16)

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        a = run(Path(tmp) / "a", [Target("x__lesion-p", image, None, None), Target("x__control-p", image, None, None,
                                                                                       seed_id="x__lesion-p")])
        b = run(Path(tmp) / "b", [Target("x__control-p", image, None, None)])
    np.testing.assert_array_equal(a["x__lesion-p"], a["x__control-p"])
    assert not np.array_equal(a["x__control-p"], b["x__control-p"])


def test_control_cases_pair_each_lesion_case():
    from stylefa.study.lesions.study import control_cases
    from stylefa.study.study import Case

    fa = np.full((4, 4), 0.5, np.float32)
    lesion = np.zeros((4, 4), bool)
    lesion[1, 1] = True
    cases = [Case("k__none", "k", "none", fa, fa, None, None, lesion | True),
             Case("k__lesion-patient07", "k", "lesion:patient07", fa, fa * 0.6, None, None, lesion | True, lesion,
                  flair=fa)]
    controls = control_cases(cases)
    assert list(controls) == ["k__lesion-patient07"]
    control = controls["k__lesion-patient07"]
    assert control.target_id == "k__control-patient07" and control.seed_id == "k__lesion-patient07"
    assert control.modified is fa and control.lesion is None and control.flair is None


def test_expand_paths_and_pair_flairs(tmp_path):
    for name in ("patient02_mask.nii.gz", "patient01_mask.nii.gz", "patient01_FLAIR.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    masks = expand_paths([str(tmp_path / "patient*_mask.nii.gz")], "lesion mask")
    assert [m.split("/")[-1] for m in masks] == ["patient01_mask.nii.gz", "patient02_mask.nii.gz"]
    with pytest.raises(InputError, match="no lesion mask file matches"):
        expand_paths([str(tmp_path / "nobody*.nii.gz")], "lesion mask")
    assert expand_paths(["plain.nii.gz"], "x") == ["plain.nii.gz"]  # no wildcard: kept (checked when read)
    flair = str(tmp_path / "patient01_FLAIR.nii.gz")
    assert pair_flairs(masks, [flair]) == [flair, None]  # by patient name, whatever the order
    assert pair_flairs(masks[::-1], [flair]) == [None, flair]
    assert pair_flairs(masks, ["a.nii.gz", "b.nii.gz"]) == ["a.nii.gz", "b.nii.gz"]  # no name match: by order
    with pytest.raises(InputError, match="1 FLAIR file"):  # ... which is one to one (issue G)
        pair_flairs(masks, ["a.nii.gz"])
    with pytest.raises(InputError, match="FLAIR file"):
        pair_flairs(masks[:1], ["a.nii.gz", "b.nii.gz"])
