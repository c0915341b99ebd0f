"""`stylefa fa` over a cohort: BIDS discovery, BIDS-derivative names and sidecars, workers,
resume, bad series reported together; and the real two-command chain DWI -> FA -> dataset."""

import json
import os

import nibabel as nib
import numpy as np
import pytest

from stylefa.cli import main
from stylefa.data.fa_batch import discover_series, series_from_path

# The symmetric reg_aladin polish is tested in test_niftyreg/test_dwi_chain; here it only costs time.
pytestmark = pytest.mark.usefixtures("without_symmetric_polish")

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def closed_form_fa(l1, l2, l3):
    md = (l1 + l2 + l3) / 3
    return np.sqrt(1.5 * ((l1 - md) ** 2 + (l2 - md) ** 2 + (l3 - md) ** 2) / (l1**2 + l2**2 + l3**2))


def write_dwi(stem_path, eigenvalues=(1.7e-3, 0.4e-3, 0.2e-3), n_dirs=20, gradients=True):
    """A small noise-free DWI (one tensor everywhere, a dim border for the automatic mask) as
    ``<stem>.nii.gz`` with BIDS siblings ``<stem>.bval``/``<stem>.bvec``."""
    g = np.random.default_rng(1).normal(size=(n_dirs, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    bvals = np.r_[0.0, np.full(n_dirs, 1000.0)]
    bvecs = np.vstack([np.zeros(3), g])
    tensor = np.diag(eigenvalues)
    signal = 1000.0 * np.exp(-bvals * np.einsum("ni,ij,nj->n", bvecs, tensor, bvecs))
    data = np.broadcast_to(signal, (12, 12, 12, len(bvals))).astype(np.float32).copy()
    data[:3] *= 0.02
    stem_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), f"{stem_path}.nii.gz")
    if gradients:
        np.savetxt(f"{stem_path}.bval", bvals[None], fmt="%g")
        np.savetxt(f"{stem_path}.bvec", bvecs.T, fmt="%.8f")
    return closed_form_fa(*eigenvalues)


@pytest.fixture
def bids(tmp_path):
    root = tmp_path / "bids"
    expected = {
        "sub-01_ses-1": write_dwi(root / "sub-01" / "ses-1" / "dwi" / "sub-01_ses-1_dwi"),
        "sub-01_ses-2_acq-b": write_dwi(root / "sub-01" / "ses-2" / "dwi" / "sub-01_ses-2_acq-b_run-1_dwi",
                                        (1.2e-3, 0.7e-3, 0.5e-3)),
        "sub-02": write_dwi(root / "sub-02" / "dwi" / "sub-02_dwi", (1.0e-3, 0.9e-3, 0.8e-3)),
    }
    # Not inputs: a derivatives folder and a hidden folder inside the BIDS root.
    write_dwi(root / "derivatives" / "x" / "sub-09" / "dwi" / "sub-09_dwi")
    write_dwi(root / ".cache" / "sub-08_dwi")
    return root, expected


def test_discovers_bids_series_with_their_gradients(bids):
    root, _ = bids
    found = discover_series([root])
    assert [s.name for s in found] == ["sub-01_ses-1", "sub-01_ses-2_acq-b_run-1", "sub-02"]
    first = found[0]
    assert first.subject == "sub-01" and first.session == "ses-1"
    assert first.bval.name == "sub-01_ses-1_dwi.bval" and first.bvec.name == "sub-01_ses-1_dwi.bvec"
    assert first.fa_path(root / "out").relative_to(root / "out").as_posix() == \
        "sub-01/ses-1/dwi/sub-01_ses-1_desc-DTI_FA.nii.gz"
    plain = series_from_path(root / "sub-02" / "dwi" / "sub-02_dwi.nii.gz")
    assert plain.fa_path(root).name == "sub-02_desc-DTI_FA.nii.gz"


def test_dataset_level_gradients_are_inherited(tmp_path):
    root = tmp_path / "bids"
    write_dwi(root / "sub-01" / "dwi" / "sub-01_dwi")
    for ext in ("bval", "bvec"):
        os.replace(root / "sub-01" / "dwi" / f"sub-01_dwi.{ext}", root / f"dwi.{ext}")
    (series,) = discover_series([root])
    assert series.bval == root / "dwi.bval"


