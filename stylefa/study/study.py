"""The projection-accuracy study, end to end.

1. pick slices (a dataset split or FA files), apply each condition (seeded per slice and
   condition) and place lesion masks on slices with lesion load;
2. project every modified slice (resumable: ``projections/<target>.npy``);
3. compare each projection with the unmodified original and with its modified input, on
   the whole image, inside the brain and in tissue regions (``metrics.csv``); score the
   difference maps as lesion detectors (``lesion_metrics.csv``);
4. summary statistics (``summary.json``), figures (``figures/*.png|pdf``) and ``report.html``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stylefa.errors import InputError
from stylefa.fileio import file_digest, safe_name, write_csv
from stylefa.study.conditions import DEFAULT_CONDITIONS, parse_conditions
from stylefa.study.lesions.masks import LesionModel
from stylefa.study.lesions.study import control_cases, evaluate_study_lesions, load_baselines


@dataclass
class StudyConfig:
    network: str
    data: list[str]
    outdir: str
    conditions: str = DEFAULT_CONDITIONS
    lesions: list[str] = field(default_factory=list)
    flair: list[str] = field(default_factory=list)  # none, or one per lesion mask in order
    lesion_threshold: float | None = None  # lesion masks are probability maps cut at this value
    synthetic_lesions: bool = False  # a built-in synthetic mask when no --lesions are given
    lesion_placement: str = "one"  # "one": mask i on scan i mod n; "all": every mask on every scan
    # Lesion-free FA for the normative baseline (a prepared dataset: its train split; or FA files).
    normative: list[str] = field(default_factory=list)
    template: str | None = None  # FA template for the template baseline (None: the usual places)
    wplus_residual: bool = False  # also project lesion slices and controls in W+ and score that residual
    split: str = "test"
    max_slices: int = 8
    lesion_slices: int = 2  # per lesion mask
    lesion_reduction: float = 0.4
    lesion_sigma_mm: float = 1.0
    steps: int = 1000
    perceptual: str = "lpips-vgg16"
    # Perceptual weight files, as `stylefa project` takes them (None: the usual offline places).
    vgg16: str | None = None
    lpips_heads: str | None = None
    stlpips_weights: str | None = None
    download: bool = False
    lpips_metric: bool = True  # LPIPS column when the LPIPS-VGG16 weights are available offline
    batch_size: int = 8
    w_avg_samples: int = 10000
    seed: int = 0
    device: str = "cpu"
    figure_slices: int = 3
    restarts: int = 1  # projections per target; > 1 reports the spread over restarts (convergence)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StudyConfig":
        return cls(**data)

    def perceptual_spec(self, name: str | None = None):
        """The projection distance (or the network ``name``) with the configured weight files."""
        from stylefa.project.perceptual import PerceptualSpec

        return PerceptualSpec(name=name or self.perceptual, vgg16=self.vgg16, lpips_heads=self.lpips_heads,
                              stlpips_weights=self.stlpips_weights, download=self.download)


@dataclass
class StudyResult:
    outdir: Path
    report: Path
    metrics_csv: Path
    summary_json: Path
    num_projections: int


@dataclass
class Case:
    """One projected input: a slice under a condition (or a lesion)."""

    target_id: str
    slice_key: str
    condition: str
    original: np.ndarray  # the unmodified FA
    modified: np.ndarray  # what was projected
    known: np.ndarray | None
    removed: np.ndarray | None
    brain: np.ndarray
    lesion: np.ndarray | None = None
    flair: np.ndarray | None = None
    seed_id: str | None = None  # projection seed from this id instead of target_id (lesion controls)


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def build_condition_cases(source, items, conditions, seed: int) -> list[Case]:
    cases = []
    for item in items:
        data = source.load(item)
        for condition in conditions:
            result = condition.apply(data.fa, condition.rng(seed, item.key))
            cases.append(Case(
                target_id=f"{item.key}__{safe_name(condition.name)}", slice_key=item.key, condition=condition.name,
                original=data.fa, modified=result.image, known=result.known, removed=result.removed,
                brain=data.brain))
    return cases


def build_lesion_cases(source, lesion_volumes, model: LesionModel, per_mask: int,
                       placement: str = "one") -> list[Case]:
    """Each lesion mask goes on one scan (round robin; ``placement="all"``: on every scan), on
    that scan's slices with most lesion load."""
    from dataclasses import replace

    from stylefa.study.lesions.masks import (
        apply_lesion,
        check_overlap,
        min_lesion_pixels,
        pick_lesion_slices,
    )

    scans: dict[str, list] = {}
    for item in source.items:
        scans.setdefault(item.scan, []).append(item)
    names = list(scans)
    cases = []
    if placement not in ("one", "all"):
        raise InputError(f"lesion placement must be 'one' or 'all', got {placement!r}")
    placements = [(volume, scan) for index, volume in enumerate(lesion_volumes)
                  for scan in (names if placement == "all" else [names[index % len(names)]])]
    for volume, scan in placements:
        items = scans[scan]
        slices = [source.load(item) for item in items]
        # All slices of one scan share the in-plane grid: sample the mask on all levels at once.
        grid = replace(items[0].plane, levels_mm=tuple(item.z_mm for item in items))
        labels = volume.label_on(grid)
        brains = np.stack([s.brain for s in slices])
        in_brain = np.count_nonzero(labels & brains, axis=(1, 2))
        total = int(np.count_nonzero(labels))
        where = volume.path if volume.path is not None else volume.name
        if total == 0:
            raise InputError("the lesion mask has no lesion on any slice level of the dataset", where)
        check_overlap(volume, in_brain.sum() / total, where)
        min_pixels = min_lesion_pixels(grid.pixel_size_mm)
        chosen = pick_lesion_slices(in_brain, per_mask, min_pixels)
        if not chosen:
            raise InputError(f"no slice has at least {min_pixels} lesion pixels inside the brain", where)
        chosen_grid = replace(grid, levels_mm=tuple(grid.levels_mm[k] for k in chosen))
        weights = volume.weight_on(chosen_grid, volume.weight(model))
        flairs = volume.flair_on(chosen_grid)
        for j, k in enumerate(chosen):
            s = slices[k]
            lesioned = apply_lesion(s.fa, weights[j] * s.brain, model.reduction)
            cases.append(Case(
                target_id=f"{s.info.key}__lesion-{safe_name(volume.name, 'lesion')}", slice_key=s.info.key,
                condition=f"lesion:{volume.name}", original=s.fa, modified=lesioned, known=None, removed=None,
                brain=s.brain, lesion=labels[k] & s.brain, flair=None if flairs is None else flairs[j]))
    return cases


