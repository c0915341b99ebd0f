"""FIR resampling, resampling convolution and fused bias+activation in plain PyTorch.

Semantics follow the reference StyleGAN2-ADA ops (``upfirdn2d``, ``conv2d_resample``,
``bias_act``) so trained reference weights give the same images; padding conventions,
filter flipping and gains are therefore kept exactly. Where a cheaper formulation is
mathematically identical (polyphase upsampling, downsampling by strided convolution),
it is used instead; the tests check it against independent oracles.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]


# ----------------------------------------------------------------------------- filters


def setup_filter(
    f: Sequence[float] | torch.Tensor | None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turn filter taps into the float32 tensor the resampling ops expect.

    A 1-D list becomes its 2-D outer product unless ``separable`` (default: only for
    8 taps or more, as the reference does), so the buffer shape matches reference weights.
    """
    taps = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32)
    if taps.ndim == 0:
        taps = taps.reshape(1)
    if taps.ndim not in (1, 2) or taps.numel() == 0:
        raise ValueError(f"filter must be a non-empty 1-D or 2-D array, got shape {tuple(taps.shape)}")
    if separable is None:
        separable = taps.ndim == 1 and taps.numel() >= 8
    if taps.ndim == 1 and not separable:
        taps = torch.outer(taps, taps)
    if normalize:
        taps = taps / taps.sum()
    if flip_filter:
        taps = taps.flip(list(range(taps.ndim)))
    return taps * (gain ** (taps.ndim / 2))


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    sx, sy = value
    return int(sx), int(sy)


def _padding4(padding: Padding) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, [x, y] or [x0, x1, y0, y1]."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) != 4:
        raise ValueError(f"padding must have 1, 2 or 4 entries, got {padding}")
    return tuple(padding)  # type: ignore[return-value]


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; a 1-D filter is used along both axes."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


# ----------------------------------------------------------------------------- upfirdn2d


def _zero_insert(x: torch.Tensor, upx: int, upy: int) -> torch.Tensor:
    """Place every sample at the top-left of an up x up cell of zeros."""
    if upx == 1 and upy == 1:
        return x
    n, c, h, w = x.shape
    cell = x.new_zeros([upy, upx])
    cell[0, 0] = 1
    y = x[:, :, :, None, :, None] * cell[:, None, :]
    return y.reshape(n, c, h * upy, w * upx)


def _depthwise_fir(x: torch.Tensor, f: torch.Tensor, flip_filter: bool, gain: float) -> torch.Tensor:
    """'Valid' filtering of every channel by ``f`` (true convolution unless flip_filter)."""
    channels = x.shape[1]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].expand(channels, 1, *f.shape), groups=channels)
    taps = f[None, None].expand(channels, 1, f.shape[0])
    x = F.conv2d(x, taps.unsqueeze(2), groups=channels)
    return F.conv2d(x, taps.unsqueeze(3), groups=channels)


def upfirdn2d_reference(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion), pad/crop, FIR-filter, downsample (decimation); the
    literal definition, kept as the general fallback and as the benchmark baseline."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    x = _zero_insert(x, upx, upy)
    x = F.pad(x, [px0, px1, py0, py1])  # negative entries crop
    x = _depthwise_fir(x, f, flip_filter, gain)
    return x[:, :, ::downy, ::downx]


