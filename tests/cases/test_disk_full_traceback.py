"""../shared/cases/disk-full-traceback and readonly-output-traceback (the per-command classes are in
tests/test_bad_inputs.py): a disk that fills up during prepare is one line naming the file, exit 2,
no temporary file left, and the rerun after 'freeing space' gives the dataset an undisturbed run
gives; an output folder that cannot be created is refused before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stylefa import fileio
from stylefa.cli import main


@pytest.mark.parametrize("nth", [2, 4])
def test_prepare_on_a_full_disk_then_rerun(shared_dir, tmp_path, capsys, monkeypatch, nth):
    fa = shared_dir / "data" / "fa" / "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    argv = [str(fa), "--resolution", "16", "--slices", "3", "--split", "1,0,0"]
    assert main(["prepare", *argv, "-o", str(tmp_path / "straight")]) == 0
    monkeypatch.setenv(fileio.FAIL_WRITE_ENV, f"ENOSPC:{nth}")
    monkeypatch.setattr(fileio, "_atomic_writes", 0)
    capsys.readouterr()
    assert main(["prepare", *argv, "-o", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"stylefa prepare: error: {tmp_path}") and "\n" not in err
    assert err.endswith("no space left on device; finished work kept, rerun to resume"), err
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    monkeypatch.delenv(fileio.FAIL_WRITE_ENV)
    assert main(["prepare", *argv, "-o", str(tmp_path / "full")]) == 0
    for name in ("images.npy", "masks.npy"):
        assert np.array_equal(np.load(tmp_path / "full" / name), np.load(tmp_path / "straight" / name))
    content = [json.loads((tmp_path / d / "dataset.json").read_text())["content"] for d in ("full", "straight")]
    assert content[0] == content[1]


def test_project_into_an_uncreatable_folder_is_refused_before_any_work(tmp_path, capsys):
    from stylefa.study.demo import demo_model_path

    target = tmp_path / "t_fa.npy"
    np.save(target, np.full((64, 64), 0.3, np.float32))
    blocker = tmp_path / "ro"
    blocker.write_text("a file where the folder should be")  # creation fails for root too
    code = main(["project", "--network", str(demo_model_path()), "--targets", str(target), "--perceptual", "mse",
                 "--steps", "2", "--w-avg-samples", "200", "--device", "cpu", "--outdir", str(blocker / "P")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.strip() == f"stylefa project: error: {blocker / 'P'}: cannot create output folder (Not a directory)"