def load_lesion_inputs(config: StudyConfig):
    from stylefa.study.lesions.masks import expand_paths, load_lesion_volume, pair_flairs, synthetic_lesion_volume

    masks = expand_paths(config.lesions, "lesion mask")
    flairs = pair_flairs(masks, expand_paths(config.flair, "FLAIR"))
    volumes = [load_lesion_volume(path, flair, config.lesion_threshold) for path, flair in zip(masks, flairs)]
    names = [safe_name(v.name, "lesion") for v in volumes]
    if len(set(names)) != len(names):
        raise InputError(f"lesion masks must have distinct name prefixes, got {', '.join(names)}")
    if not volumes and config.synthetic_lesions:
        volumes.append(synthetic_lesion_volume(seed=config.seed))
    return volumes


def lpips_metric_network(config: StudyConfig, distance, load_perceptual):
    """The network for the LPIPS column: LPIPS-VGG16 when its weights are found offline, else
    ST-LPIPS-VGG16 (its weights ship in the stlpips-pytorch wheel). Returns (network or None,
    a note for the report)."""
    from stylefa.project.perceptual import PERCEPTUAL_CHOICES

    if config.perceptual == "lpips-vgg16":
        return distance, ""
    try:
        return load_perceptual(config.perceptual_spec("lpips-vgg16"), device=config.device), ""
    except InputError as exc:
        first = str(exc)
    if "stlpips-vgg16" not in PERCEPTUAL_CHOICES:
        return None, first
    try:
        net = distance if config.perceptual == "stlpips-vgg16" else load_perceptual(
            config.perceptual_spec("stlpips-vgg16"), device=config.device)
    except InputError as exc:
        return None, f"{first}; ST-LPIPS: {exc}"
    note = ("LPIPS column: ST-LPIPS-VGG16 (shift-tolerant LPIPS, weights from the stlpips-pytorch wheel), "
            f"because LPIPS-VGG16 is not available offline ({first})")
    if net is distance:
        note += "; it is also the projection's loss, so it favours the projections"
    return net, note + "."


