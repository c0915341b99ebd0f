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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stylefa.data.nifti import Volume, load_volume
from stylefa.errors import InputError

MIN_DIRECTIONS = 6  # a tensor has 6 unknowns besides S0
# dipy floors eigenvalues at ~1e-9 mm^2/s; anything this small was a non-positive eigenvalue.
FLOORED_EIGENVALUE = 1e-8


@dataclass
class FAConfig:
    """``b0_threshold``: b-values at or below it (s/mm^2) count as non-weighted.
    ``mask_median_radius``/``mask_numpass``: dipy ``median_otsu`` settings for the automatic mask."""

    fit_method: str = "WLS"
    b0_threshold: float = 50.0
    mask_median_radius: int = 4
    mask_numpass: int = 4
    slab_size: int = 8

    def to_dict(self) -> dict:
        return asdict(self)

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


def _read_numbers(path: Path, what: str, allow_nan: bool = False) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{what} file not found", path)
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        values = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{what} file must hold whitespace-separated numbers", path) from None
    if values.size == 0:
        raise InputError(f"{what} file is empty", path)
    if np.any(np.isinf(values)) or (not allow_nan and np.any(np.isnan(values))):
        raise InputError(f"{what} file contains NaN or Inf", path)
    return values


def read_gradients(bval_path, bvec_path, n_volumes: int, b0_threshold: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """FSL-style ``bval`` (one row) and ``bvec`` (3 rows, or 3 columns) checked against the DWI."""
    bval_path, bvec_path = Path(bval_path), Path(bvec_path)
    bvals = _read_numbers(bval_path, "bval")
    if min(bvals.shape) != 1:
        raise InputError(f"bval must be a single row of numbers (got {bvals.shape[0]}x{bvals.shape[1]})", bval_path)
    bvals = bvals.ravel()
    if bvals.size != n_volumes:
        raise InputError(f"bval has {bvals.size} values but the DWI has {n_volumes} volumes", bval_path)
    if np.any(bvals < 0):
        raise InputError("negative b-values", bval_path)
    # Some tools write NaN directions for b=0 volumes; they are harmless there.
    bvecs = _read_numbers(bvec_path, "bvec", allow_nan=True)
    if bvecs.shape[0] == 3 and bvecs.shape[1] != 3:
        bvecs = bvecs.T
    elif bvecs.shape == (3, 3):
        bvecs = bvecs.T  # FSL writes one row per axis
    if bvecs.shape != (n_volumes, 3):
        raise InputError(f"bvec has {bvecs.shape[0]}x{bvecs.shape[1]} values; the DWI has {n_volumes} volumes (need 3 x {n_volumes})", bvec_path)
    weighted = bvals > b0_threshold
    undefined = np.isnan(bvecs).any(axis=1)
    if np.any(undefined & weighted):
        raise InputError(f"{int(np.sum(undefined & weighted))} diffusion-weighted volume(s) have NaN directions", bvec_path)
    bvecs = np.where(undefined[:, None], 0.0, bvecs)
    norms = np.linalg.norm(bvecs, axis=1)
    if np.any(norms[weighted] < 1e-3):
        raise InputError(f"{int(np.sum(norms[weighted] < 1e-3))} diffusion-weighted volume(s) have a zero gradient direction", bvec_path)
    if not np.any(~weighted):
        raise InputError(f"no b=0 volume (no b-value <= {b0_threshold:g})", bval_path)
    if np.sum(weighted) < MIN_DIRECTIONS:
        raise InputError(f"only {int(np.sum(weighted))} diffusion-weighted volumes; a tensor fit needs at least {MIN_DIRECTIONS}", bval_path)
    return bvals, bvecs


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
    from tqdm import tqdm

    gtab = gradient_table(bvals, bvecs=bvecs, b0_threshold=config.b0_threshold)
    model = TensorModel(gtab, fit_method=config.fit_method)
    fa = np.zeros(dwi.shape[:3], dtype=np.float32)
    md = np.zeros(dwi.shape[:3], dtype=np.float32)
    floored = 0
    starts = range(0, dwi.shape[2], config.slab_size)
    for start in tqdm(starts, desc="tensor fit", unit="slab", disable=None, leave=False):
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
    """FA (clipped to [0, 1]) and MD from a 4-D DWI volume; automatic mask if none is given."""
    config = config or FAConfig()
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
    return FAResult(fa=as_volume(fa), md=as_volume(md), mask=mask, auto_mask=auto, clipped_voxels=clipped)


def fa_from_files(
    dwi_path: str | os.PathLike,
    bval_path: str | os.PathLike,
    bvec_path: str | os.PathLike,
    mask_path: str | os.PathLike | None = None,
    config: FAConfig | None = None,
) -> FAResult:
    """Load and validate a DWI series with its gradient table, then ``compute_fa``."""
    config = config or FAConfig()
    dwi = load_volume(dwi_path, expect_ndim=4, name="DWI")
    bvals, bvecs = read_gradients(bval_path, bvec_path, dwi.shape[3], config.b0_threshold)
    mask = load_mask(mask_path, dwi) if mask_path is not None else None
    return compute_fa(dwi, bvals, bvecs, mask, config)
