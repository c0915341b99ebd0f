"""What a training run shows and keeps: per-tick statistics (stats.jsonl, TensorBoard),
a progress bar and PNG grids of reals and fakes."""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylefa.fileio import atomic_path
from stylefa.train.distributed import DistContext


class StatsCollector:
    """Mean / std / count of every reported value over one tick, summed over ranks.

    Values are accumulated as float64 moments on the device (no host sync per report);
    the JSONL layout matches the reference: ``{"Loss/G/loss": {"num", "mean", "std"}, ...}``.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._moments: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(3, dtype=torch.float64, device=device))
        self._scalars: dict[str, float] = {}

    def report(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().to(torch.float64).flatten()
        finite = value[torch.isfinite(value)]
        m = self._moments[name]
        m[0] += finite.numel()
        m[1] += finite.sum()
        m[2] += finite.square().sum()

    def report_scalar(self, name: str, value: float) -> None:
        """Rank-0 bookkeeping values (progress, timing): not summed over ranks."""
        self._scalars[name] = float(value)

    def collect(self, dist: DistContext) -> dict[str, dict[str, float]]:
        names = sorted(self._moments)
        if dist.enabled:
            # Every rank must reduce the same names in the same order.
            all_names = sorted(set().union(*dist.all_gather_objects(names)))
            names = all_names
        stacked = torch.stack([self._moments[n] for n in names]) if names else torch.zeros(0, 3, dtype=torch.float64)
        dist.all_reduce_sum_(stacked)
        out: dict[str, dict[str, float]] = {}
        for name, (num, total, sq) in zip(names, stacked.cpu().tolist()):
            if num == 0:
                continue
            mean = total / num
            var = max(sq / num - mean * mean, 0.0)
            out[name] = {"num": num, "mean": mean, "std": math.sqrt(var)}
        for name, value in self._scalars.items():
            out[name] = {"num": 1, "mean": value, "std": 0.0}
        self._moments.clear()
        self._scalars.clear()
        return out


def _truncate_stats(path: Path, resume_kimg: float) -> None:
    from stylefa.fileio import write_text

    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a record cut short by a kill mid-write
        kimg = record.get("Progress/kimg", {}).get("mean") if isinstance(record, dict) else None
        if kimg is None or kimg <= resume_kimg + 1e-6:
            kept.append(line)
    write_text(path, "".join(f"{line}\n" for line in kept))


class RunLogger:
    """stats.jsonl (appended, so a resumed run continues the same file) and TensorBoard.

    On resume, ticks logged after the snapshot being resumed (they will be trained and logged
    again) and a line cut short by a kill are dropped first, so the file stays one record per
    tick and valid JSONL.
    """

    def __init__(self, run_dir: Path, enable_tensorboard: bool = True, resume_kimg: float | None = None):
        path = run_dir / "stats.jsonl"
        if resume_kimg is not None and path.is_file():
            _truncate_stats(path, resume_kimg)
        self.jsonl = open(path, "a", encoding="utf-8")
        self.tb = None
        if enable_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # TensorBoard steps are images seen (unique per tick, unlike whole kimg). On
                # resume, purge_step hides the previous process's events from ticks after the
                # snapshot, which this run trains and logs again.
                purge = None if resume_kimg is None else int(round(resume_kimg * 1000)) + 1
                self.tb = SummaryWriter(str(run_dir), purge_step=purge)
            except ImportError as exc:
                warnings.warn(f"TensorBoard logging disabled ({exc})", stacklevel=2)

    def write(self, stats: dict[str, dict[str, float]], metrics: dict[str, float], kimg: float, walltime: float,
              timestamp: float) -> None:
        record: dict[str, Any] = dict(stats)
        for name, value in metrics.items():
            record[f"Metrics/{name}"] = {"num": 1, "mean": value, "std": 0.0}
        record["timestamp"] = timestamp
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            step = int(round(kimg * 1000))
            for name, value in stats.items():
                self.tb.add_scalar(name, value["mean"], global_step=step, walltime=walltime)
            for name, value in metrics.items():
                self.tb.add_scalar(f"Metrics/{name}", value, global_step=step, walltime=walltime)
            self.tb.flush()

    def close(self) -> None:
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()


def grid_shape(resolution: int, num_images: int | None = None) -> tuple[int, int]:
    """(columns, rows) of the snapshot grid: about 1920x1080 pixels, 4..16 images a side
    (smaller than the reference's 7680x4320 so CPU runs do not spend minutes on grids)."""
    gw = int(np.clip(1920 // resolution, 4, 16))
    gh = int(np.clip(1080 // resolution, 4, 16))
    return gw, gh


def grid_indices(labels: np.ndarray | None, num_items: int, gw: int, gh: int, seed: int = 0) -> list[int]:
    """Random training images, or for labelled data one label per row (as the reference)."""
    rnd = np.random.RandomState(seed)
    if labels is None or labels.shape[1] == 0:
        order = np.arange(num_items)
        rnd.shuffle(order)
        return [int(order[i % num_items]) for i in range(gw * gh)]
    groups: dict[tuple, list[int]] = {}
    for idx in range(num_items):
        groups.setdefault(tuple(labels[idx].tolist()), []).append(idx)
    keys = sorted(groups)
    for key in keys:
        rnd.shuffle(groups[key])
    out = []
    for y in range(gh):
        members = groups[keys[y % len(keys)]]
        out += [members[x % len(members)] for x in range(gw)]
        groups[keys[y % len(keys)]] = members[gw % len(members):] + members[: gw % len(members)]
    return out


def save_image_grid(path: Path, images: np.ndarray | torch.Tensor, grid: tuple[int, int]) -> None:
    """Write ``images`` [N, 1, H, W] in [-1, 1] (FA = (x + 1) / 2) as one 8-bit PNG."""
    from PIL import Image

    if torch.is_tensor(images):
        images = images.detach().float().cpu().numpy()
    gw, gh = grid
    n, c, h, w = images.shape
    if n != gw * gh or c != 1:
        raise ValueError(f"expected {gw * gh} single-channel images, got {tuple(images.shape)}")
    pixels = np.rint((images + 1) * 127.5).clip(0, 255).astype(np.uint8)
    pixels = pixels.reshape(gh, gw, h, w).transpose(0, 2, 1, 3).reshape(gh * h, gw * w)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(pixels, "L").save(tmp, format="PNG")


def format_tick_line(stats: dict[str, dict[str, float]]) -> str:
    def mean(name: str, fmt: str) -> str:
        # A tick shorter than the regularisation interval has no R1 / path-length values.
        return format(stats[name]["mean"], fmt) if name in stats else "-"

    return (
        f"tick {mean('Progress/tick', '<5.0f')} kimg {mean('Progress/kimg', '<8.3f')} "
        f"sec/kimg {mean('Timing/sec_per_kimg', '<8.2f')} augment {mean('Progress/augment', '.3f')} "
        f"G {mean('Loss/G/loss', '.3f')} D {mean('Loss/D/loss', '.3f')} "
        f"r1 {mean('Loss/r1_penalty', '.4g')} pl {mean('Loss/pl_penalty', '.4g')}"
    )
