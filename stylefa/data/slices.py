"""Axial slices sampled in world (RAS mm) coordinates.

Every subject is resampled onto the same set of axial planes ``z = level`` (mm) and the
same in-plane pixel grid, so slice ``k`` shows the same anatomical level for every
subject whatever its voxel grid. Sampling is trilinear (``scipy.ndimage.map_coordinates``,
order 1) straight from the voxel array, through the inverse of its affine, so oblique
and non-canonical grids are handled too and no intermediate resampling blurs the data.

Image layout: row 0 is the most anterior row (world y decreases down the image) and
columns follow world x, which in RAS points towards the subject's right; so the
subject's left is on the image's left (the "neurological" convention, as nilearn and
MRIcroGL show it by default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from stylefa.errors import InputError

# Study default: 21 axial levels from the top of the thalamus / frontal horns (z = 0 mm)
# through the bodies of the lateral ventricles to the centrum semiovale (z = 40 mm), 2 mm
# apart, in FSL MNI152 world coordinates.
DEFAULT_Z_RANGE_MM = (0.0, 40.0)
DEFAULT_NUM_SLICES = 21
# The MNI152 brain spans x -90..90 and y -126..90 mm (FSL 1 mm grid); the square field of
# view pads the 180 mm width to the 216 mm length and centres on that box.
DEFAULT_FOV_MM = 216.0
DEFAULT_CENTER_MM = (0.0, -18.0)
DEFAULT_RESOLUTION = 256


def levels_from_range(z_min: float, z_max: float, num: int) -> tuple[float, ...]:
    """``num`` evenly spaced world-z levels from ``z_min`` to ``z_max`` (inclusive)."""
    if num < 1:
        raise InputError(f"number of slices must be >= 1, got {num}")
    if num > 1 and not z_max > z_min:
        raise InputError(f"z range must be increasing, got {z_min:g},{z_max:g}")
    return tuple(float(z) for z in np.linspace(z_min, z_max, num)) if num > 1 else (float(z_min),)


def levels_from_indices(k_min: float, k_max: float, num: int, affine: np.ndarray) -> tuple[float, ...]:
    """World-z levels of voxel planes ``k_min..k_max`` of a canonical (RAS) reference grid."""
    affine = np.asarray(affine, dtype=np.float64)
    ks = np.linspace(k_min, k_max, num) if num > 1 else np.array([k_min], dtype=float)
    # The plane through the grid centre column: for a canonical grid z depends on k only.
    z = affine[2, 2] * ks + affine[2, 3]
    return tuple(float(v) for v in z)


@dataclass(frozen=True)
class SliceGrid:
    """Where slices are sampled: world-z levels and the square in-plane pixel grid."""

    levels_mm: tuple[float, ...] = levels_from_range(*DEFAULT_Z_RANGE_MM, DEFAULT_NUM_SLICES)
    resolution: int = DEFAULT_RESOLUTION
    fov_mm: float = DEFAULT_FOV_MM
    center_mm: tuple[float, float] = DEFAULT_CENTER_MM

    def __post_init__(self):
        from stylefa.readers import check_resolution

        check_resolution(self.resolution)
        if not self.fov_mm > 0:
            raise InputError(f"field of view must be positive, got {self.fov_mm:g} mm")
        if not self.levels_mm:
            raise InputError("no slice levels given")

    @property
    def pixel_size_mm(self) -> float:
        return self.fov_mm / self.resolution

    @property
    def num_slices(self) -> int:
        return len(self.levels_mm)

    def column_x_mm(self) -> np.ndarray:
        """World x of each column's pixel centre (increasing towards the subject's right)."""
        offsets = (np.arange(self.resolution) + 0.5 - self.resolution / 2) * self.pixel_size_mm
        return self.center_mm[0] + offsets

    def row_y_mm(self) -> np.ndarray:
        """World y of each row's pixel centre (decreasing: anterior at the top)."""
        offsets = (np.arange(self.resolution) + 0.5 - self.resolution / 2) * self.pixel_size_mm
        return self.center_mm[1] - offsets

    def to_dict(self) -> dict:
        out = asdict(self)
        out["levels_mm"] = list(self.levels_mm)
        out["center_mm"] = list(self.center_mm)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SliceGrid":
        return cls(
            levels_mm=tuple(float(v) for v in data["levels_mm"]),
            resolution=int(data["resolution"]),
            fov_mm=float(data["fov_mm"]),
            center_mm=tuple(float(v) for v in data["center_mm"]),
        )


