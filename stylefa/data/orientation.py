"""Starting orientations for rigid registration that survive gross misorientation.

Gradient-based rigid optimisation only finds the alignment from a start within a few tens
of degrees (ANTsX/ANTsPy#250, dipy/dipy#2490): a subject lying on their side, a sagittal
acquisition with a wrong header or a head stored front-to-back lands in a wrong local
optimum. So before the local search, ``best_orientation`` tries every start that a gross
error can produce and keeps the most similar one:

- the 24 axis-aligned orientations (the proper rotations of the cube: signed permutation
  matrices with determinant +1), each about the template brain's centre;
- the brain's principal axes: the rotations that carry the template brain's principal axes
  (eigenvectors of its FA-weighted second moments) onto the moving brain's, for the 4
  sign choices that are proper rotations.

Each start places the moving brain's centre of mass on the template's, is scored by
Mattes mutual information on coarse (10 mm) copies of both images, and the best
``keep`` are refined by a short rigid optimisation at that scale; the best refined one
wins. Cost: ~30 metric evaluations and a few short optimisations on grids of a few
thousand voxels (well under a second).
"""

from __future__ import annotations

import itertools

import numpy as np

from stylefa.data.nifti import Volume


def cube_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that map coordinate axes onto coordinate axes (3x3)."""
    rotations = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            for row, (col, sign) in enumerate(zip(perm, signs)):
                matrix[row, col] = sign
            if np.linalg.det(matrix) > 0:
                rotations.append(matrix)
    return rotations


def centre_and_axes(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """World centre of mass (mm) and principal axes (3x3, columns, largest spread first)
    of the positive voxels, weighted by their values."""
    weights = np.clip(np.asarray(volume.data, dtype=np.float64), 0.0, None)
    index = np.nonzero(weights)
    w = weights[index]
    voxels = np.vstack([np.asarray(index, dtype=np.float64), np.ones(len(w))])
    world = (volume.affine @ voxels)[:3]
    centre = world @ w / w.sum()
    offset = world - centre[:, None]
    moments = (offset * w) @ offset.T / w.sum()
    values, vectors = np.linalg.eigh(moments)
    return centre, vectors[:, np.argsort(values)[::-1]]


def principal_axes_rotations(template_axes: np.ndarray, moving_axes: np.ndarray) -> list[np.ndarray]:
    """Rotations R (template direction -> moving direction) with R @ template_axes[:, i] =
    +-moving_axes[:, i], for the sign choices that keep R proper (det +1)."""
    rotations = []
    for signs in itertools.product((1.0, -1.0), repeat=3):
        matrix = moving_axes @ np.diag(signs) @ template_axes.T
        if np.linalg.det(matrix) > 0:
            rotations.append(matrix)
    return rotations


def about(rotation: np.ndarray, template_centre: np.ndarray, moving_centre: np.ndarray) -> np.ndarray:
    """4x4 "pull" matrix (template world -> moving world) that rotates by ``rotation`` about the
    template centre and puts it on the moving centre."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = moving_centre - rotation @ template_centre
    return matrix


def candidate_starts(template: Volume, moving: Volume) -> list[tuple[str, np.ndarray]]:
    """(label, 4x4 pull matrix) for every axis-aligned orientation and principal-axes match."""
    t_centre, t_axes = centre_and_axes(template)
    m_centre, m_axes = centre_and_axes(moving)
    starts = [(f"axis-aligned {i}", about(r, t_centre, m_centre)) for i, r in enumerate(cube_rotations())]
    starts += [(f"principal axes {i}", about(r, t_centre, m_centre))
               for i, r in enumerate(principal_axes_rotations(t_axes, m_axes))]
    return starts


def best_orientation(template: Volume, moving: Volume, nbins: int, keep: int, refine_iters: int) -> tuple[np.ndarray, dict]:
    """The most similar start (4x4 pull matrix) and a record of the search.

    ``template`` and ``moving`` are the coarse copies the search runs on. Score: dipy's
    Mattes mutual information (negated: lower is better); the ``keep`` best starts are
    refined for ``refine_iters`` rigid iterations and compared again.
    """
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric
    from dipy.align.transforms import RigidTransform3D

    static_data = np.asarray(template.data, dtype=np.float64)
    moving_data = np.asarray(moving.data, dtype=np.float64)
    scored = []
    for label, start in candidate_starts(template, moving):
        metric = MutualInformationMetric(nbins=nbins, sampling_proportion=None)
        metric.setup(RigidTransform3D(), static_data, moving_data, static_grid2world=template.affine,
                     moving_grid2world=moving.affine, starting_affine=start)
        scored.append((float(metric.distance(np.zeros(6))), label, start))
    scored.sort(key=lambda item: item[0])
    refine = AffineRegistration(metric=MutualInformationMetric(nbins=nbins, sampling_proportion=None),
                                level_iters=[refine_iters], sigmas=[0.0], factors=[1], verbosity=0)
    best = (np.inf, None, None)
    for _, label, start in scored[:keep]:
        mapping, _, value = refine.optimize(static_data, moving_data, RigidTransform3D(), None,
                                            static_grid2world=template.affine, moving_grid2world=moving.affine,
                                            starting_affine=start, ret_metric=True)
        if value < best[0]:
            best = (float(value), label, mapping.affine)
    record = {"candidates": len(scored), "chosen": best[1], "mutual_information": -best[0]}
    return best[2], record
