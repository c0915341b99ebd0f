"""Diffusion-tensor fit of the log signal, vectorised over voxels (NumPy only).

``fit_method="mrtrix"`` is MRtrix3 ``dwi2tensor``'s default (Veraart et al. 2013, "Weighted
linear least squares estimation of diffusion MRI parameters: strengths, limitations, and
pitfalls", NeuroImage 81; MRtrix3 docs, dwi2tensor): a weighted linear least-squares fit of
``log S = log S0 - b g^T D g`` with weights equal to the *measured* signal, then
``MRTRIX_REWEIGHTINGS`` (2) iterated fits with weights equal to the signal the previous fit
predicts. Each fit minimises ``sum_i w_i^2 (log S_i - A_i p)^2`` (the variance of ``log S``
is ~ sigma^2 / S^2). dipy's ``TensorModel(fit_method="WLS")`` starts from an unweighted
(OLS) fit and reweights once, which biases white-matter FA low at high b (issue 22:
Siemens b=2500, -0.008 median).

Signals below ``MIN_SIGNAL_FRACTION`` times the voxel's largest signal are raised to that floor
before the log (a zero would give -inf), as ``dwi2tensor`` does.
FA and MD come from the eigenvalues; negative eigenvalues (noise, CSF partial volume) are
floored at 0, as dipy does, which keeps FA in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MRTRIX_REWEIGHTINGS = 2
MIN_SIGNAL_FRACTION = 1e-6
CHUNK_VOXELS = 16384  # voxels per batched solve: bounds memory to a few MB per chunk


@dataclass
class TensorMaps:
    """Per-voxel results for the voxels fitted: ``fa`` [N] in [0, 1], ``md`` [N] (mm^2/s),
    ``smallest_eigenvalue`` [N] (mm^2/s, before flooring)."""

    fa: np.ndarray
    md: np.ndarray
    smallest_eigenvalue: np.ndarray


def design_matrix(bvals: np.ndarray, bvecs: np.ndarray) -> np.ndarray:
    """[V, 7] design of the log-linear tensor model: columns Dxx, Dyy, Dzz, Dxy, Dxz, Dyz, log S0.

    ``bvals`` [V] s/mm^2, ``bvecs`` [V, 3] unit (zero on b=0 volumes).
    """
    g = np.asarray(bvecs, dtype=np.float64)
    b = np.asarray(bvals, dtype=np.float64)
    x, y, z = g[:, 0], g[:, 1], g[:, 2]
    quadratic = np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], axis=1)
    return np.hstack([-b[:, None] * quadratic, np.ones((len(b), 1))])


def _weighted_solve(design: np.ndarray, log_signal: np.ndarray, log_weights: np.ndarray) -> np.ndarray:
    """Per-voxel weighted least squares: [N, V] log signal and log weights -> [N, 7] parameters.

    Weights enter as logs and are scaled to a maximum of 1 per voxel (the solution does not
    depend on their scale), so a wild prediction cannot overflow.
    """
    w2 = np.exp(2.0 * (log_weights - log_weights.max(axis=1, keepdims=True)))
    normal = np.einsum("nv,vi,vj->nij", w2, design, design, optimize=True)
    rhs = np.einsum("nv,vi,nv->ni", w2, design, log_signal, optimize=True)
    try:
        return np.linalg.solve(normal, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        # Singular voxels in the batch (weights ~0 on all but a few volumes): solve the others as they
        # are and those with a vanishing ridge (1e-10 of their mean diagonal), all still batched.
        sign, _ = np.linalg.slogdet(normal)
        singular = sign <= 0
        scale = np.trace(normal[singular], axis1=1, axis2=2)[:, None, None] / normal.shape[1]
        normal[singular] += 1e-10 * np.maximum(scale, 1e-300) * np.eye(normal.shape[1])
        return np.linalg.solve(normal, rhs[..., None])[..., 0]


def fit_mrtrix(signal: np.ndarray, design: np.ndarray, reweightings: int = MRTRIX_REWEIGHTINGS) -> np.ndarray:
    """MRtrix3 ``dwi2tensor``'s default fit of [N, V] signals: [N, 7] parameters (see module doc)."""
    signal = np.asarray(signal, dtype=np.float64)
    floor = MIN_SIGNAL_FRACTION * signal.max(axis=1, keepdims=True)
    signal = np.maximum(signal, np.where(floor > 0, floor, MIN_SIGNAL_FRACTION))
    log_signal = np.log(signal)
    params = _weighted_solve(design, log_signal, log_signal)
    for _ in range(reweightings):
        params = _weighted_solve(design, log_signal, params @ design.T)  # log of the predicted signal
    return params


def tensor_metrics(params: np.ndarray) -> TensorMaps:
    """FA and MD of [N, 7] tensor parameters (eigenvalues floored at 0 for FA, raw for MD)."""
    dxx, dyy, dzz, dxy, dxz, dyz = (params[:, i] for i in range(6))
    tensor = np.stack([np.stack([dxx, dxy, dxz], -1), np.stack([dxy, dyy, dyz], -1),
                       np.stack([dxz, dyz, dzz], -1)], -2)
    evals = np.linalg.eigvalsh(tensor)  # ascending
    md = evals.mean(axis=1)
    floored = np.maximum(evals, 0.0)
    mean = floored.mean(axis=1, keepdims=True)
    norm = np.sqrt((floored * floored).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.sqrt(1.5 * ((floored - mean) ** 2).sum(axis=1)) / norm
    fa = np.clip(np.nan_to_num(fa, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
    return TensorMaps(fa=fa.astype(np.float32), md=md.astype(np.float32), smallest_eigenvalue=evals[:, 0])


def fit_voxels(signal: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, progress: bool | None = None) -> TensorMaps:
    """MRtrix-equivalent fit of [N, V] signals (chunked, with a progress bar over chunks)."""
    from tqdm import tqdm

    design = design_matrix(bvals, bvecs)
    parts = []
    starts = range(0, signal.shape[0], CHUNK_VOXELS)
    for start in tqdm(starts, desc="tensor fit", unit="chunk", disable=None if progress is None else not progress,
                      leave=False):
        parts.append(tensor_metrics(fit_mrtrix(signal[start:start + CHUNK_VOXELS], design)))
    if not parts:
        empty = np.zeros(0, np.float32)
        return TensorMaps(empty, empty, np.zeros(0))
    return TensorMaps(*(np.concatenate([getattr(p, k) for p in parts])
                        for k in ("fa", "md", "smallest_eigenvalue")))
