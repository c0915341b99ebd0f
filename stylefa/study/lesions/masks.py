"""Synthetic MS lesions: real lesion masks placed on FA maps in the same world space.

Lesion model (demyelination and axonal loss lower FA inside white-matter lesions)::

    FA_lesioned = FA * (1 - r * w)

``r`` is the relative FA reduction at the lesion core (default 0.4, i.e. 40 %), and ``w`` in
[0, 1] a soft lesion weight: the binary lesion mask smoothed by a Gaussian of ``sigma_mm``
(default 1 mm) in the mask's own 3-D voxel grid, then sampled trilinearly onto the slice.
The smoothing models a gradual border (and partial volume) instead of a step; with
``sigma_mm = 0`` the weight is the (trilinearly sampled) mask itself. Small lesions get a
weaker peak reduction than large ones, as partial volume would give.

The lesion label used for scoring is the trilinearly sampled mask >= 0.5 (the pixel centre
lies in the lesion), restricted to the brain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.data.slices import SliceGrid, check_levels_inside, sample_axial_slices
from stylefa.errors import InputError

DEFAULT_REDUCTION = 0.4
DEFAULT_SIGMA_MM = 1.0
DEFAULT_MIN_LESION_PIXELS = 20
# Slices are picked when the lesion covers at least this area (20 pixels at 256 px / 216 mm).
DEFAULT_MIN_LESION_AREA_MM2 = 15.0
# Total T2/FLAIR lesion loads in MS cohorts reach some tens of mL, rarely over 100 mL; a "lesion
# mask" above this is a brain or tissue mask given by mistake (an adult brain is ~1200-1500 mL).
MAX_LESION_VOLUME_ML = 250.0


def min_lesion_pixels(pixel_size_mm: float, area_mm2: float = DEFAULT_MIN_LESION_AREA_MM2) -> int:
    return max(1, int(np.ceil(area_mm2 / pixel_size_mm**2)))


@dataclass(frozen=True)
class LesionModel:
    reduction: float = DEFAULT_REDUCTION
    sigma_mm: float = DEFAULT_SIGMA_MM

    def __post_init__(self):
        if not 0.0 <= self.reduction <= 1.0:
            raise InputError(f"lesion FA reduction must be in [0, 1], got {self.reduction:g}")
        if self.sigma_mm < 0:
            raise InputError(f"lesion border sigma must be >= 0 mm, got {self.sigma_mm:g}")

    def to_dict(self) -> dict:
        return {"reduction": self.reduction, "sigma_mm": self.sigma_mm,
                "formula": "FA * (1 - reduction * w), w = Gaussian(sigma_mm)-smoothed lesion mask"}


def apply_lesion(fa: np.ndarray, weight: np.ndarray, reduction: float) -> np.ndarray:
    """``fa * (1 - reduction * weight)`` (any shape), float32 in [0, 1]."""
    fa = np.asarray(fa, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if fa.shape != weight.shape:
        raise InputError(f"lesion weight {weight.shape} and FA {fa.shape} are on different grids")
    return np.clip(fa * (1.0 - reduction * np.clip(weight, 0.0, 1.0)), 0.0, 1.0).astype(np.float32)


def soft_weight(mask: np.ndarray, sigma_voxels) -> np.ndarray:
    """A binary mask smoothed by a Gaussian (per-axis sigma in voxels), clipped to [0, 1]."""
    from scipy.ndimage import gaussian_filter

    mask = np.asarray(mask, dtype=np.float32)
    if np.all(np.asarray(sigma_voxels, dtype=float) == 0):
        return mask
    return np.clip(gaussian_filter(mask, sigma_voxels, mode="constant"), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class LesionVolume:
    """A lesion mask in world space, optionally with the patient's FLAIR on the same grid."""

    name: str
    mask: np.ndarray  # bool, 3-D
    affine: np.ndarray
    path: Path | None = None
    flair: np.ndarray | None = None
    flair_path: Path | None = None
    threshold: float | None = None  # the mask is a probability map cut at this value

    @property
    def voxel_count(self) -> int:
        return int(self.mask.sum())

    def weight(self, model: LesionModel) -> np.ndarray:
        zooms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return soft_weight(self.mask, model.sigma_mm / zooms)

    def label_on(self, grid: SliceGrid) -> np.ndarray:
        """Lesion label on every level of ``grid``: bool [S, R, R] (sampled mask >= 0.5)."""
        self._check_levels(grid)
        return sample_axial_slices(self.mask, self.affine, grid) >= 0.5

    def weight_on(self, grid: SliceGrid, weight3d: np.ndarray) -> np.ndarray:
        """The soft weight ``weight3d`` (from :meth:`weight`) on every level: float32 [S, R, R]."""
        self._check_levels(grid)
        return np.clip(sample_axial_slices(weight3d, self.affine, grid), 0.0, 1.0)

    def flair_on(self, grid: SliceGrid) -> np.ndarray | None:
        if self.flair is None:
            return None
        return sample_axial_slices(self.flair, self.affine, grid)

    def _check_levels(self, grid: SliceGrid) -> None:
        check_levels_inside(self.mask.shape, self.affine, grid.levels_mm, self.path or self.name,
                            what="the lesion mask", hint=None)


