"""Image conditions (corruptions) applied to a target slice before projection.

Each condition is a pure function ``(fa, rng) -> ConditionResult`` on a 2-D FA array in
[0, 1]: the modified image handed to the projector, and a known-pixel mask (True where the
projector may trust the pixel) or None when every pixel is known. Randomness comes only
from the ``numpy.random.Generator`` passed in; ``condition_rng(seed, slice_key, name)``
derives one per (slice, condition) so a study is reproducible and a condition's noise does
not change when other conditions are added.

Spec syntax (comma separated, see ``parse_conditions``)::

    none                    unmodified
    noise:SIGMA             additive Gaussian noise, std SIGMA (FA units), clipped to [0, 1]
    saltpepper:DENSITY      a fraction DENSITY of pixels set to 0 or 1 (equal odds)
    blur:SIGMA              Gaussian blur, SIGMA in pixels (scipy.ndimage, reflect edges)
    inpaint:rect:METHOD[:SIZE]
                            a square of side SIZE x the image side (default 0.25) removed,
                            centred on a random brain pixel (pixel > 0), then
                            METHOD = zero        filled with 0
                                     biharmonic  filled by skimage.restoration.inpaint_biharmonic
                                     masked      filled with 0 and reported unknown, so the
                                                 projector ignores it (projection with a mask)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from stylefa.errors import InputError

INPAINT_METHODS = ("zero", "biharmonic", "masked")
DEFAULT_RECT_SIZE = 0.25
DEFAULT_CONDITIONS = "none,noise:0.05,noise:0.1,saltpepper:0.05,inpaint:rect:zero,inpaint:rect:biharmonic,inpaint:rect:masked,blur:1,blur:2"


@dataclass(frozen=True)
class ConditionResult:
    image: np.ndarray  # float32, [0, 1]
    known: np.ndarray | None  # bool, True = pixel known to the projector; None = all known
    removed: np.ndarray | None = None  # bool, pixels the condition removed (inpainting only)


def _as_fa(fa: np.ndarray) -> np.ndarray:
    fa = np.asarray(fa, dtype=np.float64)
    if fa.ndim != 2:
        raise ValueError(f"conditions act on 2-D slices, got shape {fa.shape}")
    return fa


def unmodified(fa: np.ndarray, rng: np.random.Generator) -> ConditionResult:
    return ConditionResult(_as_fa(fa).astype(np.float32), None)


def gaussian_noise(fa: np.ndarray, rng: np.random.Generator, sigma: float) -> ConditionResult:
    fa = _as_fa(fa)
    noisy = fa + rng.normal(0.0, sigma, size=fa.shape)
    return ConditionResult(np.clip(noisy, 0.0, 1.0).astype(np.float32), None)


def salt_and_pepper(fa: np.ndarray, rng: np.random.Generator, density: float) -> ConditionResult:
    fa = _as_fa(fa)
    hit = rng.random(fa.shape) < density
    salt = rng.random(fa.shape) < 0.5
    out = fa.copy()
    out[hit & salt] = 1.0
    out[hit & ~salt] = 0.0
    return ConditionResult(out.astype(np.float32), None)


def blur(fa: np.ndarray, rng: np.random.Generator, sigma: float) -> ConditionResult:
    from scipy.ndimage import gaussian_filter

    fa = _as_fa(fa)
    return ConditionResult(np.clip(gaussian_filter(fa, sigma, mode="reflect"), 0.0, 1.0).astype(np.float32), None)


def random_rectangle(fa: np.ndarray, rng: np.random.Generator, size: float = DEFAULT_RECT_SIZE) -> np.ndarray:
    """A square mask of side ``size`` x the shorter image side, centred on a random brain pixel."""
    fa = _as_fa(fa)
    h, w = fa.shape
    side = max(1, int(round(size * min(h, w))))
    rows, cols = np.nonzero(fa > 0)
    if rows.size == 0:  # no brain: centre of the image
        cy, cx = h // 2, w // 2
    else:
        pick = int(rng.integers(rows.size))
        cy, cx = int(rows[pick]), int(cols[pick])
    top = int(np.clip(cy - side // 2, 0, max(0, h - side)))
    left = int(np.clip(cx - side // 2, 0, max(0, w - side)))
    mask = np.zeros((h, w), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def inpaint(fa: np.ndarray, removed: np.ndarray, method: str) -> ConditionResult:
    """Remove the ``removed`` pixels and fill them by ``method`` (see the module docstring)."""
    fa = _as_fa(fa)
    removed = np.asarray(removed, dtype=bool)
    if removed.shape != fa.shape:
        raise ValueError(f"region mask {removed.shape} differs from the image {fa.shape}")
    if method not in INPAINT_METHODS:
        raise ValueError(f"unknown inpainting method {method!r}")
    out = fa.copy()
    out[removed] = 0.0
    if method == "biharmonic" and removed.any():
        from skimage.restoration import inpaint_biharmonic

        out = np.clip(inpaint_biharmonic(out, removed), 0.0, 1.0)
    known = ~removed if method == "masked" else None
    return ConditionResult(out.astype(np.float32), known, removed)


def inpaint_rect(fa, rng, method: str, size: float = DEFAULT_RECT_SIZE) -> ConditionResult:
    return inpaint(fa, random_rectangle(fa, rng, size), method)


@dataclass(frozen=True)
class Condition:
    """A named, parametrised condition; ``name`` is its canonical spec (e.g. ``noise:0.05``)."""

    name: str
    kind: str
    apply_fn: Callable[[np.ndarray, np.random.Generator], ConditionResult] = field(repr=False, compare=False)
    # Conditions sharing a random key draw the same random numbers on a slice: the three
    # inpainting fills remove the same rectangle, so they are compared pairwise.
    random_key: str = ""

    def rng(self, seed: int, slice_key: str) -> np.random.Generator:
        return condition_rng(seed, slice_key, self.random_key or self.name)

    def apply(self, fa: np.ndarray, rng: np.random.Generator) -> ConditionResult:
        return self.apply_fn(fa, rng)


def _number(text: str, spec: str, what: str, lo: float, hi: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"condition {spec!r}: {what} {text!r} is not a number") from None
    if not (lo <= value <= hi):
        raise InputError(f"condition {spec!r}: {what} must be in [{lo:g}, {hi:g}], got {value:g}")
    return value


def parse_condition(spec: str) -> Condition:
    """One condition from its spec; unknown names or bad parameters -> InputError."""
    spec = spec.strip()
    parts = spec.split(":")
    kind, args = parts[0].lower(), parts[1:]
    if kind == "none" and not args:
        return Condition("none", "none", unmodified)
    if kind == "noise" and len(args) == 1:
        sigma = _number(args[0], spec, "noise sigma", 0.0, 1.0)
        return Condition(f"noise:{sigma:g}", kind, lambda fa, rng: gaussian_noise(fa, rng, sigma))
    if kind == "saltpepper" and len(args) == 1:
        density = _number(args[0], spec, "density", 0.0, 1.0)
        return Condition(f"saltpepper:{density:g}", kind, lambda fa, rng: salt_and_pepper(fa, rng, density))
    if kind == "blur" and len(args) == 1:
        sigma = _number(args[0], spec, "blur sigma (pixels)", 0.0, 100.0)
        return Condition(f"blur:{sigma:g}", kind, lambda fa, rng: blur(fa, rng, sigma))
    if kind == "inpaint" and len(args) in (2, 3) and args[0] == "rect":
        method = args[1].lower()
        if method not in INPAINT_METHODS:
            raise InputError(f"condition {spec!r}: inpainting method must be one of {', '.join(INPAINT_METHODS)}")
        size = _number(args[2], spec, "rectangle size", 0.01, 1.0) if len(args) == 3 else DEFAULT_RECT_SIZE
        name = f"inpaint:rect:{method}" + ("" if len(args) == 2 else f":{size:g}")
        return Condition(
            name, kind, lambda fa, rng: inpaint_rect(fa, rng, method, size), random_key=f"inpaint:rect:{size:g}"
        )
    raise InputError(
        f"unknown condition {spec!r}; expected none, noise:SIGMA, saltpepper:DENSITY, blur:SIGMA "
        f"or inpaint:rect:{{{'|'.join(INPAINT_METHODS)}}}[:SIZE]"
    )


def parse_conditions(specs: str) -> list[Condition]:
    """A comma-separated list of condition specs, duplicates removed, order kept."""
    out: list[Condition] = []
    seen = set()
    for spec in specs.split(","):
        if not spec.strip():
            continue
        condition = parse_condition(spec)
        if condition.name not in seen:
            seen.add(condition.name)
            out.append(condition)
    if not out:
        raise InputError("no conditions given")
    return out


def condition_rng(seed: int, slice_key: str, condition_name: str) -> np.random.Generator:
    """A generator that depends only on (seed, slice, condition), stable across runs and Pythons."""
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(slice_key.encode()), zlib.crc32(condition_name.encode())]
    return np.random.default_rng(np.random.SeedSequence(entropy))
