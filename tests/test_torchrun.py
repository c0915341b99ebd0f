"""`torchrun --nproc_per_node 1` runs train and project exactly like a plain process (the
multi-GPU launch documented in docs/train.md and docs/project.md, checked with one CPU process;
two gloo processes are compared in tests/train/test_ddp.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "stylefa", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture()
def one_thread():
    # The launched process runs with OMP_NUM_THREADS=1; the same thread count here makes the
    # float summation order, and so the results, identical.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # two process start-ups of torch: ~20-40 s on 2 busy cores
def test_one_process_torchrun_equals_a_plain_run(tmp_path, one_thread):
    from stylefa.cli import main
    from stylefa.nets.checkpoint import save_networks

    from project.helpers import tiny_generator  # tests/ is on sys.path (rootdir conftest)
    from train.blob_dataset import write_blob_dataset

    data = write_blob_dataset(tmp_path / "data")
    common = ["--data", str(data), "--cfg", "tiny", "--kimg", "0.008", "--batch", "4", "--tick", "1", "--snap", "1000",
              "--aug", "noaug", "--device", "cpu", "--workers", "0"]
    assert main(["train", "--outdir", str(tmp_path / "plain"), *common]) == 0
    done = _torchrun("train", "--outdir", str(tmp_path / "torchrun"), *common)
    assert "1 process(es)" in done.stdout
    (plain,) = (tmp_path / "plain").glob("*/network-snapshot-*.safetensors")
    (launched,) = (tmp_path / "torchrun").glob("*/network-snapshot-*.safetensors")
    a, b = load_file(str(plain)), load_file(str(launched))
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)

    G = tiny_generator(resolution=16, w_dim=16, noise_strength=0.2)
    network = tmp_path / "G.safetensors"
    save_networks(network, G_ema=G)
    target = tmp_path / "slice.npy"
    np.save(target, np.random.default_rng(0).uniform(0, 1, (16, 16)).astype(np.float32))
    args = ["--network", str(network), "--targets", str(target), "--steps", "3", "--perceptual", "mse",
            "--w-avg-samples", "100", "--device", "cpu"]
    assert main(["project", "--outdir", str(tmp_path / "p_plain"), *args]) == 0
    _torchrun("project", "--outdir", str(tmp_path / "p_torchrun"), *args)
    w_plain = np.load(tmp_path / "p_plain" / "slice" / "projected_w.npz")["w"]
    w_launched = np.load(tmp_path / "p_torchrun" / "slice" / "projected_w.npz")["w"]
    np.testing.assert_array_equal(w_launched, w_plain)
    assert (tmp_path / "p_torchrun" / "summary.csv").is_file()
