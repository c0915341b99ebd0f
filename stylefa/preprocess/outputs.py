"""Output names (BIDS derivatives, NiPreps naming) and writers of ``stylefa preprocess``.

Per subject, in ``OUT/sub-X/[ses-Y/]dwi/`` (``NAME`` = ``sub-X[_ses-Y][_acq-Z][_run-N]``)::

    NAME_desc-preproc_dwi.nii.gz / .bval / .bvec / .json   corrected series (both polarities
                                                            concatenated when both are DWI)
    NAME_desc-brain_mask.nii.gz                              brain mask of the corrected series
    NAME_fieldmap.nii.gz / .json                             B0 field, Hz (with SDC)
    NAME_dir-L_desc-orig_dwiref.nii.gz                       mean b=0 of polarity L before SDC
    NAME_dir-L_desc-sdc_dwiref.nii.gz                        ... after SDC (same grid)
    NAME_dir-L_desc-mppca_noise.nii.gz                       MP-PCA noise map (sigma, signal units)
    NAME_from-orig_to-dwiref_mode-image_xfm.txt              per-volume motion/eddy affines (ITK, nitransforms)
    NAME_desc-confounds_timeseries.tsv / .json               rotations, translations, FD per volume
    NAME_desc-DTI_FA.nii.gz / .json                          FA exactly as ``stylefa fa`` writes it

and ``OUT/sub-X/figures/*.png`` (QC reportlets). The ``desc-preproc_dwi.json`` sidecar is written
last: its presence with the same sources and settings marks the subject finished (resume).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stylefa.preprocess.config import PreprocessConfig, SubjectInputs

SIDECAR_VERSION = 1
CONFOUND_COLUMNS = ("dir", "volume", "bval", "trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
                    "framewise_displacement")  # then the eddy parameters (stylefa.preprocess.motion)


def with_dir(name: str, label: str) -> str:
    """``name`` with ``dir-<label>`` at its BIDS place (before ``run-``)."""
    if "_run-" in name:
        head, tail = name.split("_run-", 1)
        return f"{head}_dir-{label}_run-{tail}"
    return f"{name}_dir-{label}"


class OutputNames:
    """Paths of one subject's outputs."""

    def __init__(self, subject: SubjectInputs, output: Path):
        self.folder = subject.folder(output)
        self.figures = subject.figures(output)
        self.name = subject.name

    def _path(self, suffix: str) -> Path:
        return self.folder / f"{self.name}_{suffix}"

    @property
    def dwi(self) -> Path:
        return self._path("desc-preproc_dwi.nii.gz")

    @property
    def bval(self) -> Path:
        return self._path("desc-preproc_dwi.bval")

    @property
    def bvec(self) -> Path:
        return self._path("desc-preproc_dwi.bvec")

    @property
    def sidecar(self) -> Path:
        return self._path("desc-preproc_dwi.json")

    @property
    def mask(self) -> Path:
        return self._path("desc-brain_mask.nii.gz")

    @property
    def fieldmap(self) -> Path:
        return self._path("fieldmap.nii.gz")

    @property
    def confounds(self) -> Path:
        return self._path("desc-confounds_timeseries.tsv")

    @property
    def fa(self) -> Path:
        return self._path("desc-DTI_FA.nii.gz")

    def per_polarity(self, label: str, suffix: str) -> Path:
        return self.folder / f"{with_dir(self.name, label)}_{suffix}"

    def dwiref(self, label: str, desc: str) -> Path:
        return self.per_polarity(label, f"desc-{desc}_dwiref.nii.gz")

    def noise(self, label: str) -> Path:
        return self.per_polarity(label, "desc-mppca_noise.nii.gz")

    @property
    def transforms(self) -> Path:
        return self._path("from-orig_to-dwiref_mode-image_xfm.txt")

    def figure(self, desc: str) -> Path:
        return self.figures / f"{self.name}_desc-{desc}_dwi.png"


def identity(path: Path) -> dict:
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def sources(subject: SubjectInputs) -> dict:
    series = [subject.dwi] + ([subject.reverse] if subject.reverse else [])
    return {str(p): identity(p) for s in series for p in s.paths() if Path(p).is_file()}


def finished(subject: SubjectInputs, output: Path, config: PreprocessConfig) -> dict | None:
    """The sidecar of a previous complete run with the same sources and settings, else None."""
    names = OutputNames(subject, output)
    if not names.sidecar.is_file():
        return None
    try:
        record = json.loads(names.sidecar.read_text())
    except (OSError, ValueError):
        return None
    stylefa = record.get("stylefa", {})
    if stylefa.get("sources") != sources(subject) or stylefa.get("settings") != json.loads(json.dumps(config.to_dict())):
        return None
    if not all((Path(output) / p).is_file() for p in stylefa.get("outputs", [])):
        return None
    return record


def write_gradients(names: OutputNames, bvals: np.ndarray, bvecs: np.ndarray) -> None:
    """FSL-style ``.bval`` (one row) and ``.bvec`` (3 rows, image axes as dcm2niix writes them)."""
    from stylefa.fileio import write_text

    write_text(names.bval, " ".join(f"{b:g}" for b in bvals) + "\n")
    write_text(names.bvec, "\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.asarray(bvecs).T) + "\n")


def write_confounds(path: Path, rows: list[dict]) -> None:
    """fMRIPrep-style confounds: tab-separated, ``n/a`` where undefined (FD of a series' first volume)."""
    from stylefa.fileio import write_json, write_text

    def cell(value):
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            return "n/a"
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    columns = list(CONFOUND_COLUMNS) + sorted({k for r in rows for k in r} - set(CONFOUND_COLUMNS))
    lines = ["\t".join(columns)] + ["\t".join(cell(r.get(c)) for c in columns) for r in rows]
    write_text(path, "\n".join(lines) + "\n")
    write_json(path.with_name(path.name.replace(".tsv", ".json")), {
        "trans_x": {"Description": "translation along x (mm), RAS world axes", "Units": "mm"},
        "rot_x": {"Description": "rotation about x (rad)", "Units": "rad"},
        "framewise_displacement": {"Description": "Power et al. 2012: sum of absolute volume-to-volume changes of "
                                                  "the 6 rigid parameters, rotations as arc length on a 50 mm sphere",
                                   "Units": "mm"},
        "eddy_*": {"Description": "eddy-current parameters along the phase-encoding axis (see the DWI sidecar)"},
    })


def write_description(output: Path) -> None:
    """``dataset_description.json`` of the derivatives folder (written once)."""
    from stylefa.data.fa_batch import write_derivative_description

    write_derivative_description(output, "stylefa preprocessed DWI",
                                 "stylefa preprocess: MP-PCA denoising, Gibbs removal, topup-model SDC, "
                                 "motion/eddy correction, one resampling, tensor fit (FA)")


def library_versions() -> dict:
    import importlib.metadata as metadata

    versions = {}
    for package in ("stylefa", "dipy", "nibabel", "numpy", "scipy", "torch", "nitransforms"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
