"""Diffusion-weighted series -> FA (and MD) with a diffusion-tensor fit.

Fit methods (``FAConfig.fit_method``):

- ``"mrtrix"`` (default): MRtrix3 ``dwi2tensor``'s default, weighted least squares on the
  measured signal then two reweightings (``stylefa.data.tensor_fit``, NumPy, vectorised);
  it matches Debian's MRtrix3 to ~1e-5 FA (tests/data/test_fa_mrtrix.py);
- ``"dipy-wls"``: dipy's ``TensorModel(fit_method="WLS")`` (an ordinary least-squares fit,
  then one reweighting), the fit of stylefa <= 0.x; its white-matter FA is lower at high b.

FA is set to 0 outside the brain mask and kept in [0, 1]: a tensor with a negative
eigenvalue (noise, CSF partial volume) would give FA up to sqrt(3/2); both fits floor such
eigenvalues at ~0 before computing FA (which bounds FA by 1), so "clipped voxels" counts
those voxels plus any FA outside [0, 1] (a guard; none in practice).

Automatic mask: dipy's ``median_otsu`` recipe (median filter of the mean b=0, then Otsu's
threshold) run on a copy of the mean b=0 averaged over ``mask_downsample``^3 blocks, with
the median radius scaled down to match, then the filtered image is interpolated back and
thresholded. On the eight shared real series its Dice overlap with full-resolution
``median_otsu`` (radius 4, 4 passes) is 0.979-0.987 at ~1/30 of the CPU time
(BENCHMARKS.md); ``mask_downsample=1`` (and volumes under ``MIN_DOWNSAMPLED_AXIS`` voxels on
an axis) use dipy's ``median_otsu`` itself.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from stylefa.data.gradients import GradientRules, load_gradients
from stylefa.data.nifti import Volume, load_volume
from stylefa.errors import InputError

# dipy floors eigenvalues at ~1e-9 mm^2/s; anything this small was a non-positive eigenvalue.
FLOORED_EIGENVALUE = 1e-8
FIT_METHODS = ("mrtrix", "dipy-wls")
MIN_DOWNSAMPLED_AXIS = 16  # voxels: the automatic mask's coarse grid is used only for larger volumes
FIT_DESCRIPTIONS = {
    "mrtrix": "weighted least squares on the measured signal + 2 reweightings (MRtrix3 dwi2tensor default)",
    "dipy-wls": "dipy TensorModel WLS (ordinary least squares + 1 reweighting)",
}


@dataclass
class FAConfig:
    """``b0_threshold``: b-values at or below it (s/mm^2) count as non-weighted.
    ``bvec_norm_tolerance``/``bvec_norm_encodes_b``: see ``stylefa.data.gradients.GradientRules``.
    ``mask_median_radius``/``mask_numpass``: dipy ``median_otsu`` settings for the automatic mask
    (radius in DWI voxels); ``mask_downsample``: block size of the grid the median filter runs on
    (1: dipy's ``median_otsu`` itself). ``fit_method``: one of ``FIT_METHODS`` (module doc)."""

    fit_method: str = "mrtrix"
    b0_threshold: float = 50.0
    bvec_norm_tolerance: float = 0.05
    bvec_norm_encodes_b: bool = False
    mask_median_radius: int = 4
    mask_numpass: int = 4
    mask_downsample: int = 2
    slab_size: int = 8

    def __post_init__(self):
        if self.fit_method not in FIT_METHODS:
            raise InputError(f"unknown fit method {self.fit_method!r}; choose one of {', '.join(FIT_METHODS)}")
        if self.mask_downsample < 1:
            raise InputError(f"mask_downsample must be >= 1, got {self.mask_downsample}")

    def to_dict(self) -> dict:
        return asdict(self)

    def gradient_rules(self) -> GradientRules:
        return GradientRules(b0_threshold=self.b0_threshold, norm_tolerance=self.bvec_norm_tolerance,
                             bvec_norm_encodes_b=self.bvec_norm_encodes_b)

    @classmethod
    def from_dict(cls, data: dict) -> "FAConfig":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class FAResult:
    fa: Volume
    md: Volume
    mask: np.ndarray
    auto_mask: bool
    clipped_voxels: int
    gradients: dict = field(default_factory=dict)  # GradientTable.summary()


def read_gradients(bval_path, bvec_path, n_volumes: int, b0_threshold: float = 50.0,
                   rules: GradientRules | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FSL-style ``bval`` (one row) and ``bvec`` (3 rows, or 3 columns) checked against the DWI.

    Returns b-values [N] (s/mm^2) and unit directions [N, 3] (zero on b=0 volumes); see
    ``stylefa.data.gradients`` for the checks. ``rules`` overrides ``b0_threshold``.
    """
    rules = rules or GradientRules(b0_threshold=b0_threshold)
    table = load_gradients(bval_path, bvec_path, n_volumes, rules)
    return table.bvals, table.bvecs


def load_mask(path, like: Volume) -> np.ndarray:
    """A brain mask on the DWI grid (non-zero = brain)."""
    mask = load_volume(path, expect_ndim=3, name="mask", allow_empty=True)
    if mask.shape != like.shape[:3]:
        raise InputError(f"mask shape {mask.shape} differs from the DWI grid {like.shape[:3]}", path)
    if not np.allclose(mask.affine, like.affine, atol=1e-3):
        raise InputError("mask affine differs from the DWI affine (not on the same grid)", path)
    brain = mask.data > 0
    if not brain.any():
        raise InputError("mask is empty", path)
    return brain


def automatic_mask(dwi: np.ndarray, b0_volumes: np.ndarray, config: FAConfig) -> np.ndarray:
    """Brain mask [X, Y, Z] bool from the mean b=0 image (``median_otsu`` recipe; module doc)."""
    factor = config.mask_downsample
    if factor == 1 or min(dwi.shape[:3]) < MIN_DOWNSAMPLED_AXIS:
        # Crops too small to coarsen (dipy's 10-voxel test crops): dipy's median_otsu itself.
        from dipy.segment.mask import median_otsu

        _, mask = median_otsu(dwi, vol_idx=np.flatnonzero(b0_volumes), median_radius=config.mask_median_radius,
                              numpass=config.mask_numpass)
        return np.asarray(mask, dtype=bool)
    from dipy.segment.threshold import otsu
    from scipy.ndimage import median_filter, zoom

    mean_b0 = dwi[..., np.flatnonzero(b0_volumes)].mean(axis=-1, dtype=np.float64).astype(np.float32)
    radius = max(1, int(round(config.mask_median_radius / factor)))
    padded = np.pad(mean_b0, [(0, (-n) % factor) for n in mean_b0.shape], mode="edge")
    small = padded.reshape(*(v for n in padded.shape for v in (n // factor, factor))).mean(axis=(1, 3, 5))
    for _ in range(config.mask_numpass):
        small = median_filter(small, size=2 * radius + 1)
    threshold = otsu(small)
    # Interpolate the filtered image, not the mask, so the outline is as smooth as at full resolution.
    small = zoom(small, factor, order=1, grid_mode=True, mode="nearest")
    x, y, z = mean_b0.shape
    return small[:x, :y, :z] > threshold


def fit_tensor_maps(
    dwi: np.ndarray,
    bvals: np.ndarray,
    bvecs: np.ndarray,
    mask: np.ndarray,
    config: FAConfig,
) -> tuple[np.ndarray, np.ndarray, int]:
    """FA, MD inside ``mask`` (0 elsewhere) and the count of voxels with a floored eigenvalue.

    Fitted slab by slab (``dipy-wls``) or in chunks of voxels (``mrtrix``) for a progress bar.
    """
    if config.fit_method == "mrtrix":
        from stylefa.data.tensor_fit import fit_voxels

        maps = fit_voxels(dwi[mask], bvals, bvecs)
        fa = np.zeros(dwi.shape[:3], dtype=np.float32)
        md = np.zeros(dwi.shape[:3], dtype=np.float32)
        fa[mask], md[mask] = maps.fa, maps.md
        return fa, md, int(np.count_nonzero(maps.smallest_eigenvalue <= FLOORED_EIGENVALUE))
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from stylefa.progress import progress

    gtab = gradient_table(bvals, bvecs=bvecs, b0_threshold=config.b0_threshold)
    model = TensorModel(gtab, fit_method="WLS")
    fa = np.zeros(dwi.shape[:3], dtype=np.float32)
    md = np.zeros(dwi.shape[:3], dtype=np.float32)
    floored = 0
    starts = range(0, dwi.shape[2], config.slab_size)
    for start in progress(starts, desc="tensor fit", unit="slab", leave=False):
        slab = slice(start, start + config.slab_size)
        if not mask[:, :, slab].any():
            continue
        fit = model.fit(dwi[:, :, slab], mask=mask[:, :, slab])
        fa[:, :, slab] = np.nan_to_num(fit.fa, nan=0.0, posinf=0.0, neginf=0.0)
        md[:, :, slab] = np.nan_to_num(fit.md, nan=0.0, posinf=0.0, neginf=0.0)
        smallest = np.asarray(fit.evals)[..., -1]
        floored += int(np.count_nonzero(mask[:, :, slab] & (smallest <= FLOORED_EIGENVALUE)))
    fa[~mask] = 0.0
    md[~mask] = 0.0
    return fa, md, floored


def compute_fa(
    dwi: Volume,
    bvals: np.ndarray,
    bvecs: np.ndarray,
    mask: np.ndarray | None = None,
    config: FAConfig | None = None,
) -> FAResult:
    """FA (clipped to [0, 1]) and MD from a 4-D DWI volume; automatic mask if none is given.

    ``bvals`` [N] s/mm^2 and ``bvecs`` [N, 3] are validated first (``stylefa.data.gradients``).
    """
    from stylefa.data.gradients import validate_gradients

    config = config or FAConfig()
    table = validate_gradients(bvals, bvecs, config.gradient_rules())
    bvals, bvecs = table.bvals, table.bvecs
    b0_volumes = bvals <= config.b0_threshold
    auto = mask is None
    if auto:
        mask = automatic_mask(dwi.data, b0_volumes, config)
        if not mask.any():
            raise InputError("the automatic brain mask is empty; pass --mask", dwi.path)
    fa, md, floored = fit_tensor_maps(dwi.data, bvals, bvecs, mask, config)
    outside = (fa < 0) | (fa > 1)
    clipped = floored + int(np.count_nonzero(outside))
    fa = np.clip(fa, 0.0, 1.0)
    header = dwi.header.copy() if dwi.header is not None else None
    if header is not None:
        header.set_data_shape(fa.shape)
        header.set_intent("none")
    as_volume = lambda data: Volume(data=data, affine=dwi.affine, header=header, path=None)  # noqa: E731
    return FAResult(fa=as_volume(fa), md=as_volume(md), mask=mask, auto_mask=auto, clipped_voxels=clipped,
                    gradients=table.summary())


def mask_volume(result: FAResult) -> Volume:
    """The brain mask of a fit (1 = brain) on the FA map's grid; save it with ``dtype=np.uint8``."""
    return Volume(data=result.mask.astype(np.uint8), affine=result.fa.affine, header=result.fa.header, path=None)


def fa_from_files(
    dwi_path: str | os.PathLike,
    bval_path: str | os.PathLike,
    bvec_path: str | os.PathLike,
    mask_path: str | os.PathLike | None = None,
    config: FAConfig | None = None,
) -> FAResult:
    """Load and validate a DWI series with its gradient table, then ``compute_fa``.

    Every problem is an ``InputError`` naming the file; an unexpected failure inside the
    fit (dipy) is reported the same way, naming the DWI, instead of a traceback.
    """
    config = config or FAConfig()
    dwi = load_volume(dwi_path, expect_ndim=4, name="DWI")
    table = load_gradients(bval_path, bvec_path, dwi.shape[3], config.gradient_rules())
    mask = load_mask(mask_path, dwi) if mask_path is not None else None
    try:
        result = compute_fa(dwi, table.bvals, table.bvecs, mask, config)
        result.gradients = table.summary()  # the file's table (compute_fa sees it already rescaled)
        return result
    except InputError as exc:
        if exc.path is None:
            raise InputError(exc.problem, dwi_path) from None
        raise
    except (ValueError, ArithmeticError, np.linalg.LinAlgError, IndexError, MemoryError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"tensor fit failed ({type(exc).__name__}: {message})", dwi_path) from None