def _upsample2x_polyphase(x: torch.Tensor, f: torch.Tensor, flip_filter: bool, gain: float) -> torch.Tensor:
    """``upsample2d`` by 2 for an even-sized 2-D filter, as 4 sub-pixel filters.

    Zero insertion wastes 3 of every 4 multiplications; splitting the filter into its
    four phases filters at the input resolution and interleaves with pixel_shuffle.
    """
    n, c, h, w = x.shape
    fh, fw = f.shape
    g = (f * gain).to(x.dtype)
    if not flip_filter:
        g = g.flip([0, 1])
    # Output pixel (2i+p, 2j+q) reads zero-inserted samples at offsets where the filter
    # tap index has the parity that lands on an original sample; with the reference's
    # padding (fh/2 before) tap k of phase p reads input row i + (p + k - fh/2) / 2.
    kh, kw = fh // 2 + 1, fw // 2 + 1
    phases = g.new_zeros([2, 2, kh, kw])
    for p in range(2):
        for q in range(2):
            sub = g[p::2, q::2]
            phases[p, q, p : p + sub.shape[0], q : q + sub.shape[1]] = sub
    weight = phases.reshape(4, 1, kh, kw).repeat(c, 1, 1, 1)
    pad_y, pad_x = fh // 4, fw // 4
    y = F.conv2d(F.pad(x, [pad_x, kw - 1 - pad_x, pad_y, kh - 1 - pad_y]), weight, groups=c)
    return F.pixel_shuffle(y, 2)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str = "fast",
) -> torch.Tensor:
    """Pad, upsample, FIR filter and downsample a batch of images (reference semantics).

    x: [N, C, H, W]; f: 2-D [fh, fw] or separable 1-D filter (see ``setup_filter``);
    padding [x0, x1, y0, y1] is applied after upsampling, negative values crop.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    px0, px1, py0, py1 = _padding4(padding)
    if (
        impl == "fast" and f is not None and f.ndim == 2 and _pair(up) == (1, 1)
        and px0 == px1 >= 0 and py0 == py1 >= 0
    ):
        # Plain filtering: let the convolution pad (no padded copy, forward or backward).
        channels = x.shape[1]
        g = (f * gain).to(x.dtype)
        if not flip_filter:
            g = g.flip([0, 1])
        sy, sx = _pair(down)[::-1]
        return F.conv2d(x, g[None, None].expand(channels, 1, *g.shape), stride=(sy, sx), padding=(py0, px0),
                        groups=channels)
    return upfirdn2d_reference(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: torch.Tensor, f: torch.Tensor | None, up: int = 2, padding: Padding = 0, flip_filter: bool = False,
    gain: float = 1.0, impl: str = "fast",
) -> torch.Tensor:
    """Upsample by ``up`` so that the output is exactly ``up`` times the input size."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    total_gain = gain * upx * upy
    if (
        impl == "fast" and f is not None and f.ndim == 2 and upx == upy == 2
        and (px0, px1, py0, py1) == (0, 0, 0, 0) and fw % 4 == 0 and fh % 4 == 0
    ):
        return _upsample2x_polyphase(x, f, flip_filter, total_gain)
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=total_gain, impl=impl)


def downsample2d(
    x: torch.Tensor, f: torch.Tensor | None, down: int = 2, padding: Padding = 0, flip_filter: bool = False,
    gain: float = 1.0, impl: str = "fast",
) -> torch.Tensor:
    """Downsample by ``down`` so that the output is exactly 1/``down`` of the input size."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _padding4(padding)
    fw, fh = filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    if impl == "fast" and f is not None and f.ndim == 2:
        # Filtering only the kept pixels: one strided depthwise convolution.
        return _strided_fir(F.pad(x, pad), f, downx, downy, flip_filter, gain)
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def _strided_fir(x: torch.Tensor, f: torch.Tensor, downx: int, downy: int, flip_filter: bool, gain: float) -> torch.Tensor:
    channels = x.shape[1]
    g = (f * gain).to(x.dtype)
    if not flip_filter:
        g = g.flip([0, 1])
    return F.conv2d(x, g[None, None].expand(channels, 1, *g.shape), stride=(downy, downx), groups=channels)


# ----------------------------------------------------------------------------- conv2d_resample


def _conv(
    x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | Sequence[int] = 0, groups: int = 1,
    transpose: bool = False, flip_weight: bool = True,
) -> torch.Tensor:
    # flip_weight=True means correlation, i.e. what F.conv2d does natively.
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: str = "fast",
) -> torch.Tensor:
    """2-D convolution with optional FIR up- or downsampling, reference padding semantics.

    Upsampling is a stride-``up`` transposed convolution followed by the FIR filter
    (gain up**2); downsampling FIR-filters then convolves with stride ``down``.
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        # 1x1 conv commutes with filtering: shrink first, fewer multiplications.
        if impl == "fast" and f is not None and f.ndim == 2:
            x = _strided_fir(F.pad(x, [px0, px1, py0, py1]), f, down, down, flip_filter, 1.0)
        else:
            x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        if impl == "fast":
            return upsample2d(x, f, up=up, padding=padding, flip_filter=flip_filter, impl=impl)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter, impl=impl)

    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    if up > 1:
        # Transposed convolution wants [in, out/groups, kh, kw].
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, wt, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        pad = [px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt]
        x = upfirdn2d(x, f, padding=pad, gain=up**2, flip_filter=flip_filter, impl=impl)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl)
        return x

    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    x = upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter, impl=impl)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl)
    return x


