"""Write pickles in the exact format of stylegan2-ada-pytorch's ``network-snapshot-*.pkl``.

The reference's ``torch_utils.persistence`` decorates each network class so that pickling an
instance emits ``_reconstruct_persistent_obj(meta)`` with ``meta = {type, version, module_src,
class_name, state=<the module's __dict__>}``; ``dnnlib.util.EasyDict`` holds constructor
kwargs. Here stand-ins for those two modules are registered in ``sys.modules`` only while the
bytes are produced (``pickle.dump`` needs to find the globals by name), then removed, so a test
that later *reads* the file sees an interpreter where they do not exist.
"""

from __future__ import annotations

import contextlib
import copy
import pickle
import sys
import types

import numpy as np
import torch

BUFFER_NAMES = {"resample_filter", "noise_const", "w_avg", "p", "Hz_geom"}
FAKE_SRC = "# reference module source (never executed)\nraise SystemExit('module_src was executed')\n"


@contextlib.contextmanager
def fake_reference_modules():
    """Temporarily provide ``torch_utils.persistence`` and ``dnnlib.util`` for pickle.dump."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {name: sys.modules.get(name) for name in names}
    torch_utils = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called by stylefa
        raise AssertionError("the reference reconstruct function must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        def __setattr__(self, name, value):
            self[name] = value

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    dnnlib.util = util
    dnnlib.EasyDict = EasyDict
    torch_utils.persistence = persistence
    sys.modules.update(
        {"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib, "dnnlib.util": util}
    )
    try:
        yield types.SimpleNamespace(EasyDict=EasyDict, reconstruct=_reconstruct_persistent_obj)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class PersistentModule(torch.nn.Module):
    """An nn.Module that pickles like a reference ``@persistent_class`` instance."""

    def __init__(self, class_name: str, init_kwargs: dict | None = None, module_src: str = FAKE_SRC):
        super().__init__()
        self._orig_class_name = class_name
        self._orig_module_src = module_src
        self._init_args = ()
        self._init_kwargs = copy.deepcopy(init_kwargs or {})

    def __reduce__(self):
        # Same steps as torch_utils/persistence.py's Decorator.__reduce__.
        fields = list(super().__reduce__())
        fields += [None] * max(3 - len(fields), 0)
        meta = dict(
            type="class",
            version=6,
            module_src=self._orig_module_src,
            class_name=self._orig_class_name,
            state=fields[2],
        )
        fields[0] = sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj
        fields[1] = (meta,)
        fields[2] = None
        return tuple(fields)


def _class_for(network: str, path: str) -> str:
    parts = path.split(".") if path else []
    last = parts[-1] if parts else ""
    if not parts:
        return {"G": "Generator", "D": "Discriminator"}[network]
    if last == "mapping":
        return "MappingNetwork"
    if last == "synthesis":
        return "SynthesisNetwork"
    if last.startswith("fc") or last in ("embed", "affine", "out"):
        return "FullyConnectedLayer"
    if last == "torgb":
        return "ToRGBLayer"
    if last == "mbstd":
        return "MinibatchStdLayer"
    if last.startswith("b") and last[1:].isdigit():
        if network == "G":
            return "SynthesisBlock"
        return "DiscriminatorEpilogue" if last == "b4" else "DiscriminatorBlock"
    if network == "G":
        return "SynthesisLayer"
    return "Conv2dLayer"


def build_network(network: str, tensors: dict[str, np.ndarray], init_kwargs: dict) -> PersistentModule:
    """A tree of PersistentModules holding ``tensors`` (reference names, no 'G.' prefix)."""
    root = PersistentModule(_class_for(network, ""), init_kwargs)
    nodes = {"": root}

    def node(path: str) -> PersistentModule:
        if path not in nodes:
            parent_path, _, name = path.rpartition(".")
            child = PersistentModule(_class_for(network, path))
            node(parent_path).add_module(name, child)
            nodes[path] = child
        return nodes[path]

    for full_name, array in tensors.items():
        module_path, _, leaf = full_name.rpartition(".")
        owner = node(module_path)
        tensor = torch.from_numpy(np.array(array, dtype=np.float32))
        if leaf in BUFFER_NAMES:
            owner.register_buffer(leaf, tensor)
        else:
            owner.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    if network == "D" and "b4" in nodes:
        node("b4.mbstd")  # the reference's minibatch-std layer has no tensors of its own
    return root


def reference_tensors(npz_path, prefix: str) -> dict[str, np.ndarray]:
    with np.load(npz_path, allow_pickle=False) as data:
        return {key[len(prefix) :]: data[key] for key in data.files if key.startswith(prefix)}


def snapshot_bytes(npz_path, configs: dict, protocol: int = pickle.DEFAULT_PROTOCOL, with_d: bool = True) -> bytes:
    """A network-snapshot pickle whose G, G_ema (and D) hold the reference tensors of npz_path."""
    with fake_reference_modules() as ref:
        E = ref.EasyDict
        g_cfg, d_cfg = configs["G"], configs["D"]
        g_kwargs = {
            key: (E(value) if isinstance(value, dict) else value) for key, value in g_cfg.items()
        }
        d_kwargs = {key: (E(value) if isinstance(value, dict) else value) for key, value in d_cfg.items()}
        g_tensors = reference_tensors(npz_path, "G.")
        G = build_network("G", g_tensors, g_kwargs)
        G_ema = build_network("G", g_tensors, g_kwargs)
        D = build_network("D", reference_tensors(npz_path, "D."), d_kwargs) if with_d else None
        pipe = PersistentModule("AugmentPipe", {"xflip": 1, "rotate90": 1, "xint": 1, "scale": 1})
        pipe.register_buffer("p", torch.tensor([0.25]))
        pipe.register_buffer("Hz_geom", torch.ones(12))
        data = dict(
            training_set_kwargs=dict(
                E(
                    class_name="training.dataset.ImageFolderDataset",
                    path="/data/fa.zip",
                    use_labels=False,
                    max_size=np.int64(1200),
                    xflip=False,
                    resolution=g_cfg["img_resolution"],
                )
            )
        )
        for name, module in (("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", pipe)):
            data[name] = module
        return pickle.dumps(data, protocol=protocol)
