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
