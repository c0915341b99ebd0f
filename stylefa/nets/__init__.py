"""stylefa.nets: StyleGAN2-ADA generator and discriminator in plain PyTorch.

State-dict names and numerics match the reference implementation (Karras et al. 2020),
see docs/nets.md. Imports torch lazily so ``import stylefa.nets`` stays light for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stylefa.nets.config import (
    DiscriminatorConfig,
    EpilogueConfig,
    GeneratorConfig,
    MappingConfig,
    SynthesisConfig,
    auto_configs,
    small_configs,
    channels_per_resolution,
)

if TYPE_CHECKING:
    from stylefa.nets.discriminator import Discriminator
    from stylefa.nets.synthesis import Generator

_LAZY = {"Generator": "stylefa.nets.synthesis", "Discriminator": "stylefa.nets.discriminator"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylefa.nets' has no attribute {name!r}")


__all__ = [
    "Generator",
    "Discriminator",
    "GeneratorConfig",
    "DiscriminatorConfig",
    "MappingConfig",
    "SynthesisConfig",
    "EpilogueConfig",
    "auto_configs",
    "small_configs",
    "channels_per_resolution",
]
