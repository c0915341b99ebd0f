"""One set of readers and rules for everything a user hands in: images, arrays, masks, sizes.

Every command reads targets, masks, latents and noise maps through these functions, so one
file gets the same answer everywhere (the rules are written up for users in docs/inputs.md).
All problems raise ``InputError(problem, path)``: one line, exit 2 on the command line.

Image files (PNG; also any other format Pillow reads):

- **alpha**: refused unless every pixel is fully opaque; ``alpha_background`` (an FA value
  in [0, 1]) flattens the image onto that background instead (``out = a * grey + (1 - a) * bg``);
- **colour**: accepted only when the colour channels are equal (grey stored as RGB);
  a colour-coded (e.g. direction-encoded) FA map is refused;
- **integers**: FA = value / full range of the bit depth (255 or 65535) by default, or
  value / ``scale`` when given (e.g. 1000 for "FA x 1000" files); values above the scale are
  refused; a 16-bit image whose maximum uses less than 1/16 of the range is refused (it
  would read as nearly black: a scaled-integer file read without its scale);
- float images are FA as stored.

Masks must be binary after reading: 0 and one other value.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.errors import InputError

# SSIM's 11x11 Gaussian window (the study's metric) needs images of at least 11 pixels, and the
# generator's 4-tap FIR up/downsampling pads every layer; the smallest power of two that serves
# both is 16.
SSIM_WINDOW = 11
MIN_RESOLUTION = 16

# A 16-bit image whose maximum is below this fraction of 65535 is a scaled-integer file.
MIN_16BIT_RANGE_FRACTION = 1 / 16


def check_resolution(resolution: int, what: str = "resolution", path: str | os.PathLike | None = None) -> int:
    """``resolution`` (pixels per side) must be at least ``MIN_RESOLUTION`` (16); returns it.

    Raises ``InputError`` naming ``what`` and ``path`` otherwise."""
    resolution = int(resolution)
    if resolution < MIN_RESOLUTION:
        raise InputError(
            f"{what} {resolution} is too small: images need at least {MIN_RESOLUTION}x{MIN_RESOLUTION} pixels "
            f"(the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window and the generator's filter padding)", path)
    return resolution


@dataclass(frozen=True)
class ImageOptions:
    """How integer and transparent image files become FA.

    scale: the integer value that means FA 1 (None: the bit depth's full range, 255 or 65535).
    alpha_background: FA value transparent pixels are flattened onto (None: refuse transparency).
    """

    scale: float | None = None
    alpha_background: float | None = None

    def __post_init__(self):
        if self.scale is not None and not (np.isfinite(self.scale) and self.scale > 0):
            raise InputError(f"--png-scale must be a positive number, got {self.scale:g}")
        if self.alpha_background is not None and not 0 <= self.alpha_background <= 1:
            raise InputError(f"--png-alpha-background must be an FA value in [0, 1], got {self.alpha_background:g}")


def check_finite(array: np.ndarray, path, name: str = "array") -> np.ndarray:
    """Refuse NaN/Inf values: ``"<path>: 'w' has 5120 NaN/Inf values"``."""
    bad = int(np.count_nonzero(~np.isfinite(array))) if np.issubdtype(array.dtype, np.inexact) else 0
    if bad:
        raise InputError(f"{name} has {bad} NaN/Inf value{'s' if bad != 1 else ''}", path)
    return array


def check_shape(array: np.ndarray, path, name: str, shapes: tuple[tuple[int | None, ...], ...]) -> np.ndarray:
    """``array``'s shape must match one of ``shapes`` (``None`` matches any size)."""
    for shape in shapes:
        if array.ndim == len(shape) and all(want is None or want == got for want, got in zip(shape, array.shape)):
            return array
    wanted = " or ".join("[" + ", ".join("N" if s is None else str(s) for s in shape) + "]" for shape in shapes)
    raise InputError(f"{name} has shape {list(array.shape)}; expected {wanted}", path)


def _numeric(array: np.ndarray, path, name: str) -> np.ndarray:
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{name} has non-numeric dtype {array.dtype}", path)
    return check_finite(array, path, name)


def _check_magic(path: Path, magic: bytes, what: str) -> None:
    with open(path, "rb") as handle:
        head = handle.read(len(magic))
    if not head:
        raise InputError("file is empty", path)
    if head != magic:
        raise InputError(f"not {what} (its first bytes are not the format's signature)", path)


def read_npy(path: str | os.PathLike, name: str = "array") -> np.ndarray:
    """A numeric, finite array from a .npy file (never unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    _check_magic(path, b"\x93NUMPY", "a .npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read .npy ({_short(exc)})", path) from None
    return _numeric(array, path, name)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, each numeric and finite (never unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    _check_magic(path, b"PK", "an .npz file (a zip archive of .npy arrays)")
    try:
        data = np.load(path, allow_pickle=False)
        with data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a readable .npz file ({_short(exc)})", path) from None
    return {key: _numeric(value, path, repr(key)) for key, value in arrays.items()}


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_image_gray(path: str | os.PathLike, options: ImageOptions = ImageOptions(), *,
                    check_range: bool = True) -> np.ndarray:
    """An image file as FA: float32 [H, W], following the rules in the module docstring.

    ``check_range=False`` skips the nearly-empty 16-bit rule (masks: 0/1 in 16 bits is fine)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "PA"):
                # Palette entries are colours: judge them as RGB(A) pixels.
                img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
                mode = img.mode
            pixels = np.asarray(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # PIL reports unknown or truncated files as OSError (UnidentifiedImageError) or
        # SyntaxError, depending on where the decoder gives up.
        raise InputError(f"cannot read PNG ({_short(exc)})", path) from None
    return _to_fa(pixels, mode, path, options, check_range)


def _to_fa(pixels: np.ndarray, mode: str, path: Path, options: ImageOptions, check_range: bool) -> np.ndarray:
    if mode == "F":
        return check_finite(pixels.astype(np.float32), path, "image")
    if mode == "1":
        return pixels.astype(np.float32)
    alpha = None
    if mode in ("LA", "RGBA", "La", "RGBa"):
        alpha, pixels = pixels[..., -1], pixels[..., :-1]
    if pixels.ndim == 3:
        if mode not in ("RGB", "RGBA", "LA", "La", "RGBa"):
            raise InputError(f"image mode {mode} is not supported; give a grey PNG or .npy", path)
        grey = pixels[..., 0]
        if pixels.shape[-1] > 1:
            diff = int(np.abs(pixels.astype(np.int32) - grey[..., None].astype(np.int32)).max())
            if diff:
                raise InputError(
                    f"colour PNG: channels differ (by up to {diff} levels), not a grey FA image; "
                    "save FA as a single grey channel or give .npy", path)
        pixels = grey
    if mode.startswith("I;16") or mode in ("I", "I;16B", "I;16L"):
        full = 65535.0
    elif pixels.dtype == np.uint8:
        full = 255.0
    else:
        raise InputError(f"image mode {mode} is not supported; give a grey PNG or .npy", path)
    values = pixels.astype(np.float64)
    peak = float(values.max(initial=0))
    if options.scale is not None:
        if peak > options.scale:
            raise InputError(f"value {peak:g} exceeds --png-scale {options.scale:g} (FA would exceed 1)", path)
        scale = options.scale
    else:
        scale = full
        if check_range and full == 65535.0 and peak < MIN_16BIT_RANGE_FRACTION * full:
            raise InputError(
                f"16-bit PNG uses only 0..{peak:g} of 0..65535 (it would read as FA <= {peak / full:.3g}): "
                "give its scale with --png-scale (e.g. 1000 for FA x 1000) or give .npy", path)
    fa = values / scale
    if alpha is not None:
        fa = _apply_alpha(fa, alpha, 65535.0 if alpha.dtype == np.uint16 else 255.0, path, options)
    return fa.astype(np.float32)


def _apply_alpha(fa: np.ndarray, alpha: np.ndarray, full: float, path: Path, options: ImageOptions) -> np.ndarray:
    a = alpha.astype(np.float64) / full
    if np.all(a == 1):
        return fa
    if options.alpha_background is None:
        count = int(np.count_nonzero(a < 1))
        raise InputError(
            f"PNG has an alpha channel with {count} transparent pixel(s); flatten it onto a background "
            "(--png-alpha-background FA, e.g. 0) or give .npy", path)
    return a * fa + (1 - a) * options.alpha_background


def binary_mask(values: np.ndarray, path, what: str = "mask") -> np.ndarray:
    """``values != 0`` when ``values`` hold 0 and at most one other value; else ``InputError``."""
    values = np.asarray(values)
    if values.dtype == bool:
        return values
    check_finite(values, path, what)
    nonzero = values[values != 0]
    if nonzero.size and np.any(nonzero != nonzero.flat[0]):
        distinct = np.unique(values)
        shown = ", ".join(f"{v:g}" for v in distinct[:4]) + (", ..." if distinct.size > 4 else "")
        raise InputError(
            f"{what} is not binary: {distinct.size} distinct values ({shown}); a mask holds 0 and one other "
            "value (threshold it first)", path)
    return values != 0


def read_mask_image(path: str | os.PathLike, options: ImageOptions = ImageOptions()) -> np.ndarray:
    """A 2-D mask from .npy or an image file: bool, refused unless binary (see ``binary_mask``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        values = read_npy(path, "mask")
    elif suffix in IMAGE_SUFFIXES:
        values = read_image_gray(path, options, check_range=False)
    else:
        raise InputError(f"a mask must be .npy or an image ({', '.join(IMAGE_SUFFIXES)}), got {suffix or 'no suffix'}",
                         path)
    return binary_mask(values, path)


IMAGE_SUFFIXES = (".png",)
