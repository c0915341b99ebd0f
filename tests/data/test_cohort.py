"""The simulated cohort: reproducibility, diffeomorphic warps, value range, realism checks."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy.linalg import expm
from scipy.ndimage import binary_erosion

from stylefa.data.cohort import (
    CohortConfig,
    integrate_velocity,
    jacobian_determinant,
    load_template_for_cohort,
    make_cohort,
    resample_to_voxel_size,
    simulate_subject,
)


@pytest.fixture(scope="module")
def template_path(shared_dir):
    return shared_dir / "data" / "fa" / "mni_fa_template_1p25mm.nii.gz"


@pytest.fixture(scope="module")
def config(template_path):
    # 5 mm keeps the test fast; the mechanics do not depend on the grid.
    return CohortConfig(num_subjects=3, seed=7, template=str(template_path), voxel_size_mm=5.0)


def test_scaling_and_squaring_matches_the_matrix_exponential():
    """For a linear velocity v(x) = A x, exp(v) is x -> expm(A) x (closed form)."""
    shape = (24, 24, 24)
    a = np.array([[0.02, 0.03, 0.0], [-0.03, 0.01, 0.01], [0.0, -0.01, -0.02]])
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) - 11.5 for n in shape], indexing="ij"))
    velocity = np.einsum("ij,j...->i...", a, grid).astype(np.float32)
    displacement = integrate_velocity(velocity, steps=8)
    expected = np.einsum("ij,j...->i...", expm(a) - np.eye(3), grid)
    interior = (slice(None),) + (slice(6, 18),) * 3  # away from the clamped border
    np.testing.assert_allclose(displacement[interior], expected[interior], atol=5e-3)


def test_jacobian_determinant_of_an_affine_displacement():
    b = np.array([[0.1, 0.2, 0.0], [0.0, -0.1, 0.05], [0.02, 0.0, 0.3]])
    grid = np.stack(np.meshgrid(*[np.arange(8, dtype=float)] * 3, indexing="ij"))
    displacement = np.einsum("ij,j...->i...", b, grid)
    np.testing.assert_allclose(jacobian_determinant(displacement), np.linalg.det(np.eye(3) + b), rtol=1e-10)


def test_resampling_keeps_world_positions(template_path):
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (50.0, -40.0, -30.0)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in (51, 41, 31)], indexing="ij"), -1).astype(float)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    ramp = (0.01 * world[..., 0] + 0.02 * world[..., 1] - 0.005 * world[..., 2] + 2).astype(np.float32)
    out, new_affine = resample_to_voxel_size(ramp, affine, 5.0)
    new_world = np.stack(np.meshgrid(*[np.arange(n) for n in out.shape], indexing="ij"), -1) @ new_affine[:3, :3].T
    new_world = new_world + new_affine[:3, 3]
    expected = 0.01 * new_world[..., 0] + 0.02 * new_world[..., 1] - 0.005 * new_world[..., 2] + 2
    inner = (slice(2, -2),) * 3  # the anti-aliasing blur is exact for a ramp except near the edges
    np.testing.assert_allclose(out[inner], expected[inner], atol=2e-5)
    assert np.allclose(np.abs(np.diag(new_affine)[:3]), 5.0)


def test_same_seed_gives_identical_files(config, tmp_path):
    first = make_cohort(tmp_path / "a", config)
    second = make_cohort(tmp_path / "b", config)
    assert [p.name for p in first] == ["sub-sim001_space-MNI_FA.nii.gz", "sub-sim002_space-MNI_FA.nii.gz",
                                        "sub-sim003_space-MNI_FA.nii.gz"]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
    other = make_cohort(tmp_path / "c", CohortConfig(**{**config.to_dict(), "seed": 8}))
    assert other[0].read_bytes() != first[0].read_bytes()
    meta = json.loads((tmp_path / "a" / "cohort.json").read_text())
    assert meta["simulated"] is True and "SIMULATED" in meta["statement"] and meta["config"]["seed"] == 7
    # Subject i does not depend on the cohort size.
    small = make_cohort(tmp_path / "d", CohortConfig(**{**config.to_dict(), "num_subjects": 1}))
    assert small[0].read_bytes() == first[0].read_bytes()


def test_subjects_are_plausible_and_different(template_path, tmp_path):
    # 2.5 mm: the grid the noise level was calibrated on (at 5 mm the blurred template's
    # low FA sits under the noise floor everywhere and the mean is no longer comparable).
    config = CohortConfig(num_subjects=2, seed=3, template=str(template_path), voxel_size_mm=2.5)
    data, affine, _ = load_template_for_cohort(config)
    paths = make_cohort(tmp_path / "cohort", config)
    volumes = [nib.load(p) for p in paths]
    assert all(np.allclose(v.affine, affine) for v in volumes)
    arrays = [np.asarray(v.dataobj, dtype=np.float32) for v in volumes]
    template_mean = data[binary_erosion(data > 0, iterations=2)].mean()
    for fa in arrays:
        assert fa.shape == data.shape and fa.min() >= 0.0 and fa.max() <= 1.0
        brain = fa > 0
        assert abs(fa[binary_erosion(brain, iterations=2)].mean() - template_mean) < 0.1 * template_mean
        assert 0.8 < brain.sum() / (data > 0).sum() < 1.25  # head size varies by ~5 % per axis
    assert np.abs(arrays[0] - arrays[1]).mean() > 0.01


def test_deformations_are_invertible(config):
    data, affine, _ = load_template_for_cohort(config)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    identity = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"))
    for index in range(3):
        subject = simulate_subject(data, zooms, config, index)
        det = jacobian_determinant(subject.sampling_map - identity)
        assert det.min() > 0.0
        assert 0.85 < np.median(det) * subject.head_scale**3 < 1.15  # volume change is the head scaling
    strong = CohortConfig(**{**config.to_dict(), "warp_max_mm": 12.0, "warp_smoothness_mm": 12.0})
    subject = simulate_subject(data, zooms, strong, 0)
    assert jacobian_determinant(subject.sampling_map - identity).min() > 0.0
