"""stylefa.preprocess.motion against independent oracles: closed forms (b-vector rotation, shifts,
framewise displacement), scipy.ndimage.affine_transform (the one resampling), dipy's TensorModel (the
principal eigenvector after correction), nitransforms and the ITK text format (transform files)."""

from __future__ import annotations

import numpy as np
import pytest

from stylefa.preprocess.motion import (
    VolumeTransforms,
    framewise_displacement,
    load_transforms,
    motion_confounds,
    resample_once,
    rotate_bvecs,
    save_transforms,
)
from stylefa.preprocess.motion.transforms import compose_affine, rotation_matrix


class PE:
    """Stand-in for sdc.PhaseEncoding (same three attributes)."""

    def __init__(self, axis, sign, readout_time):
        self.axis, self.sign, self.readout_time = axis, sign, readout_time


LAS = np.array([[-2.0, 0, 0, 30], [0, 2.0, 0, -40], [0, 0, 2.0, -20], [0, 0, 0, 1]])
RAS = np.array([[2.0, 0, 0, -30], [0, 2.0, 0, -40], [0, 0, 2.0, -20], [0, 0, 0, 1]])


def _rot_z90(n, affine, shape=(16, 16, 16)):
    rigid = np.zeros((n, 6))
    rigid[:, 2] = np.pi / 2
    return VolumeTransforms.from_parameters(rigid, None, affine, shape)


@pytest.mark.parametrize("affine", [LAS, RAS], ids=["LAS-det<0", "RAS-det>0"])
def test_rotate_bvecs_closed_form_90_degrees_about_z(affine):
    # head turned +90 deg about world z: the gradient applied along world g probed R^T g of the
    # anatomy. FSL frame = voxel axes, x flipped when det(affine) > 0.
    bvecs = np.array([[0, 1, 0, 0, 0.6], [0, 0, 1, 0, 0.8], [0, 0, 0, 1, 0]], float)
    out = rotate_bvecs(bvecs, _rot_z90(5, affine))
    to_world = np.sign(np.diag(affine)[:3]) * (np.array([-1, 1, 1]) if np.linalg.det(affine) > 0 else 1)
    world = bvecs * to_world[:, None]
    expected_world = np.stack([world[1], -world[0], world[2]])  # Rz(90)^T (x,y,z) = (y,-x,z)
    expected = expected_world * to_world[:, None]
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert np.all(out[:, 0] == 0)  # b0 stays zero


