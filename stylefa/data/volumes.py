"""Slices back into space: NIfTI volumes on the grid the slices were cut from.

``stylefa.data.slices`` samples every subject on the same axial planes ``z = level`` and
the same square in-plane pixel grid. That set of samples *is* a regular 3-D grid when the
levels are evenly spaced: voxel ``(i, j, k)`` is column ``i``, row ``R - 1 - j`` (rows run
anterior to posterior, voxel ``j`` posterior to anterior) of slice ``k``, and its world
(RAS mm) position is ``affine @ (i, j, k, 1)`` with

    affine = [[p, 0, 0, x_0], [0, p, 0, y_0], [0, 0, dz, z_0], [0, 0, 0, 1]]

where ``p`` is the pixel size (field of view / resolution), ``(x_0, y_0)`` the world
position of the most left-posterior pixel centre, ``z_0`` the lowest level and ``dz`` the
level spacing. Writing slice arrays into such a volume moves no value: a viewer that
resamples the volume onto the template (or the subject's own registered FA) shows each
pixel where it was sampled. Levels with no slice hold NaN (never interpolated); unevenly
spaced levels get the coarsest regular z grid holding all of them (spacing down to 1/16 of
the smallest gap), the levels in between NaN too.

The sform and qform codes are 4 (``NIFTI_XFORM_MNI_152``): the slices are cut in the
template's world space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stylefa.data.slices import SliceGrid
from stylefa.errors import InputError

MNI_XFORM_CODE = 4  # NIFTI_XFORM_MNI_152
_Z_TOLERANCE_MM = 1e-3
_MAX_PLANES = 2048


@dataclass(frozen=True)
class SliceSpace:
    """The regular 3-D grid holding a slice grid's planes: shape ``(R, R, nz)`` and affine."""

    grid: SliceGrid
    z0_mm: float
    dz_mm: float
    num_planes: int

    @classmethod
    def of(cls, grid: SliceGrid) -> "SliceSpace":
        """The grid of ``grid``'s levels; raises ``InputError`` if no regular z grid holds them."""
        levels = np.unique(np.round(np.asarray(grid.levels_mm, dtype=np.float64), 6))
        if levels.size == 1:
            # One plane: its thickness is a convention; the in-plane pixel size keeps voxels cubic.
            return cls(grid, float(levels[0]), grid.pixel_size_mm, 1)
        gap = float(np.min(np.diff(levels)))
        offsets = levels - levels[0]
        for divisor in range(1, 17):
            dz = gap / divisor
            steps = offsets / dz
            misfit = np.abs(steps - np.rint(steps))
            if np.all(misfit * dz < _Z_TOLERANCE_MM) and np.all(misfit < 0.01):
                num = int(np.rint(steps[-1])) + 1
                if num > _MAX_PLANES:
                    break
                return cls(grid, float(levels[0]), dz, num)
        raise InputError(f"slice levels {', '.join(f'{z:g}' for z in levels)} mm lie on no regular z grid "
                         f"of at most {_MAX_PLANES} planes; cannot write them as a volume")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.grid.resolution, self.grid.resolution, self.num_planes)

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> world (RAS mm), float64 [4, 4]."""
        p = self.grid.pixel_size_mm
        out = np.diag([p, p, self.dz_mm, 1.0])
        out[:3, 3] = (self.grid.column_x_mm()[0], self.grid.row_y_mm()[-1], self.z0_mm)
        return out

    def plane_of(self, z_mm: float) -> int:
        """Voxel index k of the plane at world z ``z_mm``; ``InputError`` if it is not one."""
        k = (float(z_mm) - self.z0_mm) / self.dz_mm
        index = int(np.rint(k))
        if abs(k - index) * self.dz_mm > _Z_TOLERANCE_MM or not 0 <= index < self.num_planes:
            raise InputError(f"z = {z_mm:g} mm is not a plane of the slice volume "
                             f"(z0 {self.z0_mm:g} mm, spacing {self.dz_mm:g} mm, {self.num_planes} planes)")
        return index

    def plane_z_mm(self) -> np.ndarray:
        return self.z0_mm + self.dz_mm * np.arange(self.num_planes)

    def to_volume(self, slices: dict[float, np.ndarray], fill: float = np.nan) -> np.ndarray:
        """float32 ``[R, R, nz]`` from ``{z_mm: image [R, R]}`` (images in the slices' row/column
        layout); planes without an image hold ``fill``."""
        volume = np.full(self.shape, fill, dtype=np.float32)
        for z, image in slices.items():
            image = np.asarray(image)
            if image.shape != self.shape[:2]:
                raise InputError(f"slice at z = {z:g} mm is {image.shape}, the grid is {self.shape[:2]}")
            volume[:, :, self.plane_of(z)] = image_to_plane(image)
        return volume

    def slice_of(self, volume: np.ndarray, z_mm: float) -> np.ndarray:
        """The image ``[R, R]`` (slice layout) of ``volume``'s plane at ``z_mm``."""
        return plane_to_image(np.asarray(volume)[:, :, self.plane_of(z_mm)])

    def nifti(self, volume: np.ndarray, dtype=np.float32):
        """A ``nibabel.Nifti1Image`` of ``volume`` stored as ``dtype`` without intensity scaling
        (masks: ``np.uint8``), with this grid's affine (MNI xform codes)."""
        import nibabel as nib

        volume = np.asarray(volume, dtype=dtype)
        if volume.shape != self.shape:
            raise InputError(f"volume is {volume.shape}, the grid is {self.shape}")
        image = nib.Nifti1Image(volume, self.affine)
        image.set_data_dtype(dtype)
        image.header.set_slope_inter(1.0, 0.0)
        image.set_sform(self.affine, code=MNI_XFORM_CODE)
        image.set_qform(self.affine, code=MNI_XFORM_CODE)
        image.header.set_xyzt_units("mm")
        return image


def image_to_plane(image: np.ndarray) -> np.ndarray:
    """Slice layout ``[row, column]`` (row 0 anterior) -> voxel layout ``[i, j]`` (i = x, j = y up)."""
    return np.flipud(np.asarray(image)).T


def plane_to_image(plane: np.ndarray) -> np.ndarray:
    """Inverse of ``image_to_plane``."""
    return np.flipud(np.asarray(plane).T)


def save_nifti(image, path) -> None:
    """Write a ``nibabel`` image atomically (temporary file + rename)."""
    import nibabel as nib

    from stylefa.fileio import atomic_path

    with atomic_path(path) as tmp:
        nib.save(image, tmp)
