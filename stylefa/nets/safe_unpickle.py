"""A pickle reader for StyleGAN2-ADA network snapshots that never runs code from the file.

The reference writes ``network-snapshot-*.pkl`` with a plain ``pickle.dump`` of a dict of
networks. A normal ``pickle.load`` would import and execute whatever the file names, including
the network's own source code embedded in it, so a downloaded snapshot could run anything.
Here every global the stream asks for is looked up in a short allow-list that maps it onto
*our own* inert replacements:

- tensors: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter(_with_state)`` rebuild a
  plain tensor from a storage; the storage itself (``torch.storage._load_from_bytes``) is a
  legacy ``torch.save`` blob decoded only with ``torch.load(..., weights_only=True)``;
- containers: ``collections.OrderedDict``, ``builtins.set`` / ``frozenset``, ``_codecs.encode``
  (protocol 2 spells ``bytes`` with it; only the latin-1 codec is accepted);
- ``dnnlib.util.EasyDict`` becomes :class:`SafeEasyDict`, a dict that accepts no state;
- ``torch_utils.persistence._reconstruct_persistent_obj`` becomes a :class:`PersistentRecord`
  holding the class name, the object's ``__dict__`` and the module source *as text only*.

Every other global, persistent ids and any attempt to set state on our records raise
:class:`~stylefa.errors.UnsafeFileError` before anything could happen.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from typing import Any

from stylefa.errors import InputError, UnsafeFileError

# Every persistent class of the reference's training/networks.py and training/augment.py.
NETWORK_CLASSES = frozenset(
    {
        "Generator",
        "MappingNetwork",
        "SynthesisNetwork",
        "SynthesisBlock",
        "SynthesisLayer",
        "ToRGBLayer",
        "FullyConnectedLayer",
        "Conv2dLayer",
        "Discriminator",
        "DiscriminatorBlock",
        "DiscriminatorEpilogue",
        "MinibatchStdLayer",
        "AugmentPipe",
    }
)
TOP_LEVEL_CLASSES = frozenset({"Generator", "Discriminator", "AugmentPipe"})
PERSISTENCE_VERSION = 6  # torch_utils.persistence._version of the reference


class _Refused(Exception):
    """Raised inside the unpickler; turned into UnsafeFileError naming the file."""


class SafeEasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict that refuses pickled state."""

    def __setstate__(self, state):
        if state:
            raise _Refused("an EasyDict in the file carries object state, which a real EasyDict never has")


@dataclass
class PersistentRecord:
    """What ``_reconstruct_persistent_obj(meta)`` would have rebuilt, kept as inert data."""

    class_name: str
    state: dict[str, Any]
    module_src_sha256: str
    version: int

    def __setstate__(self, state):  # a BUILD opcode aimed at a record is never legitimate
        raise _Refused("the file tries to set state on a persistent network object")


def _reconstruct_persistent_obj(meta) -> PersistentRecord:
    if not isinstance(meta, dict):
        raise _Refused("a persistent object's metadata is not a dict")
    if meta.get("type") != "class":
        raise _Refused(f"persistent object of type {meta.get('type')!r}; only 'class' is known")
    version = meta.get("version")
    if version != PERSISTENCE_VERSION:
        raise _Refused(f"persistent object format version {version!r}; only {PERSISTENCE_VERSION} is known")
    class_name = meta.get("class_name")
    if not isinstance(class_name, str) or class_name not in NETWORK_CLASSES:
        raise _Refused(f"persistent object of unknown class {class_name!r}")
    module_src = meta.get("module_src")
    if not isinstance(module_src, str):
        raise _Refused(f"persistent {class_name}: module source is not text")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise _Refused(f"persistent {class_name}: state is not a dict")
    unknown = set(meta) - {"type", "version", "module_src", "class_name", "state"}
    if unknown:
        raise _Refused(f"persistent {class_name}: unexpected metadata {sorted(unknown)}")
    # The source is only hashed for provenance; it is never compiled or executed.
    digest = hashlib.sha256(module_src.encode("utf-8")).hexdigest()
    return PersistentRecord(class_name=class_name, state=dict(state), module_src_sha256=digest, version=version)


