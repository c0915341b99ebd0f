"""Progress of long work, readable on a terminal and in a log file.

``progress(...)`` gives a ``tqdm`` bar when its stream (stderr by default) is a terminal. When
stderr goes to a file or a pipe (``stylefa train ... 2> train.log``, a batch job, ``nohup``), a
bar is either hidden (tqdm's ``disable=None``) or a stream of carriage returns; there it gives a
:class:`LogProgress` instead, which writes one plain line every ``interval`` seconds and one
when the work ends::

    train: 1.20/5 kimg (24%), elapsed 01:02, ETA 03:16, 0.019 kimg/s, 52.3 s/kimg, p 0.012

The ETA is the work left over the mean rate since the start (steady work: training steps,
projection steps, subjects). The interval is 30 s unless ``interval`` is given or the
environment variable ``STYLEFA_PROGRESS_INTERVAL`` (seconds) sets it.

Both kinds take the same calls, so a call site never asks where its output goes: iteration
(``for x in progress(items, desc=...)``), ``update(n)``, ``set_postfix_str(text)``,
``write(line)`` (a message line, on stdout, that does not break a terminal bar), ``close()`` and
``with``. Uses: ``train`` (kimg), ``project`` (image-steps), ``prepare`` and ``fa`` (subjects, via
``stylefa.data.workers``), ``cohort`` and the demo's cohorts (subjects).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Callable, Iterable, Iterator, TextIO

DEFAULT_INTERVAL_S = 30.0
INTERVAL_ENV = "STYLEFA_PROGRESS_INTERVAL"


def log_interval() -> float:
    """Seconds between log lines: ``$STYLEFA_PROGRESS_INTERVAL`` or 30; a bad value is ignored."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if math.isfinite(value) and value >= 0 else DEFAULT_INTERVAL_S


def _number(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return str(int(value))


def _duration(seconds: float) -> str:
    from tqdm import tqdm

    return tqdm.format_interval(seconds) if math.isfinite(seconds) else "?"


class LogProgress:
    """Plain progress lines for logs: ``desc: n/total unit (pct), elapsed, ETA, rate[, postfix]``.

    ``total`` None: no percentage or ETA. ``clock`` (seconds) is ``time.monotonic`` unless given
    (tests). A line is written when ``interval`` seconds have passed since the last one, and a
    last one at ``close`` when the work wrote lines before (so work shorter than the interval
    stays silent, as a hidden bar was) and ended without an error, unless ``leave`` is False."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", initial: float = 0, leave: bool = True, stream: TextIO | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.initial = initial
        self.leave = leave
        self.stream = stream or sys.stderr
        self.interval = log_interval() if interval is None else interval
        self.clock = clock
        self.start = self.last_line = clock()
        self.postfix = ""
        self.closed = False
        self.lines = 0

    def line(self) -> str:
        elapsed = self.clock() - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else math.nan
        text = f"{self.desc}: " if self.desc else ""
        text += f"{_number(self.n)}"
        if self.total:
            left = (self.total - self.n) / rate if rate > 0 else math.nan
            text += f"/{_number(self.total)} {self.unit} ({100.0 * self.n / self.total:.0f}%)"
            text += f", elapsed {_duration(elapsed)}, ETA {_duration(max(left, 0.0))}"
        else:
            text += f" {self.unit}, elapsed {_duration(elapsed)}"
        if math.isfinite(rate):
            text += f", {rate:.3g} {self.unit}/s"
        return text + (f", {self.postfix}" if self.postfix else "")

    def _emit(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.last_line = self.clock()
        self.lines += 1

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.clock() - self.last_line >= self.interval:
            self._emit()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    @staticmethod
    def write(text: str, file: TextIO | None = None) -> None:
        print(text, file=file or sys.stdout, flush=True)

    def close(self, failed: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self.leave and self.lines and not failed:
            self._emit()

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close(failed=exc_type is not None)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             initial: float = 0, leave: bool = True, enabled: bool = True, stream: TextIO | None = None,
             interval: float | None = None, bar_format: str | None = None, smoothing: float = 0.3):
    """A tqdm bar on a terminal, else a :class:`LogProgress`; ``enabled=False``: silent.

    ``bar_format`` and ``smoothing`` shape the terminal bar only (tqdm's meaning)."""
    from tqdm import tqdm

    stream = stream or sys.stderr
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc or None, unit=unit, initial=initial, leave=leave, file=stream,
                    bar_format=bar_format, smoothing=smoothing, dynamic_ncols=True)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, stream=stream,
                       interval=interval)
