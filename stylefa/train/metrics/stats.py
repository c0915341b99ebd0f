"""Feature statistics and their on-disk cache (real-image statistics per dataset).

Mean and covariance are accumulated exactly as the reference ``FeatureStats`` does: float64
raw moments sum(x) and sum(x x^T); ``cov = sum(x x^T) / N - mean mean^T``, i.e. the *biased*
(divide-by-N) covariance, not ``np.cov``'s N - 1. (The difference is a factor
N / (N - 1) on sigma, negligible at 50k images but visible for small sets.)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stylefa.errors import InputError
from stylefa.fileio import write_npz

CACHE_FORMAT = 1


@dataclass
class FeatureStats:
    keep_features: bool = True  # KID needs every feature vector, FID only the moments
    max_items: int | None = None
    num_items: int = 0
    raw_sum: np.ndarray | None = None
    raw_outer: np.ndarray | None = None
    _chunks: list = field(default_factory=list)

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, features) -> None:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError("features must be [N, D]")
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if x.shape[0] == 0:
            return
        if self.raw_sum is None:
            self.raw_sum = np.zeros(x.shape[1], np.float64)
            self.raw_outer = np.zeros((x.shape[1], x.shape[1]), np.float64)
        x64 = x.astype(np.float64)
        self.raw_sum += x64.sum(axis=0)
        self.raw_outer += x64.T @ x64
        self.num_items += x.shape[0]
        if self.keep_features:
            self._chunks.append(x)

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.num_items == 0:
            raise ValueError("no features accumulated")
        mean = self.raw_sum / self.num_items
        cov = self.raw_outer / self.num_items - np.outer(mean, mean)
        return mean, cov

    def features(self) -> np.ndarray:
        if not self.keep_features:
            raise ValueError("features were not kept")
        return np.concatenate(self._chunks, axis=0)

    def save(self, path: str | os.PathLike, meta: dict) -> None:
        arrays = dict(
            num_items=np.asarray(self.num_items, np.int64),
            raw_sum=self.raw_sum,
            raw_outer=self.raw_outer,
            meta=np.asarray(json.dumps(meta, sort_keys=True)),
        )
        if self.keep_features:
            arrays["features"] = self.features()
        write_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple["FeatureStats", dict]:
        try:
            with np.load(path, allow_pickle=False) as data:
                stats = cls(keep_features="features" in data.files)
                stats.num_items = int(data["num_items"])
                stats.raw_sum = data["raw_sum"]
                stats.raw_outer = data["raw_outer"]
                if stats.keep_features:
                    stats._chunks = [data["features"]]
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"unreadable feature-statistics cache ({exc})", path) from None
        return stats, meta


def dataset_path(dataset) -> Path | None:
    """The file or folder a dataset reads (``FADataset.root``, or a ``path`` attribute)."""
    for attr in ("root", "path"):
        value = getattr(dataset, attr, None)
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
    return None


def dataset_fingerprint(dataset) -> dict:
    """What identifies a dataset's content: its path (if it has one), the size and
    modification time of every file under it, its split/xflip settings and its length."""
    info: dict = {"type": type(dataset).__name__, "len": len(dataset)}
    for attr in ("split", "xflip", "resolution"):
        value = getattr(dataset, attr, None)
        if isinstance(value, (str, int, float, bool)):
            info[attr] = value
    path = dataset_path(dataset)
    if path is not None:
        path = path.resolve()
        info["path"] = str(path)
        h = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file() and ".stylefa-cache" not in p.parts) if path.is_dir() else [path]
        for p in files:
            st = p.stat()
            h.update(f"{p.relative_to(path.parent)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        info["files_sha256"] = h.hexdigest()
    return info


def default_cache_dir(dataset) -> Path:
    """``<dataset>/.stylefa-cache`` when the dataset is a writable folder, else
    ``$XDG_CACHE_HOME/stylefa/metrics`` (``~/.cache/stylefa/metrics``)."""
    path = dataset_path(dataset)
    if path is not None and path.is_dir() and os.access(path, os.W_OK):
        return path / ".stylefa-cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylefa" / "metrics"


def cache_key(fingerprint: dict, feature_net_sha256: str, max_items: int | None) -> str:
    blob = json.dumps(
        {"format": CACHE_FORMAT, "dataset": fingerprint, "net": feature_net_sha256, "max_items": max_items},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]
