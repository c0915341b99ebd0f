"""The study's volumes as a BIDS-derivatives dataset (``OUT/derivatives/stylefa``).

Per scan the study touched (``sub-<label>[/ses-<label>]/dwi/``), on the grid the slices were
cut from (``stylefa.data.volumes.SliceSpace``; world space of FSL's MNI152 template)::

    sub-01_space-MNI152_desc-input_FA.nii.gz                  FA as cut, every level of the scan
    sub-01_space-MNI152_desc-brain_mask.nii.gz                its brain mask (uint8 0/1)
    sub-01_space-MNI152_desc-projection_FA.nii.gz             projection of the unmodified slices
    sub-01_space-MNI152_desc-difference_FA.nii.gz             projection - input
    sub-01_space-MNI152_desc-absdiff_FA.nii.gz                |projection - input|
    sub-01_acq-noise0p05_space-MNI152_desc-input_FA.nii.gz    a condition's modified input ...
    sub-01_acq-noise0p05_space-MNI152_desc-projection_FA.nii.gz   ... and its projection etc.
    sub-01_acq-lesionpatient07_space-MNI152_desc-lesion_mask.nii.gz  lesion label (0/1)

each with a JSON sidecar of the same name (network sha256, projector and perceptual
settings, seed, slice geometry, per-level metrics). The condition is carried by the
``acq`` entity (BIDS: "a label to distinguish a different set of parameters"; here the
simulated input condition), its label the condition spec with ``.`` spelled ``p`` and other
non-alphanumerics dropped (``noise:0.05`` -> ``noise0p05``); the unmodified condition has no
``acq``. Levels not projected are NaN (masks: 0). At the dataset root, the group maps over
all scans' unmodified slices: ``space-MNI152_desc-absdiffmean_FA.nii.gz``,
``..._desc-absdiffsd_FA.nii.gz`` (sample SD, ddof 1; NaN under 2 scans) and
``..._desc-absdiffcount_FA.nii.gz`` (scans contributing to each voxel).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stylefa.data.derivatives import ROOT_NAME, DerivativeWriter, bids_label, scan_labels
from stylefa.data.volumes import SliceSpace
from stylefa.errors import InputError

DATASET_NAME = "stylefa projection study: FA slices, their StyleGAN2 projections and difference maps"
DESCRIPTIONS = {
    "input": "FA as given to the projector (for the unmodified condition: the FA as cut, all levels of the scan)",
    "projection": "the generator's reconstruction of the input (FA scale, clipped to [0, 1])",
    "difference": "projection - input (FA units); negative where the projection is darker",
    "absdiff": "|projection - input| (FA units)",
    "lesion": "lesion label placed on the FA (1 = lesion, inside the brain)",
    "brain": "brain mask of the slices (sibling mask file or FA threshold with holes filled, as cut)",
}


def condition_label(condition: str) -> str | None:
    """``acq`` label of a condition; ``None`` for the unmodified one."""
    if condition == "none":
        return None
    label = bids_label(condition)
    if not label:
        raise InputError(f"condition {condition!r} gives an empty BIDS label")
    return label


@dataclass
class ScanVolumes:
    """What one scan contributes: its FA as cut, and per condition the projected levels."""

    subject: str
    input_fa: dict[float, np.ndarray]  # z_mm -> FA [R, R], every level of the scan
    brain: dict[float, np.ndarray]  # z_mm -> brain mask [R, R], every level of the scan
    inputs: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)  # condition -> z -> input
    projections: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)
    lesions: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)
    metrics: dict[str, list[dict]] = field(default_factory=dict)  # condition -> rows


@dataclass
class DerivativesResult:
    root: Path
    files: list[Path]
    group_mean: Path | None
    group_sd: Path | None
    group_count: Path | None
    group_scans: int
    space: SliceSpace | None = None
    maps: dict[str, np.ndarray] | None = None  # "mean", "sd", "count": [R, R, nz]


def write_derivatives(outdir: Path, space: SliceSpace, scans: dict[str, ScanVolumes], sidecar: dict,
                      source: str) -> DerivativesResult:
    """Write every scan's volumes and sidecars and the group maps; returns what was written.

    ``sidecar``: fields common to every file's JSON (network, projector, perceptual, seed,
    slicing). Rewritten on every run (cheap), each file atomically.
    """
    writer = DerivativeWriter(Path(outdir) / ROOT_NAME, space, sidecar, source, DATASET_NAME)
    root, files = writer.root, writer.files

    def put(folder: Path, entities: dict, desc: str, volume: np.ndarray, extra: dict, suffix: str = "FA",
            dtype=np.float32) -> Path:
        return writer.put(folder, entities, desc, volume, {"Description": DESCRIPTIONS[desc], **extra}, suffix,
                          dtype)

    labels = scan_labels({scan: volumes.subject for scan, volumes in scans.items()})
    absdiffs, brains = [], []
    for scan, volumes in scans.items():
        folder = labels[scan].folder(root)
        base = {"sub": labels[scan].sub, "ses": labels[scan].ses}
        put(folder, base, "input", space.to_volume(volumes.input_fa),
            {"Scan": scan, "Levels_mm": sorted(volumes.input_fa), "EmptyLevels": "NaN (not cut)"})
        brain = space.to_volume(volumes.brain, fill=0.0)
        put(folder, base, "brain", brain, {"Scan": scan, "Levels_mm": sorted(volumes.brain),
                                           "EmptyLevels": "0 (not cut)"}, suffix="mask", dtype=np.uint8)
        for condition, projected in volumes.projections.items():
            entities = dict(base, acq=condition_label(condition))
            inputs = volumes.inputs[condition]
            projection = space.to_volume(projected)
            given = space.to_volume(inputs)
            difference = projection - given
            extra = {"Scan": scan, "Condition": condition, "ProjectedLevels_mm": sorted(projected),
                     "EmptyLevels": "NaN (not projected)", "Metrics": volumes.metrics.get(condition, [])}
            if condition != "none":
                put(folder, entities, "input", given, extra)
            put(folder, entities, "projection", projection, extra)
            put(folder, entities, "difference", difference, extra)
            put(folder, entities, "absdiff", np.abs(difference), extra)
            if condition in volumes.lesions:
                mask = np.nan_to_num(space.to_volume(volumes.lesions[condition], fill=0.0))
                put(folder, entities, "lesion", mask, dict(extra, EmptyLevels="0 (not projected)"),
                    suffix="mask", dtype=np.uint8)
            if condition == "none":
                absdiffs.append(np.abs(difference))
                brains.append(brain > 0)

    result = DerivativesResult(root, files, None, None, None, len(absdiffs), space)
    if absdiffs:
        stack = np.stack(absdiffs)
        count = np.sum(np.isfinite(stack), axis=0).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN voxels (levels nobody projected)
            mean = np.nanmean(stack, axis=0)
            sd = np.where(count >= 2, np.nanstd(stack, axis=0, ddof=1) if len(absdiffs) > 1 else np.nan, np.nan)
        result.maps = {"mean": mean, "sd": sd, "count": count, "brain": np.any(np.stack(brains), axis=0)}
        group = {"Scans": list(scans), "Condition": "none", "Statistic": None,
                 "EmptyLevels": "NaN (no scan projected there)"}
        result.group_mean = put(root, {}, "absdiffmean", mean, dict(group, Statistic="mean of |projection - input| "
                                                                     "over scans (unmodified slices)"))
        result.group_sd = put(root, {}, "absdiffsd", sd.astype(np.float32),
                              dict(group, Statistic="sample standard deviation (ddof 1) of |projection - input|; "
                                                    "NaN where fewer than 2 scans contribute"))
        result.group_count = put(root, {}, "absdiffcount", count, dict(group, Statistic="number of scans "
                                                                        "contributing to each voxel"))
    return result


for _desc in ("absdiffmean", "absdiffsd", "absdiffcount"):
    DESCRIPTIONS[_desc] = "group map over the scans' unmodified slices"


METRIC_KEYS = ("slice", "z_mm", "comparison", "region", "n_pixels", "ssim", "mse", "psnr", "mae", "lpips")


def collect_scans(cases, projections: dict[str, np.ndarray], source, rows: list[dict]) -> dict[str, ScanVolumes]:
    """Group the study's cases by scan and condition (``cases``: ``stylefa.study.study.Case``)."""
    planes = {item.key: item for item in source.items}
    scans: dict[str, ScanVolumes] = {}
    for case in cases:
        info = planes[case.slice_key]
        volumes = scans.get(info.scan)
        if volumes is None:
            loaded = [source.load(item) for item in source.items if item.scan == info.scan]
            volumes = scans[info.scan] = ScanVolumes(info.subject, {s.info.z_mm: s.fa for s in loaded},
                                                     {s.info.z_mm: s.brain.astype(np.float32) for s in loaded})
        volumes.inputs.setdefault(case.condition, {})[info.z_mm] = case.modified
        volumes.projections.setdefault(case.condition, {})[info.z_mm] = projections[case.target_id]
        if case.lesion is not None:
            volumes.lesions.setdefault(case.condition, {})[info.z_mm] = case.lesion.astype(np.float32)
    for row in rows:
        if row["region"] in ("whole", "brain") and row["slice"] in planes:
            scan = planes[row["slice"]].scan
            if scan in scans:
                scans[scan].metrics.setdefault(row["condition"], []).append(
                    {key: row[key] for key in METRIC_KEYS if key in row})
    return scans


