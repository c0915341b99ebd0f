"""Where projection targets come from: a prepared dataset, NIfTI FA slices, .npy or PNG.

A target is listed cheaply (``TargetSpec``: id, subject, slice, a loader) and its pixels
are read only when its batch comes up, so memory does not grow with the number of
targets. Images are FA in [0, 1], float32 [R, R] at the generator's resolution.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from stylefa.data.slices import SliceGrid
from stylefa.errors import InputError
from stylefa.fileio import safe_name
from stylefa.readers import IMAGE_SUFFIXES, ImageOptions, check_shape, read_image_gray, read_mask_image, read_npy

FAImage = np.ndarray


@dataclass(frozen=True)
class TargetSpec:
    target_id: str  # unique, file-system safe: names the output folder
    subject: str
    slice_index: str  # slice number or level, as text ('' when unknown)
    source: str  # where the pixels come from, for the record
    load: Callable[[], FAImage]
    label: int | None = None
    # Where the slice was cut (NIfTI and dataset targets): its scan and single-level grid, so
    # the results can be written back as volumes (``stylefa.project.volumes``).
    scan: str | None = None
    plane: SliceGrid | None = None


def safe_id(text: str) -> str:
    return safe_name(text, fallback="target")


def check_unique(specs: Sequence[TargetSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.target_id in seen:
            raise InputError(f"two targets would share the output folder {spec.target_id!r} ({seen[spec.target_id]} and {spec.source})")
        seen[spec.target_id] = spec.source


def shard(specs: Sequence[TargetSpec], rank: int, world_size: int) -> list[TargetSpec]:
    """Targets of one rank: every ``world_size``-th target by index, starting at ``rank``."""
    return list(specs[rank::world_size])


def resize_square(image: np.ndarray, resolution: int, path) -> np.ndarray:
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise InputError(f"expected a square 2-D image, got shape {image.shape}", path)
    if image.shape[0] == resolution:
        return image.astype(np.float32)
    from scipy.ndimage import zoom

    # Linear interpolation, like the trilinear slicing of the data stage.
    out = zoom(image.astype(np.float64), resolution / image.shape[0], order=1, grid_mode=True, mode="nearest")
    return out.astype(np.float32)


def check_fa_range(image: np.ndarray, path) -> np.ndarray:
    if not np.all(np.isfinite(image)):
        raise InputError("image has NaN or infinite values", path)
    if image.min() < -1e-3 or image.max() > 1 + 1e-3:
        raise InputError(f"FA values must lie in [0, 1], got {image.min():.4g} to {image.max():.4g}", path)
    return np.clip(image, 0, 1)


def read_image_file(path: Path, options: ImageOptions = ImageOptions()) -> np.ndarray:
    """A 2-D image from .npy (FA in [0, 1]; [R,R] or [1,R,R]) or PNG (``stylefa.readers`` rules)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        image = check_shape(read_npy(path, "image"), path, "image", ((None, None), (1, None, None)))
        if image.ndim == 3:
            image = image[0]
        image = image.astype(np.float32)
    elif suffix in IMAGE_SUFFIXES:
        image = read_image_gray(path, options)
    else:
        raise InputError("targets must be .npy (FA in [0, 1]) or .png files", path)
    return check_fa_range(image, path)


def file_targets(paths: Sequence[str | os.PathLike], resolution: int,
                 options: ImageOptions = ImageOptions()) -> list[TargetSpec]:
    specs = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise InputError("target file not found", path)
        specs.append(TargetSpec(
            target_id=safe_id(path.name.rsplit(".", 1)[0]), subject="", slice_index="", source=str(path),
            load=lambda path=path: resize_square(read_image_file(path, options), resolution, path),
        ))
    check_unique(specs)
    return specs


