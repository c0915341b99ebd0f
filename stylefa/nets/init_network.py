"""Fresh, randomly initialised networks written as a stylefa snapshot.

Two presets: ``auto`` is the reference's ``--cfg auto`` architecture (what the study trains);
``small`` is the demo model's few-MB architecture (the same as ``stylefa train --cfg small``),
for smoke tests, demos and CPU experiments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from stylefa.errors import InputError
from stylefa.readers import check_resolution
from stylefa.nets.config import (
    DiscriminatorConfig,
    GeneratorConfig,
    auto_configs,
    small_configs,
)

PRESETS = ("auto", "small")


@dataclass(frozen=True)
class InitNetworkOptions:
    output: Path
    resolution: int = 64
    channels: int = 1
    preset: str = "auto"
    c_dim: int = 0
    z_dim: int | None = None  # None: the preset's value
    w_dim: int | None = None
    channel_base: int | None = None
    channel_max: int | None = None
    map_layers: int | None = None
    seed: int = 0
    overwrite: bool = False


def configs_for(options: InitNetworkOptions) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """The preset's configs with the explicitly given fields replaced."""
    res = options.resolution
    if res < 4 or res & (res - 1):
        raise InputError(f"--resolution must be a power of two >= 4, got {res}")
    check_resolution(res, "--resolution")
    for name in ("channels", "z_dim", "w_dim", "channel_base", "channel_max", "map_layers"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if options.c_dim < 0:
        raise InputError(f"--c-dim must be >= 0, got {options.c_dim}")
    if options.preset == "auto":
        g, d = auto_configs(res, options.channels, options.c_dim)
    elif options.preset == "small":
        g, d = small_configs(res, options.channels, options.c_dim)
    else:
        raise InputError(f"--cfg must be one of {', '.join(PRESETS)}, got {options.preset!r}")

    def given(**fields):
        return {key: value for key, value in fields.items() if value is not None}

    g = dataclasses.replace(
        g,
        **given(z_dim=options.z_dim, w_dim=options.w_dim),
        mapping=dataclasses.replace(g.mapping, **given(num_layers=options.map_layers)),
        synthesis=dataclasses.replace(
            g.synthesis, **given(channel_base=options.channel_base, channel_max=options.channel_max)
        ),
    )
    d = dataclasses.replace(d, **given(channel_base=options.channel_base, channel_max=options.channel_max))
    return g, d


def init_network(options: InitNetworkOptions) -> Path:
    """Create G, G_ema (= G) and D from ``options`` and save them; returns the output path."""
    from stylefa.nets.checkpoint import Provenance, create_networks, save_networks

    if options.output.exists() and not options.overwrite:
        raise InputError("already exists; use --overwrite to replace it", options.output)
    g_config, d_config = configs_for(options)
    nets = create_networks(g_config, d_config, seed=options.seed)
    provenance = Provenance(
        source="init-network", kimg=0.0, extra={"preset": options.preset, "seed": options.seed}
    )
    return save_networks(options.output, G=nets["G"], G_ema=nets["G_ema"], D=nets["D"], provenance=provenance)