def compute_lpips(distance, cases, projections, device) -> dict[str, dict[str, float]]:
    """LPIPS of each projection vs original and vs input (whole image, [-1, 1] scale)."""
    import torch

    out: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for start in range(0, len(cases), 16):
            chunk = cases[start : start + 16]
            proj = torch.from_numpy(np.stack([projections[c.target_id] for c in chunk])[:, None] * 2 - 1).float()
            for comparison, attr in (("original", "original"), ("input", "modified")):
                ref = torch.from_numpy(np.stack([getattr(c, attr) for c in chunk])[:, None] * 2 - 1).float()
                values = distance(proj.to(device), ref.to(device)).double().cpu().numpy()
                for c, v in zip(chunk, values):
                    out.setdefault(c.target_id, {})[comparison] = float(v)
    return out


def measure(cases, projections, planes, priors, lpips_values) -> list[dict]:
    from stylefa.study.tables import image_rows

    rows = []
    region_cache: dict[str, dict] = {}
    for case in cases:
        info = planes[case.slice_key]
        if case.slice_key not in region_cache:
            region_cache[case.slice_key] = priors.regions_on(info.plane, case.brain) if priors is not None else {}
        regions = {"whole": None, "brain": case.brain, **region_cache[case.slice_key]}
        if case.removed is not None:
            regions["removed"] = case.removed
        projection = projections[case.target_id]
        for comparison, reference in (("original", case.original), ("input", case.modified)):
            if comparison == "input" and case.known is not None:
                # The projector never saw the unknown pixels of a masked input: "vs input" is
                # scored on the known pixels only (the removed region has no input value).
                regions = known_regions(regions, case.known)
            base = {"slice": case.slice_key, "subject": info.subject, "z_mm": info.z_mm,
                    "condition": case.condition, "comparison": comparison,
                    "lpips": lpips_values.get(case.target_id, {}).get(comparison, math.nan)}
            rows.extend(image_rows(base, reference, projection, regions))
    return rows


def restart_copies(cases: list[Case], restarts: int) -> list[Case]:
    """Extra projections of each target (``<id>__restartK``, K >= 1): the projector seeds each
    target's noise inputs and w perturbations from its id, so these differ only by luck."""
    from dataclasses import replace

    return [replace(c, target_id=f"{c.target_id}__restart{k}") for k in range(1, restarts) for c in cases]


def known_regions(regions: dict, known: np.ndarray) -> dict:
    """Each region restricted to the known pixels (``None`` = whole image -> ``known``);
    regions with no known pixel are dropped."""
    out = {}
    for name, mask in regions.items():
        restricted = known if mask is None else (mask & known)
        if restricted.any():
            out[name] = restricted
    return out


def _model_card(network: str, provenance) -> str | None:
    path = Path(network)
    for name in ("MODEL_CARD.md", "model_card.md", path.stem + ".md"):
        candidate = path.parent / name
        if candidate.is_file():
            return candidate.read_text(errors="replace")
    extra = getattr(provenance, "extra", None) or {}
    if "model_card" in extra:
        card = extra["model_card"]
        return card if isinstance(card, str) else json.dumps(card, indent=2)
    if provenance is not None and hasattr(provenance, "to_dict"):
        return "No model card; checkpoint provenance:\n" + json.dumps(provenance.to_dict(), indent=2, default=str)
    return None


def lesion_fingerprint(volumes) -> dict:
    """What decides each lesion's pixels: the mask and FLAIR files' contents (synthetic: the seed)."""
    out = {}
    for volume in volumes:
        if volume.path is None:
            out[volume.name] = {"synthetic": True}
        else:
            out[volume.name] = {"mask_sha256": file_digest(volume.path),
                                "flair_sha256": None if volume.flair_path is None else file_digest(volume.flair_path)}
            if volume.threshold is not None:
                out[volume.name]["threshold"] = volume.threshold
    return out


