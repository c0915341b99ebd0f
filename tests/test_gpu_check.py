"""benchmarks/gpu_check.py: its CPU --quick mode runs end to end and writes valid JSON, and a
section that fails or overruns its time cap is recorded without losing the others."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_sections_that_fail_or_overrun_are_recorded_and_the_json_stays_valid(tmp_path):
    gc = _module()
    report = gc.Report(tmp_path / "r.json", "quick", 60)
    deadline = time.monotonic() + 60

    def slow(out, save):
        out["partial"] = 1
        save()
        time.sleep(30)

    def broken(out, save):
        raise RuntimeError("boom")

    def fine(out, save):
        out["value"] = 2.5

    start = time.monotonic()
    gc.run_section(report, "slow", 1.0, deadline, slow)
    assert time.monotonic() - start < 10
    gc.run_section(report, "broken", 5.0, deadline, broken)
    gc.run_section(report, "fine", 5.0, deadline, fine)
    gc.run_section(report, "late", 5.0, time.monotonic() + 1, fine)  # less than 5 s of budget left
    data = json.loads((tmp_path / "r.json").read_text())
    sections = data["sections"]
    assert sections["slow"]["status"] == "timeout" and sections["slow"]["result"] == {"partial": 1}
    assert sections["broken"]["status"] == "failed" and "boom" in sections["broken"]["error"]
    assert sections["fine"]["status"] == "ok" and sections["fine"]["result"] == {"value": 2.5}
    assert sections["late"]["status"] == "skipped: budget spent"


def test_full_sizes_are_refused_on_the_cpu(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--out", str(tmp_path / "x.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert done.returncode == 2 and "--quick" in done.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow  # ~25 s of user time, 1-2 min wall on a busy 2-core machine
def test_quick_cpu_run_writes_complete_json(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["mode"] == "quick" and data["finished"]
    assert data["environment"]["torch"] and data["environment"]["device"] == "cpu"
    sections = data["sections"]
    for name in ("golden", "precision", "train_tick", "project_batch", "train_256", "project_256", "demo_64"):
        assert sections[name]["status"] == "ok", (name, sections[name].get("error"))
    assert sections["compile"]["status"] == "skipped"
    golden = sections["golden"]["result"]
    assert golden.get("ok") is True or "skipped" in golden  # ok where ../shared/reference is present
    train = sections["train_256"]["result"]["fp32"]
    assert train["sec_per_kimg"] > 0 and set(train["phase_ms_median"]) == {"Gmain", "Greg", "Dmain", "Dreg"}
    assert train["hours_for_18600_kimg"] == pytest.approx(train["sec_per_kimg"] * 18600 / 3600, rel=0.01)
    project = sections["project_256"]["result"]
    assert project["batch1"]["images_steps_per_s"] > 0 and project["batch2"]["hours_for_8568x1000"] > 0
    assert sections["train_tick"]["result"]["ok"] and sections["project_batch"]["result"]["ok"]
    summary = data["summary"]
    assert summary["correctness_ok"] is True
    assert {"train_256_sec_per_kimg", "train_18600_kimg_hours", "project_8568x1000_hours"} <= set(summary)
