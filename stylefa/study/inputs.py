"""The slices a study works on: a prepared dataset split, or FA NIfTI files sliced here.

Both give, per slice, its FA in [0, 1], brain mask, world plane (for lesions and tissue
regions) and class label (for conditional generators).

FA NIfTI files are cut exactly as the network's training data were: on the slice geometry
the training snapshot records (levels, field of view, centre, mask threshold), through the
same per-subject function ``stylefa prepare`` uses (``stylefa.data.prepare.slice_subject``:
reorientation, level check, sibling brain mask or FA threshold with holes filled, BIDS
subject ids). A network without recorded geometry gets the default grid at its resolution.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.data.slices import SliceGrid
from stylefa.data.training_slicing import (  # noqa: F401 (re-exported for study.study and callers)
    DEFAULT_ORIGIN, TRAINING_ORIGIN, Slicing, training_slicing,
)
from stylefa.errors import InputError
from stylefa.fileio import file_digest, safe_name


def single_level(grid: SliceGrid, z_mm: float) -> SliceGrid:
    """The one-level grid of the slice at ``z_mm``: what lesions and tissue priors are sampled on."""
    return dataclasses.replace(grid, levels_mm=(float(z_mm),))


@dataclass(frozen=True)
class SliceInfo:
    key: str  # unique, file-name safe
    subject: str
    scan: str  # one FA volume: subject plus session
    level: int
    z_mm: float
    plane: SliceGrid  # this slice's geometry: a grid with the single level z_mm
    index: int  # position in the source


@dataclass(frozen=True)
class SliceData:
    info: SliceInfo
    fa: np.ndarray  # float32 [R, R] in [0, 1]
    brain: np.ndarray  # bool [R, R]
    label: np.ndarray | None  # one-hot float32 or None


def check_network(network) -> Slicing:
    """A generator file a study can use, checked without loading its weights: readable, holding
    a generator of at least the minimum resolution; returns its training slicing."""
    from stylefa.nets.checkpoint import read_metadata

    metadata = read_metadata(network)
    g_config = metadata["config"].get("G")
    if g_config is None:
        raise InputError("file holds no generator", network)
    return training_slicing(metadata["provenance"], int(g_config.img_resolution), network)


def check_lesion_inputs(lesions: list, flair: list, threshold: float | None = None) -> None:
    """Read every lesion mask and FLAIR once (the rules of ``stylefa.study.lesions.masks``) so that a bad
    file stops a command before it writes anything."""
    from stylefa.study.lesions.masks import expand_paths, load_lesion_volume, pair_flairs

    masks = expand_paths(lesions, "lesion mask")
    for mask, flair_path in zip(masks, pair_flairs(masks, expand_paths(flair, "FLAIR"))):
        load_lesion_volume(mask, flair_path, threshold)


class DatasetSource:
    """A split of a folder made by ``stylefa prepare``."""

    def __init__(self, path: str | os.PathLike, split: str):
        from stylefa.data.dataset import FADataset, warn_training_overlap

        self.root = Path(path)
        self.split = split
        self.dataset = FADataset(path, split)
        warn_training_overlap(self.dataset)
        self.description = f"dataset {self.root} (split {split})"
        info = self.dataset.info
        try:
            grid = SliceGrid.from_dict(info)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"dataset.json lacks its slice geometry ({exc!r})", self.root / "dataset.json") from None
        threshold = (info.get("mask") or {}).get("threshold")
        self.slicing = Slicing(grid, None if threshold is None else float(threshold),
                               "the prepared dataset's dataset.json")
        self.items = [
            SliceInfo(
                key=safe_name(f"{row['key']}_L{int(row['level']):02d}"),
                subject=str(row["subject"]),
                scan=str(row["key"]),
                level=int(row["level"]),
                z_mm=float(row["z_mm"]),
                plane=single_level(grid, row["z_mm"]),
                index=i,
            )
            for i, row in enumerate(self.dataset.metadata)
        ]
        _check_unique_keys(self.items, self.root)
        self.resolution = int(info["resolution"])

    def fingerprint(self) -> dict:
        return {"kind": "dataset", "dataset_json_sha256": file_digest(self.root / "dataset.json"),
                "split": self.split}

    def load(self, item: SliceInfo) -> SliceData:
        label = self.dataset.label(item.index) if self.dataset.label_dim else None
        return SliceData(item, self.dataset.fa(item.index)[0], self.dataset.mask(item.index), label)


class NiftiSource:
    """FA volumes in MNI space, cut as ``stylefa prepare`` cuts them, on ``slicing``'s grid."""

    def __init__(self, paths: list[str | os.PathLike], slicing: Slicing):
        from stylefa.data.prepare import SubjectTask, slice_subject
        from stylefa.data.subjects import find_sibling_mask, find_subjects

        grid = slicing.grid
        self.slicing = slicing
        self.resolution = grid.resolution
        self.items: list[SliceInfo] = []
        self._slices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._files: dict[str, dict] = {}
        subjects, found = find_subjects(paths, skip_option=None)
        left_out = "".join(f"; {line}" for line in found.report_lines())  # hidden folders, masks, links
        self.description = (f"{len(subjects)} FA file(s) sliced at z = {grid.levels_mm[0]:g}..{grid.levels_mm[-1]:g} mm "
                            f"({grid.num_slices} levels, {grid.fov_mm:g} mm field of view); {slicing.origin}{left_out}")
        for subject in subjects:
            # shard_dir only matters to prepare's worker wrapper, not to slicing itself.
            task = SubjectTask(subject=subject, shard_dir=Path(), grid=grid, template_path=None,
                               mask_threshold=slicing.mask_threshold, sibling_masks=True)
            fa, brains, _ = slice_subject(task)
            mask_file = find_sibling_mask(subject.path)
            # None: the brain is the FA threshold rule (its threshold is in the slicing settings).
            self._files[subject.key] = {
                "fa_sha256": file_digest(subject.path),
                "brain_mask_sha256": None if mask_file is None else file_digest(mask_file),
            }
            for level, z in enumerate(grid.levels_mm):
                item = SliceInfo(safe_name(f"{subject.key}_L{level:02d}"), subject.subject, subject.key, level,
                                 float(z), single_level(grid, z), len(self.items))
                self.items.append(item)
                self._slices[item.key] = (fa[level], brains[level])
            _check_unique_keys(self.items, subject.path)

    def fingerprint(self) -> dict:
        return {"kind": "nifti", "files": self._files}

    def load(self, item: SliceInfo) -> SliceData:
        fa, brain = self._slices[item.key]
        return SliceData(item, fa, brain, None)


def _check_unique_keys(items: list[SliceInfo], where) -> None:
    seen: dict[str, str] = {}
    for item in items:
        other = seen.setdefault(item.key, item.scan)
        if other != item.scan:
            raise InputError(f"scans {other!r} and {item.scan!r} give the same file name {item.key!r}; rename one",
                             where)


def open_source(data: list[str], split: str, slicing: Slicing):
    """A prepared dataset folder (one path with dataset.json) or FA NIfTI files/folders/globs."""
    if not data:
        raise InputError("no --data given")
    resolution = slicing.grid.resolution
    if len(data) == 1 and (Path(data[0]) / "dataset.json").is_file():
        source = DatasetSource(data[0], split)
        if source.resolution != resolution:
            raise InputError(
                f"dataset images are {source.resolution}x{source.resolution} but the network makes "
                f"{resolution}x{resolution}", data[0])
        return source
    from stylefa.discovery import is_nifti_input

    for path in data:
        if Path(path).is_file() and not is_nifti_input(path):
            raise InputError("expected a prepared dataset folder or FA NIfTI files (.nii, .nii.gz, .hdr/.img)", path)
    return NiftiSource(data, slicing)


def spread(count: int, total: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all when count >= total)."""
    if count <= 0 or count >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})
