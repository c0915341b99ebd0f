"""Find the FA maps a user names and give each one a subject id.

Inputs may be files, folders (searched recursively for ``*.nii``/``*.nii.gz`` and NIfTI
``.hdr``/``.img`` pairs, following folder links, never into hidden folders) or shell globs:
``stylefa.discovery`` finds them and reports what it left out. Subject ids come from
BIDS(-derivatives) names when the file name has them (``sub-<label>[_ses-<label>]_..._FA.nii.gz``),
else from the file name without its NIfTI suffix. Sessions of one subject share the subject id, so splits keep them together; several
series of one session (BIDS ``acq-``/``rec-``/``dir-``/``run-`` entities, e.g. differently tilted
acquisitions) are separate entries of that subject.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from stylefa.discovery import NIFTI_SUFFIXES, Discovery, DiscoveryRules, discover_files, nifti_stem
from stylefa.errors import InputError

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


def _looks_like_mask(path: Path) -> bool:
    stem = nifti_stem(path).lower()
    tokens = re.split(r"[_.-]", stem)
    return any(token in _NOT_FA_TOKENS for token in tokens) or stem.rsplit("_", 1)[-1] in _NOT_FA_SUFFIXES


def _not_an_fa_name(path: Path) -> str | None:
    if _looks_like_mask(path):
        return "named like a mask, segmentation or another tensor map (MD/RD/AD), not an FA map"
    return None


# In folders and globs, masks and other maps beside the FA maps are left out (reported); a file
# the user names explicitly is taken as given.
FA_RULES = DiscoveryRules(suffixes=NIFTI_SUFFIXES, exclude=_not_an_fa_name)


def find_subjects(items: list[str | os.PathLike], skip_bad: bool = False,
                  skip_option: str | None = "--skip-bad") -> tuple[list[SubjectInput], Discovery]:
    """Expand files/folders/globs (``stylefa.discovery``) into subjects with unique keys, sorted.

    Returns the subjects and the discovery report (what was met and left out). Unavailable
    inputs (broken symlinks: git-annex content not fetched) raise ``InputError`` unless
    ``skip_bad``. Two files with the same (subject, session, variant) are an error naming
    both, since they would otherwise silently overwrite each other's slices.
    """
    found = discover_files(items, FA_RULES)
    found.check_available(skip_bad, skip_option)
    by_key: dict[str, SubjectInput] = {}
    for path in found.paths:
        entry = subject_from_path(path)
        other = by_key.get(entry.key)
        if other is not None:
            raise InputError(
                f"same subject id {entry.key!r} as {other.path}; rename one (BIDS sub-/ses-/acq-/run- "
                f"entities or distinct file names)",
                path,
            )
        by_key[entry.key] = entry
    return sorted(by_key.values(), key=lambda s: s.key), found


def discover_inputs(items: list[str | os.PathLike]) -> list[SubjectInput]:
    """``find_subjects`` without the report, for callers with no ``--skip-bad``."""
    return find_subjects(items, skip_option=None)[0]


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
