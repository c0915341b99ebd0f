"""Synthetic NIfTI geometry shared by the study tests: a 2 mm MNI grid and its world coordinates."""

import numpy as np

MNI_2MM = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
SHAPE = (91, 109, 91)


def world():
    """World x, y, z (mm) of every voxel of the MNI 2 mm grid, each of shape SHAPE."""
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    return [MNI_2MM[a, a] * idx + MNI_2MM[a, 3] for a, idx in enumerate((ii, jj, kk))]
