"""Slice volumes: written NIfTIs put every slice pixel back where it was sampled.

Oracles: nilearn's and nibabel's resampling (scipy under the hood, driven only by the
NIfTI affines) and world coordinates computed here from the grid's definition.
"""

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to
from nilearn.image import resample_img

from stylefa.data.slices import SliceGrid, sample_axial_slices
from stylefa.data.volumes import SliceSpace
from stylefa.errors import InputError

MNI_2MM = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
SHAPE = (91, 109, 91)
GRID = SliceGrid(levels_mm=(4.0, 8.0, 12.0, 16.0, 20.0), resolution=32, fov_mm=200.0, center_mm=(0.0, -16.0))


def _world(affine, shape):
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _fa_image():
    xyz = _world(MNI_2MM, SHAPE)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    brain = (x / 70) ** 2 + ((y + 18) / 90) ** 2 + ((z - 15) / 60) ** 2 < 1
    fa = np.where(brain, 0.35 + 0.25 * np.cos(x / 9.0) * np.sin(y / 11.0) + 0.002 * z, 0.0)
    return nib.Nifti1Image(fa.astype(np.float32), MNI_2MM)


def _pixel_world(grid, row, col, z):
    """World position of a slice pixel, from the grid's definition (not from SliceSpace)."""
    p = grid.fov_mm / grid.resolution
    return np.array([grid.center_mm[0] - grid.fov_mm / 2 + (col + 0.5) * p,
                     grid.center_mm[1] + grid.fov_mm / 2 - (row + 0.5) * p, z])


def test_input_volume_equals_nilearn_resampling_of_the_source():
    image = _fa_image()
    slices = sample_axial_slices(np.asarray(image.dataobj), image.affine, GRID)
    space = SliceSpace.of(GRID)
    projected = {GRID.levels_mm[k]: slices[k] for k in (0, 2, 4)}
    written = space.nifti(space.to_volume(projected))
    # nilearn's trilinear resampling of the source onto the written grid, from the affines alone.
    oracle = resample_img(image, target_affine=written.affine, target_shape=written.shape,
                          interpolation="linear", force_resample=True,
                          copy_header=True).get_fdata()
    data = written.get_fdata()
    for k in (0, 2, 4):
        plane = space.plane_of(GRID.levels_mm[k])
        np.testing.assert_allclose(data[:, :, plane], oracle[:, :, plane], atol=1e-6)
    # Levels without a slice are empty, not interpolated.
    for k in (1, 3):
        assert np.isnan(data[:, :, space.plane_of(GRID.levels_mm[k])]).all()


def test_volume_resampled_onto_each_slice_plane_gives_the_slice_back(tmp_path):
    rng = np.random.default_rng(0)
    slices = rng.random((GRID.num_slices, 32, 32)).astype(np.float32)
    space = SliceSpace.of(GRID)
    path = tmp_path / "v.nii.gz"
    nib.save(space.nifti(space.to_volume({z: s for z, s in zip(GRID.levels_mm, slices)})), path)
    written = nib.load(path)
    assert int(written.header["sform_code"]) == 4 and int(written.header["qform_code"]) == 4
    p = GRID.fov_mm / GRID.resolution
    for k, z in enumerate(GRID.levels_mm):
        # A 2-D plane addressed [row, column] like the slices: row runs posterior, column to the right.
        top_left = _pixel_world(GRID, 0, 0, z)
        plane_affine = np.array([[0, p, 0, top_left[0]], [-p, 0, 0, top_left[1]], [0, 0, 1, z], [0, 0, 0, 1.0]])
        back = resample_from_to(written, ((32, 32, 1), plane_affine), order=1, mode="nearest").get_fdata()[..., 0]
        np.testing.assert_allclose(back, slices[k], atol=1e-6)
        np.testing.assert_array_equal(space.slice_of(written.get_fdata(), z), slices[k])


def test_marked_voxel_keeps_its_world_position_through_another_grid():
    row, col, level = 9, 21, 3
    image = np.zeros((32, 32), np.float32)
    image[row, col] = 1.0
    space = SliceSpace.of(GRID)
    written = space.nifti(space.to_volume({GRID.levels_mm[level]: image}, fill=0.0))
    expected = _pixel_world(GRID, row, col, GRID.levels_mm[level])
    voxel = np.argwhere(written.get_fdata() == 1.0)
    assert len(voxel) == 1
    np.testing.assert_allclose(nib.affines.apply_affine(written.affine, voxel[0]), expected, atol=1e-9)
    # Onto the MNI 2 mm grid (LAS, other origin and spacing), nearest neighbour: the marked
    # voxels' centroid is the marked pixel's world position.
    mni = resample_from_to(written, (SHAPE, MNI_2MM), order=0).get_fdata()
    hits = np.argwhere(mni == 1.0)
    assert len(hits) > 0
    centroid = nib.affines.apply_affine(MNI_2MM, hits).mean(axis=0)
    np.testing.assert_allclose(centroid, expected, atol=1.0 + 1e-6)


def test_uneven_levels_get_a_finer_grid_and_bad_levels_are_refused():
    space = SliceSpace.of(SliceGrid(levels_mm=(0.0, 4.0, 6.0, 12.0), resolution=16))
    assert space.dz_mm == pytest.approx(2.0) and space.num_planes == 7
    assert [space.plane_of(z) for z in (0.0, 4.0, 6.0, 12.0)] == [0, 2, 3, 6]
    single = SliceSpace.of(SliceGrid(levels_mm=(7.5,), resolution=16, fov_mm=32.0))
    assert single.shape == (16, 16, 1) and single.dz_mm == pytest.approx(2.0)
    with pytest.raises(InputError, match="not a plane"):
        space.plane_of(5.0)
    with pytest.raises(InputError, match="no regular z grid"):
        SliceSpace.of(SliceGrid(levels_mm=(0.0, 1.0, 1.0 + np.pi / 100), resolution=16))
