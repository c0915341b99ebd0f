"""Diffusion-weighted series -> FA (and MD) with a diffusion-tensor fit (dipy).

The fit is dipy's weighted least squares (``TensorModel(fit_method="WLS")``: an ordinary
least-squares fit of the log signal, then one re-weighted fit with weights from the
predicted signal). FA is set to 0 outside the brain mask and kept in [0, 1]: a tensor
with a negative eigenvalue (noise, CSF partial volume) would give FA up to sqrt(3/2). dipy
clips such eigenvalues to ~0 before computing FA (which bounds FA by 1), so "clipped
voxels" counts those voxels plus any FA outside [0, 1] (a guard; none in practice).
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


@dataclass
class FAConfig:
    """``b0_threshold``: b-values at or below it (s/mm^2) count as non-weighted.
    ``bvec_norm_tolerance``/``bvec_norm_encodes_b``: see ``stylefa.data.gradients.GradientRules``.
    ``mask_median_radius``/``mask_numpass``: dipy ``median_otsu`` settings for the automatic mask."""

    fit_method: str = "WLS"
    b0_threshold: float = 50.0
    bvec_norm_tolerance: float = 0.05
    bvec_norm_encodes_b: bool = False
    mask_median_radius: int = 4
    mask_numpass: int = 4
    slab_size: int = 8

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
    """Brain mask from the mean b=0 image (dipy ``median_otsu``)."""
    from dipy.segment.mask import median_otsu

    _, mask = median_otsu(
        dwi, vol_idx=np.flatnonzero(b0_volumes), median_radius=config.mask_median_radius, numpass=config.mask_numpass
    )
    return np.asarray(mask, dtype=bool)


def fit_tensor_maps(
    dwi: np.ndarray,
    bvals: np.ndarray,
    bvecs: np.ndarray,
    mask: np.ndarray,
    config: FAConfig,
) -> tuple[np.ndarray, np.ndarray, int]:
    """FA, MD inside ``mask`` (0 elsewhere) and the count of voxels with a floored eigenvalue.

    Fitted slab by slab for a progress bar (voxels are independent).
    """
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from stylefa.progress import progress

    gtab = gradient_table(bvals, bvecs=bvecs, b0_threshold=config.b0_threshold)
    model = TensorModel(gtab, fit_method=config.fit_method)
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
