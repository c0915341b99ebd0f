"""FID and KID on Inception-v3 pool features, computed as the StyleGAN2-ADA reference does.

``compute_metrics(G, dataset, ["fid", "kid"], MetricsConfig(...))`` is the entry point;
``frechet_distance`` and ``kernel_inception_distance`` work on bare features. Torch-heavy
submodules are imported on first use so that importing this package stays cheap.
"""

from __future__ import annotations

from stylefa.train.metrics.fid import frechet_distance
from stylefa.train.metrics.kid import kernel_inception_distance

__all__ = ["compute_metrics", "MetricsConfig", "frechet_distance", "kernel_inception_distance", "load_inception"]


def __getattr__(name: str):
    if name in ("compute_metrics", "MetricsConfig"):
        from stylefa.train.metrics import compute

        return getattr(compute, name)
    if name == "load_inception":
        from stylefa.train.metrics.inception import load_inception

        return load_inception
    raise AttributeError(f"module 'stylefa.train.metrics' has no attribute {name!r}")
