"""stylefa.study.report: everything the study writes for a reader, from its numbers.

- ``page``         the self-contained HTML report (``build_report``)
- ``sections``     banner, findings in words, provenance table, paired tests, model card
- ``findings``     the study's claims checked against ``summary.json``
- ``provenance``   what a study ran on (``summary['context']``)
- ``figures``      Figs. 1-4 (PNG + PDF); ``groupmaps``: Fig. 5, group |difference| over the template
- ``convergence``  convergence curves and restart spread of the projections
- ``derivatives``  the study's NIfTI volumes in a BIDS-derivatives layout
- ``viewer``       the report's interactive slice viewer (plain HTML/JS in ``viewer_assets``, offline)
"""


def __getattr__(name: str):
    # ``stylefa.study.report`` was the page module before the split by concern: its names still resolve
    # here. Modules are never answered from it, so ``from stylefa.study.report import <submodule>``
    # imports the submodule.
    import importlib
    import types

    value = getattr(importlib.import_module("stylefa.study.report.page"), name, None)
    if value is None or isinstance(value, types.ModuleType) or name.startswith("__"):
        raise AttributeError(f"module 'stylefa.study.report' has no attribute {name!r}")
    return value