def test_cohort_fa_writes_bids_derivatives_and_resumes(bids, tmp_path, capsys):
    root, expected = bids
    out = tmp_path / "derivs"
    code = main(["fa", str(root), "-o", str(out), "--workers", "2", "--md"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote FA maps of 3 series" in captured.out
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    for name, folder, fa_true in [("sub-01_ses-1", "sub-01/ses-1/dwi", expected["sub-01_ses-1"]),
                                  ("sub-01_ses-2_acq-b_run-1", "sub-01/ses-2/dwi", expected["sub-01_ses-2_acq-b"]),
                                  ("sub-02", "sub-02/dwi", expected["sub-02"])]:
        fa = nib.load(out / folder / f"{name}_desc-DTI_FA.nii.gz").get_fdata()
        np.testing.assert_allclose(fa[8, 6, 6], fa_true, atol=1e-4)  # the fit is right (closed form)
        assert (out / folder / f"{name}_desc-DTI_MD.nii.gz").is_file()
        sidecar = json.loads((out / folder / f"{name}_desc-DTI_FA.json").read_text())
        info = sidecar["stylefa"]
        assert info["settings"]["b0_threshold"] == 50.0 and info["gradients"]["weighted_volumes"] == 20
        assert info["qc"]["mask_voxels"] > 0 and 0 <= info["qc"]["fa_mean"] <= 1
        assert sidecar["Sources"][0].endswith(f"{name}_dwi.nii.gz")
    assert not (out / "sub-09").exists() and not (out / "sub-08").exists()
    # prepare's discovery takes the FA maps only (not MD, not sidecars), one entry per series.
    from stylefa.data.subjects import discover_inputs

    assert [s.key for s in discover_inputs([out])] == ["sub-01_ses-1", "sub-01_ses-2_acq-b_run-1", "sub-02"]
    # Resume: nothing is refitted; a changed source is.
    before = (out / "sub-02/dwi/sub-02_desc-DTI_FA.nii.gz").stat().st_mtime_ns
    code = main(["fa", str(root), "-o", str(out), "--md"])
    printed = capsys.readouterr().out
    assert code == 0 and "wrote FA maps of 0 series" in printed and "3 already done" in printed
    assert (out / "sub-02/dwi/sub-02_desc-DTI_FA.nii.gz").stat().st_mtime_ns == before
    write_dwi(root / "sub-02" / "dwi" / "sub-02_dwi", (1.5e-3, 0.3e-3, 0.3e-3))
    code = main(["fa", str(root), "-o", str(out), "--md"])
    assert code == 0 and "wrote FA maps of 1 series" in capsys.readouterr().out
    fa = nib.load(out / "sub-02/dwi/sub-02_desc-DTI_FA.nii.gz").get_fdata()
    np.testing.assert_allclose(fa[8, 6, 6], closed_form_fa(1.5e-3, 0.3e-3, 0.3e-3), atol=1e-4)


def test_bad_series_are_reported_together(bids, tmp_path, capsys):
    root, _ = bids
    write_dwi(root / "sub-03" / "dwi" / "sub-03_dwi", gradients=False)  # no bval/bvec
    bvec = root / "sub-02" / "dwi" / "sub-02_dwi.bvec"
    np.savetxt(bvec, 0.7 * np.loadtxt(bvec), fmt="%.8f")  # non-unit b-vectors
    out = tmp_path / "derivs"
    code = main(["fa", str(root), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2, err
    assert "2 bad input(s), 2 good" in err[0] and "--skip-bad" in err[0]
    assert any(str(bvec) in line and "not unit length" in line for line in err)
    assert any("sub-03_dwi.nii.gz" in line and "sub-03_dwi.bval" in line for line in err)
    # The good ones are written either way (a rerun after fixing resumes).
    assert (out / "sub-01/ses-1/dwi/sub-01_ses-1_desc-DTI_FA.nii.gz").is_file()
    assert not (out / "sub-02").exists() and not (out / "sub-03").exists()
    code = main(["fa", str(root), "-o", str(out), "--skip-bad"])
    captured = capsys.readouterr()
    assert code == 0 and "skipped 2 bad series" in captured.out


def test_single_file_form_and_its_errors(bids, tmp_path, capsys):
    root, expected = bids
    dwi = root / "sub-02" / "dwi" / "sub-02_dwi.nii.gz"
    # One file, gradients found by BIDS naming; -o a NIfTI file.
    code = main(["fa", str(dwi), "-o", str(tmp_path / "fa.nii.gz")])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_allclose(nib.load(tmp_path / "fa.nii.gz").get_fdata()[8, 6, 6], expected["sub-02"], atol=1e-4)
    code = main(["fa", str(root), "--bval", "x.bval", "-o", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "one series" in err
    code = main(["fa", str(root), "-o", str(tmp_path / "d.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "need an output folder" in err and not (tmp_path / "d.nii.gz").exists()
    lone = tmp_path / "lone"
    write_dwi(lone / "scan", gradients=False)
    code = main(["fa", str(lone / "scan.nii.gz"), "-o", str(tmp_path / "x.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no --bval given and no BIDS sibling scan.bval" in err


# ----------------------------------------------------------------------------- real cohort


@pytest.mark.slow
def test_real_cohort_dwi_to_dataset_in_two_commands(shared_dir, tmp_path, capsys):
    """A BIDS folder of links to the real series: `stylefa fa BIDS -o derivs`, then
    `stylefa prepare derivs --register -o DS`: every series lands (QC index included)."""
    source = shared_dir / "data" / "dwi"
    bids = tmp_path / "bids"
    for path in sorted(source.glob("sub-*")):
        subject = path.name.split("_")[0]
        (bids / subject / "dwi").mkdir(parents=True, exist_ok=True)
        (bids / subject / "dwi" / path.name).symlink_to(path)
    series = {p.name[: -len("_dwi.nii.gz")] for p in source.glob("*_dwi.nii.gz")}
    template = shared_dir / "data" / "fa" / "mni_fa_template_1p25mm.nii.gz"
    code = main(["fa", str(bids), "-o", str(tmp_path / "derivs"), "--workers", "2"])
    assert code == 0, capsys.readouterr().err
    code = main(["prepare", str(tmp_path / "derivs"), "--register", "--template", str(template), "-o",
                 str(tmp_path / "DS"), "--resolution", "64", "--split", "1,0,0"])  # in-process: no polish (above)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    meta = json.loads((tmp_path / "DS" / "dataset.json").read_text())
    keys = {s["key"] for s in meta["subjects"]}
    assert keys == series and not meta["skipped"]
    assert {s["subject"] for s in meta["subjects"]} == {k.split("_")[0] for k in series}
    for subject in meta["subjects"]:
        assert subject["registration"]["correlation_after"] >= subject["registration"]["gate"] >= 0.40, subject
    page = (tmp_path / "DS" / "qc" / "index.html").read_text()
    assert all(key in page for key in series)
    assert np.load(tmp_path / "DS" / "images.npy").shape == (21 * len(series), 1, 64, 64)
