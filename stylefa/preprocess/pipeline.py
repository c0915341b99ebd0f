"""One subject: raw DWI (+ reversed-PE series) -> preprocessed DWI, field, confounds, QC, FA.

Order (MRtrix3 ``dwifslpreproc``, QSIPrep): MP-PCA denoising and Gibbs removal of each series
-> SDC: the field from the mean b=0 of both polarities (``stylefa.preprocess.sdc``, topup model)
-> the output series: the DWI series, and the reverse too when it is a full DWI series (both
are corrected and CONCATENATED into one ``desc-preproc_dwi``, as QSIPrep and ``dwifslpreproc
-rpe_all`` do; a b=0-only reverse serves the field only) -> head motion + eddy currents of every
volume against leave-one-out predictions, b-vectors rotated (``stylefa.preprocess.motion``)
-> one resampling per volume (motion/eddy affine + SDC displacement, Jacobian-modulated)
-> brain mask (dipy ``median_otsu``) -> ``stylefa fa``'s tensor fit and writers.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from stylefa.errors import InputError
from stylefa.preprocess.config import PreprocessConfig, SubjectInputs
from stylefa.preprocess.inputs import LoadedSeries, load_subject
from stylefa.preprocess.results import Corrected, StepTimer, SubjectResult

NO_PAIR = ("no reversed phase-encoding series (no dir- pair in dwi/, no fmap/*_epi.nii.gz whose IntendedFor names "
           "the DWI, no --reverse-pe)")


class SDCSkippedWarning(UserWarning):
    """SDC could not run; the message names what is missing."""


def _phase_encodings(series: LoadedSeries):
    return None if series.pe is None else series.pe.phase_encoding()


def _denoise_and_degibbs(series: list[LoadedSeries], config: PreprocessConfig, out: Corrected, bar) -> None:
    from stylefa.preprocess.denoise import MIN_VOLUMES_FOR_MPPCA, denoise_mppca, remove_gibbs
    from stylefa.preprocess.sidecars import slice_axis

    with StepTimer(out.timings, "denoise", bar):
        if not config.denoise:
            out.steps["denoise"] = {"skipped": "--no-denoise"}
        else:
            out.steps["denoise"] = {"method": "MP-PCA (Veraart 2016), dipy.denoise.localpca.mppca",
                                    "patch_radius": config.mppca_patch_radius, "per_series": {}}
            for s in series:
                s.data, sigma = denoise_mppca(s.data, config.mppca_patch_radius)
                if sigma is None:
                    out.steps["denoise"]["per_series"][s.label] = (
                        f"skipped: {s.data.shape[3]} volume(s) < {MIN_VOLUMES_FOR_MPPCA}")
                else:
                    out.noise[s.label] = sigma
                    out.steps["denoise"]["per_series"][s.label] = {"noise_median": float(np.median(sigma[sigma > 0]))}
    with StepTimer(out.timings, "degibbs", bar):
        if not config.degibbs:
            out.steps["degibbs"] = {"skipped": "--no-degibbs"}
            return
        axes = {}
        for s in series:
            axis = slice_axis(s.sidecar, s.pe.axis if s.pe else -1)
            s.data = remove_gibbs(s.data, axis, config.gibbs_points)
            axes[s.label] = axis
        out.steps["degibbs"] = {"method": "local sub-voxel shifts (Kellner 2016), dipy.denoise.gibbs.gibbs_removal",
                                "n_points": config.gibbs_points, "slice_axis": axes}


def _sdc(primary: LoadedSeries, reverse: LoadedSeries | None, config: PreprocessConfig, out: Corrected, bar) -> None:
    b0 = {s.label: s.mean_b0(config.b0_threshold) for s in out.series}
    out.dwirefs = {label: {"orig": image, "sdc": None} for label, image in b0.items()}
    with StepTimer(out.timings, "sdc", bar):
        reason = ("--no-sdc" if not config.sdc else NO_PAIR if reverse is None else None)
        if reason is not None:
            out.steps["sdc"] = {"skipped": reason}
            if config.sdc:
                warnings.warn(f"{primary.files.image}: SDC skipped: {reason}", SDCSkippedWarning, stacklevel=2)
            return
        from stylefa.preprocess.sdc import estimate_field, unwarp

        pes = (_phase_encodings(primary), _phase_encodings(reverse))
        estimate = estimate_field(b0[primary.label], pes[0], b0[reverse.label], pes[1], primary.affine,
                                  config=sdc_config(config.sdc_settings))
        out.field_hz = np.asarray(estimate.field_hz, np.float32)
        for s, pe in zip((primary, reverse), pes):
            out.dwirefs[s.label]["sdc"] = np.asarray(unwarp(b0[s.label], out.field_hz, pe), np.float32)
        out.steps["sdc"] = {**estimate.settings, "agreement": estimate.agreement,
                            "series": {s.label: s.pe.to_dict() for s in (primary, reverse)},
                            "b0_only_reverse": not reverse.is_dwi}
        out.qc.update({f"b0_{k}": float(v) for k, v in estimate.agreement.items()})


def sdc_config(settings: dict):
    """``TopupConfig`` with ``settings`` (JSON-able) applied; ``InputError`` for unknown fields."""
    from stylefa.preprocess.sdc import TopupConfig

    return TopupConfig.from_dict(settings)


def motion_config(settings: dict, b0_threshold: float):
    """``MotionConfig`` with ``settings`` (JSON-able) applied; ``InputError`` for unknown fields."""
    from stylefa.preprocess.motion import MotionConfig

    unknown = sorted(set(settings) - set(MotionConfig.__dataclass_fields__))
    if unknown:
        raise InputError(f"unknown motion setting(s) {', '.join(unknown)} (known: "
                         f"{', '.join(MotionConfig.__dataclass_fields__)})")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return MotionConfig(**{"b0_threshold": b0_threshold, **values})


def _mask(b0: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    from stylefa.data.fa import automatic_mask

    return automatic_mask(b0[..., None], np.array([True]), config.fa)


def _motion_and_resample(out: Corrected, config: PreprocessConfig, bar) -> None:
    outputs = [s for s in out.series if s.is_dwi]
    pes = [_phase_encodings(s) for s in outputs for _ in range(s.data.shape[3])]
    per_volume_pe = pes if all(p is not None for p in pes) else None
    data = np.concatenate([s.data for s in outputs], axis=3)
    bvals = np.concatenate([s.bvals for s in outputs])
    bvecs = np.concatenate([s.bvecs for s in outputs])
    primary = outputs[0]
    ref = out.dwirefs[primary.label]["sdc"]
    motion_mask = _mask(ref if ref is not None else out.dwirefs[primary.label]["orig"], config)
    with StepTimer(out.timings, "motion", bar):
        if not config.motion:
            out.steps["motion"] = {"skipped": "--no-motion"}
        else:
            from stylefa.preprocess.motion import estimate_motion, rotate_bvecs

            settings = motion_config(config.motion_settings, config.b0_threshold)
            out.transforms = estimate_motion(data, bvals, bvecs.T, primary.affine, motion_mask, pe=per_volume_pe,
                                             field_hz=out.field_hz, config=settings)
            bvecs = rotate_bvecs(bvecs.T, out.transforms).T
            out.steps["motion"] = {**settings.settings(), "reference": "first b=0 volume of the first series",
                                   "bvecs": "rotated by each volume's head rotation (rigid part only)"}
    with StepTimer(out.timings, "resample", bar):
        if out.transforms is None and out.field_hz is None:
            out.steps["resample"] = {"skipped": "no motion or SDC correction: the data keep their grid, no "
                                                "interpolation"}
        else:
            from stylefa.preprocess.motion import resample_once

            data = resample_once(data, primary.affine, out.transforms, out.field_hz,
                                 per_volume_pe if out.field_hz is not None else None, order=3, progress=False)
            out.steps["resample"] = {"interpolation": "cubic B-spline (scipy map_coordinates), once per volume",
                                     "combined": [k for k, v in (("motion/eddy", out.transforms),
                                                                 ("SDC displacement + Jacobian", out.field_hz))
                                                  if v is not None]}
    out.data, out.bvals, out.bvecs, out.affine = data.astype(np.float32), bvals, bvecs, primary.affine
    out.volume_labels = [s.label for s in outputs for _ in range(s.data.shape[3])]
    out.steps["output_series"] = {
        "series": [str(s.files.image) for s in outputs],
        "combination": "concatenated (first the DWI series, then its reversed-PE DWI series), as QSIPrep and "
                       "dwifslpreproc -rpe_all do" if len(outputs) == 2 else "one series"}


def correct_subject(subject: SubjectInputs, config: PreprocessConfig, bar=None) -> Corrected:
    """Load, check and correct one subject in memory (nothing is written). ``InputError`` for bad input."""
    primary, reverse = load_subject(subject, config)
    out = Corrected(series=[primary] + ([reverse] if reverse is not None else []), data=np.empty(0),
                    affine=primary.affine, bvals=np.empty(0), bvecs=np.empty(0), volume_labels=[], mask=np.empty(0))
    _denoise_and_degibbs(out.series, config, out, bar)
    _sdc(primary, reverse, config, out, bar)
    _motion_and_resample(out, config, bar)
    with StepTimer(out.timings, "mask", bar):
        b0 = out.data[..., out.bvals <= config.b0_threshold].mean(axis=3)
        out.mask = _mask(b0, config)
        if not out.mask.any():
            raise InputError("the automatic brain mask of the corrected series is empty", subject.dwi.image)
    if out.transforms is not None:
        from stylefa.preprocess.motion import framewise_displacement

        # within each series: the step between two series is a repositioning, not a volume-to-volume move
        labels = np.array(out.volume_labels)
        fd = np.concatenate([framewise_displacement(out.transforms.rigid[labels == label])[1:]
                             for label in dict.fromkeys(out.volume_labels)])
        if fd.size:
            out.qc.update({"fd_max_mm": float(fd.max()), "fd_mean_mm": float(fd.mean())})
    return out


def preprocess_subject(subject: SubjectInputs, output: str | Path, config: PreprocessConfig | None = None) -> SubjectResult:
    """Preprocess one subject into the BIDS-derivatives folder ``output``; a subject finished
    before with the same sources and settings is not redone (``reused``). Raises ``InputError``
    (naming the file) for bad input, before anything is written."""
    from stylefa.preprocess.outputs import finished
    from stylefa.progress import progress
    from stylefa.preprocess.write import write_subject

    config = config or PreprocessConfig()
    output = Path(output)
    previous = finished(subject, output, config)
    if previous is not None:
        record = previous["stylefa"]
        return SubjectResult(subject.name, True, record["outputs"], record["qc"], record["steps"], record["timings_s"])
    start = (time.perf_counter(), time.process_time())
    with progress(total=7, desc=subject.name, unit="step", leave=False) as bar:
        corrected = correct_subject(subject, config, bar)
        return write_subject(subject, output, config, corrected, start, bar)
