"""Progress for logs, the time estimate before a long CPU run, and --threads."""

import io

import numpy as np
import pytest
import torch

from stylefa.cli import main
from stylefa.project.config import ProjectConfig
from stylefa.project.perceptual.base import PixelMSE
from stylefa.project.projector import compute_w_stats
from stylefa.study.runner import ProgressLines, Target, print_time_estimate, render_steps


def test_progress_lines_in_logs_not_on_a_terminal():
    log = io.StringIO()  # not a TTY
    progress = ProgressLines(10, "project", stream=log)
    progress.update(4, 0.25)
    progress.update(6, 0.125)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("project: 4/10 targets, final loss 0.25")
    assert "ETA" in lines[0] and lines[1].endswith("ETA 0 s")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    log = io.StringIO()
    progress = ProgressLines(8, "project", stream=log)
    for step in range(100):
        progress.step(step, 100, 4)
    lines = log.getvalue().splitlines()
    assert [line.split("step ")[1].split(",")[0] for line in lines] == ["25/100", "50/100", "75/100"]
    assert lines[0].startswith("project: targets 1-4/8, step 25/100") and "ETA" in lines[0]

    tty = Terminal()
    ProgressLines(3, "project", stream=tty).update(3, 1.0)
    assert tty.getvalue() == ""  # the tqdm bar is there instead


def test_render_steps_end_at_the_last_step():
    assert render_steps(100) == (10, 20, 35, 50, 75, 100)
    assert render_steps(3)[-1] == 3 and all(k >= 1 for k in render_steps(3))


def test_time_estimate_scales_with_the_work_and_suggests_settings(monkeypatch):
    from tests.project.helpers import tiny_generator

    G = tiny_generator(resolution=16, w_dim=16)
    stats = compute_w_stats(G, 200)
    batch = [Target(f"t{i}", np.random.default_rng(i).random((16, 16)).astype(np.float32), None, None)
             for i in range(2)]
    clock = iter(np.arange(0.0, 100.0, 0.2))  # 0.2 s between step stamps: 0.2 s per step of 2 images
    import time

    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    out = io.StringIO()
    estimate = print_time_estimate(G, batch, ProjectConfig(steps=1000), PixelMSE(), stats, total=72, stream=out)
    assert estimate == pytest.approx(0.1 * 72 * 1000)
    text = out.getvalue()
    assert "72 projections x 1000 steps" in text and "about 120 min" in text and "--max-slices" in text
    out = io.StringIO()
    print_time_estimate(G, batch, ProjectConfig(steps=10), PixelMSE(), stats, total=2, stream=out)
    assert "That is long" not in out.getvalue()


def test_threads_option_sets_torch_threads_and_rejects_zero(capsys):
    before = torch.get_num_threads()
    try:
        assert main(["demo", "--threads", "0"]) == 2
        assert "--threads must be >= 1" in capsys.readouterr().err
        from stylefa.runtime import apply_threads

        apply_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_every_compute_command_has_threads():
    from stylefa.cli import build_parser
    from stylefa.runtime import COMPUTE_COMMANDS

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    present = [name for name in COMPUTE_COMMANDS if name in subparsers.choices]
    assert {"train", "project", "study", "demo", "metrics", "generate"} <= set(present)
    for name in present:
        assert any("--threads" in a.option_strings for a in subparsers.choices[name]._actions), name


@pytest.mark.parametrize("load, threads, expected", [
    ((6.0, 2), 2, "one thread is faster now (50 ms per image and step, about 60 min): stop and rerun with --threads 1"),
    ((6.0, 2), 1, None),  # busy, but already one thread: nothing to compare
    ((1.5, 2), 2, None),  # idle: no second probe, no remark
])
def test_a_busy_machine_is_named_and_the_faster_thread_count_measured(monkeypatch, load, threads, expected):
    import time

    import stylefa.runtime
    from tests.project.helpers import tiny_generator

    G = tiny_generator(resolution=16, w_dim=16)
    stats = compute_w_stats(G, 200)
    batch = [Target(f"t{i}", np.random.default_rng(i).random((16, 16)).astype(np.float32), None, None)
             for i in range(2)]
    now = [0.0]

    def clock():  # a step of 2 images: 0.2 s with two threads, 0.1 s with one (a loaded machine)
        now[0] += 0.2 if torch.get_num_threads() > 1 else 0.1
        return now[0]

    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(stylefa.runtime, "machine_load", lambda: load)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = io.StringIO()
        estimate = print_time_estimate(G, batch, ProjectConfig(steps=1000), PixelMSE(), stats, total=72, stream=out)
        assert torch.get_num_threads() == threads  # measured, not changed
    finally:
        torch.set_num_threads(before)
    text = out.getvalue()
    assert estimate == pytest.approx((0.1 if threads > 1 else 0.05) * 72 * 1000)
    assert ("The machine is busy (load average 6.0 on 2 cores)" in text) == (load[0] > load[1])
    if expected:
        assert expected in text
    else:
        assert "one thread" not in text
