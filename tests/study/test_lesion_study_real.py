"""`stylefa study` with real MS lesion masks on the shared real FA: residual vs both baselines."""

import csv
import io
import json

import pytest

from stylefa.cli import main


def _csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.mark.slow
def test_real_lesions_on_real_fa(shared_dir, tmp_path, monkeypatch):
    from stylefa.data.cohort import CohortConfig, make_cohort
    from stylefa.study.demo import demo_model_path
    from stylefa.study.lesions.evaluation import MIN_SLICE_LESION_PIXELS

    data = shared_dir / "data"
    template = data / "fa" / "mni_fa_template_1p25mm.nii.gz"
    monkeypatch.setenv("STYLEFA_TEMPLATE", str(template))
    # Lesion-free scans for the normative model: simulated like the demo model's training cohort.
    normative = make_cohort(tmp_path / "normative", CohortConfig(num_subjects=3, seed=0, voxel_size_mm=2.5))
    ms = data / "ms"
    out = tmp_path / "study"
    argv = ["study", "--network", str(demo_model_path()),
            "--data", str(data / "fa" / "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"), "--outdir", str(out),
            "--conditions", "none", "--max-slices", "1",
            # A quoted glob (expanded by stylefa) picks patients 12 and 19 (FLAIR paired by name); 07 is small.
            "--lesions", str(ms / "patient1[29]_space-MNI_lesionmask.nii.gz"),
            str(ms / "patient07_space-MNI_lesionmask.nii.gz"), "--flair", str(ms / "patient19_space-MNI_FLAIR.nii.gz"),
            "--lesion-slices", "3", "--normative", *map(str, normative), "--template", str(template),
            "--wplus-residual", "--steps", "4", "--w-avg-samples", "64", "--perceptual", "mse", "--no-lpips-metric",
            "--figure-slices", "1", "--batch-size", "32"]
    assert main(argv) == 0

    patients = _csv(out / "lesion_metrics.csv")
    methods = ["residual", "residual_wplus", "normative", "template"]
    assert [(r["patient"], r["method"]) for r in patients] == [
        (p, m) for p in ("patient12", "patient19", "patient07", "ALL") for m in methods]
    for r in patients:
        assert 0 <= float(r["auroc"]) <= 1 and 0 <= float(r["ap"]) <= 1 and 0 <= float(r["best_dice"]) <= 1
        assert float(r["dice_healthy"]) <= float(r["best_dice"]) + 1e-9  # best Dice is an upper bound
    slices = _csv(out / "lesion_slices.csv")
    assert len(slices) == 9
    for r in slices:
        small = int(r["lesion_pixels"]) < MIN_SLICE_LESION_PIXELS
        assert (r["per_slice_metrics"] == "False") == small
        assert (r["auroc_residual"] == "nan") == small  # no per-slice AUROC below the minimum
    assert any(r["per_slice_metrics"] == "False" for r in slices if r["patient"] == "patient07")

    summary = json.loads((out / "summary.json").read_text())["lesions"]
    assert summary["methods"] == methods and summary["n_patients"] == 3
    assert summary["patients"]["patient19"]["flair"] and not summary["patients"]["patient12"]["flair"]
    # The pooled row is the pixels of all slices together: its lesion pixels add up.
    assert summary["lesion_pixels"]["total"] == sum(int(r["lesion_pixels"]) for r in slices)
    assert summary["patients"]["patient12"]["lesion_pixels"] == sum(
        int(r["lesion_pixels"]) for r in slices if r["patient"] == "patient12")
    # The three-slice patients get cluster-bootstrap CIs that bracket their point estimates.
    entry = summary["patients"]["patient12"]["methods"]["normative"]
    assert entry["auroc_ci95"][0] <= entry["auroc"] <= entry["auroc_ci95"][1]
    healing = summary["healing"]["healing_index"]
    assert healing["n"] == 9 and healing["ci95"][0] <= healing["mean"] <= healing["ci95"][1]
    assert {"ssim", "mse", "residual_mean", "normative_mean", "template_mean"} <= set(summary["slice_level"])
    assert len(summary["tests"]) == 6 and "residual vs normative" in summary["tests"]
    # The W+ projections are other projections than the W ones, kept in their own folder.
    assert len(_projections(out / "projections_wplus", "*")) == 18
    # Each lesion slice and its control were projected (same seed; see test_lesion_eval).
    assert len(_projections(out / "projections", "*__control-patient*")) == 9
    for name in ("fig6_methods", "fig7_healing"):
        assert (out / "figures" / f"{name}.png").is_file() and (out / "figures" / f"{name}.pdf").is_file()
    html = (out / "report.html").read_text()
    assert "Lesions: healing and detection against baselines" in html and "patient19 (FLAIR)" in html


def _projections(folder, stem_pattern: str) -> list:
    """Projection arrays ``<id>.npy`` (not the part-way ``<id>.renders.npy`` convergence renders)."""
    return [p for p in folder.glob(f"{stem_pattern}.npy") if not p.name.endswith(".renders.npy")]
