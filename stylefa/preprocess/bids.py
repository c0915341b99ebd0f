"""Reversed phase-encoding pairs found the BIDS way.

``find_files`` is the only code that walks a folder (through the project's one input search,
``stylefa.discovery``); ``pair_series`` works on the list of files it found:

- DWI series are ``sub-X/[ses-Y/]dwi/*_dwi.nii[.gz]``; series that differ only in their ``dir-``
  entity (``sub-01_dir-AP_dwi`` / ``sub-01_dir-PA_dwi``) are one subject's pair, both full DWI
  series (both are corrected and concatenated into one output);
- a single DWI series is paired with a b=0 EPI ``fmap/*_epi.nii[.gz]`` whose sidecar's
  ``IntendedFor`` names it (paths relative to the subject folder, or BIDS URIs ``bids::...``);
- otherwise the series is preprocessed without SDC (the output's sidecar says so).

Which series is which polarity comes from the sidecars' ``PhaseEncodingDirection`` (checked
later), never from the ``dir-`` label, which BIDS leaves free-form.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from stylefa.data.bad import BadSubject
from stylefa.data.fa_batch import DWI_SUFFIXES, NIFTI_SUFFIXES, series_from_path
from stylefa.preprocess.config import SeriesFiles, SubjectInputs

SKIPPED_FOLDERS = ("derivatives", "sourcedata", "code")
EPI_SUFFIXES = ("_epi.nii.gz", "_epi.nii")
_DIR_ENTITY = re.compile(r"_dir-([a-zA-Z0-9]+)")


def find_files(root: Path) -> tuple[list[Path], list]:
    """The DWI series and EPI field maps below ``root`` (sorted; found by ``stylefa.discovery``:
    folder links followed once, hidden folders and ``derivatives``, ``sourcedata``, ``code``
    skipped) and every input that is there by name but cannot be read (``discovery.Skipped``: a dangling
    symlink, e.g. a DataLad/git-annex file not fetched, with the ``datalad get`` hint; an
    unreadable folder)."""
    from stylefa.discovery import UNAVAILABLE, DiscoveryRules, discover_files

    rules = DiscoveryRules(suffixes=DWI_SUFFIXES + EPI_SUFFIXES, skip_folders=SKIPPED_FOLDERS,
                           what="DWI series (sub-*/[ses-*/]dwi/*_dwi.nii.gz)")
    found = discover_files([root], rules)
    return found.paths, [s for s in found.skipped if s.kind in UNAVAILABLE]


def _strip_nifti(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _sidecar(image: Path) -> Path | None:
    path = image.with_name(_strip_nifti(image.name) + ".json")
    return path if path.is_file() else None


def _label(image: Path) -> str | None:
    match = _DIR_ENTITY.search(_strip_nifti(image.name))
    return match.group(1) if match else None


def dwi_series(image: Path, root: Path | None = None) -> SeriesFiles:
    """A DWI file with its BIDS gradient files and sidecar (siblings of the same stem)."""
    series = series_from_path(image, root)
    return SeriesFiles(image=image, bval=series.bval, bvec=series.bvec, sidecar=_sidecar(image), label=_label(image))


def output_name(image: Path, root: Path | None = None) -> tuple[str, str, str | None]:
    """(output stem, subject, session) of a DWI file: its BIDS entities without ``dir-``; a file
    without a ``sub-`` entity becomes ``sub-<its name, letters and digits only>`` (derivatives are BIDS)."""
    series = series_from_path(image, root)
    if not series.subject.startswith("sub-"):
        label = re.sub(r"[^A-Za-z0-9]", "", _strip_nifti(image.name).removesuffix("_dwi")) or "01"
        return f"sub-{label}", f"sub-{label}", None
    return _DIR_ENTITY.sub("", series.name), series.subject, series.session


def _intended_for(sidecar: Path, root: Path) -> list[str]:
    try:
        value = json.loads(sidecar.read_text()).get("IntendedFor", [])
    except (OSError, ValueError, AttributeError):
        return []
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [str(v).removeprefix("bids::").lstrip("/") for v in values]


def _names(image: Path, root: Path) -> set[str]:
    """The ways ``IntendedFor`` can name ``image``: relative to the dataset and to the subject."""
    relative = image.relative_to(root).as_posix()
    names = {relative}
    parts = relative.split("/")
    if parts and parts[0].startswith("sub-"):
        names.add("/".join(parts[1:]))
    return names


def pair_series(files: list[Path], root: Path, unavailable: list = ()) -> tuple[list[SubjectInputs], list[BadSubject]]:
    """Group BIDS files into subjects: each DWI series (or ``dir-`` pair) with its reverse.

    Returns the subjects (sorted by name) and the problems found (``unavailable`` inputs, more
    than two series that differ only in ``dir-``, an output name used twice)."""
    bad = [BadSubject(item.path, item.reason) for item in unavailable]
    groups: dict[str, list[Path]] = {}
    for path in files:
        if path.parent.name == "dwi" and path.name.endswith(DWI_SUFFIXES):
            name = output_name(path, root)[0]
            groups.setdefault(name, []).append(path)
    epis = [p for p in files if p.parent.name == "fmap" and _strip_nifti(p.name).endswith("_epi")
            and p.name.endswith(NIFTI_SUFFIXES)]
    subjects = []
    for name, images in sorted(groups.items()):
        if len(images) > 2:
            bad.append(BadSubject(images[0], f"{len(images)} DWI series differ only in their dir- entity "
                                             f"({', '.join(p.name for p in images)}); expected one or a pair", name))
            continue
        _, subject, session = output_name(images[0], root)
        reverse = dwi_series(images[1], root) if len(images) == 2 else _epi_for(images[0], epis, root)
        subjects.append(SubjectInputs(name=name, subject=subject, session=session,
                                      dwi=dwi_series(images[0], root), reverse=reverse))
    return subjects, bad


def _epi_for(image: Path, epis: list[Path], root: Path) -> SeriesFiles | None:
    names = _names(image, root)
    for epi in epis:
        sidecar = _sidecar(epi)
        if sidecar is not None and names & set(_intended_for(sidecar, root)):
            return SeriesFiles(image=epi, sidecar=sidecar, label=_label(epi))
    return None


def discover_subjects(root: Path) -> tuple[list[SubjectInputs], list[BadSubject]]:
    """``pair_series(find_files(root))``."""
    files, unavailable = find_files(root)
    return pair_series(files, root, unavailable)
