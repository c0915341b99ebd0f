"""Lesion placement: world-space resampling, the FA model, slice picking, bad input."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from stylefa.data.nifti import make_volume, save_volume
from stylefa.errors import InputError
from stylefa.study import lesions
from stylefa.study.geometry import SlicePlane, sample_plane
from stylefa.study.regions import TissuePriors, regions_from_priors


def _affine(voxel=2.0):
    return np.array([[voxel, 0, 0, -64.0], [0, voxel, 0, -64.0], [0, 0, voxel, -32.0], [0, 0, 0, 1]])


def test_sample_plane_nearest_and_linear_against_direct_lookup():
    rng = np.random.default_rng(0)
    data = rng.random((64, 64, 32)).astype(np.float32)
    affine = _affine(2.0)
    # Plane at a voxel centre z with 2 mm pixels aligned to the voxel centres.
    plane = SlicePlane(z_mm=-32.0 + 2 * 10, resolution=64, fov_mm=128.0, center_mm=(-1.0, -1.0))
    got = sample_plane(data, affine, plane, order=0)
    # Row r has world y = -1 + 63 - 2 r, i.e. voxel j = 63 - r; column c -> voxel i = c.
    expected = data[:, ::-1, 10].T
    np.testing.assert_allclose(got, expected)
    # Half-way between two z planes, linear sampling averages them.
    plane_mid = SlicePlane(z_mm=-32.0 + 2 * 10.5, resolution=64, fov_mm=128.0, center_mm=(-1.0, -1.0))
    mid = sample_plane(data, affine, plane_mid, order=1)
    np.testing.assert_allclose(mid, 0.5 * (data[:, ::-1, 10].T + data[:, ::-1, 11].T), atol=1e-6)


def test_lesion_model_closed_form():
    fa = np.full((5, 5), 0.6, np.float32)
    w = np.zeros((5, 5))
    w[2, 2] = 1.0
    w[2, 3] = 0.5
    out = lesions.apply_lesion(fa, w, 0.4)
    assert out[2, 2] == pytest.approx(0.6 * 0.6)
    assert out[2, 3] == pytest.approx(0.6 * 0.8)
    assert out[0, 0] == pytest.approx(0.6)
    with pytest.raises(InputError):
        lesions.apply_lesion(fa, np.zeros((4, 4)), 0.4)
    with pytest.raises(InputError):
        lesions.LesionModel(reduction=1.5)


def test_soft_weight_is_scipy_gaussian_clipped():
    mask = np.zeros((20, 20, 20), bool)
    mask[5:12, 6:14, 8:11] = True
    np.testing.assert_allclose(
        lesions.soft_weight(mask, (1.0, 1.0, 0.5)),
        np.clip(gaussian_filter(mask.astype(np.float32), (1.0, 1.0, 0.5), mode="constant"), 0, 1),
        atol=1e-6,
    )
    np.testing.assert_array_equal(lesions.soft_weight(mask, 0), mask.astype(np.float32))


def test_load_lesion_volume_errors(tmp_path):
    affine = _affine(2.0)
    empty = tmp_path / "empty_mask.nii.gz"
    save_volume(make_volume(np.zeros((8, 8, 8)), affine), empty)
    with pytest.raises(InputError, match="empty"):
        lesions.load_lesion_volume(empty)
    mask = np.zeros((8, 8, 8))
    mask[3:5, 3:5, 3:5] = 1
    good = tmp_path / "p01_mask.nii.gz"
    save_volume(make_volume(mask, affine), good)
    flair_bad = tmp_path / "flair.nii.gz"
    save_volume(make_volume(np.ones((8, 8, 9)), affine), flair_bad)
    with pytest.raises(InputError, match="FLAIR grid"):
        lesions.load_lesion_volume(good, flair_bad)
    loaded = lesions.load_lesion_volume(good)
    assert loaded.voxel_count == 8 and loaded.name == "p01"
    outside = SlicePlane(z_mm=100.0, resolution=16, fov_mm=32.0, center_mm=(0.0, 0.0))
    with pytest.raises(InputError, match="outside"):
        loaded.label_on(outside)


def test_pick_lesion_slices():
    load = np.array([0, 50, 10, 300, 25])
    assert lesions.pick_lesion_slices(load, 2) == [3, 1]
    assert lesions.pick_lesion_slices(load, 10, min_pixels=20) == [3, 1, 4]
    labels = np.zeros((2, 4, 4), bool)
    labels[0, :2] = True
    brains = np.ones((2, 4, 4), bool)
    brains[0, 0] = False
    np.testing.assert_array_equal(lesions.lesion_load(labels, brains), [4, 0])


def test_synthetic_lesions_land_in_the_planes():
    vol = lesions.synthetic_lesion_volume()
    assert vol.voxel_count > 100
    plane = SlicePlane(z_mm=20.0, resolution=64, fov_mm=216.0, center_mm=(0.0, -18.0))
    weight = vol.weight_on(plane, vol.weight(lesions.LesionModel()))
    assert 0 <= weight.min() and weight.max() <= 1


def test_real_patient_mask_on_a_dataset_plane(shared_dir):
    ms = shared_dir / "data" / "ms"
    vol = lesions.load_lesion_volume(ms / "patient07_space-MNI_lesionmask.nii.gz", ms / "patient07_space-MNI_FLAIR.nii.gz")
    assert vol.name == "patient07" and vol.flair is not None
    loads = []
    for z in range(0, 41, 4):
        plane = SlicePlane(z_mm=float(z), resolution=128, fov_mm=216.0, center_mm=(0.0, -18.0))
        loads.append(vol.label_on(plane).sum())
    assert max(loads) >= 10  # patient 07 has periventricular lesions in this range
    # 1 mm pixels on the voxel centres: the label is exactly that plane of the mask.
    z = float(np.argmax(loads) * 4)
    plane = SlicePlane(z_mm=z, resolution=216, fov_mm=216.0, center_mm=(0.5, -17.5))
    k = int(round(np.linalg.solve(vol.affine, [0, 0, z, 1])[2]))
    assert vol.label_on(plane).sum() == vol.mask[:, :, k].sum() > 0


def test_regions_from_priors_and_nilearn_offline():
    priors = TissuePriors.from_nilearn()
    plane = SlicePlane(z_mm=10.0, resolution=64, fov_mm=216.0, center_mm=(0.0, -18.0))
    brain = sample_plane(priors.gm + priors.wm, priors.affine, plane) > 0.3
    regions = priors.regions_on(plane, brain)
    assert set(regions) == {"wm", "gm", "cortex", "deep"}
    assert regions["wm"].sum() > 100 and regions["cortex"].sum() > 100 and regions["deep"].sum() > 5
    np.testing.assert_array_equal(regions["cortex"] | regions["deep"], regions["gm"])
    assert not (regions["cortex"] & regions["deep"]).any()
    # Deep GM sits at the image centre, cortex at the rim.
    xx, yy = plane.world_xy()
    assert np.abs(xx[regions["deep"]]).max() <= 35 and np.abs(xx[regions["cortex"]]).max() > 50
    # Above the box there is no deep GM.
    high = SlicePlane(z_mm=40.0, resolution=64, fov_mm=216.0, center_mm=(0.0, -18.0))
    gm = np.ones((64, 64))
    assert not regions_from_priors(gm, gm * 0, np.ones((64, 64), bool), high)["deep"].any()