def volume_z_extent(data_shape: tuple[int, ...], affine: np.ndarray) -> tuple[float, float]:
    """World-z range spanned by the voxel centres of a grid (over its 8 corners)."""
    n = np.asarray(data_shape[:3], dtype=float) - 1
    corners = np.array([[i, j, k, 1.0] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])])
    z = (np.asarray(affine, dtype=np.float64) @ corners.T)[2]
    return float(z.min()), float(z.max())


TEMPLATE_SPACE_HINT = ("is it in template space? (else register it: `stylefa register`, "
                       "or `stylefa prepare --register`)")


def check_levels_inside(data_shape, affine, levels_mm, path, what: str = "the volume's field of view",
                        hint: str | None = TEMPLATE_SPACE_HINT) -> None:
    """Every level must lie within the volume's z extent, else the slice would be made up."""
    z_lo, z_hi = volume_z_extent(data_shape, affine)
    tolerance = 1e-3
    outside = [z for z in levels_mm if z < z_lo - tolerance or z > z_hi + tolerance]
    if outside:
        raise InputError(
            f"slice level(s) {_fmt_levels(outside)} mm lie outside {what} "
            f"(world z {z_lo:.1f} to {z_hi:.1f} mm)" + (f"; {hint}" if hint else ""),
            path,
        )


def _fmt_levels(levels) -> str:
    levels = list(levels)
    if len(levels) > 4:
        return f"{levels[0]:g}..{levels[-1]:g} ({len(levels)} levels)"
    return ", ".join(f"{z:g}" for z in levels)


def sample_axial_slices(data: np.ndarray, affine: np.ndarray, grid: SliceGrid) -> np.ndarray:
    """Trilinear samples of ``data`` on the grid's planes: float32 ``[num_slices, R, R]``.

    Points outside the volume read as 0 (background FA). The caller checks the levels
    first (``check_levels_inside``) so that zeros never stand in for a missing level.
    """
    from scipy.ndimage import map_coordinates

    world_to_voxel = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    x = grid.column_x_mm()
    y = grid.row_y_mm()
    yy, xx = np.meshgrid(y, x, indexing="ij")  # [R, R]: row -> y, column -> x
    # Voxel coordinates are affine in world z, so compute the plane at z = 0 once and
    # shift it by the z column of the inverse affine for each level.
    base = (
        world_to_voxel[:3, 0, None, None] * xx
        + world_to_voxel[:3, 1, None, None] * yy
        + world_to_voxel[:3, 3, None, None]
    )  # [3, R, R]
    volume = np.asarray(data, dtype=np.float32)
    out = np.empty((grid.num_slices, grid.resolution, grid.resolution), dtype=np.float32)
    for index, z in enumerate(grid.levels_mm):
        coords = base + world_to_voxel[:3, 2, None, None] * z
        out[index] = map_coordinates(volume, coords, order=1, mode="constant", cval=0.0, prefilter=False)
    return out


def threshold_masks(fa_slices: np.ndarray, threshold: float) -> np.ndarray:
    """Brain masks from FA: ``FA > threshold`` with enclosed holes filled, per slice.

    Filling holes matters because CSF in the ventricles has FA near that of background;
    without it the lateral ventricles would fall outside the "brain".
    """
    from scipy.ndimage import binary_fill_holes

    masks = np.empty(fa_slices.shape, dtype=bool)
    for index, fa in enumerate(fa_slices):
        masks[index] = binary_fill_holes(fa > threshold)
    return masks
