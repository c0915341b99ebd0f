"""Discriminator: image (+ label) -> realness logit."""

from __future__ import annotations

import math

import torch

from stylefa.nets import ops
from stylefa.nets.config import DiscriminatorConfig, channels_per_resolution
from stylefa.nets.layers import Conv2dLayer, FullyConnectedLayer
from stylefa.nets.mapping import MappingNetwork
from stylefa.nets.synthesis import reduced_precision_active


class DiscriminatorBlock(torch.nn.Module):
    """[fromRGB] + conv0 + conv1 (2x down), with a 1x1 downsampling skip for 'resnet'."""

    def __init__(
        self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, first_layer_idx: int,
        config: DiscriminatorConfig, use_fp16: bool,
    ):
        if in_channels not in (0, tmp_channels):
            raise ValueError("in_channels must be 0 (first block) or tmp_channels")
        if config.architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {config.architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = config.img_channels
        self.architecture = config.architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", ops.setup_filter(config.resample_filter))
        self.impl = "fast"

        # Freeze-D: the first `freeze_layers` layers (counted over the whole D) keep fixed weights.
        self.num_layers = 0

        def trainable() -> bool:
            frozen = first_layer_idx + self.num_layers < config.freeze_layers
            self.num_layers += 1
            return not frozen

        act, clamp = config.activation, config.conv_clamp
        if in_channels == 0 or config.architecture == "skip":
            self.fromrgb = Conv2dLayer(
                config.img_channels, tmp_channels, kernel_size=1, activation=act, trainable=trainable(), conv_clamp=clamp
            )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, kernel_size=3, activation=act, trainable=trainable(), conv_clamp=clamp
        )
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=3, activation=act, down=2, trainable=trainable(),
            resample_filter=config.resample_filter, conv_clamp=clamp,
        )
        if config.architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2, trainable=trainable(),
                resample_filter=config.resample_filter,
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x is not None:
            x = x.to(dtype=dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = ops.downsample2d(img, self.resample_filter, impl=self.impl) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(torch.nn.Module):
    """Append the per-group standard deviation (averaged over channels and pixels) as
    ``num_channels`` extra feature maps. Groups are samples i, i+n, i+2n, ... (n = N/G)."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"minibatch std: batch size {n} is not a multiple of the group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4 head: [fromRGB for 'skip'], minibatch std, conv, fc, out (+ label projection)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, config: DiscriminatorConfig):
        super().__init__()
        epi = config.epilogue
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.architecture = config.architecture
        if config.architecture == "skip":
            self.fromrgb = Conv2dLayer(config.img_channels, in_channels, kernel_size=1, activation=epi.activation)
        self.mbstd = (
            MinibatchStdLayer(epi.mbstd_group_size, epi.mbstd_num_channels) if epi.mbstd_num_channels > 0 else None
        )
        self.conv = Conv2dLayer(
            in_channels + epi.mbstd_num_channels, in_channels, kernel_size=3, activation=epi.activation,
            conv_clamp=config.conv_clamp,
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=epi.activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(torch.float32))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            # Projection discriminator: logit = <features, mapped label> / sqrt(dim).
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(torch.nn.Module):
    """``D(img, c)`` -> logits [N, 1]; blocks ``b<R>`` ... ``b8`` then the ``b4`` epilogue."""

    def __init__(self, config: DiscriminatorConfig):
        res = config.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res}")
        super().__init__()
        self.config = config
        self.c_dim = config.c_dim
        self.img_resolution = res
        self.img_channels = config.img_channels
        log2 = res.bit_length() - 1
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = channels_per_resolution(config.channel_base, config.channel_max, res)
        fp16_resolution = max(2 ** (log2 + 1 - config.num_fp16_res), 8)
        self.reduced_dtype = torch.float16
        cmap_dim = config.cmap_dim if config.cmap_dim is not None else channels[4]
        if config.c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        layer_idx = 0
        for r in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[r] if r < res else 0, channels[r], channels[r // 2], resolution=r, first_layer_idx=layer_idx,
                config=config, use_fp16=(r >= fp16_resolution),
            )
            setattr(self, f"b{r}", block)
            layer_idx += block.num_layers
        if config.c_dim > 0:
            self.mapping = MappingNetwork(0, config.c_dim, cmap_dim, None, config.mapping)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, config=config)

    def set_reduced_precision(self, dtype: torch.dtype) -> None:
        if dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"reduced precision must be torch.float16 or torch.bfloat16, got {dtype}")
        self.reduced_dtype = dtype

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False) -> torch.Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"img must have shape [N, {', '.join(map(str, expected))}], got {tuple(img.shape)}")
        x = None
        device = img.device
        for r in self.block_resolutions:
            block = getattr(self, f"b{r}")
            reduced = reduced_precision_active(block.use_fp16, force_fp32, device)
            x, img = block(x, img, self.reduced_dtype if reduced else torch.float32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
