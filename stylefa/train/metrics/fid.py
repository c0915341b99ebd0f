"""Fréchet Inception Distance from feature means and covariances (Heusel et al. 2017)."""

from __future__ import annotations

import numpy as np


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S2 S1)^(1/2)), as the reference computes it.

    ``scipy.linalg.sqrtm`` of the (non-symmetric) product; its real part is kept because
    rounding can leave tiny imaginary components.
    """
    import scipy.linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError("mean/covariance shapes do not match")
    mean_term = np.square(mu2 - mu1).sum()
    root = scipy.linalg.sqrtm(sigma2 @ sigma1)
    return float(np.real(mean_term + np.trace(sigma2 + sigma1 - 2 * root)))
