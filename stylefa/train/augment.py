"""Adaptive discriminator augmentation (ADA): the differentiable augmentation pipeline.

Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data". Every
image the discriminator sees (reals, fakes, and the reals inside the R1 penalty) goes
through ``AugmentPipe``; each transform is applied to each image independently with
probability ``multiplier * p``. Because every transform is invertible in distribution
(the paper's "non-leaking" condition, p < ~0.8), the generator is not pushed to produce
augmented-looking images.

The groups, their probability multipliers, their parameter distributions and the order in
which random numbers are drawn follow the reference implementation (NVlabs
stylegan2-ada-pytorch ``training/augment.py``), so a given seed on a given device draws
the same parameters. Sampling (``AugmentPipe.sample``) and execution
(``AugmentPipe.apply``) are separate so that tests and figures can apply chosen parameters.

Single-channel images (FA maps): the colour group reduces to its luma part, exactly as the
reference's grey-scale branch does: brightness adds ``b``, contrast multiplies by ``c``,
luma flip negates the image (about 0, i.e. mid-grey of the [-1, 1] range); hue rotation and
saturation leave grey unchanged, so they are skipped (no random numbers drawn).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from stylefa.train import augment_ops as ops

# Probability multipliers of the named pipes (reference ``train.py --augpipe``).
_BLIT = dict(xflip=1.0, rotate90=1.0, xint=1.0)
_GEOM = dict(scale=1.0, rotate=1.0, aniso=1.0, xfrac=1.0)
_COLOR = dict(brightness=1.0, contrast=1.0, lumaflip=1.0, hue=1.0, saturation=1.0)
_FILTER = dict(imgfilter=1.0)
_NOISE = dict(noise=1.0)
_CUTOUT = dict(cutout=1.0)
AUGMENT_PIPES: dict[str, dict[str, float]] = {
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "filter": _FILTER,
    "noise": _NOISE,
    "cutout": _CUTOUT,
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, **_FILTER},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE, **_CUTOUT},
}
# FA intensities are quantitative, so the study augments geometry only.
DEFAULT_AUGMENT_PIPE = "bg"

# Relative power of the four filter bands for natural (1/f) images, used to keep the
# image's expected energy unchanged when one band is amplified.
_BAND_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)
_LUMA_AXIS = (1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3))


@dataclass
class AugmentConfig:
    """Probability multipliers (0 = off) and parameter ranges of every transform.

    All multipliers default to 0; ``AugmentConfig.named("bg")`` turns on a named pipe.
    The ranges are the reference defaults.
    """

    # Pixel blitting.
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    xint_max: float = 0.125  # integer translation range, fraction of the image size
    # General geometric transformations.
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    scale_std: float = 0.2  # log2 std of isotropic scaling
    rotate_max: float = 1.0  # rotation range, 1 = full circle
    aniso_std: float = 0.2  # log2 std of anisotropic scaling
    xfrac_std: float = 0.125  # std of fractional translation, fraction of the image size
    # Colour transformations.
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    brightness_std: float = 0.2
    contrast_std: float = 0.5  # log2 std
    hue_max: float = 1.0  # 1 = full circle
    saturation_std: float = 1.0  # log2 std
    # Image-space filtering.
    imgfilter: float = 0.0
    imgfilter_bands: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    imgfilter_std: float = 1.0  # log2 std of a band's amplification
    # Image-space corruptions.
    noise: float = 0.0
    cutout: float = 0.0
    noise_std: float = 0.1
    cutout_size: float = 0.5  # side of the cut-out square, fraction of the image size

    @classmethod
    def named(cls, name: str) -> "AugmentConfig":
        if name not in AUGMENT_PIPES:
            raise ValueError(f"unknown augmentation pipe {name!r}; choose from {', '.join(AUGMENT_PIPES)}")
        return cls(**AUGMENT_PIPES[name])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown AugmentConfig fields: {sorted(unknown)}")
        return cls(**d)


@dataclass
class AugmentParams:
    """Per-image transform parameters, [batch, ...] tensors; ``None`` = group not sampled.

    Identity values: xflip 0, rotate90 0, xint (0, 0), scale 1, rotate_pre 0, aniso 1,
    rotate_post 0, xfrac (0, 0), brightness 0, contrast 1, lumaflip 0, hue 0,
    saturation 1, band_gains 1, noise 0, cutout_size 0.
    """

    xflip: torch.Tensor | None = None  # [B] 0/1: mirror x
    rotate90: torch.Tensor | None = None  # [B] 0..3 quarter turns (counter-clockwise as np.rot90)
    xint: torch.Tensor | None = None  # [B, 2] shift (x, y), fraction of size, rounded to pixels
    scale: torch.Tensor | None = None  # [B] isotropic scale factor
    rotate_pre: torch.Tensor | None = None  # [B] radians, before anisotropic scaling
    aniso: torch.Tensor | None = None  # [B] x scale (y gets 1/aniso)
    rotate_post: torch.Tensor | None = None  # [B] radians, after anisotropic scaling
    xfrac: torch.Tensor | None = None  # [B, 2] shift (x, y), fraction of size
    brightness: torch.Tensor | None = None  # [B] additive
    contrast: torch.Tensor | None = None  # [B] multiplicative
    lumaflip: torch.Tensor | None = None  # [B, 1, 1] 0/1
    hue: torch.Tensor | None = None  # [B] radians about the luma axis (RGB only)
    saturation: torch.Tensor | None = None  # [B, 1, 1] (RGB only)
    band_gains: torch.Tensor | None = None  # [B, 4] amplification of each frequency band
    noise: torch.Tensor | None = None  # [B, C, H, W] additive field (already scaled by sigma)
    cutout_size: torch.Tensor | None = None  # [B, 2, 1, 1, 1] (w, h) fraction of size, 0 = none
    cutout_center: torch.Tensor | None = None  # [B, 2, 1, 1, 1] (x, y) fraction of size


def _select(p_apply, value: torch.Tensor, identity: float, shape) -> torch.Tensor:
    """Keep ``value`` where a uniform draw falls below ``p_apply``, else the identity value."""
    chosen = torch.rand(shape, device=value.device) < p_apply
    return torch.where(chosen, value, torch.full_like(value, identity))


class AugmentPipe(torch.nn.Module):
    """Differentiable ADA augmentation; ``p`` (a buffer) scales every probability."""

    def __init__(self, config: AugmentConfig | None = None):
        super().__init__()
        self.config = AugmentConfig() if config is None else config
        if len(self.config.imgfilter_bands) != 4:
            raise ValueError("imgfilter_bands needs one multiplier for each of the 4 bands")
        self.register_buffer("p", torch.zeros([]))
        self.register_buffer("geom_filter", ops.normalized_filter(ops.SYM6))
        self.register_buffer("band_filters", torch.as_tensor(ops.filter_bank(ops.SYM2), dtype=torch.float32))

    # ------------------------------------------------------------------ sampling

    def sample(self, batch: int, channels: int, height: int, width: int, device=None) -> AugmentParams:
        """Draw parameters for a batch (same random-number order as the reference)."""
        cfg = self.config
        dev = self.p.device if device is None else torch.device(device)
        p = self.p.to(dev)
        out = AugmentParams()

        def rand(*shape):
            return torch.rand(list(shape), device=dev)

        def randn(*shape):
            return torch.randn(list(shape), device=dev)

        if cfg.xflip > 0:
            out.xflip = _select(cfg.xflip * p, torch.floor(rand(batch) * 2), 0.0, [batch])
        if cfg.rotate90 > 0:
            out.rotate90 = _select(cfg.rotate90 * p, torch.floor(rand(batch) * 4), 0.0, [batch])
        if cfg.xint > 0:
            shift = (rand(batch, 2) * 2 - 1) * cfg.xint_max
            out.xint = _select(cfg.xint * p, shift, 0.0, [batch, 1])
        if cfg.scale > 0:
            out.scale = _select(cfg.scale * p, torch.exp2(randn(batch) * cfg.scale_std), 1.0, [batch])
        # Two independent rotations, each with probability p_rot, so P(pre or post) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - cfg.rotate * p).clamp(0, 1))
        if cfg.rotate > 0:
            theta = (rand(batch) * 2 - 1) * math.pi * cfg.rotate_max
            out.rotate_pre = _select(p_rot, theta, 0.0, [batch])
        if cfg.aniso > 0:
            out.aniso = _select(cfg.aniso * p, torch.exp2(randn(batch) * cfg.aniso_std), 1.0, [batch])
        if cfg.rotate > 0:
            theta = (rand(batch) * 2 - 1) * math.pi * cfg.rotate_max
            out.rotate_post = _select(p_rot, theta, 0.0, [batch])
        if cfg.xfrac > 0:
            out.xfrac = _select(cfg.xfrac * p, randn(batch, 2) * cfg.xfrac_std, 0.0, [batch, 1])

        if cfg.brightness > 0:
            out.brightness = _select(cfg.brightness * p, randn(batch) * cfg.brightness_std, 0.0, [batch])
        if cfg.contrast > 0:
            out.contrast = _select(cfg.contrast * p, torch.exp2(randn(batch) * cfg.contrast_std), 1.0, [batch])
        if cfg.lumaflip > 0:
            out.lumaflip = _select(cfg.lumaflip * p, torch.floor(rand(batch, 1, 1) * 2), 0.0, [batch, 1, 1])
        if cfg.hue > 0 and channels > 1:
            theta = (rand(batch) * 2 - 1) * math.pi * cfg.hue_max
            out.hue = _select(cfg.hue * p, theta, 0.0, [batch])
        if cfg.saturation > 0 and channels > 1:
            sat = torch.exp2(randn(batch, 1, 1) * cfg.saturation_std)
            out.saturation = _select(cfg.saturation * p, sat, 1.0, [batch, 1, 1])

        if cfg.imgfilter > 0:
            gains = []
            for band_strength in cfg.imgfilter_bands:
                gain = torch.exp2(randn(batch) * cfg.imgfilter_std)
                gains.append(_select(cfg.imgfilter * p * band_strength, gain, 1.0, [batch]))
            out.band_gains = torch.stack(gains, dim=1)

        if cfg.noise > 0:
            sigma = randn(batch, 1, 1, 1).abs() * cfg.noise_std
            sigma = _select(cfg.noise * p, sigma, 0.0, [batch, 1, 1, 1])
            out.noise = randn(batch, channels, height, width) * sigma
        if cfg.cutout > 0:
            size = torch.full([batch, 2, 1, 1, 1], cfg.cutout_size, device=dev)
            out.cutout_size = _select(cfg.cutout * p, size, 0.0, [batch, 1, 1, 1, 1])
            out.cutout_center = rand(batch, 2, 1, 1, 1)
        return out

    # ----------------------------------------------------------------- execution

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not (isinstance(images, torch.Tensor) and images.ndim == 4):
            raise ValueError("AugmentPipe expects an NCHW image tensor")
        params = self.sample(*images.shape, device=images.device)
        return self.apply(images, params)

    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Apply given parameters. Groups whose parameters are identity for the whole
        batch are skipped, so p = 0 returns the input exactly."""
        batch, channels, height, width = images.shape
        if channels not in (1, 3):
            raise ValueError(f"AugmentPipe supports 1 (grey) or 3 (RGB) channels, got {channels}")
        g_inv = self.geometric_matrix(params, height, width, images.device)
        if g_inv is not None and not _is_identity(g_inv):
            images = self.warp(images, g_inv)
        color = self.color_matrix(params, batch, images.device)
        if color is not None and not _is_identity(color):
            images = _apply_color(images, color)
        if params.band_gains is not None and bool((params.band_gains != 1).any()):
            images = self.filter_bands(images, params.band_gains)
        if params.noise is not None:
            images = images + params.noise.to(images.dtype)
        if params.cutout_size is not None and bool((params.cutout_size > 0).any()):
            images = images * _cutout_mask(params, height, width).to(images.dtype)
        return images

    @staticmethod
    def geometric_matrix(params: AugmentParams, height: int, width: int, device) -> torch.Tensor | None:
        """Inverse homogeneous transform [B, 3, 3], output pixel -> input pixel, pixel
        units about the image centre (x right, y down); ``None`` if no group is sampled."""
        g_inv = None

        def compose(m):
            nonlocal g_inv
            m = m.to(device)
            g_inv = m if g_inv is None else g_inv @ m

        if params.xflip is not None:
            compose(ops.scale2d(1 - 2 * params.xflip, torch.ones_like(params.xflip)))
        if params.rotate90 is not None:
            compose(ops.rotate2d(math.pi / 2 * params.rotate90))
        if params.xint is not None:
            compose(ops.translate2d(-torch.round(params.xint[:, 0] * width), -torch.round(params.xint[:, 1] * height)))
        if params.scale is not None:
            compose(ops.scale2d(1 / params.scale, 1 / params.scale))
        if params.rotate_pre is not None:
            compose(ops.rotate2d(params.rotate_pre))
        if params.aniso is not None:
            compose(ops.scale2d(1 / params.aniso, params.aniso))
        if params.rotate_post is not None:
            compose(ops.rotate2d(params.rotate_post))
        if params.xfrac is not None:
            compose(ops.translate2d(-params.xfrac[:, 0] * width, -params.xfrac[:, 1] * height))
        return g_inv

    def warp(self, images: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
        """Resample ``images`` so that output pixel q takes input pixel ``g_inv @ q``.

        Non-leaking layout of the paper: reflect-pad enough that no sample falls outside
        the image, upsample 2x with the orthogonal sym6 filter, bilinear sampling on the
        fine grid, then filter and decimate back (the filter pair is a perfect-reconstruction
        pair, so an identity warp returns the input up to rounding).
        """
        batch, channels, height, width = images.shape
        dev, dtype = images.device, images.dtype
        g_inv = g_inv.to(dtype)
        f = self.geom_filter
        filter_pad = f.numel() // 4  # filter support in input pixels, each side
        cx, cy = (width - 1) / 2, (height - 1) / 2
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=dev, dtype=dtype)
        reach = (g_inv @ corners.t())[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, batch*corner]
        margin = torch.cat([-reach, reach]).max(dim=1).values  # [x0, y0, x1, y1]
        margin = margin + torch.tensor([filter_pad * 2 - cx, filter_pad * 2 - cy] * 2, device=dev, dtype=dtype)
        upper = torch.tensor([width - 1, height - 1] * 2, device=dev, dtype=dtype)
        margin = torch.minimum(margin.clamp(min=0), upper)
        mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().tolist())

        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        g_inv = _translate((mx0 - mx1) / 2, (my0 - my1) / 2, dev, dtype) @ g_inv
        images = ops.upsample2x(images, f)
        g_inv = _scale(2, 2, dev, dtype) @ g_inv @ _scale(0.5, 0.5, dev, dtype)
        g_inv = _translate(-0.5, -0.5, dev, dtype) @ g_inv @ _translate(0.5, 0.5, dev, dtype)
        out_h, out_w = (height + filter_pad * 2) * 2, (width + filter_pad * 2) * 2
        # affine_grid works in [-1, 1] coordinates of the output and input tensors.
        g_inv = (
            _scale(2 / images.shape[3], 2 / images.shape[2], dev, dtype)
            @ g_inv
            @ _scale(out_w / 2, out_h / 2, dev, dtype)
        )
        grid = F.affine_grid(g_inv[:, :2, :], [batch, channels, out_h, out_w], align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return ops.downsample2x(images, f, crop=filter_pad * 2)

    @staticmethod
    def color_matrix(params: AugmentParams, batch: int, device) -> torch.Tensor | None:
        """Homogeneous colour transform [B, 4, 4] acting on (r, g, b, 1)."""
        color = None
        eye = torch.eye(4, device=device)
        v = torch.tensor([*_LUMA_AXIS, 0.0], device=device)
        luma_projector = torch.outer(v, v)

        def compose(m):
            nonlocal color
            m = m.to(device)
            color = m if color is None else m @ color

        if params.brightness is not None:
            b = params.brightness
            compose(ops.translate3d(b, b, b))
        if params.contrast is not None:
            c = params.contrast
            compose(ops.scale3d(c, c, c))
        if params.lumaflip is not None:
            compose(eye - 2 * luma_projector * params.lumaflip)  # Householder reflection
        if params.hue is not None:
            compose(ops.rotate3d(_LUMA_AXIS, params.hue))
        if params.saturation is not None:
            compose(luma_projector + (eye - luma_projector) * params.saturation)
        if color is not None and color.ndim == 2:
            color = color.expand(batch, 4, 4)
        return color

    def filter_bands(self, images: torch.Tensor, band_gains: torch.Tensor) -> torch.Tensor:
        """Amplify each frequency band by its gain, energy-normalised per band, as one
        separable zero-phase filter per image (reflect-padded)."""
        batch, channels, height, width = images.shape
        bank = self.band_filters.to(images.dtype)
        num_bands = bank.shape[0]
        power = torch.tensor(_BAND_POWER, device=images.device, dtype=images.dtype)
        total = torch.ones([batch, num_bands], device=images.device, dtype=images.dtype)
        for band in range(num_bands):
            one_band = torch.ones_like(total)
            one_band = torch.where(
                torch.arange(num_bands, device=images.device) == band, band_gains[:, band : band + 1].to(images.dtype), one_band
            )
            total = total * one_band / (power * one_band.square()).sum(dim=-1, keepdim=True).sqrt()
        taps = (total @ bank).repeat_interleave(channels, dim=0)  # [B*C, taps]
        pad = bank.shape[1] // 2
        if min(height, width) <= pad:
            raise ValueError(f"image-space filtering needs images larger than {pad} pixels")
        x = images.reshape(1, batch * channels, height, width)
        x = F.pad(x, [pad, pad, pad, pad], mode="reflect")
        x = F.conv2d(x, taps[:, None, None, :], groups=batch * channels)
        x = F.conv2d(x, taps[:, None, :, None], groups=batch * channels)
        return x.reshape(batch, channels, height, width)


def _is_identity(m: torch.Tensor) -> bool:
    eye = torch.eye(m.shape[-1], device=m.device, dtype=m.dtype)
    return bool(torch.equal(m, eye.expand_as(m)))


def _translate(tx: float, ty: float, device, dtype) -> torch.Tensor:
    return torch.tensor([[1, 0, tx], [0, 1, ty], [0, 0, 1]], device=device, dtype=dtype)


def _scale(sx: float, sy: float, device, dtype) -> torch.Tensor:
    return torch.tensor([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], device=device, dtype=dtype)


def _apply_color(images: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = images.shape
    color = color.to(images.dtype)
    flat = images.reshape(batch, channels, height * width)
    if channels == 3:
        flat = color[:, :3, :3] @ flat + color[:, :3, 3:]
    else:
        # Grey = mean of the three RGB outputs for an input with r = g = b.
        grey = color[:, :3, :].mean(dim=1, keepdim=True)
        flat = flat * grey[:, :, :3].sum(dim=2, keepdim=True) + grey[:, :, 3:]
    return flat.reshape(batch, channels, height, width)


def _cutout_mask(params: AugmentParams, height: int, width: int) -> torch.Tensor:
    size, center = params.cutout_size, params.cutout_center
    dev = size.device
    x = (torch.arange(width, device=dev).reshape(1, 1, 1, -1) + 0.5) / width
    y = (torch.arange(height, device=dev).reshape(1, 1, -1, 1) + 0.5) / height
    outside_x = (x - center[:, 0]).abs() >= size[:, 0] / 2
    outside_y = (y - center[:, 1]).abs() >= size[:, 1] / 2
    return torch.logical_or(outside_x, outside_y).float()


def identity_params(batch: int, channels: int, height: int, width: int, device=None) -> AugmentParams:
    """Parameters with every group present and set to identity (for building test cases)."""
    z = torch.zeros([batch], device=device)
    o = torch.ones([batch], device=device)
    return AugmentParams(
        xflip=z.clone(), rotate90=z.clone(), xint=torch.zeros([batch, 2], device=device), scale=o.clone(),
        rotate_pre=z.clone(), aniso=o.clone(), rotate_post=z.clone(), xfrac=torch.zeros([batch, 2], device=device),
        brightness=z.clone(), contrast=o.clone(), lumaflip=torch.zeros([batch, 1, 1], device=device),
        hue=z.clone() if channels > 1 else None,
        saturation=torch.ones([batch, 1, 1], device=device) if channels > 1 else None,
        band_gains=torch.ones([batch, 4], device=device),
        noise=torch.zeros([batch, channels, height, width], device=device),
        cutout_size=torch.zeros([batch, 2, 1, 1, 1], device=device),
        cutout_center=torch.full([batch, 2, 1, 1, 1], 0.5, device=device),
    )


__all__ = [
    "AUGMENT_PIPES",
    "DEFAULT_AUGMENT_PIPE",
    "AugmentConfig",
    "AugmentParams",
    "AugmentPipe",
    "identity_params",
]
