"""Kill -9 anywhere in a snapshot write, same-named snapshots included: the newest complete
snapshot survives, ``--resume auto`` finds it, and the resumed run ends bit-identical to an
uninterrupted one (docs/train.md, "Exact resume")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stylefa.train import state as snapshot_state
from stylefa.train.ada import AdaConfig
from stylefa.train.loop import run_training
from stylefa.train.options import TrainOptions
from stylefa.train.state import CRASH_ENV, CRASH_POINTS_PER_SNAPSHOT, find_latest_snapshot

from .blob_dataset import write_blob_dataset


def _options(data: Path, outdir: Path, resume=None) -> TrainOptions:
    # A snapshot every 4 images: three snapshots, all named 000000 (< 1 kimg apart).
    return TrainOptions(data=str(data), outdir=str(outdir), cfg="tiny", kimg=0.012, batch=4, tick_kimg=0.004, snap=1,
                        augment=AdaConfig(mode="ada", pipe="bg", target=0.0, interval=1, kimg=0.1), resume=resume,
                        workers=0)


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    meta = json.loads(find_latest_snapshot(run_dir).read_text())
    tensors = load_file(str(run_dir / meta["network_snapshot"]))
    tensors.update({f"resume.{k}": v for k, v in load_file(str(run_dir / meta["tensors_file"])).items()})
    return tensors


def _train_until_killed(options: TrainOptions, crash_at: int) -> int:
    """Train in a forked child that ``os._exit(137)``s at crash point ``crash_at``; its exit status."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest teardown, no atexit, just the training and the crash
        code = 0
        try:
            os.environ[CRASH_ENV] = str(crash_at)
            snapshot_state._crash_points_passed = 0
            run_training(options, progress=False)
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.slow
def test_kill_at_every_point_of_a_same_named_snapshot_resumes_bit_identically(tmp_path):
    data = write_blob_dataset(tmp_path / "data")
    straight = run_training(_options(data, tmp_path / "straight"), progress=False)
    assert straight.last_snapshot.name == "network-snapshot-000000.safetensors"
    expected = _final_state(straight.run_dir)
    # Every crash point of the second snapshot, which replaces the first under the same name.
    second = range(CRASH_POINTS_PER_SNAPSHOT + 1, 2 * CRASH_POINTS_PER_SNAPSHOT + 1)
    survivors = []
    for point in second:
        out = tmp_path / f"killed{point}"
        assert _train_until_killed(_options(data, out), point) == 137, point
        run_dir = next(out.iterdir())
        latest = find_latest_snapshot(run_dir)
        assert latest is not None, f"no complete snapshot after a kill at point {point}"
        survivors.append(json.loads(latest.read_text())["cur_nimg"])
        resumed = run_training(_options(data, out, resume="auto"), progress=False)
        assert resumed.run_dir == run_dir and resumed.cur_nimg == 12
        got = _final_state(run_dir)
        assert set(got) == set(expected)
        for key in expected:
            if not key.startswith("resume.rng.rank0.numpy"):
                assert torch.equal(got[key], expected[key]), (point, key)
        leftovers = [p.name for p in run_dir.iterdir() if p.name.endswith(".next") or ".tmp" in p.name]
        assert not leftovers, (point, leftovers)
    # Before the commit the first snapshot (4 images) survives, after it the second (8 images).
    assert survivors[0] == 4 and survivors[-1] == 8 and sorted(survivors) == survivors


def test_full_disk_in_a_same_named_snapshot_keeps_the_previous_one(tmp_path, monkeypatch):
    data = write_blob_dataset(tmp_path / "data")
    calls = {"n": 0}
    real = snapshot_state.atomic_path

    def failing_on_second_tensors(path, suffix=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device", str(path))
        return real(path, suffix)

    monkeypatch.setattr(snapshot_state, "atomic_path", failing_on_second_tensors)
    with pytest.raises(OSError):
        run_training(_options(data, tmp_path / "runs"), progress=False)
    run_dir = next((tmp_path / "runs").iterdir())
    latest = find_latest_snapshot(run_dir)
    assert latest is not None and json.loads(latest.read_text())["cur_nimg"] == 4
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".next")]
