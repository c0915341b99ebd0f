"""Simple lesion detectors the GAN residual is compared with, scored on the same pixels.

- **normative**: a voxel-wise normative model of FA per slice level on the common MNI slice
  grid, fitted on lesion-free training slices (the network's training split, or FA files
  given with ``--normative``): mean ``mu`` and sample standard deviation ``sd`` (ddof 1) over
  the subjects whose brain mask contains the pixel. Score = ``|z| = |FA - mu| / max(sd, floor)``.
  The floor (default 0.02 FA, about the noise of a DTI FA estimate) keeps pixels where a few
  training subjects happen to agree from producing huge z. Pixels covered by fewer than
  ``MIN_SUBJECTS`` training brains have no estimate: score 0 (no evidence of abnormality).
- **template**: ``|FA - template FA|``, the population FA template sampled on the same slice
  plane (trilinear, as the slices themselves are cut).
- **residual**: ``|projection - input|`` (the GAN residual; computed by the study).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stylefa.errors import InputError

DEFAULT_STD_FLOOR = 0.02
MIN_SUBJECTS = 2
LEVEL_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class NormativeModel:
    """Voxel-wise FA mean and standard deviation per slice level (arrays [S, R, R], float64)."""

    levels_mm: tuple[float, ...]
    mean: np.ndarray  # NaN where fewer than MIN_SUBJECTS brains cover the pixel
    std: np.ndarray  # sample std (ddof 1), NaN likewise
    count: np.ndarray  # int, training brains covering each pixel
    n_subjects: int
    std_floor: float = DEFAULT_STD_FLOOR

    @classmethod
    def fit(cls, fa, brain, levels_mm, std_floor: float = DEFAULT_STD_FLOOR) -> "NormativeModel":
        """From ``fa`` float [N, S, R, R] (N subjects, S levels) and ``brain`` bool of that shape.

        Raises ``InputError`` with fewer than ``MIN_SUBJECTS`` subjects or a non-positive floor.
        """
        fa = np.asarray(fa, dtype=np.float64)
        brain = np.asarray(brain, dtype=bool)
        if fa.ndim != 4 or fa.shape != brain.shape:
            raise ValueError(f"expected FA and brain masks [N, S, R, R] of one shape, got {fa.shape}, {brain.shape}")
        if fa.shape[1] != len(levels_mm):
            raise ValueError(f"{fa.shape[1]} levels of FA for {len(levels_mm)} levels_mm")
        if fa.shape[0] < MIN_SUBJECTS:
            raise InputError(f"the normative model needs at least {MIN_SUBJECTS} lesion-free subjects, "
                             f"got {fa.shape[0]}")
        if not std_floor > 0:
            raise InputError(f"the normative std floor must be > 0, got {std_floor:g}")
        count = brain.sum(axis=0)
        total = np.where(brain, fa, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
            squares = np.where(brain, (fa - mean) ** 2, 0.0).sum(axis=0)
            std = np.sqrt(squares / (count - 1))
        enough = count >= MIN_SUBJECTS
        return cls(tuple(float(z) for z in levels_mm), np.where(enough, mean, np.nan),
                   np.where(enough, std, np.nan), count.astype(np.int64), int(fa.shape[0]), float(std_floor))

    def level(self, z_mm: float) -> int:
        """Index of the level at ``z_mm``; ``InputError`` when the model has no such level."""
        for i, z in enumerate(self.levels_mm):
            if abs(z - float(z_mm)) <= LEVEL_TOLERANCE_MM:
                return i
        raise InputError(f"the normative model has no slice level at z = {z_mm:g} mm "
                         f"(its levels: {', '.join(f'{z:g}' for z in self.levels_mm)})")

    def z_score(self, fa, z_mm: float) -> np.ndarray:
        """``(FA - mean) / max(std, floor)`` at level ``z_mm``; NaN where there is no estimate."""
        k = self.level(z_mm)
        fa = np.asarray(fa, dtype=np.float64)
        if fa.shape != self.mean.shape[1:]:
            raise ValueError(f"FA {fa.shape} is not on the normative grid {self.mean.shape[1:]}")
        return (fa - self.mean[k]) / np.maximum(self.std[k], self.std_floor)

    def score(self, fa, z_mm: float) -> np.ndarray:
        """``|z|`` with 0 where there is no estimate (float64 [R, R])."""
        return np.nan_to_num(np.abs(self.z_score(fa, z_mm)), nan=0.0)

    def mean_at(self, z_mm: float) -> np.ndarray:
        return self.mean[self.level(z_mm)]

    def describe(self) -> dict:
        return {"n_subjects": self.n_subjects, "std_floor": self.std_floor, "min_subjects": MIN_SUBJECTS,
                "levels_mm": list(self.levels_mm),
                "median_std_in_brain": _median(self.std[np.isfinite(self.std)])}


def _median(values) -> float:
    return float(np.median(values)) if np.size(values) else math.nan


def fit_normative(source, std_floor: float = DEFAULT_STD_FLOOR) -> NormativeModel:
    """A normative model from every scan of a study source (``stylefa.study.inputs``).

    Scans missing a level simply do not count at that level.
    """
    levels = tuple(float(z) for z in source.slicing.grid.levels_mm)
    index = {round(z, 3): i for i, z in enumerate(levels)}
    scans: dict[str, list] = {}
    for item in source.items:
        scans.setdefault(item.scan, []).append(item)
    r = source.resolution
    fa = np.zeros((len(scans), len(levels), r, r), np.float32)
    brain = np.zeros(fa.shape, bool)
    for n, items in enumerate(scans.values()):
        for item in items:
            data = source.load(item)
            k = index[round(item.z_mm, 3)]
            fa[n, k] = data.fa
            brain[n, k] = data.brain
    return NormativeModel.fit(fa, brain, levels, std_floor)


@dataclass(frozen=True)
class TemplateFA:
    """A population FA template in world space, sampled on slice planes."""

    data: np.ndarray
    affine: np.ndarray
    path: str

    @classmethod
    def load(cls, path) -> "TemplateFA":
        from stylefa.data.fa_values import not_fa_problem
        from stylefa.data.nifti import load_volume

        volume = load_volume(path, expect_ndim=3, name="FA template")
        problem = not_fa_problem(volume.data)  # e.g. an MD template given as the FA one
        if problem:
            raise InputError(problem, path)
        return cls(np.asarray(volume.data, dtype=np.float32), np.asarray(volume.affine, dtype=np.float64), str(path))

    def on(self, plane) -> np.ndarray:
        """Template FA on the one-level grid ``plane``: float64 [R, R]."""
        from stylefa.data.slices import check_levels_inside, sample_axial_slices

        check_levels_inside(self.data.shape, self.affine, plane.levels_mm, self.path, what="the FA template",
                            hint=None)
        return sample_axial_slices(self.data, self.affine, plane)[0].astype(np.float64)

    def score(self, fa, plane) -> np.ndarray:
        return np.abs(np.asarray(fa, dtype=np.float64) - self.on(plane))
