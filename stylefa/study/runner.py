"""Resumable projection of the study's targets (one ``.npy`` of FA per target).

Uses ``stylefa.project.projector.project_batch``; each target's trajectory depends only on
its seed id (normally its id) and the run seed, so batches can be cut anywhere and a killed
run resumes where it stopped: finished targets are read back instead of projected again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Target:
    id: str
    fa: np.ndarray  # float32 [R, R], what the projector sees
    known: np.ndarray | None  # bool [R, R]; None = all pixels known
    label: np.ndarray | None
    # The projection's random start and noise come from this id (default: ``id``); a lesion's
    # control uses its lesioned twin's, so both start from the same latent.
    seed_id: str | None = None


CURVE_POINTS = 60  # loss-curve samples kept per target


def render_steps(steps: int) -> tuple[int, ...]:
    """Steps at which a projection's current image is kept for the convergence curve."""
    fractions = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
    return tuple(sorted({max(1, round(f * steps)) for f in fractions}))


def read_convergence(folder: Path, target_id: str) -> dict | None:
    """``{"steps", "loss_steps", "loss", "distance", "final_loss", "renders": FA [K, R, R]}`` of a
    projected target, or None when it was projected without them (an older run)."""
    import json

    meta, renders = folder / f"{target_id}.convergence.json", folder / f"{target_id}.renders.npy"
    if not meta.is_file() or not renders.is_file():
        return None
    out = json.loads(meta.read_text())
    out["renders"] = np.load(renders, allow_pickle=False)
    return out


def _write_convergence(folder: Path, target_id: str, index: int, result, steps: tuple[int, ...]) -> None:
    from stylefa.fileio import write_json, write_npy

    loss, dist = result.curves["loss"][:, index], result.curves["distance"][:, index]
    picks = np.unique(np.linspace(0, loss.size - 1, min(CURVE_POINTS, loss.size)).round().astype(int))
    renders = np.stack([((result.renders[k][index, 0].float().cpu().numpy() + 1.0) / 2.0).clip(0, 1)
                        for k in steps]).astype(np.float32)
    write_npy(folder / f"{target_id}.renders.npy", renders)
    write_json(folder / f"{target_id}.convergence.json", {
        "steps": list(steps), "loss_steps": [int(k) + 1 for k in picks], "loss": [float(loss[k]) for k in picks],
        "distance": [float(dist[k]) for k in picks], "final_loss": float(loss[-1]),
        "final_distance": float(result.final_distance[index]),
    })


