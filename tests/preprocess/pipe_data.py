"""Small synthetic reversed-PE DWI pairs in BIDS layout for the preprocess tests (not real data:
an ellipsoidal head with an anisotropic core, 1 b=0 + 7 directions at b=1000)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

AFFINE = np.array([[-2.0, 0, 0, 16], [0, 2, 0, -16], [0, 0, 2, -8], [0, 0, 0, 1]])
BVALS = np.array([0, 1000, 1000, 1000, 1000, 1000, 1000, 1000], float)
# One coarse SDC level and a short motion search: for tests of the pipeline's plumbing, not its accuracy.
FAST_SDC = {"knot_mm": [12.0], "fwhm_mm": [2.0], "bending": [1e-3], "iterations": [4]}
FAST_MOTION = {"rounds": 1, "max_iter": 4, "smoothing": [0.0]}
BVECS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.7071, 0.7071, 0], [0.7071, 0, 0.7071],
                  [0, 0.7071, 0.7071], [0.577, 0.577, 0.577]], float)


def phantom(shape=(16, 16, 8), seed=0) -> np.ndarray:
    """(X, Y, Z, 8) DWI: S0 = 1000 inside an ellipsoid, a core with a tensor along x (FA ~0.7),
    isotropic tissue around it, Rician-like noise."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radius = np.sqrt(sum(((grid[i] - centre[i]) / (0.42 * shape[i])) ** 2 for i in range(3)))
    head, core = radius <= 1, radius <= 0.5
    d_iso = np.diag([0.8e-3] * 3)
    d_fibre = np.diag([1.7e-3, 0.3e-3, 0.3e-3])
    rng = np.random.default_rng(seed)
    data = np.zeros(shape + (len(BVALS),), np.float32)
    for n, (b, g) in enumerate(zip(BVALS, BVECS)):
        g = g / (np.linalg.norm(g) or 1)
        signal = np.where(core, np.exp(-b * g @ d_fibre @ g), np.exp(-b * g @ d_iso @ g))
        data[..., n] = np.where(head, 1000 * signal, 0) + np.abs(rng.normal(0, 10, shape))
    return data


def write_series(folder: Path, stem: str, data: np.ndarray, sidecar: dict | None, affine=AFFINE,
                 bvals=BVALS, bvecs=BVECS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{stem}.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(image))
    if bvals is not None:
        (folder / f"{stem}.bval").write_text(" ".join(f"{b:g}" for b in bvals) + "\n")
        (folder / f"{stem}.bvec").write_text("\n".join(" ".join(f"{v:g}" for v in row) for row in np.asarray(bvecs).T))
    if sidecar is not None:
        (folder / f"{stem}.json").write_text(json.dumps(sidecar))
    return image


def sidecar(direction: str | None = "j", readout: float | None = 0.05, **extra) -> dict:
    data = {"ScanningSequence": "EP", **extra}
    if direction is not None:
        data["PhaseEncodingDirection"] = direction
    if readout is not None:
        data["TotalReadoutTime"] = readout
    return data


def write_pair(root: Path, subject: str = "sub-01", forward: dict | None = None, reverse: dict | None = None,
               reverse_data: np.ndarray | None = None, reverse_affine=AFFINE, reverse_bvals=BVALS) -> tuple[Path, Path]:
    """``root/sub-01/dwi/sub-01_dir-PA_dwi.*`` (``j``) and ``..._dir-AP_dwi.*`` (``j-``)."""
    folder = root / subject / "dwi"
    data = phantom()
    pa = write_series(folder, f"{subject}_dir-PA_dwi", data, forward if forward is not None else sidecar("j"))
    ap = write_series(folder, f"{subject}_dir-AP_dwi", data if reverse_data is None else reverse_data,
                      reverse if reverse is not None else sidecar("j-"), affine=reverse_affine, bvals=reverse_bvals,
                      bvecs=None if reverse_bvals is None else BVECS)
    return pa, ap
