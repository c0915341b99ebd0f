"""The slices a study works on: a prepared dataset split, or FA NIfTI files sliced here.

Both give, per slice, its FA in [0, 1], brain mask, world plane (for lesions and tissue
regions) and class label (for conditional generators).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.errors import InputError
from stylefa.study.geometry import SlicePlane


@dataclass(frozen=True)
class SliceInfo:
    key: str  # unique, file-name safe
    subject: str
    level: int
    z_mm: float
    plane: SlicePlane
    index: int  # position in the source


@dataclass(frozen=True)
class SliceData:
    info: SliceInfo
    fa: np.ndarray  # float32 [R, R] in [0, 1]
    brain: np.ndarray  # bool [R, R]
    label: np.ndarray | None  # one-hot float32 or None


class DatasetSource:
    """A split of a folder made by ``stylefa prepare``."""

    def __init__(self, path: str | os.PathLike, split: str):
        from stylefa.data.dataset import FADataset

        self.dataset = FADataset(path, split)
        self.description = f"dataset {Path(path)} (split {split})"
        info = self.dataset.info
        self.items = [
            SliceInfo(
                key=_safe(f"{row['key']}_L{int(row['level']):02d}"),
                subject=str(row["subject"]),
                level=int(row["level"]),
                z_mm=float(row["z_mm"]),
                plane=SlicePlane.from_dataset_info(info, row["z_mm"]),
                index=i,
            )
            for i, row in enumerate(self.dataset.metadata)
        ]
        self.resolution = int(info["resolution"])

    def load(self, item: SliceInfo) -> SliceData:
        label = self.dataset.label(item.index) if self.dataset.label_dim else None
        return SliceData(item, self.dataset.fa(item.index)[0], self.dataset.mask(item.index), label)


class NiftiSource:
    """FA volumes in MNI space, sampled on the default dataset grid at ``resolution``."""

    def __init__(self, paths: list[str | os.PathLike], resolution: int):
        from stylefa.data.nifti import load_fa
        from stylefa.data.prepare import DEFAULT_MASK_THRESHOLD
        from stylefa.data.slices import SliceGrid, check_levels_inside, sample_axial_slices, threshold_masks

        grid = SliceGrid(resolution=resolution)
        self.items: list[SliceInfo] = []
        self._slices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.description = f"{len(paths)} FA file(s) sliced at z = {grid.levels_mm[0]:g}..{grid.levels_mm[-1]:g} mm"
        self.resolution = resolution
        for path in paths:
            volume = load_fa(path)
            check_levels_inside(volume.shape, volume.affine, grid.levels_mm, path)
            fa = np.clip(sample_axial_slices(volume.data, volume.affine, grid), 0.0, 1.0)
            brains = threshold_masks(fa, DEFAULT_MASK_THRESHOLD)
            subject = _safe(Path(path).name.split(".")[0])
            for level, z in enumerate(grid.levels_mm):
                plane = SlicePlane(float(z), grid.resolution, grid.fov_mm, tuple(grid.center_mm))
                item = SliceInfo(_safe(f"{subject}_L{level:02d}"), subject, level, float(z), plane, len(self.items))
                if item.key in self._slices:
                    raise InputError("two FA files share one name; rename one", path)
                self.items.append(item)
                self._slices[item.key] = (fa[level], brains[level])

    def load(self, item: SliceInfo) -> SliceData:
        fa, brain = self._slices[item.key]
        return SliceData(item, fa, brain, None)


def open_source(data: list[str], split: str, resolution: int):
    """A dataset folder (one path with dataset.json) or NIfTI FA files."""
    if not data:
        raise InputError("no --data given")
    if len(data) == 1 and Path(data[0]).is_dir():
        source = DatasetSource(data[0], split)
        if source.resolution != resolution:
            raise InputError(
                f"dataset images are {source.resolution}x{source.resolution} but the network makes "
                f"{resolution}x{resolution}", data[0])
        return source
    from stylefa.data.nifti import is_nifti_path

    for path in data:
        if not is_nifti_path(path):
            raise InputError("expected a prepared dataset folder or FA NIfTI files (.nii, .nii.gz)", path)
    return NiftiSource(data, resolution)


def spread(count: int, total: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all when count >= total)."""
    if count <= 0 or count >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)
