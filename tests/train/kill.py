"""Run a trainer until the STYLEFA_TEST_PAUSE_WRITE hook pauses it inside a snapshot write, then SIGKILL it."""

from __future__ import annotations

import signal
import subprocess
import time


def kill_in_paused_write(cmd: list[str], env: dict, cwd, while_paused=None, timeout: float = 240) -> bool:
    """True when the process paused (``while_paused()`` then ran) and was killed there; False when
    it ended or the timeout passed without pausing."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = proc.stderr.readline()
            if not line:
                return False
            if "STYLEFA_TEST: pausing in write" in line:
                if while_paused is not None:
                    while_paused()
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return True
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
