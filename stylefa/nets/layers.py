"""Equalised-learning-rate layers and the modulated convolution of StyleGAN2.

Parameters are stored unscaled (N(0,1) init) and multiplied by their He constant at run
time, exactly like the reference, so reference state dicts load unchanged.
"""

from __future__ import annotations

import math

import torch

from stylefa.nets import ops


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
    impl: str = "fast",
) -> torch.Tensor:
    """Convolve each sample with ``weight`` scaled per input channel by ``styles`` [N, I].

    fused: one grouped convolution with per-sample weights (batch folded into groups).
    non-fused: scale activations, share one weight across the batch, then demodulate the
    output; the same function, usually cheaper when the batch is large.
    impl='reference' keeps the reference's operation order (benchmark baseline).
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape

    if x.dtype == torch.float16 and demodulate:
        # Rescale before forming per-sample weights so fp16 cannot overflow; demodulation
        # removes the scale again (the reference does the same, which keeps fp16 outputs equal).
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    if demodulate and impl == "reference":
        per_sample = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)
        dcoefs = (per_sample.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    elif demodulate:
        # sum_{i,k} (W[o,i,k] s[n,i])^2 = (s^2 @ sum_k W^2 [o,i]^T)[n,o]: a small matmul instead
        # of materialising the per-sample weights [N, O, I, kh, kw] just to reduce them.
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
    w = None
    if fused_modconv:
        scale = styles.reshape(batch_size, 1, -1, 1, 1)
        if demodulate:
            scale = scale * dcoefs.reshape(batch_size, -1, 1, 1, 1)
        w = weight.unsqueeze(0) * scale  # [N, O, I, kh, kw]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = ops.conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight,
            impl=impl,
        )
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = ops.conv2d_resample(
        x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
        flip_weight=flip_weight, impl=impl,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)  # in place: keeps x's dtype (fp16) while adding in fp32, as the reference
    return x


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate: y = act(x W^T * lr/sqrt(in) + b * lr)."""

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
        lr_multiplier: float = 1.0, bias_init: float = 0.0,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.impl = "fast"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Equalised-lr convolution with optional FIR up/downsampling, bias, activation, clamp."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, activation: str = "linear",
        up: int = 1, down: int = 1, resample_filter: tuple[int, ...] = (1, 3, 3, 1), conv_clamp: float | None = None,
        channels_last: bool = False, trainable: bool = True,
    ):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ops.activation_gain(activation)
        self.impl = "fast"
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_value = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_value) if bias_value is not None else None
        else:
            # Frozen (Freeze-D) layers stay in the state dict as buffers, as in the reference.
            self.register_buffer("weight", weight)
            if bias_value is not None:
                self.register_buffer("bias", bias_value)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = ops.conv2d_resample(
            x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
            flip_weight=(self.up == 1), impl=self.impl,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp, impl=self.impl)


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + per-pixel noise + bias + activation."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3, up: int = 1,
        use_noise: bool = True, activation: str = "lrelu", resample_filter: tuple[int, ...] = (1, 3, 3, 1),
        conv_clamp: float | None = None, channels_last: bool = False,
    ):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ops.activation_gain(activation)
        self.impl = "fast"
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
        gain: float = 1.0, noise_input: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """noise_input: optional unscaled noise [N or 1, 1, H, W] used instead of ``noise_mode``."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        in_resolution = self.resolution // self.up
        if x.shape[1] != self.weight.shape[1] or x.shape[2:] != (in_resolution, in_resolution):
            raise ValueError(
                f"expected input [N, {self.weight.shape[1]}, {in_resolution}, {in_resolution}], got {tuple(x.shape)}"
            )
        styles = self.affine(w)

        noise = None
        if self.use_noise:
            if noise_input is not None:
                noise = noise_input * self.noise_strength
            elif noise_mode == "random":
                noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
                noise = noise * self.noise_strength
            elif noise_mode == "const":
                noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused_modconv=fused_modconv,
            impl=self.impl,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(
            x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp, impl=self.impl
        )


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation, linear output."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1, conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.impl = "fast"

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv, impl=self.impl)
        return ops.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, impl=self.impl)


def set_kernel_impl(module: torch.nn.Module, impl: str) -> None:
    """Select 'fast' (default) or 'reference' (the reference's operation order, slower;
    used as the benchmark baseline) kernels for every layer inside ``module``."""
    if impl not in ("fast", "reference"):
        raise ValueError(f"impl must be 'fast' or 'reference', got {impl!r}")
    for sub in module.modules():
        if hasattr(sub, "impl"):
            sub.impl = impl


__all__ = ["set_kernel_impl", "modulated_conv2d", "FullyConnectedLayer", "Conv2dLayer", "SynthesisLayer", "ToRGBLayer"]
