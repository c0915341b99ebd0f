"""stylefa.data: NIfTI loading, DWI -> FA, registration, slicing, datasets, simulated cohort."""

__all__ = ["FADataset", "PrepareConfig", "SliceGrid", "SliceSpace", "prepare_dataset"]

_LAZY = {
    "FADataset": "stylefa.data.dataset",
    "PrepareConfig": "stylefa.data.prepare",
    "prepare_dataset": "stylefa.data.prepare",
    "SliceGrid": "stylefa.data.slices",
    "SliceSpace": "stylefa.data.volumes",
}


def __getattr__(name: str):
    # Lazy so that importing a submodule (or the CLI) does not pull in numpy-heavy code.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stylefa.data' has no attribute {name!r}")
