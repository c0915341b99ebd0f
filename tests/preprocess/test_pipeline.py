"""``preprocess_subject`` on a small synthetic pair: every output, names, sidecar, confounds,
resume, a restart after an interruption, and the QC index."""

import json

import nibabel as nib
import numpy as np
import pytest

from stylefa.preprocess.bids import discover_subjects
from stylefa.preprocess.config import PreprocessConfig
from stylefa.preprocess.outputs import finished
from stylefa.preprocess.pipeline import SDCSkippedWarning, preprocess_subject
from tests.preprocess.pipe_data import BVALS, FAST_MOTION, FAST_SDC, write_pair



def _config(**changes) -> PreprocessConfig:
    return PreprocessConfig(sdc_settings=FAST_SDC, motion_settings=FAST_MOTION, **changes)


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    write_pair(root)
    subject = discover_subjects(root)[0][0]
    output = tmp_path_factory.mktemp("derivs")
    result = preprocess_subject(subject, output, _config())
    return subject, output, result


def test_every_output_is_written_with_nipreps_names(processed):
    _, output, result = processed
    folder = output / "sub-01" / "dwi"
    expected = ["sub-01_desc-preproc_dwi.nii.gz", "sub-01_desc-preproc_dwi.bval", "sub-01_desc-preproc_dwi.bvec",
                "sub-01_desc-preproc_dwi.json", "sub-01_desc-brain_mask.nii.gz", "sub-01_fieldmap.nii.gz",
                "sub-01_dir-AP_desc-orig_dwiref.nii.gz", "sub-01_dir-AP_desc-sdc_dwiref.nii.gz",
                "sub-01_dir-PA_desc-orig_dwiref.nii.gz", "sub-01_dir-PA_desc-sdc_dwiref.nii.gz",
                "sub-01_dir-PA_desc-mppca_noise.nii.gz", "sub-01_desc-confounds_timeseries.tsv",
                "sub-01_from-orig_to-dwiref_mode-image_xfm.txt", "sub-01_desc-DTI_FA.nii.gz", "sub-01_desc-DTI_FA.json"]
    for name in expected:
        assert (folder / name).is_file(), name
    assert not result.reused
    assert set(result.outputs) >= {f"sub-01/dwi/{n}" for n in expected if not n.endswith("preproc_dwi.json")}
    assert len(list((output / "sub-01" / "figures").glob("*.png"))) == 4
    assert not [p for p in output.rglob(".*") if p.is_file()]  # no temporary files left


def test_both_polarities_are_concatenated_with_their_gradients(processed):
    _, output, _ = processed
    folder = output / "sub-01" / "dwi"
    dwi = nib.load(str(folder / "sub-01_desc-preproc_dwi.nii.gz"))
    assert dwi.shape == (16, 16, 8, 2 * len(BVALS))
    bvals = np.loadtxt(folder / "sub-01_desc-preproc_dwi.bval")
    bvecs = np.loadtxt(folder / "sub-01_desc-preproc_dwi.bvec")
    np.testing.assert_array_equal(bvals, np.concatenate([BVALS, BVALS]))
    assert bvecs.shape == (3, 16)
    weighted = bvals > 50
    np.testing.assert_allclose(np.linalg.norm(bvecs[:, weighted], axis=0), 1.0, atol=1e-5)
    field = nib.load(str(folder / "sub-01_fieldmap.nii.gz"))
    assert field.shape == (16, 16, 8) and np.allclose(field.affine, dwi.affine)


def test_sidecar_records_steps_versions_and_sources(processed):
    _, output, _ = processed
    record = json.loads((output / "sub-01" / "dwi" / "sub-01_desc-preproc_dwi.json").read_text())["stylefa"]
    assert record["skipped"] == {}
    assert {"denoise", "degibbs", "sdc", "motion", "resample", "output_series"} <= set(record["steps"])
    assert "concatenated" in record["steps"]["output_series"]["combination"]
    assert record["steps"]["sdc"]["series"]["PA"]["PhaseEncodingDirection"] == "j"
    assert {"dipy", "nibabel", "numpy", "torch"} <= set(record["libraries"])
    assert record["settings"]["sdc_settings"] == FAST_SDC
    assert len(record["sources"]) == 8 and all("size" in v and "mtime_ns" in v for v in record["sources"].values())
    assert 0 <= record["qc"]["b0_corr_after"] <= 1 and record["qc"]["fd_max_mm"] >= 0


