"""What every image distance used by the projector provides.

A distance compares a batch of synthesised images with a batch of targets, one value per
pair, so the projector can sum them over targets and still give each target its own
trajectory. Target features are computed once per batch (they never change during
optimisation), which halves the cost of a deep perceptual loss.

Inputs are grayscale or RGB images in [-1, 1], NCHW. Grayscale is repeated to three
channels for networks trained on RGB, and images larger than 256 pixels are area-averaged
down to 256x256 first, as in the StyleGAN2-ADA reference projector (VGG16 was trained on
224-pixel images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

MAX_PERCEPTUAL_SIZE = 256


@dataclass(frozen=True)
class NetworkRecord:
    """Which distance was used: its name and the sha256 of every weight file it read."""

    name: str
    weight_files: dict[str, str] = field(default_factory=dict)  # path -> sha256

    def to_dict(self) -> dict:
        return {"name": self.name, "weight_files": dict(self.weight_files)}


class ImageDistance(nn.Module):
    """Base class: ``distance(images, target_features(targets))`` -> tensor [N]."""

    record: NetworkRecord
    rgb_input = True  # repeat grayscale to 3 channels
    limit_size = True  # area-downsample above MAX_PERCEPTUAL_SIZE

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"expected NCHW images, got shape {tuple(images.shape)}")
        if self.rgb_input and images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        if self.limit_size and images.shape[2] > MAX_PERCEPTUAL_SIZE:
            images = F.interpolate(images, size=(MAX_PERCEPTUAL_SIZE, MAX_PERCEPTUAL_SIZE), mode="area")
        return images

    def target_features(self, targets: torch.Tensor):
        with torch.no_grad():
            return self._features(self._prepare(targets.float()))

    def distance(self, images: torch.Tensor, target_features) -> torch.Tensor:
        return self._distance(self._features(self._prepare(images.float())), target_features)

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.distance(images, self.target_features(targets))

    def _features(self, images: torch.Tensor):
        raise NotImplementedError

    def _distance(self, features, target_features) -> torch.Tensor:
        raise NotImplementedError


class PixelMSE(ImageDistance):
    """Mean squared pixel difference per image, on the [-1, 1] scale, full resolution."""

    rgb_input = False
    limit_size = False

    def __init__(self):
        super().__init__()
        self.record = NetworkRecord("mse")

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def _distance(self, features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        return (features - target_features).square().flatten(1).mean(dim=1)
