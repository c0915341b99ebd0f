"""../shared/cases/cli-broken-pipe: a reader that closes stdout early gets no traceback; the command
ends quietly with exit 141 (128 + SIGPIPE, what a shell shows for `cat` killed by SIGPIPE)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env():
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _demo_network():
    from stylefa.study.demo import demo_model_path

    return str(demo_model_path())


def test_closed_pipe_is_quiet():
    proc = subprocess.Popen([sys.executable, "-m", "stylefa", "network-info", _demo_network()], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_head_gets_the_first_line():
    done = subprocess.run(f'"{sys.executable}" -m stylefa network-info "{_demo_network()}" | head -1', shell=True,
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "{\n" and done.stderr == ""
