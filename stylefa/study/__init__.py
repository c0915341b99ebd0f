"""stylefa.study: the projection-accuracy study, its lesion science and its report.

The study's orchestration, at this level:

- ``study``       ``run_study(StudyConfig(...))``: slices -> conditions/lesions -> projections -> tables -> report
- ``demo``        ``run_demo(DemoConfig(...))``: the whole study on a simulated cohort and the shipped model
- ``demo_model``  where the shipped demo generator lives (its files and model card)
- ``commands``    ``stylefa study`` and ``stylefa demo``
- ``inputs``      the slices a study works on: a prepared dataset split, or FA NIfTI files sliced here
- ``conditions``  corruptions of a slice (noise, salt & pepper, blur, inpainting) by spec
- ``runner``      resumable projection of the study's targets, progress and the CPU time estimate
- ``regions``     WM / GM / cortex / deep-GM masks from nilearn's MNI tissue priors
- ``tables``      metrics.csv rows and summary.json statistics
- ``stats``       bootstrap CIs, paired Wilcoxon tests

Sub-packages: ``stylefa.study.lesions`` (lesion masks, detection, baselines, healing, their
evaluation, figures and report section) and ``stylefa.study.report`` (the HTML report, findings,
provenance, figures, convergence, BIDS derivatives, the slice viewer). Image metrics (SSIM, MSE,
PSNR, MAE) live below every stage, in ``stylefa.image_metrics``.
"""

import importlib

# Modules that lived here before the split by concern; ``from stylefa.study import metrics`` keeps
# working (``stylefa.study.lesions`` and ``stylefa.study.report`` answer for their old modules).
_MOVED = {
    "metrics": "stylefa.image_metrics",
    "detection": "stylefa.study.lesions.detection",
    "baselines": "stylefa.study.lesions.baselines",
    "healing": "stylefa.study.lesions.healing",
    "lesion_eval": "stylefa.study.lesions.evaluation",
    "lesion_study": "stylefa.study.lesions.study",
    "lesion_figures": "stylefa.study.lesions.figures",
    "lesion_report": "stylefa.study.lesions.report",
    "report_sections": "stylefa.study.report.sections",
    "figures": "stylefa.study.report.figures",
    "findings": "stylefa.study.report.findings",
    "provenance": "stylefa.study.report.provenance",
    "convergence": "stylefa.study.report.convergence",
    "derivatives": "stylefa.study.report.derivatives",
    "groupmaps": "stylefa.study.report.groupmaps",
    "viewer": "stylefa.study.report.viewer",
}


def __getattr__(name: str):
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'stylefa.study' has no attribute {name!r}")
