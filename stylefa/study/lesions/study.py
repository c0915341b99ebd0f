"""The study's lesion part: control projections, baselines, per-patient tables, figures.

Called by ``stylefa.study.study.run_study``; the numbers come from
``stylefa.study.lesions.evaluation`` (see its docstring for the definitions).

Outputs (in the study folder):

- ``lesion_metrics.csv``  one row per patient x method (and ``patient = ALL``: every patient's
  pixels pooled), columns ``stylefa.study.lesions.evaluation.PATIENT_COLUMNS``;
- ``lesion_slices.csv``   one row per lesion slice: lesion pixel count, healing indices,
  per-slice detection (empty below the minimum lesion pixels), SSIM/MSE/LPIPS and mean
  scores of the lesioned slice and of its control;
- ``figures/fig6_methods.*`` per-patient AUROC and AUPRC per method with CIs;
  ``figures/fig7_healing.*`` the healing-index distributions.
"""

from __future__ import annotations

from pathlib import Path

from stylefa.errors import InputError
from stylefa.fileio import write_csv

CONTROL_PREFIX = "control:"


def control_cases(cases) -> dict:
    """For every lesion case, its control: the unlesioned slice, projected with the lesion case's seed.

    Returns ``{lesion target id: control Case}``.
    """
    from dataclasses import replace

    from stylefa.fileio import safe_name

    controls = {}
    for case in cases:
        if case.lesion is None:
            continue
        name = case.condition.split(":", 1)[1]
        controls[case.target_id] = replace(
            case, target_id=f"{case.slice_key}__control-{safe_name(name, 'lesion')}",
            condition=CONTROL_PREFIX + name, modified=case.original, lesion=None, flair=None,
            seed_id=case.target_id)
    return controls


def load_baselines(config, source, notes: list[str]):
    """The normative model and the FA template for the baselines (either may be None, with a note)."""
    from stylefa.study.lesions.baselines import TemplateFA, fit_normative

    normative = None
    normative_source = None
    if config.normative:
        from stylefa.study.inputs import open_source

        normative_source = open_source(list(config.normative), "train", source.slicing)
    elif getattr(source, "split", None) not in (None, "train", "all"):
        from stylefa.study.inputs import DatasetSource

        try:
            normative_source = DatasetSource(source.root, "train")
        except InputError as exc:
            notes.append(f"No normative model from the dataset's train split: {exc}")
    if normative_source is not None:
        if normative_source.slicing.grid != source.slicing.grid:
            raise InputError("the normative data are cut on another slice grid than the study's data",
                             ", ".join(config.normative) or str(source.root))
        normative = fit_normative(normative_source)
        normative_description = getattr(normative_source, "description", "")
        notes.append(f"Normative model: {normative.n_subjects} lesion-free scans ({normative_description}); "
                     f"std floor {normative.std_floor:g} FA.")
    else:
        notes.append("Normative baseline omitted: give lesion-free FA files with --normative (or study a dataset "
                      "split other than train, whose train split is used).")
    template = None
    try:
        from stylefa.data.template import find_template

        path = find_template(config.template)
        template = TemplateFA.load(path)
    except InputError as exc:
        if config.template:
            raise
        notes.append(f"Template baseline omitted: {exc}")
    return normative, template


def project_wplus(G, targets, project_config, distance, folder: Path, settings: dict, *, batch_size: int,
                  device: str, w_avg_samples: int) -> dict:
    """The lesion and control targets projected again in W+ (one w per layer), resumable in ``folder``."""
    from dataclasses import replace

    from stylefa.fileio import check_run_settings
    from stylefa.study.runner import project_targets

    config = replace(project_config, space="w+")
    check_run_settings(folder, {**settings, "project": config.to_dict()}, "projections_wplus")
    return project_targets(G, targets, config, distance, folder, batch_size=batch_size, device=device,
                           w_avg_samples=w_avg_samples)


def evaluate_study_lesions(cases, controls: dict, projections, lpips_values, planes, normative, template,
                           outdir: Path, seed: int, notes: list[str], wplus: dict | None = None):
    """Score, tabulate and draw the lesion cases.

    Returns (summary['lesions'], report figure items, {lesion target id: its lesion_slices.csv row}).
    """
    from stylefa.study.lesions import evaluation as lesion_eval
    from stylefa.study.lesions.figures import healing_distribution, method_comparison

    items, ids = [], []
    flair_patients = set()
    for case in cases:
        if case.lesion is None:
            continue
        control = controls[case.target_id]
        info = planes[case.slice_key]
        patient = case.condition.split(":", 1)[1]
        if case.flair is not None:
            flair_patients.add(patient)
        item = lesion_eval.LesionSlice(
            patient=patient, subject=info.subject, slice_key=case.slice_key, z_mm=info.z_mm, lesion=case.lesion,
            brain=case.brain, original=case.original, lesioned=case.modified,
            projection=projections[case.target_id], control=projections[control.target_id],
            lpips={"lesioned": lpips_values.get(case.target_id, {}).get("input", float("nan")),
                   "control": lpips_values.get(control.target_id, {}).get("input", float("nan"))})
        if wplus:
            item.extra["residual_wplus"] = (wplus[case.target_id], wplus[control.target_id])
        items.append(lesion_eval.score_slice(item, normative, template, info.plane))
        ids.append(case.target_id)
    slice_rows, patient_rows, summary = lesion_eval.evaluate_lesions(items, seed=seed, notes=notes,
                                                                     flair_patients=flair_patients)
    if normative is not None:
        summary["normative_model"] = normative.describe()
    if template is not None:
        summary["template"] = template.path
    write_csv(outdir / "lesion_metrics.csv", lesion_eval.PATIENT_COLUMNS, patient_rows)
    write_csv(outdir / "lesion_slices.csv", lesion_eval.slice_columns(summary["methods"]), slice_rows)
    folder = outdir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    figures = [(method_comparison(summary, folder / "fig6_methods")[0],
                "Per-patient voxel AUROC and AUPRC of each method (dots with 95% cluster-bootstrap CIs over the "
                "patient's slices; black: all patients pooled, with CI over patients)"),
               (healing_distribution(slice_rows, folder / "fig7_healing")[0],
                "Healing index per lesion slice (1 = lesion healed back to the original FA, 0 = reproduced); "
                "control-corrected and against the normative mean")]
    return summary, figures, dict(zip(ids, slice_rows))
