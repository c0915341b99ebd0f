"""stylefa.project: projection of real FA slices into a generator's latent space.

    from stylefa.project import ProjectConfig, project_batch, compute_w_stats
    from stylefa.project.runner import RunConfig, run_projection

Heavy modules (torch) load on first use.
"""

from __future__ import annotations

from typing import Any

from stylefa.project.config import ProjectConfig

_LAZY = {
    "project_batch": "stylefa.project.projector",
    "compute_w_stats": "stylefa.project.projector",
    "WStats": "stylefa.project.projector",
    "run_projection": "stylefa.project.runner",
    "RunConfig": "stylefa.project.runner",
    "load_perceptual": "stylefa.project.perceptual.loader",
    "PerceptualSpec": "stylefa.project.perceptual.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylefa.project' has no attribute {name!r}")


__all__ = ["ProjectConfig", *_LAZY]