def project_targets(G, targets: list[Target], config, distance, folder: Path, *, batch_size: int = 8,
                    device: str = "cpu", w_avg_samples: int = 10000) -> dict[str, np.ndarray]:
    """FA [R, R] of the projection of every target; projects only those not on disk yet.
    Beside each ``<id>.npy``: its loss curve and renderings part-way (``read_convergence``).
    Progress: a tqdm bar on a terminal, else one plain line per batch (targets, loss, ETA)."""
    import torch
    from tqdm import tqdm

    from stylefa.fileio import write_npy
    from stylefa.project.projector import compute_w_stats, frozen_copy, project_batch

    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, np.ndarray] = {}
    todo = []
    for target in targets:
        path = folder / f"{target.id}.npy"
        if path.is_file():
            results[target.id] = np.load(path, allow_pickle=False)
        else:
            todo.append(target)
    if not todo:
        return results
    G = frozen_copy(G, device)
    w_stats = compute_w_stats(G, num_samples=w_avg_samples, seed=config.w_avg_seed, device=device)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    if str(device) == "cpu":
        print_time_estimate(G, batches[0], config, distance, w_stats, len(todo))
    steps = render_steps(config.steps)
    progress = ProgressLines(len(todo), "project")
    for batch in tqdm(batches, desc="project", unit="batch", disable=None):
        images = torch.from_numpy(np.stack([t.fa for t in batch])[:, None] * 2.0 - 1.0).float().to(device)
        masks = None
        if any(t.known is not None for t in batch):
            known = [t.known if t.known is not None else np.ones(t.fa.shape, bool) for t in batch]
            masks = torch.from_numpy(np.stack(known)[:, None]).to(device)
        labels = None
        if G.c_dim:
            labels = torch.from_numpy(np.stack([t.label for t in batch])).float().to(device)
        seed_ids = [t.seed_id or t.id for t in batch]
        result = project_batch(G, images, distance, config, w_stats, seed_ids, masks=masks, labels=labels,
                               render_at=steps,
                               on_step=lambda step, n=len(batch): progress.step(step, config.steps, n))
        fa = ((result.images[:, 0].detach().float().cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)
        for index, (target, image) in enumerate(zip(batch, fa)):
            _write_convergence(folder, target.id, index, result, steps)
            write_npy(folder / f"{target.id}.npy", image.astype(np.float32))  # last: the commit marker
            results[target.id] = image.astype(np.float32)
        progress.update(len(batch), float(np.mean(result.curves["loss"][-1])))
    return results


LONG_RUN_S = 600.0


def _seconds_per_image_step(G, batch: list[Target], config, distance, w_stats) -> float:
    import dataclasses
    import time

    import torch

    from stylefa.project.projector import project_batch

    images = torch.from_numpy(np.stack([t.fa for t in batch])[:, None] * 2.0 - 1.0).float()
    labels = torch.from_numpy(np.stack([t.label for t in batch])).float() if G.c_dim else None
    probe = dataclasses.replace(config, steps=4)
    stamps: list[float] = []
    project_batch(G, images, distance, probe, w_stats, [t.id for t in batch], labels=labels,
                  on_step=lambda step: stamps.append(time.perf_counter()))
    # Steps 2-4 only: the first step and the set-up carry one-off costs (allocation, target
    # features) that would inflate the estimate several-fold.
    return (stamps[-1] - stamps[0]) / ((len(stamps) - 1) * len(batch))


def print_time_estimate(G, batch: list[Target], config, distance, w_stats, total: int, stream=None) -> float:
    """Time two projection steps of the first batch and print what the whole run will take;
    above 10 minutes, also how to make it shorter. On a busy machine (``stylefa.runtime.is_busy``)
    it says so, and with more than one thread it times one thread too and names the faster
    count (the run resumes, so stopping to rerun with it loses nothing). Returns the estimate
    in seconds at the current thread count."""
    import sys

    import torch

    from stylefa.runtime import is_busy, machine_load

    stream = stream or sys.stderr
    per_image_step = _seconds_per_image_step(G, batch, config, distance, w_stats)
    threads = torch.get_num_threads()
    estimate = per_image_step * total * config.steps
    line = (f"stylefa: {total} projections x {config.steps} steps on the CPU: about {estimate / 60:.0f} min "
            f"({per_image_step * 1000:.0f} ms per image and step, {threads} thread(s))")
    load = machine_load()
    if load is not None and is_busy(*load):
        line += (f". The machine is busy (load average {load[0]:.1f} on {load[1]} cores): this estimate holds "
                 "only while the load lasts")
        if threads > 1:
            torch.set_num_threads(1)
            try:
                single = _seconds_per_image_step(G, batch, config, distance, w_stats)
            finally:
                torch.set_num_threads(threads)
            if single < 0.9 * per_image_step:
                line += (f"; one thread is faster now ({single * 1000:.0f} ms per image and step, about "
                         f"{single * total * config.steps / 60:.0f} min): stop and rerun with --threads 1, "
                         "the run resumes where it stops")
            else:
                line += f"; one thread is not faster ({single * 1000:.0f} ms per image and step)"
    if estimate > LONG_RUN_S:
        quick = 600.0 / (per_image_step * config.steps)
        line += (f". That is long: for a first look use fewer slices/conditions/steps (about {quick:.0f} "
                 f"projections at {config.steps} steps fit in 10 min, e.g. --max-slices 4 --conditions "
                 "none,noise:0.05,blur:2), a GPU (--device cuda), or --threads 1 on a busy machine; "
                 "the run resumes where it stops")
    print(line, file=stream, flush=True)
    return estimate


class ProgressLines:
    """Plain periodic progress lines (done/total, loss, elapsed, ETA) for logs and batch jobs,
    printed only when stderr is not a terminal (a terminal has the tqdm bar)."""

    def __init__(self, total: int, what: str, stream=None, force: bool = False):
        import sys
        import time

        self.total, self.what, self.done = total, what, 0
        self.stream = stream or sys.stderr
        self.enabled = force or not (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.start = time.time()

    def step(self, step: int, steps: int, batch: int, every: int = 4) -> None:
        """A line ``every`` times per batch: step within the batch and the ETA of the whole run."""
        import time

        if not self.enabled or (step + 1) % max(1, steps // every) or step + 1 == steps:
            return
        done = self.done + batch * (step + 1) / steps
        elapsed = time.time() - self.start
        eta = elapsed / done * (self.total - done)
        print(f"{self.what}: targets {self.done + 1}-{self.done + batch}/{self.total}, step {step + 1}/{steps}, "
              f"elapsed {elapsed:.0f} s, ETA {eta:.0f} s", file=self.stream, flush=True)

    def update(self, count: int, loss: float) -> None:
        import time

        self.done += count
        if not self.enabled:
            return
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        print(f"{self.what}: {self.done}/{self.total} targets, final loss {loss:.4g}, "
              f"elapsed {elapsed:.0f} s, ETA {eta:.0f} s", file=self.stream, flush=True)
