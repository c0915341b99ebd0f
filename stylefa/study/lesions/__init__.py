"""stylefa.study.lesions: the lesion science of the study.

- ``masks``       real lesion masks placed on FA in world space, the FA reduction model, a synthetic lesion
- ``detection``   AUROC, average precision, Otsu threshold, Dice of difference maps
- ``baselines``   the normative |z| model and |FA - template FA|, the detectors the residual is compared with
- ``healing``     the healing index (vs the original, control-corrected, vs the normative mean)
- ``evaluation``  per-patient detection and healing with cluster-bootstrap CIs and paired tests
- ``study``       the study's lesion part: control projections, baselines, tables, figures
- ``figures``     Figs. 6-7 (methods compared per patient, healing distributions)
- ``report``      the report's lesion section (HTML from ``summary['lesions']``)
"""


def __getattr__(name: str):
    # ``stylefa.study.lesions`` was the masks module before the split by concern: its names still resolve
    # here. Modules are never answered from it, so ``from stylefa.study.lesions import <submodule>``
    # imports the submodule.
    import importlib
    import types

    value = getattr(importlib.import_module("stylefa.study.lesions.masks"), name, None)
    if value is None or isinstance(value, types.ModuleType) or name.startswith("__"):
        raise AttributeError(f"module 'stylefa.study.lesions' has no attribute {name!r}")
    return value
