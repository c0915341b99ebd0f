"""LPIPS (Zhang et al. 2018, v0.1) on a VGG16 trunk, and NVIDIA's TorchScript VGG16 variant.

d(x, y) = sum over taps k of mean_{h,w} sum_c w_kc * (f_k(x) - f_k(y))^2 where f_k are the
trunk's ReLU taps, each unit-normalised over channels, and w_k the learned non-negative
"linear heads". Inputs in [-1, 1] are first shifted and scaled by the LPIPS ImageNet
constants.
"""

from __future__ import annotations

import torch
from torch import nn

from stylefa.project.perceptual.base import ImageDistance, NetworkRecord
from stylefa.project.perceptual.vgg16 import TAP_CHANNELS, VGG16Trunk

# LPIPS v0.1 input normalisation (ImageNet statistics mapped to the [-1, 1] scale).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
NORMALISE_EPS = 1e-10


def unit_normalise(features: torch.Tensor) -> torch.Tensor:
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + NORMALISE_EPS)


def load_lpips_heads(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The five head weights ``lin<k>.model.1.weight`` [1, C, 1, 1] -> list of [C]."""
    heads = []
    for k, channels in enumerate(TAP_CHANNELS):
        key = f"lin{k}.model.1.weight"
        if key not in state:
            raise KeyError(f"weights lack {key}")
        weight = state[key]
        if weight.numel() != channels:
            raise KeyError(f"{key} has {weight.numel()} values, expected {channels}")
        heads.append(weight.reshape(channels).float())
    return heads


class LPIPS(ImageDistance):
    """LPIPS distance on a given trunk with given heads; one value per image pair."""

    def __init__(self, trunk: VGG16Trunk, heads: list[torch.Tensor], record: NetworkRecord):
        super().__init__()
        self.trunk = trunk
        self.record = record
        for k, head in enumerate(heads):
            self.register_buffer(f"head{k}", head.detach().clone().reshape(1, -1, 1, 1))
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).reshape(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def _heads(self) -> list[torch.Tensor]:
        return [getattr(self, f"head{k}") for k in range(len(TAP_CHANNELS))]

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [unit_normalise(tap) for tap in self.trunk((images - self.shift) / self.scale)]

    def _distance(self, features, target_features) -> torch.Tensor:
        total = 0.0
        for head, ours, theirs in zip(self._heads(), features, target_features):
            total = total + ((ours - theirs).square() * head).sum(dim=1).mean(dim=(1, 2))
        return total


class TorchScriptVGG16LPIPS(ImageDistance):
    """NVIDIA's ``vgg16.pt`` (StyleGAN2-ADA metrics): called with images in [0, 255] and
    ``return_lpips=True`` it returns per-image feature vectors whose squared difference
    summed is the LPIPS distance; the reference projector uses exactly this."""

    def __init__(self, module: nn.Module, record: NetworkRecord):
        super().__init__()
        self.module = module
        self.record = record
        self.requires_grad_(False)
        self.eval()

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self.module((images + 1) * 127.5, resize_images=False, return_lpips=True)

    def _distance(self, features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        return (features - target_features).square().flatten(1).sum(dim=1)
