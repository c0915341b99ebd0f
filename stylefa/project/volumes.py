"""``stylefa project`` results as NIfTI volumes in a BIDS-derivatives layout.

For targets cut from an FA NIfTI (``--nifti``) or a prepared dataset (``--data``), whose
geometry is known, every scan gets, on the grid its slices were cut from
(``stylefa.data.volumes.SliceSpace``) under ``OUT/derivatives/stylefa/sub-<label>/[ses-<label>/]dwi/``:
``..._space-MNI152_desc-input_FA.nii.gz`` (the targets), ``desc-projection`` (clipped to
[0, 1]), ``desc-difference`` (projection - input) and ``desc-absdiff``, with JSON sidecars
(network sha256, projector and perceptual settings, per-slice SSIM/MSE). Levels not
projected are NaN. ``--targets`` images have no geometry and get no volumes.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from stylefa.data.derivatives import ROOT_NAME, DerivativeWriter, scan_labels
from stylefa.data.volumes import SliceSpace
from stylefa.project.outputs import RESULT_FILE
from stylefa.project.targets import TargetSpec

DESCRIPTIONS = {
    "input": "the FA slice the projector was given (FA scale)",
    "projection": "the generator's reconstruction of the input (FA scale, clipped to [0, 1])",
    "difference": "projection - input (FA units)",
    "absdiff": "|projection - input| (FA units)",
}


def _scan_subject(scan: str) -> str:
    # scan keys are "<subject>" or "<subject>_ses-<label>" (stylefa.data.subjects.SubjectInput.key)
    return scan.split("_ses-")[0] if scan.startswith("sub-") else scan


def write_projection_volumes(outdir: Path, specs: Sequence[TargetSpec], settings: dict) -> Path | None:
    """Volumes of the finished targets that have a geometry; returns the derivatives root (None: none)."""
    outdir = Path(outdir)
    placed = [s for s in specs if s.plane is not None and s.scan is not None
              and (outdir / s.target_id / RESULT_FILE).is_file()]
    if not placed:
        return None
    base = placed[0].plane
    if any(dataclasses.replace(s.plane, levels_mm=base.levels_mm) != base for s in placed):
        warnings.warn("targets were cut on different in-plane grids; no volumes written")
        return None
    levels = tuple(sorted({float(z) for s in placed for z in s.plane.levels_mm}))
    space = SliceSpace.of(dataclasses.replace(base, levels_mm=levels))
    common = {"Network": {"sha256": settings["network_sha256"]}, "Projector": settings["project"],
              "Perceptual": settings["perceptual"], "SliceGeometry": space.grid.to_dict()}
    writer = DerivativeWriter(outdir / ROOT_NAME, space, common, source="stylefa project targets",
                              name="stylefa projections: FA slices, their StyleGAN2 projections and difference maps")
    by_scan: dict[str, list[TargetSpec]] = {}
    for spec in placed:
        by_scan.setdefault(spec.scan, []).append(spec)
    labels = scan_labels({scan: _scan_subject(scan) for scan in by_scan})
    for scan, scan_specs in by_scan.items():
        inputs, projections, metrics = {}, {}, []
        for spec in scan_specs:
            z = float(spec.plane.levels_mm[0])
            folder = outdir / spec.target_id
            inputs[z] = np.load(folder / "target.npy", allow_pickle=False)
            projections[z] = np.clip(np.load(folder / "projected.npy", allow_pickle=False), 0, 1)
            summary = json.loads((folder / RESULT_FILE).read_text()).get("summary", {})
            metrics.append({"target_id": spec.target_id, "z_mm": z, "source": spec.source,
                            **{k: summary.get(k) for k in ("ssim", "mse", "final_distance")}})
        given, projection = space.to_volume(inputs), space.to_volume(projections)
        difference = projection - given
        sidecar = {"Scan": scan, "ProjectedLevels_mm": sorted(inputs), "EmptyLevels": "NaN (not projected)",
                   "Metrics": metrics}
        folder = labels[scan].folder(writer.root)
        entities = {"sub": labels[scan].sub, "ses": labels[scan].ses}
        for desc, volume in (("input", given), ("projection", projection), ("difference", difference),
                             ("absdiff", np.abs(difference))):
            writer.put(folder, entities, desc, volume, {"Description": DESCRIPTIONS[desc], **sidecar})
    return writer.root
