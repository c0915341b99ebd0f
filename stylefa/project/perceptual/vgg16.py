"""VGG16 feature trunk (conv1_1 ... relu5_3) in two flavours, written from the papers.

- ``plain``: the ImageNet VGG16 of Simonyan & Zisserman (torchvision layout), as used by
  LPIPS v0.1 (Zhang et al. 2018).
- ``shift_tolerant``: the anti-aliased VGG16 of ST-LPIPS (Ghildyal & Liu 2022): every 2x2
  max-pool becomes a stride-1 max-pool followed by a [1,2,1]x[1,2,1] blur sampled at stride
  2 after reflection padding of 2 pixels on every side ("pad more").

The trunk returns the five ReLU taps LPIPS compares: relu1_2, relu2_2, relu3_3, relu4_3,
relu5_3. Weights are loaded from the layouts the weight files use (torchvision's
``features.<i>`` and ST-LPIPS's ``net.slice<k>.<i>``) by explicit index tables, so nothing
from torchvision or stlpips_pytorch is imported at run time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Output channels of the 13 convolutions, grouped by the five stages that end at a tap.
STAGE_CHANNELS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
TAP_CHANNELS: tuple[int, ...] = tuple(stage[-1] for stage in STAGE_CHANNELS)

# Index of each convolution in torchvision's ``vgg16().features`` Sequential.
TORCHVISION_CONV_INDEX: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# (slice, index) of each convolution in stlpips_pytorch's shift-tolerant ``net.slice<k>``.
STLPIPS_CONV_INDEX: tuple[tuple[int, int], ...] = (
    (1, 0), (1, 2), (2, 6), (2, 8), (3, 12), (3, 14), (3, 16),
    (4, 20), (4, 22), (4, 24), (5, 28), (5, 30), (5, 32),
)


def blur_downsample(x: torch.Tensor) -> torch.Tensor:
    """Anti-aliased stride-2 subsampling: reflect-pad 2, depthwise [1,2,1]^2/16, stride 2."""
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (taps[:, None] * taps[None, :]) / 16.0
    channels = x.shape[1]
    kernel = kernel.expand(channels, 1, 3, 3)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, stride=2, groups=channels)


class VGG16Trunk(nn.Module):
    """The 13 VGG16 convolutions with ReLU; ``forward`` returns the five LPIPS taps."""

    def __init__(self, shift_tolerant: bool = False):
        super().__init__()
        self.shift_tolerant = shift_tolerant
        convs = []
        in_channels = 3
        for stage in STAGE_CHANNELS:
            for out_channels in stage:
                convs.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
                in_channels = out_channels
        self.convs = nn.ModuleList(convs)
        self.requires_grad_(False)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift_tolerant:
            return blur_downsample(F.max_pool2d(x, kernel_size=2, stride=1))
        return F.max_pool2d(x, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        conv_iter = iter(self.convs)
        for stage_index, stage in enumerate(STAGE_CHANNELS):
            if stage_index > 0:
                x = self._pool(x)
            for _ in stage:
                x = F.relu(next(conv_iter)(x))
            taps.append(x)
        return taps

    def load_torchvision(self, state: dict[str, torch.Tensor]) -> None:
        """Load ``features.<i>.weight/bias`` from a torchvision VGG16 state dict."""
        self._load([f"features.{i}" for i in TORCHVISION_CONV_INDEX], state)

    def load_stlpips(self, state: dict[str, torch.Tensor]) -> None:
        """Load the shift-tolerant trunk from an ST-LPIPS ``vgg_shift_tolerant.pth`` state dict."""
        self._load([f"net.slice{k}.{i}" for k, i in STLPIPS_CONV_INDEX], state)

    def _load(self, prefixes: list[str], state: dict[str, torch.Tensor]) -> None:
        missing = [p for p in prefixes if f"{p}.weight" not in state or f"{p}.bias" not in state]
        if missing:
            raise KeyError(f"weights lack {missing[0]}.weight/bias")
        with torch.no_grad():
            for conv, prefix in zip(self.convs, prefixes):
                weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
                if weight.shape != conv.weight.shape:
                    raise KeyError(f"{prefix}.weight has shape {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}")
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
