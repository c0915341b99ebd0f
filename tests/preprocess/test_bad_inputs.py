"""``stylefa preprocess`` refuses what cannot be a reversed phase-encoding pair: one line naming
the file, exit 2, nothing written (single subject), the subject listed as bad (cohort)."""

import json

import numpy as np
import pytest

from stylefa.cli import main
from stylefa.preprocess.config import PreprocessConfig, SeriesFiles, SubjectInputs
from stylefa.preprocess.inputs import load_subject
from tests.preprocess.pipe_data import AFFINE, BVALS, phantom, sidecar, write_pair, write_series


def _refused(argv, bad_path, tmp_path, capsys, *words):
    out = tmp_path / "out"
    code = main([str(a) for a in argv] + ["-o", str(out), "--no-qc"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("stylefa preprocess: error: ") and str(bad_path) in err, err
    for word in words:
        assert word in err, err
    assert not out.exists()


def _single(pa, ap):
    return ["preprocess", pa, "--reverse-pe", ap]


def test_different_grid_shape(tmp_path, capsys):
    pa, ap = write_pair(tmp_path, reverse_data=phantom(shape=(16, 18, 8)))
    _refused(_single(pa, ap), ap, tmp_path, capsys, "different grid")


def test_different_field_of_view(tmp_path, capsys):
    shifted = AFFINE.copy()
    shifted[1, 3] += 6.0
    pa, ap = write_pair(tmp_path, reverse_affine=shifted)
    _refused(_single(pa, ap), ap, tmp_path, capsys, "different grid", "field of view")


def test_same_phase_encoding_direction(tmp_path, capsys):
    pa, ap = write_pair(tmp_path, reverse=sidecar("j"))
    _refused(_single(pa, ap), ap.with_suffix("").with_suffix(".json"), tmp_path, capsys, "same phase-encoding")


def test_phase_encoding_along_another_axis(tmp_path, capsys):
    pa, ap = write_pair(tmp_path, reverse=sidecar("i-"))
    _refused(_single(pa, ap), ap.with_suffix("").with_suffix(".json"), tmp_path, capsys, "another axis")


def test_missing_phase_encoding_direction(tmp_path, capsys):
    pa, ap = write_pair(tmp_path, forward=sidecar(None))
    _refused(_single(pa, ap), pa.with_suffix("").with_suffix(".json"), tmp_path, capsys, "--pe-dir")


def test_only_phase_encoding_axis_is_never_guessed(tmp_path, capsys):
    pa, ap = write_pair(tmp_path, reverse=sidecar(None, PhaseEncodingAxis="j"))
    _refused(_single(pa, ap), ap.with_suffix("").with_suffix(".json"), tmp_path, capsys, "not guessed")


def test_missing_readout_time(tmp_path, capsys):
    pa, ap = write_pair(tmp_path, reverse=sidecar("j-", readout=None))
    _refused(_single(pa, ap), ap.with_suffix("").with_suffix(".json"), tmp_path, capsys, "--readout-time")


def test_b_table_length_mismatch(tmp_path, capsys):
    pa, ap = write_pair(tmp_path)
    bval = pa.with_name("sub-01_dir-PA_dwi.bval")
    bval.write_text(" ".join(f"{b:g}" for b in BVALS[:-1]) + "\n")
    _refused(_single(pa, ap), bval, tmp_path, capsys, "7 values", "8 volumes")


def test_reverse_is_a_t1w(tmp_path, capsys):
    pa, ap = write_pair(tmp_path, reverse={"ScanningSequence": "GR\\IR", "PhaseEncodingDirection": "j-",
                                           "TotalReadoutTime": 0.05})
    _refused(_single(pa, ap), ap.with_suffix("").with_suffix(".json"), tmp_path, capsys, "not an EPI")


def test_reverse_of_another_head(tmp_path, capsys):
    other = phantom()
    other = np.roll(other, 8, axis=0) * np.linspace(0.2, 2.0, 16)[:, None, None, None]  # another object
    pa, ap = write_pair(tmp_path, reverse_data=other)
    _refused(_single(pa, ap), ap, tmp_path, capsys, "same head")


def test_missing_sidecar_is_named_and_options_fill_it_in(tmp_path, capsys):
    pa, ap = write_pair(tmp_path)
    for path in (pa, ap):
        path.with_suffix("").with_suffix(".json").unlink()
    _refused(_single(pa, ap), pa, tmp_path, capsys, "PhaseEncodingDirection")
    subject = SubjectInputs("sub-01", "sub-01", None, SeriesFiles(pa, pa.with_name("sub-01_dir-PA_dwi.bval"),
                                                                  pa.with_name("sub-01_dir-PA_dwi.bvec")),
                            SeriesFiles(ap, ap.with_name("sub-01_dir-AP_dwi.bval"), ap.with_name("sub-01_dir-AP_dwi.bvec")))
    primary, reverse = load_subject(subject, PreprocessConfig(pe_dir="j", readout_time=0.05))
    assert (primary.pe.direction, reverse.pe.direction) == ("j", "j-")  # the reverse is the opposite by definition
    assert reverse.pe.direction_source == "--reverse-pe-dir"


def test_without_sdc_the_pair_needs_no_phase_encoding(tmp_path):
    pa, ap = write_pair(tmp_path, forward=sidecar(None), reverse=sidecar(None))
    subject = SubjectInputs("sub-01", "sub-01", None, SeriesFiles(pa, pa.with_name("sub-01_dir-PA_dwi.bval"),
                                                                  pa.with_name("sub-01_dir-PA_dwi.bvec"),
                                                                  pa.with_suffix("").with_suffix(".json")))
    primary, _ = load_subject(subject, PreprocessConfig(sdc=False))
    assert primary.pe is None


def test_cohort_lists_the_bad_subject_and_names_its_file(tmp_path, capsys):
    write_pair(tmp_path / "bids", subject="sub-01", reverse=sidecar("j"))
    write_series(tmp_path / "bids" / "sub-02" / "dwi", "sub-02_dwi", phantom(), {"PhaseEncodingAxis": "j"})
    out = tmp_path / "out"
    code = main(["preprocess", str(tmp_path / "bids"), "-o", str(out), "--no-qc", "--no-denoise", "--no-degibbs",
                 "--no-motion"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    first = err.strip().splitlines()[0]
    assert "sub-01/dwi/sub-01_dir-" in first and "_dwi.json" in first and "1 bad input(s), 1 good" in first, err
    # sub-02 has no reverse: its unknown polarity does not matter (no SDC, with a warning), it is written
    assert (out / "sub-02" / "dwi" / "sub-02_desc-DTI_FA.nii.gz").is_file()
    record = json.loads((out / "sub-02" / "dwi" / "sub-02_desc-preproc_dwi.json").read_text())
    assert "no reversed phase-encoding series" in record["stylefa"]["skipped"]["sdc"]
    assert not (out / "sub-01").exists()


@pytest.mark.parametrize("option", [["--pe-dir", "j"], ["--bval", "x.bval"]])
def test_one_subject_options_refused_for_a_folder(option, tmp_path, capsys):
    write_pair(tmp_path / "bids")
    out = tmp_path / "out"
    assert main(["preprocess", str(tmp_path / "bids"), "-o", str(out), *option]) == 2
    assert "one subject" in capsys.readouterr().err and not out.exists()


def test_bad_sidecar_json(tmp_path, capsys):
    pa, ap = write_pair(tmp_path)
    broken = ap.with_suffix("").with_suffix(".json")
    broken.write_text("{not json")
    _refused(_single(pa, ap), broken, tmp_path, capsys, "not valid JSON")
    assert json.loads(pa.with_suffix("").with_suffix(".json").read_text())["PhaseEncodingDirection"] == "j"


def test_a_b0_only_series_of_a_dir_pair_serves_the_field(tmp_path):
    from stylefa.preprocess.bids import discover_subjects

    write_pair(tmp_path, reverse_bvals=np.zeros(len(BVALS)))  # dir-AP: b=0 volumes with a bval of zeros
    subject = discover_subjects(tmp_path)[0][0]
    assert subject.dwi.image.name.startswith("sub-01_dir-AP")  # sorted first, but b=0 only
    primary, reverse = load_subject(subject, PreprocessConfig())
    assert (primary.label, primary.is_dwi, reverse.label, reverse.is_dwi) == ("PA", True, "AP", False)


def test_no_weighted_volume_is_refused(tmp_path, capsys):
    pa, _ = write_pair(tmp_path)
    bval = pa.with_name("sub-01_dir-PA_dwi.bval")
    bval.write_text(" ".join("0" for _ in BVALS) + "\n")
    _refused(["preprocess", pa], bval, tmp_path, capsys, "no diffusion-weighted volume")


@pytest.mark.parametrize("option", ["--sdc-config", "--motion-config"])
def test_unknown_step_settings_are_refused_before_any_work(option, tmp_path, capsys):
    pa, ap = write_pair(tmp_path)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"no_such_setting": 1}))
    _refused(_single(pa, ap) + [option, settings], settings, tmp_path, capsys, "no_such_setting")
