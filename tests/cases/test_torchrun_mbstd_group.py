"""../shared/cases/torchrun-mbstd-group: K processes train what one process trains. The
minibatch-std group is the same for any process count (it must divide the per-process batch, or the
run is refused in words before any work); --dry-run under torchrun shows it per process; a resume
refusal names the differing options in words, never a dict dump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stylefa.cli import main
from stylefa.errors import InputError
from stylefa.train.ada import AdaConfig
from stylefa.train.loop import run_training
from stylefa.train.options import TrainOptions, resolve
from tests.train.blob_dataset import write_blob_dataset

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("cfg, batch, processes, group", [("tiny", 4, 1, 4), ("tiny", 8, 2, 4), ("small", 32, 2, 16),
                                                          ("auto", 64, 4, 4)])
def test_group_is_the_same_for_any_process_count(cfg, batch, processes, group):
    config = resolve(TrainOptions(data="d", outdir="o", cfg=cfg, batch=batch), 64, 0, processes, "cpu")
    assert config.D.epilogue.mbstd_group_size == group


@pytest.mark.parametrize("cfg, batch, per_process, group, advice", [
    ("tiny", 4, 2, 4, "--batch 8, fewer processes, or --mbstd-group 2"),
    ("small", 16, 8, 16, "--batch 32, fewer processes, or --mbstd-group 8"),
])
def test_group_larger_than_the_per_process_batch_is_refused(cfg, batch, per_process, group, advice):
    with pytest.raises(InputError) as info:
        resolve(TrainOptions(data="d", outdir="o", cfg=cfg, batch=batch), 64, 0, 2, "cpu")
    assert f"--batch {batch} on 2 processes gives {per_process} images per process, not a multiple of the " \
           f"minibatch-std group {group}" in str(info.value) and advice in str(info.value)


def test_dry_run_under_torchrun_shows_the_per_process_values(tmp_path, capsys, monkeypatch):
    data = write_blob_dataset(tmp_path / "data")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    argv = ["train", "--data", str(data), "--outdir", str(tmp_path / "o"), "--cfg", "tiny", "--dry-run", "--device", "cpu"]
    assert main([*argv, "--batch", "8"]) == 0
    assert "mbstd group 4 (4 images per process x 2 processes)" in capsys.readouterr().out
    assert main(argv) == 2  # the preset's batch 4: 2 per process
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "2 images per process" in err
    monkeypatch.setenv("RANK", "1")
    assert main([*argv, "--batch", "8"]) == 0 and capsys.readouterr().out == ""  # printed once, by rank 0
    assert not (tmp_path / "o").exists()


def test_resume_refusal_names_the_options_in_words(tmp_path, capsys):
    data = write_blob_dataset(tmp_path / "data")
    common = ["train", "--data", str(data), "--outdir", str(tmp_path / "runs"), "--cfg", "tiny", "--batch", "4",
              "--tick", "0.004", "--aug", "noaug", "--device", "cpu", "--workers", "0"]
    assert main([*common, "--kimg", "0.004", "--mbstd-group", "2"]) == 0
    capsys.readouterr()
    assert main([*common, "--kimg", "0.008", "--resume", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert "mbstd group 2 in the snapshot vs 4 now" in err and "{" not in err and "\n" not in err, err


def _options(data, out, group):
    return TrainOptions(data=str(data), outdir=str(out), cfg="tiny", kimg=0.016, batch=4, tick_kimg=1, snap=1000,
                        augment=AdaConfig(mode="noaug"), workers=0, device="cpu", mbstd_group=group)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_at_a_batch_where_the_reference_groups_differ(tmp_path):
    """--batch 4 on 2 processes: the reference rule would give groups of 2 there and of 4 in one
    process. With the group fixed (2 here, as --mbstd-group asks) 2 processes equal 1; the weights
    of one process with groups of 4 (what the reference rule silently compared) differ far more."""
    data = write_blob_dataset(tmp_path / "data")
    same = run_training(_options(data, tmp_path / "one2", 2), progress=False)
    other = run_training(_options(data, tmp_path / "one4", 4), progress=False)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "stylefa",
           "train", "--data", str(data), "--outdir", str(tmp_path / "two"), "--cfg", "tiny", "--kimg", "0.016",
           "--batch", "4", "--mbstd-group", "2", "--tick", "1", "--snap", "1000", "--aug", "noaug", "--device", "cpu",
           "--workers", "0"]
    done = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mbstd group 2 (2 images per process x 2 processes)" in done.stdout
    two = load_file(str(next((tmp_path / "two").iterdir()) / same.last_snapshot.name))
    one, one4 = load_file(str(same.last_snapshot)), load_file(str(other.last_snapshot))
    d_keys = [k for k in one if k.startswith("D.")]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=2e-4, msg=key)
    same_diff = max(float((two[k] - one[k]).abs().max()) for k in d_keys)
    group_diff = max(float((one4[k] - one[k]).abs().max()) for k in d_keys)
    print(f"max |D weight difference|: 2 vs 1 process, same group {same_diff:.3g}; group 4 vs 2 {group_diff:.3g}")
    assert group_diff > 10 * max(same_diff, 1e-6)
