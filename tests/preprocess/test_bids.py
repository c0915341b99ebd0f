"""Reversed-PE pairs found the BIDS way; phase encoding read from sidecars, never guessed."""

import json
import os

import numpy as np
import pytest

from stylefa.errors import InputError
from stylefa.preprocess.bids import discover_subjects, find_files, pair_series
from stylefa.preprocess.sidecars import anatomical_label, resolve_pe
from tests.preprocess.pipe_data import phantom, sidecar, write_pair, write_series


def test_dir_pair_in_dwi_is_one_subject(tmp_path):
    pa, ap = write_pair(tmp_path)
    subjects, bad = discover_subjects(tmp_path)
    assert bad == [] and len(subjects) == 1
    subject = subjects[0]
    assert subject.name == "sub-01" and subject.subject == "sub-01"
    assert {subject.dwi.image, subject.reverse.image} == {pa, ap}
    assert subject.reverse.is_dwi and subject.dwi.sidecar.is_file()
    assert subject.folder(tmp_path / "out") == tmp_path / "out" / "sub-01" / "dwi"


def test_fmap_epi_with_intended_for_is_the_reverse(tmp_path):
    dwi = write_series(tmp_path / "sub-02" / "ses-1" / "dwi", "sub-02_ses-1_dwi", phantom(), sidecar("j"))
    epi = write_series(tmp_path / "sub-02" / "ses-1" / "fmap", "sub-02_ses-1_dir-AP_epi", phantom()[..., :2],
                       sidecar("j-", IntendedFor=["bids::sub-02/ses-1/dwi/sub-02_ses-1_dwi.nii.gz"]), bvals=None)
    # an EPI meant for another series is not taken
    write_series(tmp_path / "sub-02" / "ses-1" / "fmap", "sub-02_ses-1_dir-LR_epi", phantom()[..., :1],
                 sidecar("i-", IntendedFor="ses-1/dwi/other_dwi.nii.gz"), bvals=None)
    subjects, bad = discover_subjects(tmp_path)
    assert bad == [] and [s.name for s in subjects] == ["sub-02_ses-1"]
    assert subjects[0].dwi.image == dwi and subjects[0].reverse.image == epi
    assert not subjects[0].reverse.is_dwi and subjects[0].reverse.label == "AP"


def test_intended_for_relative_to_the_subject(tmp_path):
    write_series(tmp_path / "sub-03" / "dwi", "sub-03_dwi", phantom(), sidecar("j"))
    epi = write_series(tmp_path / "sub-03" / "fmap", "sub-03_dir-AP_epi", phantom()[..., :1],
                       sidecar("j-", IntendedFor="dwi/sub-03_dwi.nii.gz"), bvals=None)
    assert discover_subjects(tmp_path)[0][0].reverse.image == epi


def test_single_series_without_reverse(tmp_path):
    write_series(tmp_path / "sub-04" / "dwi", "sub-04_acq-b1000_run-1_dwi", phantom(), sidecar("j"))
    subjects, _ = discover_subjects(tmp_path)
    assert subjects[0].reverse is None and subjects[0].name == "sub-04_acq-b1000_run-1"


def test_hidden_and_derivative_folders_skipped_dangling_links_reported(tmp_path):
    write_pair(tmp_path)
    write_pair(tmp_path / ".git" / "annex", subject="sub-09")
    write_pair(tmp_path / "derivatives" / "x", subject="sub-08")
    folder = tmp_path / "sub-05" / "dwi"
    folder.mkdir(parents=True)
    os.symlink(tmp_path / "nowhere.nii.gz", folder / "sub-05_dwi.nii.gz")
    files, dangling = find_files(tmp_path)
    assert not any(".git" in p.parts or "derivatives" in p.parts for p in files)
    assert [item.path for item in dangling] == [folder / "sub-05_dwi.nii.gz"]
    subjects, bad = pair_series(files, tmp_path, dangling)
    assert [s.name for s in subjects] == ["sub-01"]
    assert len(bad) == 1 and "broken symlink" in bad[0].problem and bad[0].path == dangling[0].path


def test_three_series_differing_only_in_dir_is_reported(tmp_path):
    write_pair(tmp_path)
    write_series(tmp_path / "sub-01" / "dwi", "sub-01_dir-LR_dwi", phantom(), sidecar("i"))
    subjects, bad = discover_subjects(tmp_path)
    assert subjects == [] and "3 DWI series" in bad[0].problem


def test_pe_from_sidecar_options_and_the_bids_readout_formula(tmp_path):
    shape = (16, 72, 8, 3)
    pe = resolve_pe({"PhaseEncodingDirection": "j-", "TotalReadoutTime": 0.0476}, None, tmp_path, shape, None, None)
    assert (pe.axis, pe.sign, pe.readout_time) == (1, -1, 0.0476)
    # BIDS: TotalReadoutTime = EffectiveEchoSpacing * (ReconMatrixPE - 1), ReconMatrixPE from the image
    pe = resolve_pe({"PhaseEncodingDirection": "j", "EffectiveEchoSpacing": 0.00067}, None, tmp_path, shape, None, None)
    assert pe.readout_time == pytest.approx(0.00067 * 71)
    pe = resolve_pe({"PhaseEncodingAxis": "j"}, tmp_path / "s.json", tmp_path, shape, "j-", 0.05)
    assert pe.direction == "j-" and pe.direction_source == "--pe-dir"
    with pytest.raises(InputError, match="not guessed"):
        resolve_pe({"PhaseEncodingAxis": "j", "TotalReadoutTime": 0.05}, tmp_path / "s.json", tmp_path, shape, None, None)
    with pytest.raises(InputError, match="contradicts"):
        resolve_pe({"PhaseEncodingDirection": "j"}, tmp_path / "s.json", tmp_path, shape, "j-", 0.05)
    with pytest.raises(InputError, match="contradicts"):
        resolve_pe({"PhaseEncodingAxis": "i"}, tmp_path / "s.json", tmp_path, shape, "j", 0.05)


def test_dir_label_from_orientation():
    las = np.diag([-2.0, 2, 2, 1])
    assert anatomical_label("j", las) == "PA" and anatomical_label("j-", las) == "AP"
    assert anatomical_label("i", las) == "RL" and anatomical_label("i-", np.eye(4)) == "RL"


def test_shared_pepolar_subject_is_a_full_dwi_pair(shared_dir):
    root = shared_dir / "data" / "pepolar"
    subjects, bad = discover_subjects(root)
    assert bad == [] and len(subjects) == 1
    subject = subjects[0]
    assert subject.dwi.is_dwi and subject.reverse.is_dwi
    directions = {json.loads(s.sidecar.read_text())["PhaseEncodingDirection"] for s in (subject.dwi, subject.reverse)}
    assert directions == {"j", "j-"}


def test_a_file_without_bids_entities_gets_a_subject_label(tmp_path):
    from stylefa.preprocess.bids import output_name

    assert output_name(tmp_path / "my scan_2.nii.gz") == ("sub-myscan2", "sub-myscan2", None)
    assert output_name(tmp_path / "sub-01_ses-2_dir-AP_run-1_dwi.nii.gz") == ("sub-01_ses-2_run-1", "sub-01", "ses-2")
