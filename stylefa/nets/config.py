"""Typed architecture configs for the generator and discriminator.

Field names and defaults follow the constructor arguments of the reference StyleGAN2-ADA
networks (Karras et al. 2020), so a reference network's ``_init_kwargs`` map onto them
one to one and results stay comparable to the literature.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _from_dict(cls, data: dict[str, Any]):
    """Build a (possibly nested) dataclass, rejecting unknown keys with a clear message."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        sub = _NESTED.get((cls.__name__, name))
        if sub is not None and isinstance(value, dict):
            value = _from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class MappingConfig:
    num_layers: int = 8
    embed_features: int | None = None  # None: w_dim
    layer_features: int | None = None  # None: w_dim
    activation: str = "lrelu"
    lr_multiplier: float = 0.01
    w_avg_beta: float | None = 0.995  # None: do not track w_avg


@dataclass(frozen=True)
class SynthesisConfig:
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    conv_clamp: float | None = None
    architecture: str = "skip"  # 'orig' | 'skip' | 'resnet'
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)
    use_noise: bool = True
    activation: str = "lrelu"
    fp16_channels_last: bool = False


@dataclass(frozen=True)
class GeneratorConfig:
    z_dim: int = 512
    c_dim: int = 0
    w_dim: int = 512
    img_resolution: int = 256
    img_channels: int = 1
    mapping: MappingConfig = field(default_factory=MappingConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class EpilogueConfig:
    mbstd_group_size: int | None = 4  # None: whole minibatch
    mbstd_num_channels: int = 1
    activation: str = "lrelu"


@dataclass(frozen=True)
class DiscriminatorConfig:
    c_dim: int = 0
    img_resolution: int = 256
    img_channels: int = 1
    architecture: str = "resnet"  # 'orig' | 'skip' | 'resnet'
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    conv_clamp: float | None = None
    cmap_dim: int | None = None  # None: channels at 4x4
    activation: str = "lrelu"
    resample_filter: tuple[int, ...] = (1, 3, 3, 1)
    freeze_layers: int = 0
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(w_avg_beta=None))
    epilogue: EpilogueConfig = field(default_factory=EpilogueConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiscriminatorConfig":
        return _from_dict(cls, data)


_NESTED = {
    ("GeneratorConfig", "mapping"): MappingConfig,
    ("GeneratorConfig", "synthesis"): SynthesisConfig,
    ("DiscriminatorConfig", "mapping"): MappingConfig,
    ("DiscriminatorConfig", "epilogue"): EpilogueConfig,
}


def channels_per_resolution(channel_base: int, channel_max: int, img_resolution: int) -> dict[int, int]:
    """Feature maps per block resolution, exactly as the reference: min(base // res, max)."""
    log2 = img_resolution.bit_length() - 1
    return {2**i: min(channel_base // 2**i, channel_max) for i in range(2, log2 + 1)}


@dataclass(frozen=True)
class ArchitectureSpec:
    """The few numbers that tell the reference's G/D presets apart (the rest is shared)."""

    channel_base: int
    channel_max: int
    num_fp16_res: int = 0
    map_layers: int = 2
    mbstd_group_size: int = 4
    d_architecture: str = "resnet"
    fp16_channels_last: bool = False
    conv_clamp: float | None = 256


def build_configs(
    spec: ArchitectureSpec, img_resolution: int, img_channels: int = 1, c_dim: int = 0
) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """G and D configs of a preset: 512-d z and w, the same feature maps in G and D."""
    g = GeneratorConfig(
        z_dim=512,
        c_dim=c_dim,
        w_dim=512,
        img_resolution=img_resolution,
        img_channels=img_channels,
        mapping=MappingConfig(num_layers=spec.map_layers),
        synthesis=SynthesisConfig(
            channel_base=spec.channel_base,
            channel_max=spec.channel_max,
            num_fp16_res=spec.num_fp16_res,
            conv_clamp=spec.conv_clamp,
            fp16_channels_last=spec.fp16_channels_last,
        ),
    )
    d = DiscriminatorConfig(
        c_dim=c_dim,
        img_resolution=img_resolution,
        img_channels=img_channels,
        architecture=spec.d_architecture,
        channel_base=spec.channel_base,
        channel_max=spec.channel_max,
        num_fp16_res=spec.num_fp16_res,
        conv_clamp=spec.conv_clamp,
        epilogue=EpilogueConfig(mbstd_group_size=spec.mbstd_group_size),
    )
    return g, d


def auto_configs(
    img_resolution: int, img_channels: int = 1, c_dim: int = 0, mbstd_group_size: int = 4
) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """The reference's ``--cfg auto`` architecture (also the study's): 2 mapping layers,
    channel_base 16384 below 512 px, conv_clamp 256, fp16 in the 4 highest resolutions."""
    channel_base = 32768 if img_resolution >= 512 else 16384
    spec = ArchitectureSpec(channel_base, 512, num_fp16_res=4, mbstd_group_size=mbstd_group_size)
    return build_configs(spec, img_resolution, img_channels, c_dim)


# The CPU-sized demo architecture (``stylefa init-network --cfg small`` and ``stylefa train
# --cfg small`` both build it): the reference's layout with 32-64 feature maps per layer.
SMALL_CHANNEL_BASE = 2048
SMALL_CHANNEL_MAX = 64
SMALL_MBSTD_GROUP = 16  # its training batch: D compares the variety of whole minibatches


def small_configs(
    img_resolution: int, img_channels: int = 1, c_dim: int = 0, mbstd_group_size: int = SMALL_MBSTD_GROUP
) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """The demo model's architecture: 512-dim latents, 2 mapping layers, at most 64 feature
    maps (32 at 64 px), fp32 everywhere; a few MB, trainable on a CPU."""
    spec = ArchitectureSpec(SMALL_CHANNEL_BASE, SMALL_CHANNEL_MAX, mbstd_group_size=mbstd_group_size)
    return build_configs(spec, img_resolution, img_channels, c_dim)
