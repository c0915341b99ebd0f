"""``stylefa fa`` over a cohort: many DWI series -> FA maps named the BIDS-derivatives way.

Inputs are files, shell globs or folders. A folder is searched recursively for BIDS DWI
series, ``sub-<label>/[ses-<label>/]dwi/*_dwi.nii[.gz]`` (anything ending in ``_dwi.nii.gz``
anywhere below it, folder links followed; ``derivatives/``, ``sourcedata/`` and hidden folders
such as ``.git`` are skipped; broken symlinks, i.e. git-annex content not fetched, are errors
unless ``--skip-bad``: ``stylefa.discovery``). Each
series' gradients are its BIDS siblings: ``X_dwi.bval`` and ``X_dwi.bvec`` beside
``X_dwi.nii.gz`` (the same stem), else the dataset-level ``dwi.bval``/``dwi.bvec`` at the
folder given (BIDS inheritance, top level only).

Outputs (a BIDS-derivatives folder)::

    OUT/dataset_description.json                      (DatasetType "derivative")
    OUT/sub-X/[ses-Y/]dwi/sub-X[_ses-Y][_acq-Z][_run-N]_desc-DTI_FA.nii.gz
                                                   ..._desc-DTI_FA.json   (sidecar)
                                                   ..._desc-DTI_MD.nii.gz (with --md)

The sidecar holds the source files, the fit's settings, the gradient table's summary and QC
numbers (mask size, clipped voxels, FA statistics). The FA maps stay in the subject's own
(scanner) space, so no ``space-`` entity is written (BIDS: same space as the source);
``stylefa prepare OUT --register`` takes them to the template. Series whose outputs exist
and whose sidecar records the same source files and settings are skipped (resume). Every
series is tried; the bad ones are reported together at the end.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.data.bad import BadSubject, BadSubjectsError
from stylefa.data.fa import FAConfig
from stylefa.discovery import (
    NIFTI_SUFFIXES,
    Discovery,
    DiscoveryRules,
    discover_files,
    missing_file_problem,
    nifti_stem,
)
from stylefa.errors import InputError
from stylefa.fileio import ensure_writable_folder

DWI_SUFFIXES = ("_dwi.nii.gz", "_dwi.nii")
SKIPPED_FOLDERS = ("derivatives", "sourcedata")
# Entities kept in output names, in the BIDS order (sub, ses, acq, ce, rec, dir, run).
_KEPT_ENTITIES = ("sub", "ses", "acq", "ce", "rec", "dir", "run")
_ENTITY = re.compile(r"(?:^|_)([a-zA-Z]+)-([a-zA-Z0-9]+)(?=_|$)")
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class DWISeries:
    """One DWI series and its gradient files; ``name`` is its output stem (BIDS entities)."""

    dwi: Path
    bval: Path
    bvec: Path
    name: str  # e.g. "sub-01_ses-1_acq-ortho"
    subject: str  # "sub-01" (or the file stem when the name has no sub- entity)
    session: str | None

    def folder(self, output: Path) -> Path:
        """``OUT/sub-X/[ses-Y/]dwi`` (``OUT`` itself for non-BIDS names)."""
        if not self.subject.startswith("sub-"):
            return output
        base = output / self.subject
        return (base / self.session if self.session else base) / "dwi"

    def fa_path(self, output: Path) -> Path:
        return self.folder(output) / f"{self.name}_desc-DTI_FA.nii.gz"

    def sidecar_path(self, output: Path) -> Path:
        return self.folder(output) / f"{self.name}_desc-DTI_FA.json"

    def md_path(self, output: Path) -> Path:
        return self.folder(output) / f"{self.name}_desc-DTI_MD.nii.gz"

    def mask_path(self, output: Path) -> Path:
        return self.folder(output) / f"{self.name}_desc-brain_mask.nii.gz"


def _stem(path: Path) -> str:
    stem = nifti_stem(path)
    return stem[: -len("_dwi")] if stem.endswith("_dwi") else stem


def _gradient_files(dwi: Path, root: Path | None) -> tuple[Path, Path]:
    """The BIDS siblings of ``dwi`` (same stem), else ``root/dwi.bval``/``dwi.bvec``."""
    base = nifti_stem(dwi)
    bval, bvec = dwi.with_name(f"{base}.bval"), dwi.with_name(f"{base}.bvec")
    if not bval.is_file() and not bvec.is_file() and root is not None:
        if (root / "dwi.bval").is_file() and (root / "dwi.bvec").is_file():
            return root / "dwi.bval", root / "dwi.bvec"
    return bval, bvec


def series_from_path(dwi: Path, root: Path | None = None) -> DWISeries:
    """Name a DWI file by its BIDS entities (or its stem) and find its gradient files."""
    stem = _stem(dwi)
    entities = dict(m.groups() for m in _ENTITY.finditer(stem))
    bval, bvec = _gradient_files(dwi, root)
    if "sub" not in entities:
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "series"
        return DWISeries(dwi, bval, bvec, name=safe, subject=safe, session=None)
    name = "_".join(f"{key}-{entities[key]}" for key in _KEPT_ENTITIES if key in entities)
    session = f"ses-{entities['ses']}" if "ses" in entities else None
    return DWISeries(dwi, bval, bvec, name=name, subject=f"sub-{entities['sub']}", session=session)


# Folders: BIDS DWI series only; globs: any NIfTI (non-BIDS names); hidden folders never (discovery).
DWI_RULES = DiscoveryRules(suffixes=DWI_SUFFIXES, glob_suffixes=NIFTI_SUFFIXES, skip_folders=SKIPPED_FOLDERS,
                           what="DWI series (sub-*/[ses-*/]dwi/*_dwi.nii.gz)")


def find_series(items: list[str | os.PathLike], skip_bad: bool = False) -> tuple[list[DWISeries], Discovery]:
    """Expand files/globs/BIDS folders (``stylefa.discovery``) into DWI series with unique output
    names, and the discovery report. Broken symlinks raise ``InputError`` unless ``skip_bad``."""
    found = discover_files(items, DWI_RULES)
    found.check_available(skip_bad)
    by_name: dict[str, DWISeries] = {}
    for item in found.found:
        series = series_from_path(item.path, item.root)
        other = by_name.get(series.name)
        if other is not None:
            raise InputError(f"same output name {series.name!r} as {other.dwi}; give the series distinct BIDS "
                             f"entities (sub-, ses-, acq-, run-) or file names", item.path)
        by_name[series.name] = series
    return sorted(by_name.values(), key=lambda s: s.name), found


def discover_series(items: list[str | os.PathLike]) -> list[DWISeries]:
    """``find_series`` without the report."""
    return find_series(items)[0]


# ----------------------------------------------------------------------------- one series


def _identity(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _sources(series: DWISeries) -> dict:
    return {kind: _identity(p) if p.is_file() else str(p)
            for kind, p in (("dwi", series.dwi), ("bval", series.bval), ("bvec", series.bvec))}


@dataclass(frozen=True)
class SeriesTask:
    series: DWISeries
    output: Path
    config: FAConfig
    write_md: bool
    write_mask: bool = False


def _finished(task: SeriesTask) -> dict | None:
    """The sidecar of a previous run with the same sources and settings, if its outputs exist."""
    sidecar = task.series.sidecar_path(task.output)
    fa = task.series.fa_path(task.output)
    if not (sidecar.is_file() and fa.is_file()) or (task.write_md and not task.series.md_path(task.output).is_file()):
        return None
    if task.write_mask and not task.series.mask_path(task.output).is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    stylefa = record.get("stylefa", {})
    if stylefa.get("sources") != _sources(task.series) or stylefa.get("settings") != task.config.to_dict():
        return None
    return record


def fa_qc(result) -> dict:
    """QC numbers of a fit: mask size and volume, clipped voxels, FA statistics inside the mask."""
    fa = result.fa.data[result.mask]
    voxel_ml = float(abs(np.linalg.det(result.fa.affine[:3, :3]))) / 1000.0
    return {
        "mask_voxels": int(result.mask.sum()),
        "mask_volume_ml": round(int(result.mask.sum()) * voxel_ml, 1),
        "automatic_mask": bool(result.auto_mask),
        "clipped_voxels": int(result.clipped_voxels),
        "fa_mean": float(fa.mean()) if fa.size else None,
        "fa_median": float(np.median(fa)) if fa.size else None,
        "fa_fraction_above_0p9": float(np.mean(fa > 0.9)) if fa.size else None,
    }


def fit_series(task: SeriesTask) -> dict:
    """Fit one series and write its outputs (atomically); a user error comes back as data.

    Runs in a worker process, so one bad series does not stop the others.
    """
    from stylefa._version import __version__
    from stylefa.data.fa import FIT_DESCRIPTIONS, fa_from_files, mask_volume
    from stylefa.data.nifti import save_volume
    from stylefa.fileio import write_json

    series = task.series
    previous = _finished(task)
    if previous is not None:
        return {"ok": True, "name": series.name, "reused": True, "qc": previous["stylefa"]["qc"]}
    try:
        if not series.bval.is_file() or not series.bvec.is_file():
            missing = series.bval if not series.bval.is_file() else series.bvec
            if os.path.islink(missing):  # a git-annex file not fetched
                raise InputError(missing_file_problem(missing), missing)
            raise InputError(f"no gradient file beside the DWI ({missing.name}; BIDS: X_dwi.bval and X_dwi.bvec "
                             f"beside X_dwi.nii.gz)", series.dwi)
        result = fa_from_files(series.dwi, series.bval, series.bvec, None, task.config)
    except InputError as exc:
        return {"ok": False, "name": series.name, "path": str(exc.path or series.dwi), "problem": exc.problem}
    folder = series.folder(task.output)
    folder.mkdir(parents=True, exist_ok=True)
    qc = fa_qc(result)
    save_volume(result.fa, series.fa_path(task.output))
    if task.write_md:
        save_volume(result.md, series.md_path(task.output))
    if task.write_mask:
        save_volume(mask_volume(result), series.mask_path(task.output), dtype=np.uint8)
    sidecar = {
        "Description": f"Fractional anisotropy of a diffusion-tensor fit ({FIT_DESCRIPTIONS[task.config.fit_method]}), "
                       "clipped to [0, 1], 0 outside the brain mask",
        "Sources": [str(series.dwi), str(series.bval), str(series.bvec)],
        "Units": "arbitrary (FA, 0-1)",
        "stylefa": {
            "version": __version__,
            "sidecar_version": SIDECAR_VERSION,
            "sources": _sources(series),
            "settings": task.config.to_dict(),
            "gradients": result.gradients,
            "qc": qc,
        },
    }
    write_json(series.sidecar_path(task.output), sidecar)  # last: marks the series finished
    return {"ok": True, "name": series.name, "reused": False, "qc": qc}


# ----------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class BatchResult:
    output: Path
    written: list[str]
    reused: list[str]
    skipped: list[BadSubject]
    discovery: Discovery | None = None  # what the input search met and left out


def write_derivative_description(output: Path, name: str, description: str) -> None:
    """``dataset_description.json`` of a BIDS-derivatives folder (BIDS 1.9, "Derived dataset and
    pipeline description"), written once: a folder that has one keeps it."""
    from stylefa._version import __version__
    from stylefa.fileio import write_json

    path = Path(output) / "dataset_description.json"
    if path.is_file():
        return
    write_json(path, {"Name": name, "BIDSVersion": "1.9.0", "DatasetType": "derivative",
                      "GeneratedBy": [{"Name": "stylefa", "Version": __version__, "Description": description}]})


def _run(tasks: list[SeriesTask], workers: int) -> list[dict]:
    from stylefa.data.workers import run_in_workers

    return run_in_workers(fit_series, tasks, workers, desc="fa", unit="series")


def fa_cohort(inputs: list[str | os.PathLike], output: str | os.PathLike, config: FAConfig | None = None,
              workers: int = 1, write_md: bool = False, skip_bad: bool = False,
              write_mask: bool = False) -> BatchResult:
    """FA maps for every DWI series in ``inputs`` (files, globs, BIDS folders) under ``output``.

    Good series are always written (so a rerun resumes); bad ones are collected and raised
    together as ``BadSubjectsError`` unless ``skip_bad``.
    """
    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    config = config or FAConfig()
    output = Path(output)
    series, found = find_series(inputs, skip_bad)
    if output.exists() and not output.is_dir():
        raise InputError("output must be a folder when several DWI series are given", output)
    ensure_writable_folder(output)
    write_derivative_description(output, "stylefa FA maps", "stylefa fa: diffusion-tensor fit -> FA (the fit: "
                                 "each sidecar's stylefa.settings.fit_method)")
    results = _run([SeriesTask(s, output, config, write_md, write_mask) for s in series], workers)
    bad = [BadSubject(s.path, s.reason) for s in found.unavailable]  # broken symlinks, with skip_bad
    bad += [BadSubject(Path(r["path"]), r["problem"], r["name"]) for r in results if not r["ok"]]
    good = [r for r in results if r["ok"]]
    if bad and not skip_bad:
        raise BadSubjectsError(bad, len(good))
    return BatchResult(
        output=output,
        written=[r["name"] for r in good if not r["reused"]],
        reused=[r["name"] for r in good if r["reused"]],
        skipped=bad,
        discovery=found,
    )
