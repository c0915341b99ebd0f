"""Write one corrected subject (``results.Corrected``) as BIDS derivatives; names in ``outputs``.

Every file is written atomically (``stylefa.fileio``); the ``desc-preproc_dwi.json`` sidecar
comes last and lists every output, so an interrupted subject has no sidecar and is redone
from the start on the next run.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from stylefa.errors import InputError
from stylefa.preprocess.config import PreprocessConfig, SubjectInputs
from stylefa.preprocess.outputs import (SIDECAR_VERSION, OutputNames, library_versions, sources, write_confounds,
                                        write_gradients)


def _save(path: Path, data: np.ndarray, affine: np.ndarray, header=None, dtype=np.float32) -> Path:
    from stylefa.data.nifti import make_volume, save_volume

    return save_volume(make_volume(data, affine, header), path, dtype=dtype)


def _confound_rows(corrected) -> list[dict]:
    from stylefa.preprocess.motion import motion_confounds

    columns = motion_confounds(corrected.transforms)
    rows, previous = [], None
    for index, (label, b) in enumerate(zip(corrected.volume_labels, corrected.bvals)):
        row = {"dir": label, "volume": index, "bval": float(b), **{k: float(v[index]) for k, v in columns.items()}}
        if label != previous:  # FD is undefined across the boundary of two series
            row["framewise_displacement"] = None
        rows.append(row)
        previous = label
    return rows


def _fit_fa(names: OutputNames, output: Path, config: PreprocessConfig) -> dict:
    """``stylefa fa``'s own writer on the preprocessed series (same names, sidecar and QC)."""
    from stylefa.data.fa_batch import SeriesTask, fit_series, series_from_path

    result = fit_series(SeriesTask(series_from_path(names.dwi), output, config.fa, False))
    if not result["ok"]:
        raise InputError(f"tensor fit of the preprocessed series failed: {result['problem']}", result["path"])
    return result["qc"]


def write_subject(subject: SubjectInputs, output: Path, config: PreprocessConfig, corrected,
                  started: tuple[float, float], bar=None):
    """Write every output of ``corrected``; returns the ``results.SubjectResult``. ``started``:
    ``(time.perf_counter(), time.process_time())`` at the subject's start, for its total times;
    ``bar``: the subject's progress bar, advanced by the tensor fit (its last step)."""
    from stylefa._version import __version__
    from stylefa.fileio import write_json
    from stylefa.preprocess.results import StepTimer, SubjectResult

    names = OutputNames(subject, output)
    names.folder.mkdir(parents=True, exist_ok=True)
    primary = corrected.series[0]
    affine, header = corrected.affine, primary.header
    written = [_save(names.dwi, corrected.data, affine, header)]
    write_gradients(names, corrected.bvals, corrected.bvecs)
    written += [names.bval, names.bvec, _save(names.mask, corrected.mask.astype(np.uint8), affine, dtype=np.uint8)]
    if corrected.field_hz is not None:
        written.append(_save(names.fieldmap, corrected.field_hz, affine))
        write_json(names.fieldmap.with_name(names.fieldmap.name.replace(".nii.gz", ".json")),
                   {"Units": "Hz", "Description": "B0 off-resonance field estimated from the reversed phase-encoding "
                                                  "pair (topup model); displacement = field * TotalReadoutTime voxels "
                                                  "along the phase-encoding axis",
                    "IntendedFor": [str(s.files.image) for s in corrected.series]})
    for label, images in corrected.dwirefs.items():
        for desc, image in images.items():
            if image is not None:
                written.append(_save(names.dwiref(label, desc), image, affine))
    for label, sigma in corrected.noise.items():
        written.append(_save(names.noise(label), sigma, affine))
    if corrected.transforms is not None:
        from stylefa.preprocess.motion import save_transforms

        save_transforms(corrected.transforms, names.transforms)
        write_confounds(names.confounds, _confound_rows(corrected))
        written += [names.transforms, names.confounds]
    with StepTimer(corrected.timings, "fa", bar):
        fa_qc = _fit_fa(names, output, config)
    written += [names.fa, names.fa.with_name(names.fa.name.replace(".nii.gz", ".json"))]
    qc = {**corrected.qc, "fa": fa_qc}
    if config.qc:
        from stylefa.preprocess.qc import subject_reportlets

        with StepTimer(corrected.timings, "qc", None):
            written += subject_reportlets(names, corrected, qc)
    corrected.timings["total"] = round(time.perf_counter() - started[0], 2)
    corrected.timings.setdefault("cpu", {})["total"] = round(time.process_time() - started[1], 2)
    relative = [str(Path(p).relative_to(output)) for p in written]
    steps = dict(corrected.steps)
    sidecar = {
        "Description": "Preprocessed diffusion-weighted series: " + ", ".join(
            k for k in ("denoise", "degibbs", "sdc", "motion", "resample") if "skipped" not in steps.get(k, {})),
        "Sources": [str(p) for s in corrected.series for p in s.files.paths()],
        "SkullStripped": False,
        "stylefa": {
            "version": __version__,
            "sidecar_version": SIDECAR_VERSION,
            "sources": sources(subject),
            "settings": config.to_dict(),
            "steps": steps,
            "skipped": {k: v["skipped"] for k, v in steps.items() if isinstance(v, dict) and "skipped" in v},
            "libraries": library_versions(),
            "qc": qc,
            "timings_s": corrected.timings,
            "outputs": relative,
        },
    }
    write_json(names.sidecar, sidecar)  # last: marks the subject finished
    return SubjectResult(subject.name, False, relative, qc, steps, corrected.timings)