@pytest.mark.parametrize("affine", [LAS, RAS], ids=["LAS-det<0", "RAS-det>0"])
def test_rotated_head_gives_unrotated_tensor_after_correction(affine):
    """dipy's TensorModel as the oracle: a fibre along world x in a head turned 90 deg about z is seen
    along world y; with the rotated b-vectors its principal eigenvector is along x again."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    rng = np.random.default_rng(1)
    g = rng.normal(size=(3, 30))
    g /= np.linalg.norm(g, axis=0)
    bvecs_fsl = np.concatenate([np.zeros((3, 1)), g], axis=1)
    bvals = np.r_[0, np.full(30, 1000.0)]
    to_world = np.sign(np.diag(affine)[:3]) * (np.array([-1, 1, 1]) if np.linalg.det(affine) > 0 else 1)
    world_g = bvecs_fsl * to_world[:, None]
    d_true = np.diag([1.7e-3, 0.3e-3, 0.3e-3])
    rz = rotation_matrix([0, 0, np.pi / 2])
    d_seen = rz @ d_true @ rz.T  # what the scanner measured
    signal = 1000 * np.exp(-bvals * np.einsum("in,ij,jn->n", world_g, d_seen, world_g))
    data = np.broadcast_to(signal, (16, 16, 16, 31)).astype(np.float32).copy()
    transforms = _rot_z90(31, affine)
    corrected = resample_once(data, affine, transforms, order=1, progress=False)
    centre = corrected[6:10, 6:10, 6:10]

    def v1_world(bv):
        gtab = gradient_table(bvals, bvecs=bv.T, b0_threshold=1)
        v1 = TensorModel(gtab).fit(centre).evecs[..., 0].reshape(-1, 3)
        return v1 * to_world  # FSL voxel frame -> world directions (axis-aligned affines)

    assert np.abs(v1_world(rotate_bvecs(bvecs_fsl, transforms))[:, 0]).min() > 0.999  # along x
    assert np.abs(v1_world(bvecs_fsl)[:, 1]).min() > 0.999  # not rotated: still along y


def test_resample_once_matches_scipy_affine_transform():
    rng = np.random.default_rng(0)
    from scipy.ndimage import affine_transform, gaussian_filter

    shape = (20, 22, 18)
    data = np.stack([gaussian_filter(rng.random(shape), 2) for _ in range(3)], -1).astype(np.float32) + 1
    rigid = np.array([[0, 0, 0, 0, 0, 0], [0.05, -0.03, 0.08, 1.5, -2.0, 0.7], [-0.04, 0.02, 0.0, -1, 0.5, 2]])
    eddy = np.array([[0, 0, 0, 0], [0.02, -0.01, 0.015, 0], [-0.03, 0.02, 0.0, 0]])
    tr = VolumeTransforms.from_parameters(rigid, eddy, LAS, shape, pe_axis=1)
    ours = resample_once(data, LAS, tr, order=3, progress=False)
    for i in range(3):
        m = np.linalg.inv(LAS) @ tr.affines[i] @ LAS
        ref = affine_transform(data[..., i].astype(np.float64), m[:3, :3], m[:3, 3], order=3, mode="constant")
        ref = np.maximum(ref * abs(np.linalg.det(m[:3, :3])), 0)
        inner = (slice(3, -3),) * 3
        np.testing.assert_allclose(ours[..., i][inner], ref[inner], rtol=1e-4, atol=1e-4)
    # the eddy scale's Jacobian: 1 + scale
    assert abs(abs(np.linalg.det(tr.affines[1][:3, :3])) - 1.02) < 1e-12


def test_eddy_displacement_closed_form():
    shape = (21, 31, 11)
    eddy = np.array([0.01, 0.02, -0.03, 0.8])  # scale, shear along axis 0, shear along axis 2, shift
    t = compose_affine(np.zeros(6), eddy, LAS, shape, pe_axis=1)
    vox = np.array([[3.0, 7.0, 2.0], [15.0, 25.0, 9.0]])
    centre = (np.array(shape) - 1) / 2
    s = (vox - centre) * 2.0  # mm along voxel axes
    disp_mm = eddy[0] * s[:, 1] + eddy[1] * s[:, 0] + eddy[2] * s[:, 2] + eddy[3]
    world = vox @ LAS[:3, :3].T + LAS[:3, 3]
    moved = world @ t[:3, :3].T + t[:3, 3]
    expected = world.copy()
    expected[:, 1] += disp_mm  # voxel axis 1 is world +y for this affine
    np.testing.assert_allclose(moved, expected, atol=1e-10)


def test_sdc_and_motion_combine_into_one_shift():
    """A uniform field and a translation along PE add up to one integer shift (closed form)."""
    shape = (12, 24, 10)
    rng = np.random.default_rng(3)
    data = rng.random(shape + (2,)).astype(np.float32)
    pe = PE(axis=1, sign=-1, readout_time=0.05)
    field = np.full(shape, -40.0, np.float32)  # d = -1 * 0.05 * -40 = +2 voxels along j
    rigid = np.zeros((2, 6))
    rigid[1, 4] = 2 * 2.0  # +4 mm along world y = +2 voxels along j
    tr = VolumeTransforms.from_parameters(rigid, None, LAS, shape)
    out = resample_once(data, LAS, tr, field_hz=field, pe=[pe, pe], order=3, progress=False)
    np.testing.assert_allclose(out[:, :-2, :, 0], data[:, 2:, :, 0], atol=1e-5)
    np.testing.assert_allclose(out[:, :-4, :, 1], data[:, 4:, :, 1], atol=1e-5)
    assert np.all(out[:, -2:, :, 0] == 0)  # beyond the field of view
    with pytest.raises(ValueError, match="phase encoding"):
        resample_once(data, LAS, tr, field_hz=field)


def test_resample_once_identity_is_exact():
    data = np.random.default_rng(0).random((9, 8, 7, 2)).astype(np.float32)
    for order in (1, 3):
        np.testing.assert_allclose(resample_once(data, RAS, None, order=order, progress=False), data, atol=1e-5)


def test_framewise_displacement_closed_form():
    rigid = np.array([[0, 0, 0, 0, 0, 0], [0.01, 0, -0.02, 1, 0, 0], [0.01, 0, -0.02, 1, -0.5, 0.25]])
    fd = framewise_displacement(rigid)
    np.testing.assert_allclose(fd, [0.0, 1 + 50 * 0.03, 0.75])
    cols = motion_confounds(VolumeTransforms.from_parameters(rigid, None, RAS, (4, 4, 4)))
    assert list(cols)[:7] == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "framewise_displacement"]
    np.testing.assert_allclose(cols["trans_y"], [0, 0, -0.5])


def test_save_transforms_itk_roundtrip_and_lps(tmp_path):
    pytest.importorskip("nitransforms")
    rigid = np.array([[0, 0, 0, 1.0, 2.0, 3.0], [0.1, -0.2, 0.05, -1, 0.5, 0]])
    eddy = np.array([[0, 0, 0, 0], [0.01, 0.02, -0.01, 0]])
    tr = VolumeTransforms.from_parameters(rigid, eddy, LAS, (30, 30, 20), pe_axis=1)
    path = tmp_path / "sub-01_from-orig_to-dwiref_mode-image_xfm.txt"
    save_transforms(tr, path)
    np.testing.assert_allclose(load_transforms(path), tr.affines, atol=2e-5)  # ITK text keeps ~7 digits
    # independent reading of the ITK text: the first transform is a pure translation (1,2,3) RAS,
    # i.e. (-1,-2,3) in ITK's LPS
    text = path.read_text()
    assert text.count("Transform: AffineTransform_") == 2  # nitransforms writes float, 6 digits
    first = [line for line in text.splitlines() if line.startswith("Parameters:")][0]
    params = np.array(first.split(":")[1].split(), float)
    np.testing.assert_allclose(params[:9], np.eye(3).ravel(), atol=1e-9)
    np.testing.assert_allclose(params[9:], [-1, -2, 3], atol=1e-9)
    assert not list(tmp_path.glob(".*tmp*"))


def test_sdc_only_matches_sdc_unwarp():
    """With no motion, the one resampling is L-sdc's unwarp (1-D B-spline along PE, its own code)."""
    from scipy.ndimage import gaussian_filter

    from stylefa.preprocess.sdc import PhaseEncoding, unwarp

    rng = np.random.default_rng(5)
    shape = (14, 30, 12)
    data = gaussian_filter(rng.random(shape), 1.5).astype(np.float32) + 1
    field = (80 * gaussian_filter(rng.normal(size=shape), 4)).astype(np.float32)
    pe = PhaseEncoding.from_bids("j-", 0.05)
    ours = resample_once(data, LAS, None, field_hz=field, pe=pe, order=3, progress=False)
    theirs = unwarp(data, field, pe, jacobian=True, order=3)
    d = np.abs(-0.05 * field)
    inner = np.zeros(shape, bool)
    inner[:, 4:-4] = True
    inner &= d < 3  # away from the ends of the PE axis, where edge handling differs (0 vs clamp)
    np.testing.assert_allclose(ours[inner], theirs[inner], rtol=1e-3, atol=1e-3)
