"""../shared/cases/train-same-name-snapshot-lost: snapshots < 1 kimg apart share a name; a kill -9
inside the third one's resume-tensor write (the case's own hook, STYLEFA_TEST_PAUSE_WRITE) leaves the
second complete, and --resume auto continues from it instead of starting a new run at kimg 0.
(Every other moment of a snapshot write: tests/train/test_snapshot_crash.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stylefa.train.state import find_latest_snapshot
from tests.train.blob_dataset import write_blob_dataset
from tests.train.kill import kill_in_paused_write

ROOT = Path(__file__).resolve().parents[2]


def _cli(data, out, kimg, *extra):
    return [sys.executable, "-m", "stylefa", "train", "--data", str(data), "--outdir", str(out), "--cfg", "tiny",
            "--batch", "4", "--kimg", str(kimg), "--tick", "0.004", "--snap", "1", "--aug", "noaug", "--device", "cpu",
            "--workers", "0", *extra]


@pytest.mark.slow
def test_kill_in_a_same_named_snapshot_keeps_the_previous_one(tmp_path):
    data = write_blob_dataset(tmp_path / "data")
    out = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", STYLEFA_TEST_PAUSE_WRITE="3:120")
    assert kill_in_paused_write(_cli(data, out, 0.02), env, ROOT), "the trainer never reached its third snapshot"
    run_dir = next(out.iterdir())
    latest = find_latest_snapshot(run_dir)
    assert latest is not None and latest.name == "resume-000000.json"
    assert json.loads(latest.read_text())["cur_nimg"] == 8  # the second snapshot, complete
    done = subprocess.run(_cli(data, out, 0.016, "--resume", "auto"), cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{run_dir} (resuming from {latest}" in done.stdout
    assert json.loads(find_latest_snapshot(run_dir).read_text())["cur_nimg"] == 16
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".next") or ".tmp" in p.name]
