"""Typed settings of a projection (no torch import, so the CLI stays light)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

INIT_CHOICES = ("w-avg", "random-z")
SPACE_CHOICES = ("w", "w+")
# 'auto': the generator as built (float16 in its num_fp16_res highest blocks on CUDA, as the
# reference projector runs it); 'fp32': float32 everywhere; 'bf16': bfloat16 in those blocks.
PRECISION_CHOICES = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ProjectConfig:
    """The optimisation. Defaults are the StyleGAN2-ADA reference projector's."""

    steps: int = 1000
    w_avg_samples: int = 10000
    w_avg_seed: int = 123  # the reference draws its z samples from RandomState(123)
    initial_lr: float = 0.1
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    initial_noise_factor: float = 0.05
    noise_ramp_length: float = 0.75
    noise_weight: float = 1e5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    init: str = "w-avg"  # 'w-avg' (reference) | 'random-z' (w = mapping(z), z from the target's seed)
    space: str = "w"  # 'w': one vector broadcast to all layers (reference) | 'w+': one per layer
    mse_weight: float = 0.0  # extra pixel MSE term on the [-1, 1] scale
    optimize_noise: bool = True
    seed: int = 303  # the reference's default seed; each target's RNG derives from (seed, target id)
    pti_steps: int = 0  # pivotal tuning steps after projection (0: off)
    pti_lr: float = 3e-4
    pti_l2_weight: float = 1.0
    video_every: int = 0  # keep a GIF frame every N steps (0: no video)

    def __post_init__(self):
        if self.init not in INIT_CHOICES:
            raise ValueError(f"init must be one of {INIT_CHOICES}, got {self.init!r}")
        if self.space not in SPACE_CHOICES:
            raise ValueError(f"space must be one of {SPACE_CHOICES}, got {self.space!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.w_avg_samples < 1:
            raise ValueError(f"w_avg_samples must be >= 1, got {self.w_avg_samples}")
        if self.pti_steps < 0 or self.video_every < 0:
            raise ValueError("pti_steps and video_every must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProjectConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ProjectConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**data)
