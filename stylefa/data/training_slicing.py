"""How a network's training data were cut into slices, as its snapshot records it.

One geometry for every command that slices FA volumes for a network (``stylefa study`` and
``stylefa project --nifti``): the levels, field of view, centre and mask threshold that
``stylefa prepare`` used for the training data, recorded by ``stylefa train`` in the
snapshot's provenance; networks without that record get the default grid.
"""

from __future__ import annotations

from dataclasses import dataclass

from stylefa.data.slices import SliceGrid
from stylefa.errors import InputError

__all__ = ["DEFAULT_ORIGIN", "TRAINING_ORIGIN", "Slicing", "training_slicing"]


@dataclass(frozen=True)
class Slicing:
    """How FA volumes are cut into slices, and where that geometry came from."""

    grid: SliceGrid
    mask_threshold: float | None  # None: not recorded (a dataset made before masks were described)
    origin: str

    def to_dict(self) -> dict:
        return {"grid": self.grid.to_dict(), "mask_threshold": self.mask_threshold, "from": self.origin}


TRAINING_ORIGIN = "the network's training data (geometry recorded in the snapshot)"
DEFAULT_ORIGIN = "default grid at the network's resolution (the snapshot records no training geometry)"


def training_slicing(provenance, resolution: int, network) -> Slicing:
    """The training data's slicing from a snapshot's provenance, else the default grid.

    ``provenance.extra["dataset"]`` holds the prepared dataset's geometry fields
    (``stylefa.train.loop.training_geometry``); older and imported networks lack it.
    """
    from stylefa.data.prepare import DEFAULT_MASK_THRESHOLD
    from stylefa.readers import check_resolution

    check_resolution(resolution, "the generator's resolution", network)
    extra = getattr(provenance, "extra", None) or {}
    geometry = extra.get("dataset") if isinstance(extra, dict) else None
    if not geometry or "levels_mm" not in geometry:
        return Slicing(SliceGrid(resolution=resolution), DEFAULT_MASK_THRESHOLD, DEFAULT_ORIGIN)
    try:
        recorded = int(geometry.get("resolution", resolution))
        grid = SliceGrid(
            levels_mm=tuple(float(z) for z in geometry["levels_mm"]),
            resolution=recorded,
            fov_mm=float(geometry["fov_mm"]),
            center_mm=tuple(float(v) for v in geometry["center_mm"]),
        )
        mask = geometry.get("mask") or {}
        threshold = float(mask.get("threshold", DEFAULT_MASK_THRESHOLD))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the snapshot's recorded training geometry is malformed ({exc!r})", network) from None
    if recorded != resolution:
        raise InputError(
            f"the snapshot records training slices of {recorded}x{recorded} pixels but the generator makes "
            f"{resolution}x{resolution}", network)
    return Slicing(grid, threshold, TRAINING_ORIGIN)