def run_study(config: StudyConfig) -> StudyResult:
    from stylefa.fileio import check_run_settings, write_json, write_text
    from stylefa.nets.checkpoint import load_generator, read_metadata
    from stylefa.project.config import ProjectConfig
    from stylefa.project.perceptual import load_perceptual
    from stylefa.study.inputs import (
        TRAINING_ORIGIN,
        DatasetSource,
        open_source,
        spread,
        training_slicing,
    )
    from stylefa.study.regions import TissuePriors
    from stylefa.study.report.page import build_report
    from stylefa.study.runner import Target, project_targets
    from stylefa.study.tables import ROW_COLUMNS, summarize_rows

    import time

    started = time.time()
    if config.max_slices < 1:
        raise InputError(f"--max-slices must be >= 1, got {config.max_slices}")
    if config.batch_size < 1 or config.lesion_slices < 1:
        raise InputError("--batch and --lesion-slices must be >= 1")
    conditions = parse_conditions(config.conditions)
    model = LesionModel(config.lesion_reduction, config.lesion_sigma_mm)
    lesion_volumes = load_lesion_inputs(config)
    outdir = Path(config.outdir)
    if not Path(config.network).is_file():
        raise InputError("network file not found", config.network)

    metadata = read_metadata(config.network)
    G = load_generator(config.network, device=config.device)
    training = training_slicing(metadata["provenance"], int(G.img_resolution), config.network)
    source = open_source(config.data, config.split, training)
    notes = []
    if isinstance(source, DatasetSource) and training.origin == TRAINING_ORIGIN and source.slicing.grid != training.grid:
        notes.append("The dataset's slice geometry (levels, field of view or centre) differs from that of the "
                     "network's training data; see settings.slicing.")
    chosen = [source.items[i] for i in spread(config.max_slices, len(source.items))]
    cases = build_condition_cases(source, chosen, conditions, config.seed)
    cases += build_lesion_cases(source, lesion_volumes, model, config.lesion_slices, config.lesion_placement)
    controls = control_cases(cases)
    normative, template = load_baselines(config, source, notes) if controls else (None, None)
    planes = {item.key: item for item in source.items}

    try:
        project_config = ProjectConfig(steps=config.steps, w_avg_samples=config.w_avg_samples)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if config.restarts < 1:
        raise InputError(f"--restarts must be >= 1, got {config.restarts}")
    restart_cases = restart_copies(cases, config.restarts)
    projected = cases + list(controls.values()) + restart_cases
    targets = [Target(c.target_id, c.modified, c.known, None, c.seed_id) for c in projected]
    if G.c_dim:
        needed = {c.slice_key for c in projected}
        labels = {item.key: source.load(item).label for item in source.items if item.key in needed}
        if any(label is None or np.asarray(label).shape != (G.c_dim,) for label in labels.values()):
            raise InputError(
                f"the generator is conditional (c_dim {G.c_dim}): --data must be a prepared dataset whose "
                f"labels have {G.c_dim} entries", config.network)
        targets = [Target(t.id, t.fa, t.known, labels[c.slice_key], t.seed_id) for t, c in zip(targets, projected)]
    distance = load_perceptual(config.perceptual_spec(), device=config.device)
    # Everything that decides a projection's pixels; a resumed run must match all of it.
    settings = {
        "network": {"sha256": file_digest(config.network)},
        "data": source.fingerprint(),
        "slicing": source.slicing.to_dict(),
        "lesions": lesion_fingerprint(lesion_volumes),
        "conditions": [c.name for c in conditions],
        "seed": config.seed,
        "project": project_config.to_dict(),
        # Contents, not paths: the same weights found in another place give the same projections.
        "perceptual": {"name": distance.record.name, "weight_sha256": sorted(distance.record.weight_files.values())},
        "lesion_model": model.to_dict(),
    }
    if isinstance(source, DatasetSource):
        settings["training_slicing"] = training.to_dict()
    projection_dir = outdir / "projections"
    check_run_settings(projection_dir, settings, "projections")
    already_done = all((projection_dir / f"{t.id}.npy").is_file() for t in targets)
    projections = project_targets(G, targets, project_config, distance, projection_dir,
                                  batch_size=config.batch_size, device=config.device,
                                  w_avg_samples=config.w_avg_samples)

    wplus = None
    if config.wplus_residual and controls:
        from stylefa.study.lesions.study import project_wplus

        ids = set(controls) | {c.target_id for c in controls.values()}
        wplus = project_wplus(G, [t for t in targets if t.id in ids], project_config, distance,
                              outdir / "projections_wplus", settings, batch_size=config.batch_size,
                              device=config.device, w_avg_samples=config.w_avg_samples)

    lpips_values: dict = {}
    summary_extra: dict = {}
    perceptual_record = distance.record.to_dict()
    if config.lpips_metric:
        lpips, why = lpips_metric_network(config, distance, load_perceptual)
        if lpips is None:
            notes.append(f"LPIPS column omitted: {why}")
        else:
            if why:
                notes.append(why)
            lpips_values = compute_lpips(lpips, projected, projections, config.device)
            perceptual_record = {"projection": distance.record.to_dict(), "lpips_metric": lpips.record.to_dict()}
            summary_extra["lpips_network"] = lpips.record.name
    try:
        priors = TissuePriors.from_nilearn()
    except Exception as exc:  # nilearn data missing: regions are optional, say so in the report
        priors = None
        notes.append(f"Tissue regions omitted: nilearn MNI templates unavailable ({exc})")

    rows = measure(cases, projections, planes, priors, lpips_values)
    metrics_csv = outdir / "metrics.csv"
    write_csv(metrics_csv, ROW_COLUMNS, rows)
    summary = summarize_rows(rows, seed=config.seed)
    summary.update(summary_extra)
    from stylefa.study.report.convergence import convergence_summary

    summary["convergence"] = convergence_summary(
        cases + restart_cases, projection_dir,
        {c.target_id: c.target_id.rsplit("__restart", 1)[0] for c in restart_cases} if restart_cases else None)
    summary["n_slices"] = len(chosen)
    summary["condition_order"] = [c.name for c in conditions] + sorted({c.condition for c in cases if c.lesion is not None})
    lesion_figures, slice_scores = [], {}
    if controls:
        summary["lesions"], lesion_figures, slice_scores = evaluate_study_lesions(
            cases, controls, projections, lpips_values, planes, normative, template, outdir, config.seed, notes,
            wplus)
    summary["context"] = _context(config, settings, G, time.time() - started)
    from stylefa.study.report.findings import findings

    summary["findings"] = [f.to_dict() for f in findings(summary)]
    summary_json = outdir / "summary.json"
    write_json(summary_json, _json_safe(summary))

    # Figures depend only on the projections: a resumed run that projected nothing keeps them.
    figure_items = draw_figures(cases, projections, rows, slice_scores, outdir / "figures", config.figure_slices,
                                keep_existing=already_done)
    figure_items["Fig. 6–7 — lesion detection by method and healing"] = lesion_figures
    if summary["convergence"].get("steps"):
        from stylefa.study.report.convergence import convergence_figure

        png = convergence_figure(summary["convergence"], outdir / "figures" / "fig8_convergence")[0]
        figure_items["Fig. 8 — convergence"] = [(png, "Left: mean SSIM inside the brain vs the original after each "
                                                 "number of steps, per condition. Right: perceptual distance to its input of every "
                                                 "target vs step.")]
    from stylefa.study.report.derivatives import write_volumes_and_viewer

    viewer = write_volumes_and_viewer(outdir, cases, projections, source, rows, settings, perceptual_record,
                                      figure_items)
    card = _model_card(config.network, metadata["provenance"])
    html = build_report(title="stylefa projection study", settings={"study": config.to_dict(), **settings},
                        summary=summary, figures=figure_items, model_card=card, perceptual=perceptual_record,
                        notes=notes, viewer=viewer)
    report = outdir / "report.html"
    write_text(report, html)
    return StudyResult(outdir, report, metrics_csv, summary_json, len(projections))


