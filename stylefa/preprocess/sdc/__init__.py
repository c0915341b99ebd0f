"""Susceptibility-distortion correction from a reversed phase-encoding pair (topup model, torch)
and GRE field-map conversion / comparison. See docs/preprocess_sdc.md."""

from stylefa.preprocess.sdc.model import PhaseEncoding, displacement_voxels, distort, pe_jacobian, unwarp

__all__ = ["PhaseEncoding", "displacement_voxels", "distort", "pe_jacobian", "unwarp", "TopupConfig",
           "FieldEstimate", "estimate_field", "gre_field_hz", "compare_fields"]

_LAZY = {"TopupConfig": "topup", "FieldEstimate": "topup", "estimate_field": "topup",
         "gre_field_hz": "fieldmap", "compare_fields": "fieldmap"}


def __getattr__(name):
    # torch and dipy load only when the estimator is used, so importing the conventions stays light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"stylefa.preprocess.sdc.{_LAZY[name]}"), name)
    raise AttributeError(name)
