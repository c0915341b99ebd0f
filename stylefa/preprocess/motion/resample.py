"""The one resampling of every volume: motion/eddy affine + susceptibility displacement, interpolated once.

For a reference voxel ``v`` the sample position in volume ``i`` is

    u = A^-1 T_i A v + d_i(v) e_pe        (voxels of the acquired grid)

with ``T_i`` the motion/eddy affine (``VolumeTransforms.affines``, reference -> volume) and
``d_i = pe.sign * pe.readout_time * field_hz`` the susceptibility displacement (topup's model, see
``stylefa.preprocess.sdc``), evaluated on the reference grid: the field moves with the head, and the
few-mm difference between ``v`` and its moved position changes a smooth field negligibly (second order;
FSL eddy makes the same approximation between its iterations). The value is multiplied by the
Jacobian of both displacements: ``1 + dd/dx_pe`` (topup) times the eddy scale's ``det`` (the eddy
field stretches the image along PE exactly like the susceptibility field, so intensity is conserved
the same way).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def per_volume_pe(pe, n: int) -> list:
    """``pe`` (one PhaseEncoding, a sequence of N, or None) as a list of N (entries may be None)."""
    if pe is None or not isinstance(pe, Sequence):
        return [pe] * n
    pe = list(pe)
    if len(pe) != n:
        raise ValueError(f"{len(pe)} phase encodings for {n} volumes")
    return pe


def displacement_and_jacobian(field_hz: np.ndarray, pe) -> tuple[np.ndarray, np.ndarray]:
    """(d, 1 + dd/dx_axis): topup displacement in voxels along ``pe.axis`` and its Jacobian,
    (X,Y,Z) float32 each, from ``stylefa.preprocess.sdc`` (one definition of the model)."""
    from stylefa.preprocess.sdc.model import displacement_voxels, pe_jacobian

    return (displacement_voxels(field_hz, pe).astype(np.float32), pe_jacobian(field_hz, pe).astype(np.float32))


class SdcCache:
    """Displacement/Jacobian per distinct phase encoding (so a 100-volume series computes them once)."""

    def __init__(self, field_hz):
        self.field_hz = field_hz
        self._cache: dict = {}

    def get(self, pe):
        if self.field_hz is None or pe is None:
            return None
        key = (int(pe.axis), int(pe.sign), float(pe.readout_time))
        if key not in self._cache:
            self._cache[key] = displacement_and_jacobian(self.field_hz, pe)
        return self._cache[key]


def voxel_map(transform: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reference voxel -> acquired voxel 4x4 for a world reference -> volume transform."""
    affine = np.asarray(affine, float)
    return np.linalg.inv(affine) @ np.asarray(transform, float) @ affine


def resample_once(data: np.ndarray, affine: np.ndarray, transforms=None, field_hz: np.ndarray | None = None,
                  pe=None, order: int = 3, progress: bool | None = None) -> np.ndarray:
    """Correct every volume of ``data`` with ONE interpolation each.

    ``data`` (X,Y,Z) or (X,Y,Z,N) float, on the grid ``affine`` (4x4 voxel->world, RAS mm), which is
    also the reference grid. ``transforms``: a :class:`VolumeTransforms` (None = no motion).
    ``field_hz`` (X,Y,Z) Hz on the same grid (None = no SDC); ``pe``: a PhaseEncoding (``axis``,
    ``sign``, ``readout_time``) or a sequence of N of them (concatenated polarities). ``order``: spline
    order of ``scipy.ndimage.map_coordinates`` (3 = cubic B-spline with prefilter, 1 = trilinear).
    Samples outside the acquired field of view are 0; cubic overshoot below 0 is clipped to 0
    (magnitude data). Returns float32 of ``data``'s shape. Raises ValueError on inconsistent shapes or
    a field without a phase encoding.
    """
    from scipy.ndimage import map_coordinates, spline_filter
    from tqdm.auto import tqdm

    data = np.asarray(data, np.float32)
    squeeze = data.ndim == 3
    vols = data[..., None] if squeeze else data
    if vols.ndim != 4:
        raise ValueError(f"data must be 3-D or 4-D, got shape {data.shape}")
    n = vols.shape[3]
    shape = vols.shape[:3]
    if field_hz is not None:
        if np.shape(field_hz) != shape:
            raise ValueError(f"field_hz shape {np.shape(field_hz)} differs from the data grid {shape}")
        if pe is None:
            raise ValueError("field_hz given without a phase encoding (pe)")
    if transforms is not None and transforms.n_volumes != n:
        raise ValueError(f"{transforms.n_volumes} transforms for {n} volumes")
    pes = per_volume_pe(pe, n)
    sdc = SdcCache(field_hz)
    grid = np.indices(shape, dtype=np.float64).reshape(3, -1)
    out = np.empty(vols.shape, np.float32)
    for i in tqdm(range(n), desc="resample", unit="vol", disable=None if progress is None else not progress,
                  leave=False):
        coords = grid
        scale = 1.0
        if transforms is not None:
            m = voxel_map(transforms.affines[i], affine)
            coords = m[:3, :3] @ grid + m[:3, 3:4]
            scale = abs(float(np.linalg.det(m[:3, :3])))
        dj = sdc.get(pes[i])
        if dj is not None:
            if coords is grid:
                coords = grid.copy()
            coords[pes[i].axis] += dj[0].ravel()
        vol = vols[..., i]
        if order > 1:
            vol = spline_filter(vol, order=order, output=np.float64)
        values = map_coordinates(vol, coords, order=order, prefilter=False, mode="constant", cval=0.0)
        if dj is not None:
            values = values * dj[1].ravel()
        out[..., i] = np.maximum(values * scale, 0.0).reshape(shape)
    return out[..., 0] if squeeze else out