def _context(config: StudyConfig, settings: dict, G, runtime_s: float) -> dict:
    from stylefa.study.demo_model import DEMO_MODEL_DIR, DEMO_MODEL_FILE
    from stylefa.study.report.provenance import study_context

    shipped = DEMO_MODEL_DIR / DEMO_MODEL_FILE
    sha = settings["network"]["sha256"]
    return study_context(data=config.data, network=config.network, network_sha256=sha,
                         demo_model=shipped.is_file() and file_digest(shipped) == sha,
                         resolution=int(G.img_resolution), steps=config.steps, device=config.device,
                         runtime_s=runtime_s)


def draw_figures(cases, projections, rows, slice_scores, folder: Path, max_slices: int,
                 keep_existing: bool = False) -> dict:
    from stylefa.study.report import figures as figs

    def draw(function, stem: Path, *args, **kwargs) -> Path:
        png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
        if keep_existing and png.is_file() and pdf.is_file():
            return png
        return function(*args, stem=stem, **kwargs)[0]

    folder.mkdir(parents=True, exist_ok=True)
    score = {(r["slice"], r["condition"], r["comparison"], r["region"]): r for r in rows}
    where = {r["slice"]: f"{r['subject']}, z = {float(r['z_mm']):g} mm (MNI)" for r in rows}
    by_slice: dict[str, list[Case]] = {}
    for case in cases:
        if case.lesion is None:
            by_slice.setdefault(case.slice_key, []).append(case)
    out: dict[str, list] = {"Fig. 1 — projections of unmodified slices": [],
                            "Fig. 2 — conditions and their projections": [],
                            "Fig. 3 — lesions": [], "Fig. 4 — distributions per condition": []}
    for key in list(by_slice)[:max_slices]:
        slice_cases = by_slice[key]
        base = next((c for c in slice_cases if c.condition == "none"), slice_cases[0])
        r = score.get((key, base.condition, "original", "brain"), {})
        png = draw(figs.projection_panel, folder / f"fig1_{key}", base.original, projections[base.target_id],
                   title=where.get(key, key) + ("" if base.condition == "none" else f" ({base.condition})"),
                   ssim=r.get("ssim"), mse=r.get("mse"), brain=base.brain)
        out["Fig. 1 — projections of unmodified slices"].append((png, f"{where.get(key, key)}: target, projection, "
                                                                 "signed difference; SSIM/MSE inside the brain"))
        columns = [{"name": c.condition, "modified": c.modified, "projection": projections[c.target_id],
                    "ssim": score.get((key, c.condition, "original", "brain"), {}).get("ssim")} for c in slice_cases]
        parts = figs.chunk_columns(columns)
        for i, part in enumerate(parts):
            suffix = "" if len(parts) == 1 else f"_part{i + 1}"
            png = draw(figs.conditions_panel, folder / f"fig2_{key}{suffix}", base.original, part,
                       title=where.get(key, key) + ("" if len(parts) == 1 else f" ({i + 1}/{len(parts)})"),
                       brain=base.brain)
            out["Fig. 2 — conditions and their projections"].append(
                (png, f"{where.get(key, key)}: inputs (top), projections (middle, SSIM vs original inside the brain), "
                      "projection − unmodified original (bottom)"))
    # Patients with a FLAIR first: those panels show the lesions as clinicians see them.
    lesion_cases = sorted((c for c in cases if c.lesion is not None), key=lambda c: c.flair is None)
    for case in lesion_cases[: 2 * max_slices]:
        r = slice_scores.get(case.target_id, {})
        png = draw(figs.lesion_panel, folder / f"fig3_{case.slice_key}_{safe_name(case.condition)}",
                   case.modified, projections[case.target_id], case.lesion, flair=case.flair,
                   original=case.original, brain=case.brain,
                   title=f"{where.get(case.slice_key, case.slice_key)}, {case.condition}",
                   scores={"AUROC": r.get("auroc_residual"), "AP": r.get("ap_residual"),
                           "HI": r.get("healing_index")},
                   flair_title="FLAIR (lesion donor)")
        flair_note = ("; the FLAIR is the lesion donor's (another person than the FA map, registered to MNI), "
                      "windowed from the median brain intensity up so that lesions stand out") if case.flair is not None else ""
        out["Fig. 3 — lesions"].append((png, f"{where.get(case.slice_key, case.slice_key)}, {case.condition}: "
                                             "lesion outline in cyan; AUROC/AP of |projection − lesioned input|, "
                                             f"HI = healing index{flair_note}"))
    for metric, region in (("ssim", "brain"), ("mse", "brain"), ("ssim", "cortex")):
        values: dict[str, list[float]] = {}
        for r in rows:
            if r["comparison"] == "original" and r["region"] == region:
                values.setdefault(r["condition"], []).append(r[metric])
        if any(len(v) for v in values.values()):
            png = draw(figs.metric_distributions, folder / f"fig4_{metric}_{region}", values,
                       metric=f"{metric.upper()} ({region}, vs original)")
            out["Fig. 4 — distributions per condition"].append((png, f"{metric.upper()} inside {region} per condition"))
    return out