def write_study_derivatives(outdir: Path, cases, projections, source, rows, settings: dict,
                            perceptual: dict) -> DerivativesResult:
    """``write_derivatives`` for ``run_study``: sidecars carry its recorded settings."""
    sidecar = {"Network": settings["network"], "Projector": settings["project"], "Perceptual": perceptual,
               "Seed": settings["seed"], "SliceGeometry": settings["slicing"],
               "LesionModel": settings.get("lesion_model")}
    space = SliceSpace.of(source.slicing.grid)
    return write_derivatives(outdir, space, collect_scans(cases, projections, source, rows), sidecar,
                             source.description)


def write_volumes_and_viewer(outdir: Path, cases, projections, source, rows, settings, perceptual,
                             figure_items: dict) -> str:
    """NIfTI volumes in the BIDS-derivatives layout, the group figure (added to ``figure_items``) and
    the viewer's HTML (``stylefa.study.report.derivatives``, ``groupmaps``, ``viewer``)."""
    from stylefa.study.report.groupmaps import group_figure
    from stylefa.study.report.viewer import build_blocks, viewer_section

    result = write_study_derivatives(outdir, cases, projections, source, rows, settings, perceptual)
    if result.maps is not None:
        drawn = group_figure(result.maps["mean"], result.maps["sd"], result.maps["count"], result.space,
                             outdir / "figures" / "fig5_group_absdiff", result.group_scans,
                             result.maps["brain"])
        if drawn is not None:
            figure_items["Fig. 5 — where projection fails: group |difference| map"] = [(drawn[0], (
                f"mean (top) and SD (bottom) of |projection − input| over {result.group_scans} scan(s)' unmodified "
                f"slices, on the template; volumes in {result.root.relative_to(outdir)}"))]
    return viewer_section(build_blocks(cases, projections, source))
