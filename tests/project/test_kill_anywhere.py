"""A projection run killed (os._exit, as kill -9) in the middle of any atomic write leaves each
target's result folder complete or absent; the rerun finishes and equals an undisturbed run (--batch 1:
batched targets share float reductions, so only one-target batches are bit-reproducible alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stylefa.fileio import FAIL_WRITE_ENV

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_kill_at_any_write_then_rerun_equals_an_undisturbed_run(tmp_path):
    from stylefa.nets.checkpoint import save_networks

    from tests.project.helpers import tiny_generator

    net = tmp_path / "net.safetensors"
    save_networks(net, G_ema=tiny_generator(resolution=16, w_dim=16))
    targets = []
    for i in range(3):
        targets.append(tmp_path / f"t{i}.npy")
        np.save(targets[-1], np.random.default_rng(i).uniform(0, 0.9, (16, 16)).astype(np.float32))

    def project(out, kill_at=None):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if kill_at is not None:
            env[FAIL_WRITE_ENV] = f"KILL:{kill_at}"
        cmd = [sys.executable, "-m", "stylefa", "project", "--network", str(net), "--outdir", str(out),
               "--perceptual", "mse", "--steps", "2", "--w-avg-samples", "50", "--device", "cpu", "--batch", "1",
               "--targets", *map(str, targets)]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert project(tmp_path / "straight").returncode == 0
    expected = (tmp_path / "straight" / "summary.csv").read_text()
    for kill_at in (2, 5):  # inside the first target folder; the rewrite of its result.json with the metrics
        out = tmp_path / f"killed{kill_at}"
        assert project(out, kill_at).returncode == 137, kill_at
        for folder in out.iterdir():  # every visible target folder is a finished one
            if folder.is_dir() and not folder.name.startswith("."):
                assert (folder / "result.json").is_file(), (kill_at, folder)
        done = project(out)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (out / "summary.csv").read_text() == expected, kill_at
