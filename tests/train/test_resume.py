"""Exact resume: N steps straight == N/2 steps + stop + resume N/2; a writer killed with
SIGKILL mid-snapshot leaves the previous snapshot intact and ``--resume auto`` continues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stylefa.train.ada import AdaConfig
from stylefa.train.loop import run_training
from stylefa.train.options import TrainOptions
from stylefa.train.state import find_latest_snapshot

from .blob_dataset import write_blob_dataset
from .kill import kill_in_paused_write

ROOT = Path(__file__).resolve().parents[2]




def options(data: Path, outdir: Path, kimg: float, resume=None) -> TrainOptions:
    # ADA with a fast controller so p > 0 and the augmentation draws random numbers too.
    return TrainOptions(
        data=str(data), outdir=str(outdir), cfg="tiny", kimg=kimg, batch=4, tick_kimg=0.004, snap=1000,
        augment=AdaConfig(mode="ada", pipe="bg", target=0.0, interval=1, kimg=0.1),
        resume=resume, workers=0,
    )


def snapshot_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    meta_path = find_latest_snapshot(run_dir)
    meta = json.loads(meta_path.read_text())
    tensors = load_file(str(run_dir / meta["network_snapshot"]))
    tensors.update({f"resume.{k}": v for k, v in load_file(str(run_dir / meta["tensors_file"])).items()})
    return tensors, meta


def test_straight_equals_stop_and_resume(tmp_path):
    data = write_blob_dataset(tmp_path / "data")
    straight = run_training(options(data, tmp_path / "a", kimg=0.032), progress=False)
    half = run_training(options(data, tmp_path / "b", kimg=0.016), progress=False)
    assert half.cur_nimg == 16
    half_weights = load_file(str(half.last_snapshot))
    resumed = run_training(options(data, tmp_path / "b", kimg=0.032, resume="auto"), progress=False)
    assert resumed.run_dir == half.run_dir  # continued in the same run directory
    assert straight.cur_nimg == resumed.cur_nimg == 32

    a, meta_a = snapshot_tensors(straight.run_dir)
    b, meta_b = snapshot_tensors(resumed.run_dir)
    assert meta_a["batch_idx"] == meta_b["batch_idx"] == 8
    assert meta_a["ada"] == meta_b["ada"] and meta_a["ada"]["p"] > 0
    assert set(a) == set(b)
    assert any(k.startswith("resume.opt.G.") for k in a) and any(k.startswith("resume.opt.D.") for k in a)
    for key in a:
        if key.startswith("resume.rng.rank0.numpy"):
            continue
        assert torch.equal(a[key], b[key]), key
    # The second half really trained: weights moved on from the half-way snapshot.
    for key in ("G.synthesis.b16.conv0.weight", "D.b16.conv0.weight", "G_ema.mapping.fc0.weight"):
        assert not torch.equal(half_weights[key], a[key]), key
    # stats.jsonl of the resumed run holds the ticks of both halves.
    lines = (resumed.run_dir / "stats.jsonl").read_text().splitlines()
    kimgs = [json.loads(line)["Progress/kimg"]["mean"] for line in lines]
    assert kimgs == sorted(kimgs) and kimgs[-1] == pytest.approx(0.032)


def test_resume_refuses_different_training_options(tmp_path, capsys):
    from stylefa.cli import main

    data = write_blob_dataset(tmp_path / "data")
    run_training(options(data, tmp_path / "c", kimg=0.004), progress=False)
    code = main(["train", "--data", str(data), "--outdir", str(tmp_path / "c"), "--cfg", "tiny", "--batch", "4",
                 "--gamma", "5", "--kimg", "0.008", "--resume", "auto"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot resume: training options differ" in err and "R1 gamma 0.0128 in the snapshot vs 5.0 now" in err
    assert len(err.strip().splitlines()) == 1


def _cli(data: Path, outdir: Path, kimg: float, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stylefa", "train", "--data", str(data), "--outdir", str(outdir), "--cfg", "tiny",
            "--batch", "32", "--kimg", str(kimg), "--tick", "1", "--snap", "1", "--aug", "noaug", *extra]


def test_sigkill_mid_snapshot_keeps_previous_snapshot(tmp_path):
    # 16x16 images (the smallest allowed) and batch 32: one kimg is 32 small steps, so snapshots land on
    # distinct names.
    data = write_blob_dataset(tmp_path / "data", n=40, res=16)
    out = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", STYLEFA_TEST_PAUSE_WRITE="2:120")
    def half_done():  # the write really is half done
        assert list(next(out.iterdir()).glob(".resume-000001.safetensors.*"))

    assert kill_in_paused_write(_cli(data, out, 3), env, ROOT, half_done), \
        "the training process never reached the second snapshot"
    run_dir = next(out.iterdir())

    latest = find_latest_snapshot(run_dir)
    assert latest is not None and latest.name == "resume-000000.json"
    from stylefa.nets.checkpoint import load_networks

    nets = load_networks(run_dir / "network-snapshot-000000.safetensors")
    assert {"G", "G_ema", "D"} <= set(nets)

    done = subprocess.run(_cli(data, out, 1.1, "--resume", "auto"), cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {latest}" in done.stdout
    assert not list(run_dir.glob(".resume-*.tmp*"))  # the killed writer's temp file was cleaned up
    final = find_latest_snapshot(run_dir)
    assert json.loads(final.read_text())["cur_nimg"] >= 1100


def test_resumed_stats_drop_ticks_after_the_snapshot_and_cut_lines(tmp_path):
    from stylefa.train.logging import RunLogger

    lines = [json.dumps({"Progress/kimg": {"num": 1, "mean": k, "std": 0.0}, "timestamp": k}) for k in (0.0, 4.0, 8.0)]
    (tmp_path / "stats.jsonl").write_text("\n".join(lines) + '\n{"Progress/kimg": {"num"')
    logger = RunLogger(tmp_path, enable_tensorboard=False, resume_kimg=4.0)
    logger.write({"Progress/kimg": {"num": 1, "mean": 5.0, "std": 0.0}}, {}, kimg=5.0, walltime=0.0, timestamp=5.0)
    logger.jsonl.close()
    kimgs = [json.loads(line)["Progress/kimg"]["mean"] for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert kimgs == [0.0, 4.0, 5.0]


def test_resumed_tensorboard_hides_the_ticks_trained_again(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from stylefa.train.logging import RunLogger

    def tick(logger, kimg, value):
        logger.write({"Loss/G/loss": {"num": 1, "mean": value, "std": 0.0}}, {}, kimg=kimg, walltime=kimg,
                     timestamp=kimg)

    first = RunLogger(tmp_path)
    for kimg in (1.008, 2.016, 3.024):
        tick(first, kimg, 1.0)
    first.close()
    time.sleep(1.1)  # event files are named by the second they were opened
    again = RunLogger(tmp_path, resume_kimg=1.008)
    tick(again, 2.016, 2.0)
    again.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = [(e.step, e.value) for e in events.Scalars("Loss/G/loss")]
    assert scalars == [(1008, 1.0), (2016, 2.0)]
