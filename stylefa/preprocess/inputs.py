"""Load one subject's series and refuse what cannot be a reversed phase-encoding pair.

Every refusal is one ``InputError`` naming the offending file, raised before anything is
written: series on different grids (shape or affine: not the same field of view, or not the
same head position), both polarities the same, phase encoding along different axes, phase
encoding or readout time unknown (see ``sidecars``), b-tables whose length differs from the
series' volume count, a reverse series that is not an EPI (``ScanningSequence`` without ``EP``,
e.g. a T1w) or does not show the same head (mean b=0 images uncorrelated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.errors import InputError
from stylefa.preprocess.config import PreprocessConfig, SeriesFiles, SubjectInputs
from stylefa.preprocess.sidecars import ResolvedPE, anatomical_label, read_sidecar, resolve_pe

GRID_TOLERANCE_MM = 1e-2


@dataclass
class LoadedSeries:
    """One series in memory: ``data`` (X, Y, Z, N) float32, ``bvals`` (N,) s/mm^2, ``bvecs``
    (N, 3) unit (0 on b=0; all 0 for a b=0-only EPI), ``pe`` None when unknown (allowed only
    without SDC)."""

    files: SeriesFiles
    data: np.ndarray
    affine: np.ndarray
    header: object
    bvals: np.ndarray
    bvecs: np.ndarray
    sidecar: dict
    pe: ResolvedPE | None
    label: str
    gradients: dict
    is_dwi: bool = True  # False: b=0 volumes only (serves the field, not the output)

    def b0_mask(self, threshold: float) -> np.ndarray:
        return self.bvals <= threshold

    def mean_b0(self, threshold: float) -> np.ndarray:
        """Mean of the b=0 volumes, (X, Y, Z)."""
        return self.data[..., self.b0_mask(threshold)].mean(axis=3, dtype=np.float64).astype(np.float32)


def _load(files: SeriesFiles, config: PreprocessConfig, direction_option: str | None, option_name: str,
          need_pe: bool) -> LoadedSeries:
    from stylefa.data.gradients import load_gradients, read_bvals
    from stylefa.data.nifti import load_volume

    volume = load_volume(files.image, expect_ndim=None, name="DWI" if files.is_dwi else "EPI")
    data = volume.data if volume.data.ndim == 4 else volume.data[..., None]
    if data.ndim != 4:
        raise InputError(f"is {data.ndim}-D; expected a 3-D or 4-D EPI series", files.image)
    sidecar = read_sidecar(files.sidecar)
    sequence = str(sidecar.get("ScanningSequence", "EP"))
    if "EP" not in sequence.upper():
        raise InputError(f"is not an EPI series (sidecar ScanningSequence {sequence!r}); a reversed phase-encoding "
                         f"series must be a DWI or b=0 EPI", files.sidecar or files.image)
    is_dwi = files.is_dwi
    if is_dwi:
        if files.bvec is None or not Path(files.bval).is_file() or not Path(files.bvec).is_file():
            missing = files.bval if not Path(files.bval).is_file() else files.bvec
            raise InputError("gradient file not found (BIDS: X_dwi.bval and X_dwi.bvec beside X_dwi.nii.gz)", missing)
        # a "DWI" of b=0 volumes only (some reversed-PE protocols) is a b=0 EPI: no tensor to fit
        is_dwi = bool(np.any(read_bvals(files.bval, data.shape[3]) > config.b0_threshold))
    if is_dwi:
        table = load_gradients(files.bval, files.bvec, data.shape[3], config.fa.gradient_rules())
        bvals, bvecs, gradients = table.bvals, table.bvecs, table.summary()
    else:
        bvals, bvecs, gradients = np.zeros(data.shape[3]), np.zeros((data.shape[3], 3)), {"b0_only": True}
    try:
        pe = resolve_pe(sidecar, files.sidecar, files.image, data.shape, direction_option, config.readout_time,
                        option_name)
    except InputError:
        if need_pe:
            raise
        pe = None
    label = files.label or (anatomical_label(pe.direction, volume.affine) if pe else "none")
    return LoadedSeries(files, data, volume.affine, volume.header, bvals, bvecs, sidecar, pe, label, gradients, is_dwi)


def load_subject(subject: SubjectInputs, config: PreprocessConfig) -> tuple[LoadedSeries, LoadedSeries | None]:
    """Load the DWI series and its reverse (if any) and check that they form a pair."""
    want_pair = subject.reverse is not None and config.sdc
    primary = _load(subject.dwi, config, config.pe_dir, "--pe-dir", need_pe=want_pair)
    if subject.reverse is None:
        _check_weighted(primary)
        return primary, None
    reverse_option = config.reverse_pe_dir
    if reverse_option is None and config.pe_dir is not None:
        # The reverse of a reversed-PE pair is the other polarity by definition (not a guess).
        reverse_option = config.pe_dir[:-1] if config.pe_dir.endswith("-") else config.pe_dir + "-"
    reverse = _load(subject.reverse, config, reverse_option, "--reverse-pe-dir", need_pe=want_pair)
    check_pair(primary, reverse, config)
    if not primary.is_dwi and reverse.is_dwi:  # a dir- pair whose first series is the b=0-only one
        primary, reverse = reverse, primary
    _check_weighted(primary)
    if reverse.label == primary.label:
        primary.label, reverse.label = f"{primary.label}1", f"{reverse.label}2"
    return primary, reverse


def _check_weighted(series: LoadedSeries) -> None:
    if not series.is_dwi:
        raise InputError("has no diffusion-weighted volume (all b-values <= the b=0 threshold): nothing to fit",
                         series.files.bval or series.files.image)


def check_pair(primary: LoadedSeries, reverse: LoadedSeries, config: PreprocessConfig) -> None:
    """``InputError`` naming the reverse series when the two cannot be a reversed-PE pair."""
    where = reverse.files.image
    if primary.data.shape[:3] != reverse.data.shape[:3]:
        raise InputError(f"on a different grid than {primary.files.image.name} (shape "
                         f"{'x'.join(map(str, reverse.data.shape[:3]))} vs {'x'.join(map(str, primary.data.shape[:3]))})",
                         where)
    shift = float(np.abs(primary.affine - reverse.affine).max())
    if shift > GRID_TOLERANCE_MM:
        raise InputError(f"on a different grid than {primary.files.image.name} (affines differ by up to {shift:.3g} "
                         f"mm: another field of view or head position)", where)
    if primary.pe is not None and reverse.pe is not None:
        if primary.pe.axis != reverse.pe.axis:
            raise InputError(f"phase encoding {reverse.pe.direction!r} is along another axis than "
                             f"{primary.files.image.name}'s {primary.pe.direction!r}; a reversed pair shares the axis",
                             reverse.files.sidecar or where)
        if primary.pe.sign == reverse.pe.sign:
            raise InputError(f"same phase-encoding direction {reverse.pe.direction!r} as {primary.files.image.name}: "
                             f"not a reversed phase-encoding pair", reverse.files.sidecar or where)
    correlation = head_correlation(primary.mean_b0(config.b0_threshold), reverse.mean_b0(config.b0_threshold))
    if correlation < config.same_head_min_correlation:
        raise InputError(f"does not look like the same head as {primary.files.image.name} (mean b=0 correlation "
                         f"{correlation:.2f} < {config.same_head_min_correlation:g})", where)


def head_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images inside the union of their heads (voxels above 10% of
    each image's 99th percentile), after 2-voxel smoothing so that the pair's opposite
    distortions do not dominate."""
    from scipy.ndimage import gaussian_filter

    a, b = gaussian_filter(a.astype(np.float64), 2.0), gaussian_filter(b.astype(np.float64), 2.0)
    head = (a > 0.1 * np.percentile(a, 99)) | (b > 0.1 * np.percentile(b, 99))
    if head.sum() < 10:
        return 0.0
    x, y = a[head] - a[head].mean(), b[head] - b[head].mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0
