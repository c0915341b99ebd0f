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


def project_targets(G, targets: list[Target], config, distance, folder: Path, *, batch_size: int = 8,
                    device: str = "cpu", w_avg_samples: int = 10000) -> dict[str, np.ndarray]:
    """FA [R, R] of the projection of every target; projects only those not on disk yet."""
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
        result = project_batch(G, images, distance, config, w_stats, seed_ids, masks=masks, labels=labels)
        fa = ((result.images[:, 0].detach().float().cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)
        for target, image in zip(batch, fa):
            write_npy(folder / f"{target.id}.npy", image.astype(np.float32))
            results[target.id] = image.astype(np.float32)
    return results
