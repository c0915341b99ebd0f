"""Per-volume head-motion + eddy-current transforms: parameters <-> matrices, b-vector rotation,
framewise displacement, confound columns and ITK export.

Conventions (shared by every function of ``stylefa.preprocess.motion``):

* ``affines[i]`` (4x4, world RAS mm -> world RAS mm) maps a point of the *reference* space (the
  corrected output grid) to where that anatomy appears in volume ``i``. This is the direction ITK
  and nitransforms call "reference/fixed -> moving": resampling volume ``i`` at ``affines[i] @ x``
  brings it into the reference space.
* ``affines[i] = E_i @ R_i``: the head moves first (rigid ``R_i``), then the eddy-current field of
  the scanner's gradients displaces the image along the phase-encoding axis (``E_i``, fixed to the
  scanner frame, hence applied last; the model of FSL eddy, Andersson & Sotiropoulos 2016).
* ``rigid[i] = (rot_x, rot_y, rot_z [rad], trans_x, trans_y, trans_z [mm])``;
  ``R_i(x) = Rz Ry Rx (x - c) + c + t`` with ``c`` the world position of the reference grid's
  centre (rotating about the centre keeps rotations and translations decoupled, as MCFLIRT does).
* ``eddy[i] = (scale, shear_a, shear_b, shift_mm)``: the displacement along the PE voxel axis, in
  mm, is ``scale*s_pe + shear_a*s_a + shear_b*s_b + shift_mm`` where ``s`` are mm coordinates along
  the voxel axes measured from the grid centre and ``a < b`` are the two non-PE axes. ``scale`` and
  the shears are dimensionless (mm per mm), i.e. the linear eddy-current field of eddy's
  ``--flm=linear``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

RIGID_COLUMNS = ("rot_x", "rot_y", "rot_z", "trans_x", "trans_y", "trans_z")
EDDY_COLUMNS = ("eddy_scale", "eddy_shear_a", "eddy_shear_b", "eddy_shift")


@dataclass
class VolumeTransforms:
    """Estimated per-volume transforms of one DWI series (or of a concatenation of series).

    ``affines`` (N,4,4) world->world, reference space -> volume space (see module docstring);
    ``rigid`` (N,6) rad/mm; ``eddy`` (N,4) along ``pe_axis`` (zeros when eddy is off);
    ``reference_affine`` (4,4) voxel->world of the reference grid (needed to express rotations in the
    FSL voxel-axis b-vector frame); ``shape`` the reference grid (X,Y,Z); ``pe_axis`` voxel axis of the
    eddy displacement (-1 when unknown); ``similarity`` (N,) Pearson r between each corrected volume and
    its leave-one-out prediction inside the mask (NaN for the reference volume), a QC number.
    """

    affines: np.ndarray
    rigid: np.ndarray
    eddy: np.ndarray
    reference_affine: np.ndarray
    shape: tuple
    pe_axis: int = -1
    similarity: np.ndarray | None = None

    @property
    def n_volumes(self) -> int:
        return int(self.affines.shape[0])

    @classmethod
    def identity(cls, n: int, affine: np.ndarray, shape, pe_axis: int = -1) -> "VolumeTransforms":
        return cls(np.tile(np.eye(4), (n, 1, 1)), np.zeros((n, 6)), np.zeros((n, 4)),
                   np.asarray(affine, float), tuple(int(s) for s in shape[:3]), pe_axis)

    @classmethod
    def from_parameters(cls, rigid, eddy, affine, shape, pe_axis: int = -1) -> "VolumeTransforms":
        """Build the matrices from parameters (conventions of the module docstring)."""
        rigid = np.asarray(rigid, float).reshape(-1, 6)
        eddy = np.zeros((len(rigid), 4)) if eddy is None else np.asarray(eddy, float).reshape(-1, 4)
        affines = np.stack([compose_affine(r, e, affine, shape, pe_axis) for r, e in zip(rigid, eddy)])
        return cls(affines, rigid, eddy, np.asarray(affine, float), tuple(int(s) for s in shape[:3]), pe_axis)


def rotation_matrix(angles) -> np.ndarray:
    """``Rz @ Ry @ Rx`` for angles (rad) about the world x, y, z axes."""
    ax, ay, az = (float(a) for a in angles)
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def grid_centre(affine, shape) -> tuple[np.ndarray, np.ndarray]:
    """(voxel centre, world centre) of a grid."""
    c_vox = (np.asarray(shape[:3], float) - 1.0) / 2.0
    return c_vox, np.asarray(affine, float)[:3, :3] @ c_vox + np.asarray(affine, float)[:3, 3]


def rigid_matrix(rigid, affine, shape) -> np.ndarray:
    """World 4x4 of ``R(x) = Rz Ry Rx (x - c) + c + t``."""
    _, c = grid_centre(affine, shape)
    rot = rotation_matrix(rigid[:3])
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = c - rot @ c + np.asarray(rigid[3:6], float)
    return out


def eddy_voxel_matrix(eddy, affine, shape, pe_axis: int) -> np.ndarray:
    """Voxel-space 4x4 of the eddy displacement along ``pe_axis`` (identity when ``pe_axis`` < 0)."""
    out = np.eye(4)
    if pe_axis < 0:
        return out
    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    c_vox, _ = grid_centre(affine, shape)
    others = [a for a in range(3) if a != pe_axis]
    coef = np.zeros(3)
    coef[pe_axis], coef[others[0]], coef[others[1]] = eddy[0], eddy[1], eddy[2]
    lin = coef * zooms / zooms[pe_axis]  # voxel -> voxel along PE
    out[pe_axis, :3] += lin
    out[pe_axis, 3] = (eddy[3] - (coef * zooms * c_vox).sum()) / zooms[pe_axis]
    return out


def compose_affine(rigid, eddy, affine, shape, pe_axis: int) -> np.ndarray:
    """World 4x4 reference -> volume: ``A E_vox A^-1 R``."""
    affine = np.asarray(affine, float)
    e_world = affine @ eddy_voxel_matrix(eddy, affine, shape, pe_axis) @ np.linalg.inv(affine)
    return e_world @ rigid_matrix(rigid, affine, shape)


def _voxel_rotation(world_rotation: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """A world rotation expressed in the FSL b-vector frame (voxel axes, x flipped when det>0)."""
    from scipy.linalg import polar

    q, _ = polar(np.asarray(affine, float)[:3, :3])  # voxel axes -> world directions
    flip = np.diag([-1.0, 1.0, 1.0]) if np.linalg.det(affine[:3, :3]) > 0 else np.eye(3)
    q = q @ flip
    return q.T @ world_rotation @ q


def rotate_bvecs(bvecs: np.ndarray, transforms: VolumeTransforms, affine: np.ndarray | None = None) -> np.ndarray:
    """Rotate FSL b-vectors (3,N) by each volume's head rotation (Leemans & Jones 2009).

    The head turned by ``R_i`` (world), so the gradient that was applied along ``g`` in the scanner
    frame probed direction ``R_i^T g`` of the reference-space anatomy. FSL b-vectors live in voxel
    axes (x flipped for a positive-determinant affine), so the world rotation is conjugated by the
    orientation of ``affine`` (default ``transforms.reference_affine``) before dipy's
    ``reorient_bvecs`` applies its inverse. Only the rotation of the rigid part is used; the eddy
    affine does not rotate the diffusion encoding. Zero vectors (b0) stay zero. Returns (3,N).
    """
    from dipy.core.gradients import gradient_table, reorient_bvecs

    bvecs = np.asarray(bvecs, float)
    if bvecs.shape != (3, transforms.n_volumes):
        raise ValueError(f"bvecs must be (3, {transforms.n_volumes}), got {bvecs.shape}")
    affine = transforms.reference_affine if affine is None else np.asarray(affine, float)
    norms = np.linalg.norm(bvecs, axis=0)
    moving = norms > 1e-6
    if not moving.any():
        return bvecs.copy()
    unit = np.where(moving, bvecs / np.where(moving, norms, 1.0), 0.0)
    rots = np.stack([_voxel_rotation(rotation_matrix(r[:3]), affine) for r in transforms.rigid[moving]], axis=-1)
    gtab = gradient_table(np.where(moving, 1000.0, 0.0), bvecs=unit.T, b0_threshold=1.0)
    out = np.zeros_like(bvecs)
    out[:, moving] = reorient_bvecs(gtab, rots).bvecs[moving].T * norms[moving]
    return out


def framewise_displacement(rigid: np.ndarray, radius_mm: float = 50.0) -> np.ndarray:
    """Power et al. 2012 framewise displacement (mm), (N,): sum of absolute backward differences of
    the three translations plus the three rotations as arc lengths on a ``radius_mm`` sphere; the
    first volume is 0."""
    rigid = np.asarray(rigid, float).reshape(-1, 6)
    diff = np.abs(np.diff(rigid, axis=0))
    fd = diff[:, 3:].sum(axis=1) + radius_mm * diff[:, :3].sum(axis=1)
    return np.concatenate([[0.0], fd])


def motion_confounds(transforms: VolumeTransforms) -> dict[str, np.ndarray]:
    """Confound columns with fMRIPrep's names (``trans_*`` mm, ``rot_*`` rad,
    ``framewise_displacement`` mm) plus the eddy parameters, each (N,)."""
    cols = {name: transforms.rigid[:, k].copy() for k, name in enumerate(RIGID_COLUMNS)}
    # fMRIPrep orders translations first
    cols = {k: cols[k] for k in RIGID_COLUMNS[3:] + RIGID_COLUMNS[:3]}
    cols["framewise_displacement"] = framewise_displacement(transforms.rigid)
    for k, name in enumerate(EDDY_COLUMNS):
        cols[name] = transforms.eddy[:, k].copy()
    return cols


def save_transforms(transforms: VolumeTransforms, path: str | os.PathLike) -> None:
    """Write the per-volume affines as one ITK text transform file (one ``AffineTransform_float_3_3``
    per volume, in volume order) through nitransforms, the format of fMRIPrep's
    ``*_from-orig_to-*ref_mode-image_xfm.txt``. ITK semantics match ours (points of the
    reference/fixed space -> the moving volume); nitransforms converts RAS to ITK's LPS. Written
    atomically."""
    import nitransforms as nt

    from stylefa.fileio import atomic_path

    mapping = nt.linear.LinearTransformsMapping(np.asarray(transforms.affines, float))
    with atomic_path(path, suffix=".tfm") as tmp:
        mapping.to_filename(str(tmp), fmt="itk")


def load_transforms(path: str | os.PathLike) -> np.ndarray:
    """Read back the (N,4,4) RAS affines written by :func:`save_transforms` (nitransforms)."""
    import nitransforms as nt

    xfm = nt.linear.load(os.fspath(path), fmt="itk")
    mats = np.asarray(xfm.matrix, float)
    return mats.reshape(-1, 4, 4)


def rigid_parameters(matrix: np.ndarray, affine, shape) -> np.ndarray:
    """Inverse of :func:`rigid_matrix`: (6,) angles (rad; ``Rz Ry Rx`` = scipy's extrinsic 'xyz') and
    the translation of the grid centre (mm)."""
    from scipy.spatial.transform import Rotation

    _, c = grid_centre(affine, shape)
    angles = Rotation.from_matrix(matrix[:3, :3]).as_euler("xyz")
    return np.concatenate([angles, matrix[:3, :3] @ c + matrix[:3, 3] - c])
