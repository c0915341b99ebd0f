"""Find the FA maps a user names and give each one a subject id.

Inputs may be files, folders (searched recursively for ``*.nii``/``*.nii.gz``) or shell
globs. Subject ids come from BIDS(-derivatives) names when the file name has them
(``sub-<label>[_ses-<label>]_..._FA.nii.gz``), else from the file name without its NIfTI
suffix. Sessions of one subject share the subject id, so splits keep them together; several
series of one session (BIDS ``acq-``/``rec-``/``dir-``/``run-`` entities, e.g. differently tilted
acquisitions) are separate entries of that subject.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from stylefa.errors import InputError

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_BIDS_SUBJECT = re.compile(r"(?:^|_)sub-([A-Za-z0-9]+)(?=_|$)")
_BIDS_SESSION = re.compile(r"(?:^|_)ses-([A-Za-z0-9]+)(?=_|$)")
# Entities that tell apart several series of one session (e.g. differently tilted acquisitions).
_BIDS_VARIANT = re.compile(r"(?:^|_)((?:acq|rec|dir|run)-[A-Za-z0-9]+)(?=_|$)")
# Files that sit beside FA maps in derivatives folders but are not FA maps.
_NOT_FA_TOKENS = ("mask", "brainmask", "dseg", "probseg", "label")
# Other tensor maps (`stylefa fa --md` writes ..._MD.nii.gz), recognised by the BIDS suffix only.
_NOT_FA_SUFFIXES = ("md", "rd", "ad")


@dataclass(frozen=True)
class SubjectInput:
    """One FA map to slice: where it is, whose it is."""

    path: Path
    subject: str  # e.g. "sub-001" (BIDS) or the file stem
    session: str | None  # e.g. "ses-01" or None
    variant: str | None = None  # BIDS acq-/rec-/dir-/run- entities, e.g. "acq-ortho_run-2"

    @property
    def key(self) -> str:
        """Unique per (subject, session, variant): names shards and rows."""
        return "_".join(part for part in (self.subject, self.session, self.variant) if part)


def nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def subject_from_path(path: str | os.PathLike) -> SubjectInput:
    """Subject id (and session) for one file, from its BIDS entities or its stem."""
    path = Path(path)
    stem = nifti_stem(path)
    subject = _BIDS_SUBJECT.search(stem)
    if subject is None:
        return SubjectInput(path=path, subject=stem, session=None)
    session = _BIDS_SESSION.search(stem)
    variant = "_".join(m.group(1) for m in _BIDS_VARIANT.finditer(stem)) or None
    return SubjectInput(
        path=path,
        subject=f"sub-{subject.group(1)}",
        session=None if session is None else f"ses-{session.group(1)}",
        variant=variant,
    )


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _looks_like_mask(path: Path) -> bool:
    stem = nifti_stem(path).lower()
    tokens = re.split(r"[_.-]", stem)
    return any(token in _NOT_FA_TOKENS for token in tokens) or stem.rsplit("_", 1)[-1] in _NOT_FA_SUFFIXES


def _expand_one(item: str) -> list[Path]:
    path = Path(item)
    if path.is_dir():
        # In a folder, masks and segmentations beside the FA maps are skipped; a file the
        # user names explicitly is taken as given.
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_nifti(p) and not _looks_like_mask(p))
        if not found:
            raise InputError("folder contains no NIfTI files (*.nii, *.nii.gz)", path)
        return found
    if path.exists():
        return [path]
    if glob.has_magic(item):
        matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
        files = [p for p in matches if p.is_file() and _is_nifti(p)]
        if not files:
            raise InputError("pattern matches no NIfTI files", item)
        return files
    raise InputError("file not found", path)


def discover_inputs(items: list[str | os.PathLike]) -> list[SubjectInput]:
    """Expand files/folders/globs into a sorted list of subjects with unique keys.

    Two files with the same (subject, session) are an error naming both, since they
    would otherwise silently overwrite each other's slices.
    """
    if not items:
        raise InputError("no inputs given")
    by_key: dict[str, SubjectInput] = {}
    for item in items:
        for path in _expand_one(os.fspath(item)):
            entry = subject_from_path(path)
            other = by_key.get(entry.key)
            if other is not None and other.path.resolve() == path.resolve():
                continue  # the same file reached twice (e.g. a folder and a glob overlap)
            if other is not None:
                raise InputError(
                    f"same subject id {entry.key!r} as {other.path}; rename one (BIDS sub-/ses-/acq-/run- "
                    f"entities or distinct file names)",
                    path,
                )
            by_key[entry.key] = entry
    return sorted(by_key.values(), key=lambda s: s.key)


def find_sibling_mask(fa_path: Path) -> Path | None:
    """A brain mask stored beside an FA map under a BIDS-like name, if there is one.

    ``X_FA.nii.gz`` -> ``X_brainmask.nii.gz`` / ``X_mask.nii.gz`` / ``X_desc-brain_mask.nii.gz``.
    """
    stem = nifti_stem(fa_path)
    if not stem.endswith("FA"):
        return None
    base = stem[: -len("FA")]
    for suffix in ("brainmask", "desc-brain_mask", "mask"):
        for ext in NIFTI_SUFFIXES:
            candidate = fa_path.with_name(f"{base}{suffix}{ext}")
            if candidate.is_file():
                return candidate
    return None
