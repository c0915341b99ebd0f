"""BIDS-derivatives names, sidecars and ``dataset_description.json`` for slice volumes.

Used by ``stylefa study`` and ``stylefa project`` (both write ``OUT/derivatives/stylefa``). File
names follow the BIDS entity order (``sub``, ``ses``, ``acq``, ``space``, ``desc``, then the
suffix); labels are letters and digits. Every volume gets a JSON sidecar of the same name.
Volumes sit on the grid their slices were cut from (``stylefa.data.volumes.SliceSpace``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.data.volumes import SliceSpace, save_nifti
from stylefa.errors import InputError

SPACE = "MNI152"
DATATYPE = "dwi"
BIDS_VERSION = "1.10.0"
ROOT_NAME = Path("derivatives") / "stylefa"
SPATIAL_REFERENCE = ("world (RAS mm) coordinates of FSL's MNI152 template (MNI152NLin6Asym), the space the "
                     "FA was registered to; voxels are the slice pixels, planes the slice levels")
# BIDS entity order (schema: objects.entities, rules.entities) of the entities used here.
ENTITY_ORDER = ("sub", "ses", "acq", "space", "desc")


def bids_label(text: str) -> str:
    """A BIDS label (letters and digits only): ``.`` becomes ``p``, other characters are dropped."""
    return re.sub(r"[^A-Za-z0-9]", "", str(text).replace(".", "p"))


def derivative_name(entities: dict[str, str | None], suffix: str, extension: str = ".nii.gz") -> str:
    """``key-value`` pairs in BIDS order (``None`` values left out), then ``_suffix`` and extension."""
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"unknown entities {sorted(unknown)}")
    parts = [f"{key}-{entities[key]}" for key in ENTITY_ORDER if entities.get(key)]
    return "_".join(parts + [suffix]) + extension


@dataclass(frozen=True)
class ScanLabels:
    sub: str
    ses: str | None

    def folder(self, root: Path) -> Path:
        out = root / f"sub-{self.sub}"
        return (out / f"ses-{self.ses}" if self.ses else out) / DATATYPE


def scan_labels(scans: dict[str, str]) -> dict[str, ScanLabels]:
    """BIDS ``sub``/``ses`` labels per scan (``{scan: subject}``), unique over the scans.

    BIDS ids (``sub-01``, ``sub-01_ses-02``) keep their labels; other file stems give the
    first ``_``-separated token (``subj-tractseg_space-MNI_FA`` -> ``subjtractseg``), or the
    whole stem where that first token would be shared.
    """
    def parse(scan: str, subject: str, whole: bool) -> ScanLabels:
        if subject.startswith("sub-"):
            ses = scan[len(subject) + 1 :] if scan.startswith(subject + "_ses-") else None
            return ScanLabels(bids_label(subject[4:]), bids_label(ses[4:]) if ses else None)
        stem = re.sub(r"_FA$", "", scan)
        return ScanLabels(bids_label(stem if whole else stem.split("_")[0]), None)

    out = {scan: parse(scan, subject, False) for scan, subject in scans.items()}
    if len(set(out.values())) < len(out):
        out = {scan: parse(scan, subject, True) for scan, subject in scans.items()}
    seen: dict[ScanLabels, str] = {}
    for scan, labels in out.items():
        if not labels.sub:
            raise InputError(f"scan {scan!r} gives an empty BIDS subject label")
        if labels in seen:
            raise InputError(f"scans {seen[labels]!r} and {scan!r} give the same BIDS subject/session labels")
        seen[labels] = scan
    return out


def dataset_description(source: str, name: str) -> dict:
    """``dataset_description.json`` of a derivative dataset; ``source`` (free text) names the inputs."""
    from stylefa._version import __version__

    # BIDS SourceDatasets entries take only DOI/URL/Version, so the inputs are described in
    # GeneratedBy's free-text Description instead.
    return {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "stylefa", "Version": __version__,
                         "Description": "projection of FA slices into a StyleGAN2-ADA generator's latent space; "
                                        f"inputs: {source}"}],
    }


def json_safe(obj):
    """Non-finite floats become ``null`` (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


class DerivativeWriter:
    """Writes volumes of one ``SliceSpace`` under ``root`` with their sidecars, atomically."""

    def __init__(self, root: Path, space: SliceSpace, common: dict, source: str, name: str):
        from stylefa.fileio import write_json

        self.root = Path(root)
        self.space = space
        self.common = common
        self.files: list[Path] = []
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / "dataset_description.json", dataset_description(source, name))

    def put(self, folder: Path, entities: dict, desc: str, volume: np.ndarray, sidecar: dict,
            suffix: str = "FA", dtype=np.float32) -> Path:
        """Write ``volume`` (``[R, R, nz]``) as ``folder/<entities>_space-MNI152_desc-<desc>_<suffix>.nii.gz``
        and its ``.json`` (``sidecar`` + the common fields); returns the NIfTI's path."""
        from stylefa.fileio import write_json

        folder.mkdir(parents=True, exist_ok=True)
        name = derivative_name({**entities, "space": SPACE, "desc": desc}, suffix)
        save_nifti(self.space.nifti(volume, dtype), folder / name)
        record = {"SpatialReference": SPATIAL_REFERENCE, **sidecar, **self.common}
        write_json(folder / name.replace(".nii.gz", ".json"), json_safe(record))
        self.files.append(folder / name)
        return folder / name
