"""stylefa.progress: a bar on a terminal, plain periodic lines with ETA in a log file.

The commands are run as a user would run them into a log (``stylefa ... > log 2>&1``: a
subprocess whose stdout and stderr are a file), with ``STYLEFA_PROGRESS_INTERVAL=0`` so that
every step of these tiny runs writes its line."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tqdm import tqdm

from stylefa.progress import LogProgress, log_interval, progress

REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_every_interval_with_elapsed_eta_and_rate():
    clock, log = Clock(), io.StringIO()
    bar = LogProgress(total=100, desc="project", unit="img-step", stream=log, interval=10, clock=clock)
    for _ in range(20):  # 2.5 steps per second: 25 done at t = 10 s
        clock.now += 0.4
        bar.update(1)
    assert log.getvalue() == ""  # not 10 s yet
    for _ in range(5):
        clock.now += 0.4
        bar.update(1)
    bar.set_postfix_str("loss 0.5")
    clock.now += 0.4
    bar.update(1)
    lines = log.getvalue().splitlines()
    assert lines == ["project: 25/100 img-step (25%), elapsed 00:10, ETA 00:30, 2.5 img-step/s"]
    clock.now = 40.0
    bar.update(74)
    bar.close()
    lines = log.getvalue().splitlines()
    # the second line: 100 done in 40 s; close() adds the last one (the same numbers here)
    assert lines[1] == "project: 100/100 img-step (100%), elapsed 00:40, ETA 00:00, 2.5 img-step/s, loss 0.5"
    assert len(lines) == 3 and lines[2] == lines[1]


def test_float_units_unknown_totals_and_initial_progress():
    clock, log = Clock(), io.StringIO()
    bar = LogProgress(total=5.0, initial=1.0, desc="train", unit="kimg", stream=log, interval=0, clock=clock)
    clock.now = 100.0
    bar.update(0.5)  # resumed at 1 kimg: the rate counts this run's work only
    assert log.getvalue().splitlines() == [
        "train: 1.50/5 kimg (30%), elapsed 01:40, ETA 11:40, 0.005 kimg/s"]
    log = io.StringIO()
    items = list(LogProgress(iter(range(3)), desc="cohort", unit="subject", stream=log, interval=0, clock=clock))
    assert items == [0, 1, 2]
    assert log.getvalue().splitlines()[0] == "cohort: 1 subject, elapsed 00:00"


def test_short_or_failed_work_stays_silent():
    log = io.StringIO()
    for _ in progress(range(50), desc="quick", stream=log, interval=60):
        pass
    assert log.getvalue() == ""  # shorter than the interval: nothing, as a hidden bar was
    clock = Clock()
    with pytest.raises(RuntimeError):
        with LogProgress(total=4, stream=log, interval=1, clock=clock) as bar:
            clock.now = 2.0
            bar.update(1)
            raise RuntimeError("the job failed")
    assert len(log.getvalue().splitlines()) == 1  # the periodic line, no "finished" line after an error


def test_a_terminal_gets_the_tqdm_bar_and_disabled_means_silent():
    assert isinstance(progress(total=3, stream=Terminal()), tqdm)
    assert isinstance(progress(total=3, stream=io.StringIO()), LogProgress)
    log = io.StringIO()
    with progress(total=3, stream=log, enabled=False, interval=0) as bar:
        bar.update(3)
    assert log.getvalue() == ""


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("STYLEFA_PROGRESS_INTERVAL", "5")
    assert log_interval() == 5.0
    monkeypatch.setenv("STYLEFA_PROGRESS_INTERVAL", "soon")
    assert log_interval() == 30.0
    monkeypatch.delenv("STYLEFA_PROGRESS_INTERVAL")
    assert log_interval() == 30.0


# --- the commands, into a log file ---------------------------------------------------------------

def run_into_log(args: list[str], log: Path, cwd: Path) -> str:
    env = dict(os.environ, STYLEFA_PROGRESS_INTERVAL="0", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    with open(log, "w") as handle:
        code = subprocess.run([sys.executable, "-m", "stylefa.cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                              env=env, cwd=cwd, timeout=600).returncode
    text = log.read_text()
    assert code == 0, text
    assert "\r" not in text  # plain lines, no bar redrawn in place
    return text


def progress_lines(text: str, desc: str, unit: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(desc)}: [\d.]+/[\d.]+ {re.escape(unit)} \(\d+%\), elapsed [\d:]+, ETA [\d:?]+")
    return [line for line in text.splitlines() if pattern.match(line)]


def test_prepare_into_a_log(tmp_path):
    from tests.data.test_prepare import write_subject

    for i in range(3):
        write_subject(tmp_path / "in", f"sub-{i:02d}_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    text = run_into_log(["prepare", "in", "-o", "ds", "--resolution", "24", "--slices", "4"], tmp_path / "log",
                        tmp_path)
    lines = progress_lines(text, "prepare", "subject")
    assert lines[0].startswith("prepare: 1/3 subject (33%)") and lines[-1].startswith("prepare: 3/3 subject (100%)")


@pytest.mark.slow
def test_train_into_a_log(tmp_path):
    from tests.train.blob_dataset import write_blob_dataset

    write_blob_dataset(tmp_path / "data")
    text = run_into_log(["train", "--data", "data", "--outdir", "runs", "--cfg", "tiny", "--kimg", "0.016",
                         "--batch", "4", "--metrics", "none"], tmp_path / "log", tmp_path)
    lines = progress_lines(text, "train", "kimg")
    assert len(lines) >= 4 and lines[-1].startswith("train: 0.02/0.02 kimg (100%)")


@pytest.mark.slow
def test_project_into_a_log(tmp_path):
    from stylefa.nets.checkpoint import save_networks
    from tests.project.helpers import tiny_generator

    save_networks(tmp_path / "G.safetensors", G_ema=tiny_generator(resolution=16, w_dim=16))
    np.save(tmp_path / "a.npy", np.random.default_rng(0).uniform(0, 1, (16, 16)).astype(np.float32))
    text = run_into_log(["project", "--network", "G.safetensors", "--targets", "a.npy", "--outdir", "out",
                         "--steps", "4", "--perceptual", "mse", "--w-avg-samples", "64"], tmp_path / "log", tmp_path)
    lines = progress_lines(text, "project", "img-step")
    assert len(lines) >= 4 and lines[-1].startswith("project: 4/4 img-step (100%)")


@pytest.mark.slow
def test_study_into_a_log(tmp_path):
    import stylefa.nets.checkpoint as ckpt
    from stylefa.data.nifti import make_volume, save_volume
    from stylefa.nets.config import GeneratorConfig, MappingConfig, SynthesisConfig
    from tests.study.volumes import MNI_2MM, world

    x, y, z = world()
    brain = (x / 70) ** 2 + ((y + 18) / 90) ** 2 + ((z - 15) / 60) ** 2 < 1
    save_volume(make_volume(np.where(brain, 0.35 + 0.25 * np.cos(x / 9.0), 0.0), MNI_2MM), tmp_path / "sub-01_FA.nii.gz")
    g = GeneratorConfig(z_dim=16, w_dim=16, img_resolution=32, mapping=MappingConfig(num_layers=2),
                        synthesis=SynthesisConfig(channel_base=256, channel_max=16))
    ckpt.save_networks(tmp_path / "G.safetensors", G_ema=ckpt.create_networks(g)["G_ema"])
    text = run_into_log(["study", "--network", "G.safetensors", "--data", "sub-01_FA.nii.gz", "--outdir", "out",
                         "--conditions", "none,noise:0.1", "--max-slices", "2", "--steps", "4", "--batch", "2",
                         "--w-avg-samples", "64", "--perceptual", "mse", "--no-lpips-metric", "--figure-slices", "1"],
                        tmp_path / "log", tmp_path)
    lines = [line for line in text.splitlines() if re.match(r"^project: \d+/4 targets, final loss .*, ETA \d+ s$", line)]
    assert [line.split(" targets")[0] for line in lines] == ["project: 2/4", "project: 4/4"]


def test_preprocess_into_a_log(tmp_path):
    from tests.preprocess.pipe_data import FAST_SDC, write_pair

    (tmp_path / "sdc.json").write_text(json.dumps(FAST_SDC))
    for subject in ("sub-01", "sub-02"):
        write_pair(tmp_path / "bids", subject=subject)
    text = run_into_log(["preprocess", "bids", "-o", "derivs", "--no-denoise", "--no-degibbs", "--no-motion",
                         "--no-qc", "--sdc-config", "sdc.json"], tmp_path / "log", tmp_path)
    cohort = progress_lines(text, "preprocess", "subject")
    assert cohort[0].startswith("preprocess: 1/2 subject (50%)") and cohort[-1].startswith("preprocess: 2/2 subject")
    steps = progress_lines(text, "sub-01", "step")
    assert steps and steps[-1].startswith("sub-01: 7/7 step (100%)"), text