def test_confounds_have_fmriprep_columns_and_na_at_each_series_start(processed):
    _, output, _ = processed
    lines = (output / "sub-01" / "dwi" / "sub-01_desc-confounds_timeseries.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    for column in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "framewise_displacement"):
        assert column in header
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert len(rows) == 16
    assert [r["framewise_displacement"] for r in rows].count("n/a") == 2
    assert rows[0]["framewise_displacement"] == rows[8]["framewise_displacement"] == "n/a"
    assert {r["dir"] for r in rows} == {"AP", "PA"}


def test_finished_subject_is_reused_and_an_interrupted_one_redone(processed):
    subject, output, _ = processed
    fa = output / "sub-01" / "dwi" / "sub-01_desc-DTI_FA.nii.gz"
    before = fa.stat().st_mtime_ns
    again = preprocess_subject(subject, output, _config())
    assert again.reused and fa.stat().st_mtime_ns == before
    # other settings or changed sources: not taken as finished (redone, never mixed)
    assert finished(subject, output, _config(degibbs=False)) is None
    assert finished(subject, output, _config()) is not None
    # an interrupted run leaves no sidecar: the subject is redone from the start
    (output / "sub-01" / "dwi" / "sub-01_desc-preproc_dwi.json").unlink()
    assert not preprocess_subject(subject, output, _config()).reused


def test_without_a_reverse_sdc_is_skipped_with_a_warning(tmp_path):
    pa, _ = write_pair(tmp_path / "bids")
    for path in (tmp_path / "bids" / "sub-01" / "dwi").glob("sub-01_dir-AP_*"):
        path.unlink()
    subject = discover_subjects(tmp_path / "bids")[0][0]
    with pytest.warns(SDCSkippedWarning, match="no reversed phase-encoding series"):
        result = preprocess_subject(subject, tmp_path / "out", _config(motion=False, denoise=False, qc=False))
    assert "no reversed" in result.steps["sdc"]["skipped"]
    assert not (tmp_path / "out" / "sub-01" / "dwi" / "sub-01_fieldmap.nii.gz").exists()
    assert (tmp_path / "out" / "sub-01" / "dwi" / "sub-01_desc-DTI_FA.nii.gz").is_file()


def test_b0_only_reverse_serves_the_field_only(tmp_path):
    from stylefa.preprocess.config import SeriesFiles, SubjectInputs

    pa, ap = write_pair(tmp_path / "bids", reverse_bvals=None)
    b0 = nib.load(str(ap))
    epi = tmp_path / "epi.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(b0.dataobj)[..., :2], b0.affine), str(epi))
    subject = SubjectInputs("sub-01", "sub-01", None,
                            SeriesFiles(pa, pa.with_name("sub-01_dir-PA_dwi.bval"), pa.with_name("sub-01_dir-PA_dwi.bvec"),
                                        pa.with_suffix("").with_suffix(".json"), "PA"),
                            SeriesFiles(epi, sidecar=ap.with_suffix("").with_suffix(".json"), label="AP"))
    result = preprocess_subject(subject, tmp_path / "out", _config(motion=False, qc=False))
    folder = tmp_path / "out" / "sub-01" / "dwi"
    assert nib.load(str(folder / "sub-01_desc-preproc_dwi.nii.gz")).shape[3] == len(BVALS)
    assert (folder / "sub-01_dir-AP_desc-sdc_dwiref.nii.gz").is_file() and result.steps["sdc"]["b0_only_reverse"]
    assert "too few" not in json.dumps(result.steps) and "skipped: 2 volume(s)" in json.dumps(result.steps["denoise"])


def test_cohort_index_joins_the_registration_page_format(processed):
    from stylefa.data.qc import write_qc_index
    from stylefa.preprocess.qc import write_cohort_index

    from stylefa.data.bad import BadSubject

    _, output, _ = processed
    page = write_cohort_index(output, [BadSubject(output / "sub-02_dwi.nii.gz", "a <bad> one", "sub-02")]).read_text()
    assert page.index("sub-02") < page.index("sub-01") and "a &lt;bad&gt; one" in page
    assert "sub-01" in page and "../sub-01/figures/sub-01_desc-sdc_dwi.png" in page
    registration = write_qc_index(output / "reg.html", [{"key": "sub-01", "correlation_after": 0.6}]).read_text()
    # one page format: the same table and row classes
    for fragment in ('<table><tr><th>subject</th>', 'tr.bad td', "worst first"):
        assert fragment in page and fragment in registration


def test_worst_first_by_agreement_after_sdc_and_max_fd():
    from stylefa.preprocess.qc import _worst_first

    entries = [{"key": "good", "b0_corr_after": 0.99, "fd_max_mm": 0.2},
               {"key": "moved", "b0_corr_after": 0.98, "fd_max_mm": 4.0},
               {"key": "badsdc", "b0_corr_after": 0.80, "fd_max_mm": 0.3},
               {"key": "mid", "b0_corr_after": 0.97, "fd_max_mm": 0.5},
               {"key": "failed", "status": "same phase-encoding direction"}]
    order = [e["key"] for e in _worst_first(entries)]
    assert order[0] == "failed" and set(order[1:3]) == {"moved", "badsdc"} and order[-1] == "good"
