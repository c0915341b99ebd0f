"""One scan under two names, found before a dataset is written (``stylefa prepare``).

Mangled DICOM headers, copied or renamed files and a git-annex object reached beside its
symlink give one scan two subject ids; subject-disjoint splits then put the same voxels in
``train`` and ``test``, and a "held-out" slice was trained on. Two inputs are the same scan when

- their **voxels** are equal: the SHA-256 of the loaded FA (float32, shape included;
  ``voxel_sha256``), taken both in storage order (whatever the header says: a copy whose
  orientation was mangled) and reoriented to RAS (a copy saved in another orientation), is
  independent of the file format (.nii, .nii.gz, .hdr/.img), compression, header (affine,
  description, intent) and file name; or
- their **slices** (as cut for the dataset) agree to within ``DUPLICATE_FA_TOLERANCE`` FA at every
  pixel: a copy saved at another precision (FA stored as 8-bit or x1000 integers with a scale
  factor, or float64) differs from its source by at most half a quantisation step (1/510 for
  8 bits), while two different scans, even of one person in one session, differ by tenths.

A copy that was resampled (registered again, mirrored, smoothed) is not the same voxels and is
not detected; nor is a copy whose header was changed AND whose values were re-quantised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.data.bad import BadSubject
from stylefa.errors import InputError

# Largest |FA difference| at any slice pixel between two copies of one scan (8-bit storage: 1/510).
DUPLICATE_FA_TOLERANCE = 0.0025
DROP_OPTION = "--drop-duplicates"


def voxel_sha256(data: np.ndarray) -> str:
    """SHA-256 (hex) of a volume's voxels as float32 C-order bytes, after its shape."""
    array = np.ascontiguousarray(data, dtype=np.float32)
    digest = hashlib.sha256(repr(tuple(array.shape)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def slice_means(fa: np.ndarray) -> list[float]:
    """Mean FA of each slice [S, R, R] -> S floats: a cheap key that near-copies share."""
    return [float(v) for v in np.asarray(fa, dtype=np.float64).mean(axis=(1, 2))]


@dataclass(frozen=True)
class Duplicate:
    """``later`` (a subject's info dict, as prepare records it) is the same scan as ``first``."""

    first: dict
    later: dict
    how: str  # "the same voxels (sha256 ...)" or "the same slices within ... FA"

    def problem(self) -> str:
        a, b = self.first["subject"], self.later["subject"]
        why = (f"one scan under two subject ids ({a}, {b}) would leak between splits" if a != b
               else f"the same scan twice for subject {a} (counted twice)")
        return f"has {self.how} as {self.first['source']}: {why}"


def find_duplicates(infos: list[dict], load_slices: Callable[[dict], np.ndarray],
                    tolerance: float = DUPLICATE_FA_TOLERANCE) -> list[Duplicate]:
    """Every input of ``infos`` (in order) that repeats an earlier one, paired with that one.

    ``infos`` need ``voxel_sha256`` (RAS order), ``stored_sha256`` (storage order), ``slice_means``,
    ``subject`` and ``source``;
    ``load_slices(info)`` returns its FA slices [S, R, R] (read only for near-equal candidates).
    """
    means = np.asarray([info["slice_means"] for info in infos], dtype=np.float64).reshape(len(infos), -1)
    kept: list[int] = []
    by_digest: dict[tuple[str, str], dict] = {}  # like with like: RAS order with RAS order, stored with stored
    out: list[Duplicate] = []
    for index, info in enumerate(infos):
        digests = [("ras", info["voxel_sha256"]), ("stored", info.get("stored_sha256"))]
        first = next((by_digest[d] for d in digests if d in by_digest), None)
        if first is not None:
            digest = next(d for d in digests if d in by_digest)
            out.append(Duplicate(first, info, f"the same voxels (sha256 {digest[1][:16]})"))
            continue
        match = None
        if kept:
            close = np.abs(means[kept] - means[index]).max(axis=1) <= tolerance
            for other in (infos[kept[k]] for k in np.flatnonzero(close)):
                a, b = load_slices(other), load_slices(info)
                difference = float(np.abs(a.astype(np.float64) - b).max()) if a.shape == b.shape else np.inf
                if difference <= tolerance:
                    match = Duplicate(other, info, f"the same slices (within {difference:.2g} FA at every pixel: "
                                                   f"a copy stored at another precision?)")
                    break
        if match is not None:
            out.append(match)
            continue
        by_digest.update({d: info for d in digests if d[1]})
        kept.append(index)
    return out


def resolve_duplicates(infos: list[dict], load_slices: Callable[[dict], np.ndarray],
                       drop: bool) -> tuple[list[dict], list[BadSubject]]:
    """(the inputs to keep, the later copies dropped); without ``drop`` a duplicate is an
    ``InputError`` naming both files (the first pair on the error line, others below)."""
    duplicates = find_duplicates(infos, load_slices)
    if not duplicates:
        return infos, []
    if not drop:
        first = duplicates[0]
        head = (f"{first.problem()} ({len(duplicates)} duplicate input(s); remove them, or pass {DROP_OPTION} to keep "
                f"only the first of each)")
        lines = [head] + [f"{d.later['source']}: {d.problem()}" for d in duplicates[1:]]
        raise InputError("\n".join(lines), first.later["source"])
    dropped_keys = {d.later["key"] for d in duplicates}
    dropped = [BadSubject(Path(d.later["source"]), f"dropped ({DROP_OPTION}): {d.problem()}", d.later["key"])
               for d in duplicates]
    return [info for info in infos if info["key"] not in dropped_keys], dropped