def _load_storage_from_bytes(blob):
    import torch

    if not isinstance(blob, (bytes, bytearray)):
        raise _Refused("a tensor storage is not a byte string")
    try:
        storage = torch.load(io.BytesIO(bytes(blob)), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch's weights-only loader rejects anything but plain data
        raise _Refused(f"a tensor storage could not be decoded safely ({type(exc).__name__}: {exc})") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise _Refused(f"a tensor storage blob holds a {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    import torch

    if not isinstance(storage, torch.TypedStorage):
        raise _Refused("a tensor is built from something that is not a typed storage")
    if backward_hooks:
        raise _Refused("a tensor carries backward hooks")
    if metadata:
        raise _Refused("a tensor carries conj/neg metadata, which network weights never have")
    ints = (int,)
    if not (isinstance(storage_offset, ints) and all(isinstance(v, ints) for v in (*size, *stride))):
        raise _Refused("a tensor's size/stride/offset is not integral")
    if len(size) != len(stride) or storage_offset < 0 or any(v < 0 for v in (*size, *stride)):
        raise _Refused("a tensor has an invalid size/stride/offset")
    numel_needed = storage_offset + (1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0)
    dtype = storage.dtype
    untyped = storage._untyped_storage
    if numel_needed * torch.empty((), dtype=dtype).element_size() > untyped.nbytes():
        raise _Refused("a tensor reaches beyond its storage")
    flat = torch.empty((0,), dtype=dtype)
    flat.set_(untyped, storage_offset, tuple(size), tuple(stride))
    # Own contiguous memory: the snapshot's storages are not shared with anything we return.
    return flat.clone(memory_format=torch.contiguous_format)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    import torch

    if not isinstance(data, torch.Tensor):
        raise _Refused("a parameter wraps something that is not a tensor")
    if backward_hooks:
        raise _Refused("a parameter carries backward hooks")
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    # Python attributes on a Parameter are dropped: the weights are all we use.
    return _rebuild_parameter(data, requires_grad, backward_hooks)


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Protocol 2 has no bytes opcode and writes bytes as _codecs.encode(str, 'latin1').
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str) or errors != "strict":
        raise _Refused(f"_codecs.encode with codec {encoding!r}")
    return text.encode("latin-1")


def _numpy_scalar(dtype, data=None):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _Refused("a numpy scalar that is not plain numeric data")
    return np.frombuffer(data, dtype=dtype, count=1)[0].item()


def _numpy_dtype(spec, align=False, copy=False):
    import numpy as np

    if not isinstance(spec, str):
        raise _Refused("a numpy dtype given by something other than its name")
    dtype = np.dtype(spec)
    if dtype.hasobject or dtype.names is not None:
        raise _Refused(f"numpy dtype {spec!r}")
    return _InertDtype(dtype)


class _InertDtype:
    """numpy rebuilds a dtype in two steps (construct, then BUILD with a state tuple)."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __setstate__(self, state):  # byte order etc. of a plain numeric dtype; ignored
        if not isinstance(state, tuple):
            raise _Refused("numpy dtype state is not a tuple")


def _numpy_scalar_from_inert(dtype, data=None):
    if isinstance(dtype, _InertDtype):
        dtype = dtype.dtype
    return _numpy_scalar(dtype, data)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar_from_inert,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar_from_inert,
    ("numpy", "dtype"): _numpy_dtype,
    ("dnnlib.util", "EasyDict"): SafeEasyDict,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        target = _ALLOWED.get((module, name))
        if target is None:
            raise _Refused(f"the file asks for {module}.{name}, which is not allowed in a network snapshot")
        return target

    def persistent_load(self, pid):
        raise _Refused("the file uses pickle persistent ids, which a network snapshot never does")


def restricted_load(path: str | os.PathLike, data: bytes | None = None):
    """Unpickle ``path`` with the allow-list above; refuse anything else with UnsafeFileError."""
    if data is None:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise InputError(f"cannot read file ({exc.strerror})", path) from None
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except _Refused as exc:
        raise UnsafeFileError(f"refused to load reference pickle: {exc}", path) from None
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
        AttributeError, MemoryError, RuntimeError, OverflowError, RecursionError,
    ) as exc:
        raise InputError(f"corrupt or truncated pickle ({type(exc).__name__}: {exc})", path) from None
