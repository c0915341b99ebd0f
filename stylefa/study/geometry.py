"""Sampling 3-D volumes on a dataset slice's world plane.

A prepared dataset slice is the plane ``z = z_mm`` sampled on the square in-plane grid of
``stylefa.data.slices.SliceGrid`` (row 0 anterior, columns along world x). Any volume in the
same world space (lesion masks, FLAIR, tissue priors) is brought onto that plane through the
inverse of its own affine, so grids of different voxel sizes and orientations line up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stylefa.errors import InputError


@dataclass(frozen=True)
class SlicePlane:
    """The world geometry of one slice: level ``z_mm`` on a square in-plane grid."""

    z_mm: float
    resolution: int
    fov_mm: float
    center_mm: tuple[float, float]

    @property
    def pixel_size_mm(self) -> float:
        return self.fov_mm / self.resolution

    def world_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """World x and y of every pixel centre, each [R, R] (row -> y, column -> x)."""
        offsets = (np.arange(self.resolution) + 0.5 - self.resolution / 2) * self.pixel_size_mm
        x = self.center_mm[0] + offsets
        y = self.center_mm[1] - offsets  # anterior (large y) at the top
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return xx, yy

    @classmethod
    def from_dataset_info(cls, info: dict, z_mm: float) -> "SlicePlane":
        """From a prepared dataset's ``dataset.json`` fields and one slice's ``z_mm``."""
        return cls(
            z_mm=float(z_mm),
            resolution=int(info["resolution"]),
            fov_mm=float(info["fov_mm"]),
            center_mm=(float(info["center_mm"][0]), float(info["center_mm"][1])),
        )

    def to_dict(self) -> dict:
        return {"z_mm": self.z_mm, "resolution": self.resolution, "fov_mm": self.fov_mm, "center_mm": list(self.center_mm)}


def z_extent(shape: tuple[int, ...], affine: np.ndarray) -> tuple[float, float]:
    """World-z range covered by a grid's voxel centres."""
    n = np.asarray(shape[:3], dtype=float) - 1
    corners = np.array([[i, j, k, 1.0] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])])
    z = (np.asarray(affine, dtype=np.float64) @ corners.T)[2]
    return float(z.min()), float(z.max())


def check_plane_inside(shape, affine, plane: SlicePlane, path=None, what: str = "volume") -> None:
    lo, hi = z_extent(shape, affine)
    if not (lo - 1e-3 <= plane.z_mm <= hi + 1e-3):
        raise InputError(
            f"slice at z = {plane.z_mm:g} mm lies outside the {what} (world z {lo:.1f} to {hi:.1f} mm)", path
        )


def sample_plane(data: np.ndarray, affine: np.ndarray, plane: SlicePlane, order: int = 1) -> np.ndarray:
    """``data`` sampled at the plane's pixel centres: float32 [R, R]; outside reads 0.

    ``order`` 0 is nearest neighbour (labels), 1 trilinear (intensities, or a mask whose
    sampled value is then the fraction of lesion at the pixel centre).
    """
    from scipy.ndimage import map_coordinates

    world_to_voxel = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    xx, yy = plane.world_xy()
    world = np.stack([xx, yy, np.full_like(xx, plane.z_mm), np.ones_like(xx)])  # [4, R, R]
    voxel = np.tensordot(world_to_voxel[:3], world, axes=1)  # [3, R, R]
    return map_coordinates(
        np.asarray(data, dtype=np.float32), voxel, order=order, mode="constant", cval=0.0, prefilter=False
    ).astype(np.float32)