def nifti_targets(path: str | os.PathLike, slices: Sequence[int] | None, slicing) -> list[TargetSpec]:
    """Slices of an FA map cut exactly as ``stylefa prepare`` and ``stylefa study`` cut them.

    ``slicing`` (``stylefa.data.training_slicing.Slicing``) is the network's recorded training
    geometry: field of view, centre, resolution, levels. The volume must pass prepare's checks on
    those levels (inside the volume, brain on every level: else it is not in template space);
    then the targets are the training levels themselves (``slices`` None) or the axial voxel
    planes ``slices`` of the (canonical, RAS) volume, sampled on the same in-plane grid, each
    refused if it holds no brain.
    """
    import dataclasses

    from stylefa.data.nifti import canonical, load_fa
    from stylefa.data.prepare import SubjectTask, slice_subject
    from stylefa.data.slices import levels_from_indices
    from stylefa.data.subjects import subject_from_path

    from stylefa.discovery import missing_file_problem

    path = Path(path)
    if not path.is_file():
        raise InputError(missing_file_problem(path), path)  # names a git-annex file not fetched
    subject = subject_from_path(path)

    def cut(grid):
        task = SubjectTask(subject=subject, shard_dir=Path(), grid=grid, template_path=None,
                           mask_threshold=slicing.mask_threshold, sibling_masks=False)
        return slice_subject(task)[0]

    training_fa = cut(slicing.grid)  # prepare's refusal for a volume outside template space
    if slices is None:
        names = [(f"{safe_id(subject.key)}_L{level:02d}", str(level)) for level in range(len(training_fa))]
        images = list(training_fa)
        grid = slicing.grid
    else:
        volume = canonical(load_fa(path))
        affine, depth = volume.affine, volume.data.shape[2]
        bad = [k for k in slices if not 0 <= k < depth]
        if bad:
            raise InputError(f"slice index {bad[0]} outside 0..{depth - 1}", path)
        levels = tuple(z for k in slices for z in levels_from_indices(k, k, 1, affine))
        grid = dataclasses.replace(slicing.grid, levels_mm=levels)
        images = list(cut(grid))
        stem = safe_id(path.name.split(".")[0])
        names = [(f"{stem}_k{k:03d}", str(k)) for k in slices]
    specs = [
        TargetSpec(target_id=target_id, subject=subject.subject, slice_index=index, source=f"{path}:{index}",
                   load=lambda image=image: image, scan=subject.key,
                   plane=dataclasses.replace(grid, levels_mm=(z_mm,)))
        for (target_id, index), image, z_mm in zip(names, images, grid.levels_mm)
    ]
    check_unique(specs)
    return specs


def dataset_targets(path: str | os.PathLike, split: str = "test", subjects: Sequence[str] | None = None,
                    max_targets: int | None = None, resolution: int | None = None) -> list[TargetSpec]:
    from stylefa.data.dataset import FADataset, warn_training_overlap

    dataset = FADataset(path, split=split)
    warn_training_overlap(dataset)
    try:
        grid = SliceGrid.from_dict(dataset.info)
    except (KeyError, TypeError, ValueError):
        grid = None  # an old dataset without its geometry: no volumes
    if resolution is not None and dataset.resolution != resolution:
        raise InputError(f"dataset resolution {dataset.resolution} differs from the generator's {resolution}", path)
    wanted = set(subjects) if subjects else None
    if wanted:
        unknown = wanted - set(dataset.subjects())
        if unknown:
            raise InputError(f"subject(s) not in split {split!r}: {', '.join(sorted(unknown))}", path)
    specs = []
    for index, meta in enumerate(dataset.metadata):
        if wanted and meta["subject"] not in wanted:
            continue
        # A dataset key names a subject (session); the level tells its slices apart.
        key = meta.get("key") or meta["subject"]
        level = meta.get("level", index)
        specs.append(TargetSpec(
            target_id=safe_id(f"{key}_level{int(level):02d}"), subject=str(meta["subject"]), slice_index=str(meta.get("level", "")),
            source=f"{path}[{split}:{index}]", load=lambda index=index: dataset.fa(index)[0],
            label=meta.get("label"), scan=str(key),
            plane=None if grid is None or "z_mm" not in meta
            else dataclasses.replace(grid, levels_mm=(float(meta["z_mm"]),)),
        ))
        if max_targets is not None and len(specs) >= max_targets:
            break
    check_unique(specs)
    return specs


def read_mask(path: str | os.PathLike, resolution: int, options: ImageOptions = ImageOptions()) -> np.ndarray:
    """A 2-D known-pixel mask (.npy or .png; binary: 0 = unknown, the other value = known),
    resized by nearest neighbour."""
    path = Path(path)
    if not path.is_file():
        raise InputError("mask file not found", path)
    mask = np.squeeze(read_mask_image(path, options))
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise InputError(f"mask must be a square 2-D array, got shape {mask.shape}", path)
    if mask.shape[0] != resolution:
        step = mask.shape[0] / resolution
        index = np.minimum((np.arange(resolution) * step + step / 2).astype(int), mask.shape[0] - 1)
        mask = mask[np.ix_(index, index)]
    if not mask.any():
        raise InputError("mask has no known pixels", path)
    return mask