# ----------------------------------------------------------------------------- bias + activation

# name -> (function, default alpha, default gain)
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor], float, float]] = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": (lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": (lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": (lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_gain(act: str) -> float:
    return ACTIVATIONS[act][2]


class _BiasActClamp(torch.autograd.Function):
    """Fused bias + (leaky) ReLU/linear + gain + clamp that keeps only its output.

    The slope and the clamp mask are recovered from the output itself (its sign and
    magnitude), like the reference CUDA kernel, so the forward makes one tensor instead
    of four and the backward is one masked multiply. The backward is built from
    differentiable ops, so gradient penalties (double backward) work.
    """

    @staticmethod
    def forward(ctx, x, b, dim, alpha, gain, clamp):  # noqa: D102
        # lrelu(v) * gain == lrelu(v * gain) for gain > 0, so the gain is folded into the add.
        if b is not None:
            shape = [-1 if i == dim else 1 for i in range(x.ndim)]
            if torch.compiler.is_compiling():
                # Inductor (torch 2.14) folds add(b, x @ w, alpha=g) into addmm and drops the
                # alpha (wrong outputs, found by tests/train/test_compile.py); it fuses this
                # form into one kernel anyway.
                y = x * gain + b.reshape(shape) * gain
            else:
                y = torch.add(b.reshape(shape) * gain, x, alpha=gain)
        else:
            y = x * gain
        if alpha != 1:
            F.leaky_relu_(y, alpha) if alpha > 0 else F.relu_(y)
        if clamp is not None:
            y.clamp_(-clamp, clamp)
        ctx.save_for_backward(y)
        ctx.params = (dim, alpha, gain, clamp, b is not None)
        return y

    @staticmethod
    def backward(ctx, dy):  # noqa: D102
        (y,) = ctx.saved_tensors
        dim, alpha, gain, clamp, has_bias = ctx.params
        # Single-pass ATen kernels (both differentiable in dy): the slope from the sign of
        # y, then zero where y sits at the clamp level. The slope and mask are piecewise
        # constant in y, so y is detached: a double backward (R1, path length) then does not
        # walk back through the forward graph only to hand zero gradients to its parameters.
        y = y.detach()
        dx = dy * gain if gain != 1 else dy
        if alpha != 1:
            dx = torch.ops.aten.leaky_relu_backward(dx, y, alpha, True)
        if clamp is not None:
            dx = torch.ops.aten.hardtanh_backward(dx, y, -clamp, clamp)
        db = None
        if has_bias and ctx.needs_input_grad[1]:
            db = dx.sum(dim=[i for i in range(dx.ndim) if i != dim])
        return dx, db, None, None, None, None


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "fast",
) -> torch.Tensor:
    """x + b (broadcast along ``dim``), activation, multiply by gain, clamp to +-clamp."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
    func, default_alpha, default_gain = ACTIVATIONS[act]
    alpha = default_alpha if alpha is None else float(alpha)
    gain = default_gain if gain is None else float(gain)
    clamp = float(clamp) if clamp is not None and clamp >= 0 else None
    dim = dim % x.ndim
    if impl == "fast" and act in ("linear", "relu", "lrelu") and (gain > 0):
        slope = {"linear": 1.0, "relu": 0.0, "lrelu": alpha}[act]
        if slope >= 0:
            return _BiasActClamp.apply(x, b, dim, slope, gain, clamp)
    if b is not None:
        shape = [-1 if i == dim else 1 for i in range(x.ndim)]
        x = x + b.reshape(shape)
    x = func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
