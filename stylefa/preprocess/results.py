"""What one subject's preprocessing produces: the corrected data in memory (``Corrected``), the
result a caller gets (``SubjectResult``) and the per-step timer both the pipeline and the
writer use (``StepTimer``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from stylefa.preprocess.inputs import LoadedSeries


@dataclass
class Corrected:
    """The subject after every step, in memory (written by ``write_subject``)."""

    series: list[LoadedSeries]
    data: np.ndarray  # (X, Y, Z, N) corrected, concatenated
    affine: np.ndarray
    bvals: np.ndarray  # (N,)
    bvecs: np.ndarray  # (N, 3) rotated
    volume_labels: list[str]  # dir label of each output volume
    mask: np.ndarray
    field_hz: np.ndarray | None = None
    dwirefs: dict = field(default_factory=dict)  # label -> {"orig": (X,Y,Z), "sdc": (X,Y,Z) or None}
    noise: dict = field(default_factory=dict)  # label -> sigma (X,Y,Z)
    transforms: object | None = None  # motion.VolumeTransforms
    steps: dict = field(default_factory=dict)  # step -> settings or {"skipped": reason}
    qc: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


@dataclass
class SubjectResult:
    name: str
    reused: bool
    outputs: list[str]  # paths relative to the output folder
    qc: dict
    steps: dict
    timings: dict = field(default_factory=dict)


class StepTimer:
    """Adds the wall-clock seconds of a ``with`` block to ``timings[step]`` and its CPU seconds (all
    threads of this process) to ``timings["cpu"][step]``, and advances ``bar``."""

    def __init__(self, timings: dict, step: str, bar):
        self.timings, self.step, self.bar = timings, step, bar

    def __enter__(self):
        self.start, self.cpu = time.perf_counter(), time.process_time()
        if self.bar is not None:
            self.bar.set_postfix_str(self.step)

    def __exit__(self, *exc):
        self.timings[self.step] = round(self.timings.get(self.step, 0.0) + time.perf_counter() - self.start, 2)
        cpu = self.timings.setdefault("cpu", {})
        cpu[self.step] = round(cpu.get(self.step, 0.0) + time.process_time() - self.cpu, 2)
        if self.bar is not None and exc[0] is None:
            self.bar.update(1)