def _same_grid(shape_a, affine_a, shape_b, affine_b) -> bool:
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and np.allclose(affine_a, affine_b, atol=1e-3)


def lesion_mask_from(data: np.ndarray, affine: np.ndarray, path, threshold: float | None = None) -> np.ndarray:
    """The lesion voxels of a mask image: bool, 3-D.

    Binary (0 and one other value) unless ``threshold`` is given, in which case ``data`` must be
    a probability map in [0, 1] and lesion is ``data >= threshold``. Refused: an empty mask, and
    one above ``MAX_LESION_VOLUME_ML`` (a brain mask, a FLAIR or an FA map given as lesion mask).
    """
    from stylefa.readers import binary_mask

    if threshold is None:
        try:
            mask = binary_mask(data, path, "lesion mask")
        except InputError as exc:
            raise InputError(f"{exc.problem}; for a lesion probability map give --lesion-threshold P "
                             "(is this a FLAIR or FA image rather than a mask?)", path) from None
    else:
        if not 0 < threshold <= 1:
            raise InputError(f"--lesion-threshold must be in (0, 1], got {threshold:g}")
        if data.min() < 0 or data.max() > 1:
            raise InputError(f"a lesion probability map holds values in [0, 1], this one {data.min():g} to "
                             f"{data.max():g}", path)
        mask = data >= threshold
    if not mask.any():
        raise InputError("lesion mask is empty (no voxel > 0)" if threshold is None else
                         f"lesion probability map has no voxel >= {threshold:g}", path)
    volume_ml = float(mask.sum()) * abs(float(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0
    if volume_ml > MAX_LESION_VOLUME_ML:
        raise InputError(
            f"lesion mask covers {volume_ml:.0f} mL, more than the {MAX_LESION_VOLUME_ML:g} mL an MS lesion load "
            "plausibly reaches: is it a brain or tissue mask?", path)
    return mask


def lesion_name(path) -> str:
    """The patient name a mask or FLAIR file gives: ``patient07_space-MNI_lesionmask.nii.gz`` -> ``patient07``."""
    return Path(path).name.split("_")[0].split(".")[0]


def expand_paths(patterns, what: str) -> list[str]:
    """Paths with shell wildcards (``*?[``) expanded here (sorted), so quoted globs work too, and
    folders searched, both by ``stylefa.discovery`` (NIfTI files; hidden folders skipped, broken
    symlinks named with the git-annex hint).

    A pattern that matches nothing -> ``InputError``; a path without wildcards is kept as given.
    """
    import glob

    from stylefa.discovery import discover_files

    out = []
    for pattern in patterns:
        pattern = str(pattern)
        if Path(pattern).is_dir() or (glob.has_magic(pattern) and not Path(pattern).exists()):
            try:
                found = discover_files([pattern])
            except InputError:
                raise InputError(f"no {what} file matches this pattern", pattern) from None
            found.check_available(skip_option=None)
            out.extend(str(p) for p in found.paths)
        else:
            out.append(pattern)
    return out


def pair_flairs(masks: list[str], flairs: list[str]) -> list[str | None]:
    """The FLAIR of each mask (or None), one to one: by patient name when every FLAIR's name
    prefix names a distinct mask (``patient07_..._FLAIR`` goes with ``patient07_..._lesionmask``;
    masks without a FLAIR get None), else in the order of the masks, which then needs exactly
    one FLAIR per mask. Anything else -> ``InputError``."""
    if not flairs:
        return [None] * len(masks)
    mask_names = [lesion_name(m) for m in masks]
    flair_names = [lesion_name(f) for f in flairs]
    if len(set(flair_names)) == len(flairs) and set(flair_names) <= set(mask_names):
        by_name = dict(zip(flair_names, flairs))
        return [by_name.get(name) for name in mask_names]
    if len(flairs) != len(masks):
        raise InputError(f"{len(flairs)} FLAIR file(s) for {len(masks)} lesion mask(s): give no FLAIR, exactly one "
                         "per mask in the order of the masks, or name them like their masks (patientNN_...)")
    return list(flairs)


def load_lesion_volume(mask_path: str | os.PathLike, flair_path: str | os.PathLike | None = None,
                       threshold: float | None = None) -> LesionVolume:
    """Read a lesion mask (see ``lesion_mask_from``) and optionally a FLAIR on the same grid."""
    from stylefa.data.nifti import load_volume

    mask_volume = load_volume(mask_path, expect_ndim=3, name="lesion mask", allow_empty=True)
    mask = lesion_mask_from(mask_volume.data, mask_volume.affine, mask_path, threshold)
    flair = None
    if flair_path is not None:
        flair_volume = load_volume(flair_path, expect_ndim=3, name="FLAIR")
        if not _same_grid(flair_volume.shape, flair_volume.affine, mask_volume.shape, mask_volume.affine):
            raise InputError(
                f"FLAIR grid (shape {flair_volume.shape}) differs from the lesion mask's "
                f"(shape {mask_volume.shape}, {Path(mask_path).name}); they must share one voxel grid",
                flair_path,
            )
        if np.unique(flair_volume.data).size <= 2:
            raise InputError("FLAIR image holds at most 2 distinct values: is it a mask? (--flair takes the "
                             "FLAIR images, --lesions the masks)", flair_path)
        flair = flair_volume.data
    name = lesion_name(mask_path)
    return LesionVolume(
        name=name,
        mask=mask,
        affine=mask_volume.affine,
        path=Path(mask_path),
        flair=flair,
        flair_path=None if flair_path is None else Path(flair_path),
        threshold=threshold,
    )


def check_overlap(lesion: LesionVolume, brain_fraction: float, where) -> None:
    """A lesion mask that misses the brain means the two images are not in one world space."""
    if brain_fraction < 0.5:
        raise InputError(
            f"only {100 * brain_fraction:.0f}% of the lesion lies inside the FA brain on the sampled slices; "
            f"are the lesion mask and the FA in the same (MNI) world space?",
            where,
        )


def pick_lesion_slices(load: np.ndarray, count: int, min_pixels: int = DEFAULT_MIN_LESION_PIXELS) -> list[int]:
    """Indices of the ``count`` slices with the most lesion pixels (at least ``min_pixels``)."""
    load = np.asarray(load)
    order = np.argsort(-load, kind="stable")
    return [int(i) for i in order[:count] if load[i] >= min_pixels]


def synthetic_lesion_volume(shape=(91, 109, 91), voxel_mm: float = 2.0, seed: int = 0) -> LesionVolume:
    """A simple synthetic lesion mask in FSL MNI152 world space (for the demo without real masks).

    A handful of ellipsoids of 3-8 mm radius in periventricular and deep white matter
    (around x = +-20 mm, y = -30..20 mm, z = 5..35 mm), where MS lesions typically sit.
    """
    rng = np.random.default_rng(seed)
    affine = np.array(
        [[-voxel_mm, 0, 0, 90.0], [0, voxel_mm, 0, -126.0], [0, 0, voxel_mm, -72.0], [0, 0, 0, 1.0]]
    )
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    world = np.tensordot(affine[:3, :3], np.stack([ii, jj, kk]).astype(np.float64), axes=1)
    world += affine[:3, 3, None, None, None]
    mask = np.zeros(shape, dtype=bool)
    for _ in range(8):
        centre = np.array([rng.choice([-1, 1]) * rng.uniform(12, 28), rng.uniform(-30, 20), rng.uniform(5, 35)])
        radii = rng.uniform(3, 8, size=3)
        mask |= (((world - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(axis=0) <= 1
    return LesionVolume(name="synthetic", mask=mask, affine=affine)
