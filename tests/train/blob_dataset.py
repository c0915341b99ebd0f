"""A tiny prepared dataset (stylefa.data folder format) of smooth random blobs for training tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def write_blob_dataset(root: Path, n: int = 24, res: int = 16, seed: int = 0, label_dim: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res] / res
    images = np.zeros((n, 1, res, res), np.float32)
    for i in range(n):
        cx, cy = rng.uniform(0.3, 0.7, 2)
        s = rng.uniform(0.1, 0.25)
        images[i, 0] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    np.save(root / "images.npy", images)
    np.save(root / "masks.npy", images[:, 0] > 0.1)
    with open(root / "slices.csv", "w", newline="") as handle:
        fields = ["index", "key", "subject", "session", "split", "level", "z_mm", "label", "source"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for i in range(n):
            writer.writerow(dict(index=i, key=f"s{i // 3}", subject=f"s{i // 3}", session="", split="train",
                                 level=i % 3, z_mm="0.0", label=(i % label_dim) if label_dim else "", source="blob"))
    (root / "dataset.json").write_text(json.dumps({
        "format": "stylefa-fa-slices", "format_version": 1, "resolution": res, "num_channels": 1,
        "num_images": n, "labels": {"kind": "level" if label_dim else "none", "label_dim": label_dim},
        "files": {"images": "images.npy", "masks": "masks.npy", "metadata": "slices.csv"},
    }))
    return root
