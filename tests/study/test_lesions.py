"""Lesion placement: world-space resampling, the FA model, slice picking, bad input."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from stylefa.data.nifti import make_volume, save_volume
from stylefa.data.slices import SliceGrid, sample_axial_slices
from stylefa.errors import InputError
from stylefa.study.lesions import masks as lesions
from stylefa.study.regions import TissuePriors, regions_from_priors


def _affine(voxel=2.0):
    return np.array([[voxel, 0, 0, -64.0], [0, voxel, 0, -64.0], [0, 0, voxel, -32.0], [0, 0, 0, 1]])


def _plane(z_mm, resolution, fov_mm, center_mm):
    return SliceGrid(levels_mm=(float(z_mm),), resolution=resolution, fov_mm=fov_mm, center_mm=center_mm)


def test_lesion_volume_sampling_against_direct_lookup():
    rng = np.random.default_rng(0)
    flair = rng.random((64, 64, 32)).astype(np.float32)
    mask = flair > 0.7
    affine = _affine(2.0)
    vol = lesions.LesionVolume(name="p", mask=mask, affine=affine, flair=flair)
    # Levels at voxel centres z (k = 10, 11) with 2 mm pixels aligned to the voxel centres.
    grid = SliceGrid(levels_mm=(-32.0 + 2 * 10, -32.0 + 2 * 11), resolution=64, fov_mm=128.0, center_mm=(-1.0, -1.0))
    # Row r has world y = -1 + 63 - 2 r, i.e. voxel j = 63 - r; column c -> voxel i = c.
    np.testing.assert_allclose(vol.flair_on(grid)[1], flair[:, ::-1, 11].T, atol=1e-6)
    np.testing.assert_array_equal(vol.label_on(grid)[0], mask[:, ::-1, 10].T)
    np.testing.assert_allclose(vol.weight_on(grid, mask.astype(np.float32))[1], mask[:, ::-1, 11].T, atol=1e-6)
    # Half-way between two z planes, linear sampling averages them.
    mid = vol.flair_on(_plane(-32.0 + 2 * 10.5, 64, 128.0, (-1.0, -1.0)))[0]
    np.testing.assert_allclose(mid, 0.5 * (flair[:, ::-1, 10].T + flair[:, ::-1, 11].T), atol=1e-6)


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
    outside = _plane(100.0, 16, 32.0, (0.0, 0.0))
    with pytest.raises(InputError, match="outside the lesion mask"):
        loaded.label_on(outside)


def test_pick_lesion_slices():
    load = np.array([0, 50, 10, 300, 25])
    assert lesions.pick_lesion_slices(load, 2) == [3, 1]
    assert lesions.pick_lesion_slices(load, 10, min_pixels=20) == [3, 1, 4]


def test_synthetic_lesions_land_in_the_planes():
    vol = lesions.synthetic_lesion_volume()
    assert vol.voxel_count > 100
    plane = _plane(20.0, 64, 216.0, (0.0, -18.0))
    weight = vol.weight_on(plane, vol.weight(lesions.LesionModel()))
    assert 0 <= weight.min() and weight.max() <= 1


def test_real_patient_mask_on_a_dataset_plane(shared_dir):
    ms = shared_dir / "data" / "ms"
    vol = lesions.load_lesion_volume(ms / "patient07_space-MNI_lesionmask.nii.gz", ms / "patient07_space-MNI_FLAIR.nii.gz")
    assert vol.name == "patient07" and vol.flair is not None
    grid = SliceGrid(levels_mm=tuple(float(z) for z in range(0, 41, 4)), resolution=128, fov_mm=216.0,
                     center_mm=(0.0, -18.0))
    loads = vol.label_on(grid).sum(axis=(1, 2))
    assert max(loads) >= 10  # patient 07 has periventricular lesions in this range
    # 1 mm pixels on the voxel centres: the label is exactly that plane of the mask.
    z = float(np.argmax(loads) * 4)
    plane = _plane(z, 216, 216.0, (0.5, -17.5))
    k = int(round(np.linalg.solve(vol.affine, [0, 0, z, 1])[2]))
    assert vol.label_on(plane).sum() == vol.mask[:, :, k].sum() > 0


def test_regions_from_priors_and_nilearn_offline():
    priors = TissuePriors.from_nilearn()
    plane = _plane(10.0, 64, 216.0, (0.0, -18.0))
    brain = sample_axial_slices(priors.gm + priors.wm, priors.affine, plane)[0] > 0.3
    regions = priors.regions_on(plane, brain)
    assert set(regions) == {"wm", "gm", "cortex", "deep"}
    assert regions["wm"].sum() > 100 and regions["cortex"].sum() > 100 and regions["deep"].sum() > 5
    np.testing.assert_array_equal(regions["cortex"] | regions["deep"], regions["gm"])
    assert not (regions["cortex"] & regions["deep"]).any()
    # Deep GM sits at the image centre, cortex at the rim.
    _, xx = np.meshgrid(plane.row_y_mm(), plane.column_x_mm(), indexing="ij")
    assert np.abs(xx[regions["deep"]]).max() <= 35 and np.abs(xx[regions["cortex"]]).max() > 50
    # Above the box there is no deep GM.
    high = _plane(40.0, 64, 216.0, (0.0, -18.0))
    gm = np.ones((64, 64))
    assert not regions_from_priors(gm, gm * 0, np.ones((64, 64), bool), high)["deep"].any()
