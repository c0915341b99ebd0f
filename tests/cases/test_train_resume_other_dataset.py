"""../shared/cases/train-resume-other-dataset: an exact resume on other training images is refused
with the difference in words and the --init-from alternative; the data's identity is its content,
not its path (a moved dataset resumes). Also: prepare records the identity, an older dataset gets it
from its files, and a test split holding training slices is warned about."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stylefa.cli import main
from stylefa.data.dataset import FADataset, content_of
from tests.train.blob_dataset import write_blob_dataset



pytestmark = pytest.mark.usefixtures("one_torch_thread")


TRAIN = ["--cfg", "tiny", "--batch", "4", "--kimg", "0.004", "--tick", "0.004", "--snap", "1", "--aug", "noaug",
         "--device", "cpu", "--workers", "0"]


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--outdir", str(out), *TRAIN, *extra])


def test_exact_resume_on_other_data_refused_in_words(tmp_path, capsys):
    a = write_blob_dataset(tmp_path / "A", seed=0)
    b = write_blob_dataset(tmp_path / "B", seed=1)
    assert _train(a, tmp_path / "runs") == 0
    run_dir = next((tmp_path / "runs").iterdir())
    record = (run_dir / "training_options.json").read_text()
    capsys.readouterr()
    code = main(["train", "--data", str(b), "--outdir", str(tmp_path / "runs"), *TRAIN[:4], "--kimg", "0.008",
                 *TRAIN[6:], "--resume", "auto"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert "cannot resume: the training data differ from the snapshot's (snapshot: 24 images of s0, s1 +6" in err
    assert "--init-from " + str(run_dir / "network-snapshot-000000.safetensors") in err
    assert (run_dir / "training_options.json").read_text() == record  # the run's record is untouched
    # The identity is the content: the same dataset moved elsewhere resumes.
    moved = shutil.move(str(a), str(tmp_path / "A-moved"))
    assert main(["train", "--data", moved, "--outdir", str(tmp_path / "runs"), *TRAIN[:4], "--kimg", "0.008",
                 *TRAIN[6:], "--resume", "auto"]) == 0
    assert "resuming from" in capsys.readouterr().out


def test_identity_recorded_by_prepare_equals_the_one_computed_for_older_datasets(shared_dir, tmp_path):
    fa = shared_dir / "data" / "fa" / "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    assert main(["prepare", str(fa), "-o", str(tmp_path / "ds"), "--resolution", "16", "--slices", "3",
                 "--split", "1,0,0"]) == 0
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    images = np.load(tmp_path / "ds" / "images.npy")
    import hashlib

    assert meta["content"]["sha256"] == hashlib.sha256(images.astype("<f4").tobytes()).hexdigest()
    assert meta["content"]["slice_sha256"] == [hashlib.sha256(i.tobytes()).hexdigest()[:16] for i in images]
    recorded = FADataset(tmp_path / "ds").content_identity()
    del meta["content"]
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(meta))  # the older format, without the field
    assert FADataset(tmp_path / "ds").content_identity() == recorded


def test_test_split_with_training_content_warns(tmp_path, capsys):
    from stylefa.data.dataset import warn_training_overlap

    root = write_blob_dataset(tmp_path / "ds", n=6)
    rows = (root / "slices.csv").read_text().splitlines()
    # subject s1 (rows 3..5) becomes the test split, and its first slice is a copy of a training slice
    rows[4:7] = [row.replace(",train,", ",test,") for row in rows[4:7]]
    (root / "slices.csv").write_text("\n".join(rows) + "\n")
    images = np.load(root / "images.npy")
    images[3] = images[0]
    np.save(root / "images.npy", images)
    warn_training_overlap(FADataset(root, split="test"))
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"warning: {root}: 1 slice(s) of split 'test' have the same content as training slices "
                          "(s1 level 0)"), err
    assert FADataset(root, split="train").training_overlap() == []
    assert content_of(images[:1])["slice_sha256"] == [FADataset(root, split="all").slice_hashes()[3]]
