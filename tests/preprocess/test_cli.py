"""``stylefa preprocess`` end to end on the shared real BIDS subject (Siemens XA30, dir-PA ``j`` and
dir-AP ``j-``, both full DWI series): outputs, QC, confounds, the pair's agreement after SDC, the
FA of each polarity alone before/after SDC (the issue's oracle: r 0.57 -> >= 0.75), and that
``stylefa prepare`` takes the FA as it is. Slow: one run of the whole pipeline (a few minutes on
one core; motion with one round to keep it so)."""

import json

import nibabel as nib
import numpy as np
import pytest

from stylefa.cli import main

pytestmark = pytest.mark.slow
MOTION = {"rounds": 1}
# Gibbs removal is off here (~50 s of the suite): it is checked against MRtrix3's mrdegibbs on this same
# series in test_denoise.py and runs in the default pipeline on the synthetic pair in test_pipeline.py.
STEPS = ["--no-degibbs"]


@pytest.fixture(scope="module")
def run(shared_dir, tmp_path_factory):
    root = shared_dir / "data" / "pepolar"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    work = tmp_path_factory.mktemp("preprocess")
    motion = work / "motion.json"
    motion.write_text(json.dumps(MOTION))
    out = work / "derivs"
    code = main(["preprocess", str(root), "-o", str(out), "--threads", "1", *STEPS, "--motion-config", str(motion)])
    assert code == 0
    return root, out, out / "sub-siemens01" / "dwi"


def test_outputs_qc_and_confounds(run):
    _, out, folder = run
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    for name in ("desc-preproc_dwi.nii.gz", "fieldmap.nii.gz", "dir-AP_desc-sdc_dwiref.nii.gz",
                 "dir-PA_desc-orig_dwiref.nii.gz", "dir-PA_desc-mppca_noise.nii.gz", "desc-DTI_FA.nii.gz",
                 "from-orig_to-dwiref_mode-image_xfm.txt"):
        assert (folder / f"sub-siemens01_{name}").is_file(), name
    assert nib.load(str(folder / "sub-siemens01_desc-preproc_dwi.nii.gz")).shape == (72, 72, 39, 42)
    rows = (folder / "sub-siemens01_desc-confounds_timeseries.tsv").read_text().splitlines()
    assert len(rows) == 43
    record = json.loads((folder / "sub-siemens01_desc-preproc_dwi.json").read_text())["stylefa"]
    qc = record["qc"]
    assert qc["b0_corr_before"] < 0.7 and qc["b0_corr_after"] > 0.97, qc
    assert 0.0 < qc["fd_max_mm"] < 10.0 and qc["fd_mean_mm"] <= qc["fd_max_mm"]
    header = rows[0].split("\t")
    fd = [row.split("\t")[header.index("framewise_displacement")] for row in rows[1:]]
    assert fd[0] == fd[21] == "n/a" and fd.count("n/a") == 2  # no FD across the two series
    assert record["skipped"] == {"degibbs": "--no-degibbs"}, record["skipped"]
    page = (out / "qc" / "index.html").read_text()
    assert "sub-siemens01" in page and page.count(".png") >= 8


def _fa(data, bvals, bvecs, mask):
    from stylefa.data.fa import FAConfig, fit_tensor_maps

    return fit_tensor_maps(data, bvals, bvecs, mask, FAConfig())[0]


def test_fa_of_each_polarity_agrees_better_after_sdc(run):
    """FA from PA alone vs AP alone, inside the brain, before and after unwarping each raw
    series with the estimated field (the issue measured r 0.57 before). Measured (2026-12): r 0.516
    -> 0.770 with this test's settings (b=0 agreement 0.632 -> 0.992); 0.642 -> 0.841 with the field
    of a run without denoising and Gibbs removal."""
    from stylefa.data.gradients import load_gradients
    from stylefa.preprocess.sdc import PhaseEncoding, unwarp

    from stylefa.preprocess.sdc.topup import brain_mask

    root, _, folder = run
    field = nib.load(str(folder / "sub-siemens01_fieldmap.nii.gz")).get_fdata(dtype=np.float32)
    # the brain of the two corrected mean b=0 images (median_otsu, radius 2, one pass)
    mean_b0 = sum(nib.load(str(folder / f"sub-siemens01_dir-{d}_desc-sdc_dwiref.nii.gz")).get_fdata(dtype=np.float32)
                  for d in ("PA", "AP"))
    mask = brain_mask(mean_b0)
    before, after = [], []
    for label in ("PA", "AP"):
        stem = root / "sub-siemens01" / "dwi" / f"sub-siemens01_dir-{label}_dwi"
        data = nib.load(f"{stem}.nii.gz").get_fdata(dtype=np.float32)
        table = load_gradients(f"{stem}.bval", f"{stem}.bvec", data.shape[3])
        sidecar = json.loads(stem.with_suffix(".json").read_text())
        pe = PhaseEncoding.from_bids(sidecar["PhaseEncodingDirection"], sidecar["TotalReadoutTime"])
        before.append(_fa(data, table.bvals, table.bvecs, mask))
        after.append(_fa(np.asarray(unwarp(data, field, pe), np.float32), table.bvals, table.bvecs, mask))
    r_before = np.corrcoef(before[0][mask], before[1][mask])[0, 1]
    r_after = np.corrcoef(after[0][mask], after[1][mask])[0, 1]
    print(f"FA PA vs AP: r {r_before:.3f} -> {r_after:.3f}")
    assert r_after >= 0.75 and r_after > r_before + 0.15, (r_before, r_after)


def test_prepare_takes_the_fa_as_it_is(run, tmp_path):
    _, _, folder = run
    fa = folder / "sub-siemens01_desc-DTI_FA.nii.gz"
    assert main(["prepare", str(fa), "-o", str(tmp_path / "ds"), "--resolution", "32", "--split", "1,0,0"]) == 0
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())


def test_rerun_reuses_the_finished_subject(run, capsys):
    root, out, folder = run
    fa = folder / "sub-siemens01_desc-DTI_FA.nii.gz"
    before = fa.stat().st_mtime_ns
    motion = out.parent / "motion.json"
    assert main(["preprocess", str(root), "-o", str(out), *STEPS, "--motion-config", str(motion)]) == 0
    assert "1 already done" in capsys.readouterr().out and fa.stat().st_mtime_ns == before
