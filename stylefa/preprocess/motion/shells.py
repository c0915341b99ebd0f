"""Post-eddy alignment of shells (FSL eddy's PEAS, Andersson & Sotiropoulos 2016).

Leave-one-out registration fixes each diffusion-weighted volume relative to the *others*: a drift
common to all volumes of a shell is invisible to it (each prediction moves along with the volumes it is
made from; measured on synthetic data with known motion: the shell settles at the mean of the true
motions, ~1 degree off). As eddy does, the mean of each shell in the reference space is therefore
registered rigidly to the mean b0 with mutual information (their contrasts differ: CSF is bright at
b=0 and dark at high b), using dipy's ``AffineRegistration`` + ``RigidTransform3D``, and the shell's
volumes are moved by that correction.
"""

from __future__ import annotations

import numpy as np


def shell_labels(bvals: np.ndarray, is_b0: np.ndarray, tolerance: float = 100.0) -> np.ndarray:
    """Integer shell index per volume (-1 for b0): b-values within ``tolerance`` s/mm² share a shell."""
    labels = np.full(len(bvals), -1)
    centres: list[float] = []
    for i in np.argsort(bvals):
        if is_b0[i]:
            continue
        if not centres or bvals[i] - centres[-1] > tolerance:
            centres.append(float(bvals[i]))
        labels[i] = len(centres) - 1
    return labels


def shell_corrections(reference_vols: np.ndarray, affine: np.ndarray, is_b0: np.ndarray,
                      labels: np.ndarray) -> dict[int, np.ndarray]:
    """{shell: 4x4 world matrix C} such that the shell's anatomy at reference point x sits at C x.

    ``reference_vols`` (X,Y,Z,N): every volume already brought into the reference space.
    """
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric
    from dipy.align.transforms import RigidTransform3D

    b0 = reference_vols[..., is_b0].mean(axis=3)
    reg = AffineRegistration(metric=MutualInformationMetric(nbins=32, sampling_proportion=None),
                             level_iters=[200, 100, 50], sigmas=[2.0, 1.0, 0.0], factors=[4, 2, 1], verbosity=0)
    out = {}
    for shell in sorted(set(labels[labels >= 0].tolist())):
        mean_dwi = reference_vols[..., labels == shell].mean(axis=3)
        found = reg.optimize(b0, mean_dwi, RigidTransform3D(), None, static_grid2world=affine,
                             moving_grid2world=affine, )
        out[shell] = np.asarray(found.affine, float)
    return out
