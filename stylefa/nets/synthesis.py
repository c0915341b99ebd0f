"""Synthesis network (w -> image) and the full Generator."""

from __future__ import annotations

import math

import torch

from stylefa.nets import ops
from stylefa.nets.config import GeneratorConfig, SynthesisConfig, channels_per_resolution
from stylefa.nets.layers import Conv2dLayer, SynthesisLayer, ToRGBLayer
from stylefa.nets.mapping import MappingNetwork

NOISE_MODES = ("const", "random", "none")


def reduced_precision_active(use_reduced: bool, force_fp32: bool, device: torch.device) -> bool:
    """Reduced precision only on CUDA: CPU kernels for fp16 are slow or missing, so the
    CPU path always runs float32 (and then matches the fp32 reference numerically)."""
    return use_reduced and not force_fp32 and device.type == "cuda"


class SynthesisBlock(torch.nn.Module):
    """One resolution: [2x up conv0] + conv1 (+ toRGB), architecture 'orig' | 'skip' | 'resnet'."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int, is_last: bool,
        config: SynthesisConfig, use_fp16: bool,
    ):
        if config.architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {config.architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = config.architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and config.fp16_channels_last
        self.register_buffer("resample_filter", ops.setup_filter(config.resample_filter))
        self.impl = "fast"
        self.num_conv = 0
        self.num_torgb = 0
        layer_kwargs = dict(
            w_dim=w_dim, resolution=resolution, use_noise=config.use_noise, activation=config.activation,
            conv_clamp=config.conv_clamp, channels_last=self.channels_last,
        )

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, up=2, resample_filter=config.resample_filter, **layer_kwargs
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kwargs)
        self.num_conv += 1
        if is_last or config.architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=config.conv_clamp, channels_last=self.channels_last
            )
            self.num_torgb += 1
        if in_channels != 0 and config.architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels, out_channels, kernel_size=1, bias=False, up=2, resample_filter=config.resample_filter,
                channels_last=self.channels_last,
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
        dtype: torch.dtype, fused_modconv: bool, noise: dict[str, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ws: [N, num_conv + num_torgb, w_dim]; noise: unscaled per-layer overrides by layer name."""
        w_iter = iter(ws.unbind(dim=1))
        memory_format = torch.channels_last if self.channels_last and dtype != torch.float32 else torch.contiguous_format
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype=dtype, memory_format=memory_format)

        common = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), noise_input=noise.get("conv1"), **common)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_input=noise.get("conv0"), **common)
            x = self.conv1(x, next(w_iter), gain=math.sqrt(0.5), noise_input=noise.get("conv1"), **common)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), noise_input=noise.get("conv0"), **common)
            x = self.conv1(x, next(w_iter), noise_input=noise.get("conv1"), **common)

        if img is not None:
            img = ops.upsample2d(img, self.resample_filter, impl=self.impl)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R]; blocks ``b4`` ... ``b<R>``."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, config: SynthesisConfig):
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.config = config
        log2 = img_resolution.bit_length() - 1
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = channels_per_resolution(config.channel_base, config.channel_max, img_resolution)
        fp16_resolution = max(2 ** (log2 + 1 - config.num_fp16_res), 8)
        # dtype for the blocks flagged use_fp16 on CUDA; bfloat16 is an opt-in alternative.
        self.reduced_dtype = torch.float16
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                img_channels=img_channels, is_last=(res == img_resolution), config=config,
                use_fp16=(res >= fp16_resolution),
            )
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def noise_layer_names(self) -> list[str]:
        """Names of the layers that take noise, in forward order: ['b4.conv1', 'b8.conv0', ...]."""
        if not self.config.use_noise:
            return []
        names = []
        for res, block in zip(self.block_resolutions, self.blocks()):
            if block.in_channels != 0:
                names.append(f"b{res}.conv0")
            names.append(f"b{res}.conv1")
        return names

    def noise_shapes(self) -> dict[str, tuple[int, int]]:
        """{layer name: (H, W)} of each noise input."""
        return {name: (int(name.split(".")[0][1:]),) * 2 for name in self.noise_layer_names()}

    def noise_buffers(self) -> dict[str, torch.Tensor]:
        """{layer name: the stored ``noise_const`` buffer [H, W]} (used by noise_mode='const')."""
        return {name: self.get_submodule(name).noise_const for name in self.noise_layer_names()}

    def set_reduced_precision(self, dtype: torch.dtype) -> None:
        """Choose float16 (reference) or bfloat16 for the ``num_fp16_res`` highest blocks on CUDA."""
        if dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"reduced precision must be torch.float16 or torch.bfloat16, got {dtype}")
        self.reduced_dtype = dtype

    def forward(
        self, ws: torch.Tensor, noise_mode: str = "const", noise_override: dict[str, torch.Tensor] | None = None,
        force_fp32: bool = False, fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        """fused_modconv=None: on CUDA the reference's choice (fused when not training and fp32),
        on the CPU non-fused. Both give the same image to float rounding."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        per_block = self._split_noise(noise_override or {}, ws.shape[0])
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res, block in zip(self.block_resolutions, self.blocks()):
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            reduced = reduced_precision_active(block.use_fp16, force_fp32, ws.device)
            dtype = self.reduced_dtype if reduced else torch.float32
            fused = fused_modconv
            if fused is None:
                # The reference's rule on CUDA. On the CPU, scaling activations instead of
                # building per-sample weights measured faster at every batch size.
                fused = (
                    ws.device.type == "cuda" and not self.training and (dtype == torch.float32 or ws.shape[0] == 1)
                )
            x, img = block(x, img, block_ws, noise_mode, dtype, fused, per_block.get(res, {}))
        return img

    def _split_noise(self, override: dict[str, torch.Tensor], batch: int) -> dict[int, dict[str, torch.Tensor]]:
        shapes = self.noise_shapes()
        per_block: dict[int, dict[str, torch.Tensor]] = {}
        for name, tensor in override.items():
            if name not in shapes:
                raise ValueError(f"noise_override: unknown layer {name!r}; expected one of {sorted(shapes)}")
            h, w = shapes[name]
            if tensor.ndim == 2:
                tensor = tensor[None, None]
            if tensor.ndim != 4 or tensor.shape[1] != 1 or tensor.shape[2:] != (h, w) or tensor.shape[0] not in (1, batch):
                raise ValueError(
                    f"noise_override[{name!r}] must have shape [{batch} or 1, 1, {h}, {w}], got {tuple(tensor.shape)}"
                )
            block_name, layer_name = name.split(".")
            per_block.setdefault(int(block_name[1:]), {})[layer_name] = tensor
        return per_block


class Generator(torch.nn.Module):
    """z, c -> image; ``G.mapping`` and ``G.synthesis`` usable separately."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.synthesis = SynthesisNetwork(config.w_dim, config.img_resolution, config.img_channels, config.synthesis)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(config.z_dim, config.c_dim, config.w_dim, self.num_ws, config.mapping)

    def forward(
        self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None, noise_mode: str = "const", update_emas: bool = False,
        force_fp32: bool = False, fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32, fused_modconv=fused_modconv)
