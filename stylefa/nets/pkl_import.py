"""Read a reference StyleGAN2-ADA ``network-snapshot-*.pkl`` into weights + typed configs.

The snapshot is a dict ``{G, D, G_ema, augment_pipe, training_set_kwargs}`` whose networks are
persistent objects (see :mod:`stylefa.nets.safe_unpickle`, which reads them without running
anything). Here the inert records are walked: the state dict is collected from
``_parameters`` / ``_buffers`` / ``_modules`` under the reference's own names
(``mapping.fc0.weight`` ...), and the architecture is derived from the constructor arguments
the reference stored in ``_init_kwargs``, so our networks can be built and loaded strictly.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylefa.errors import InputError, UnsafeFileError
from stylefa.nets.config import (
    DiscriminatorConfig,
    EpilogueConfig,
    GeneratorConfig,
    MappingConfig,
    SynthesisConfig,
)
from stylefa.nets.safe_unpickle import PersistentRecord, SafeEasyDict, restricted_load

NETWORK_KEYS = ("G", "G_ema", "D")
# Reference constructor arguments that only change speed/memory layout, never the weights.
_RUNTIME_ONLY = {"fp16_channels_last", "fused_modconv_default"}


@dataclass
class ReferenceSnapshot:
    """Weights (reference state-dict names, CPU tensors) and architecture of one snapshot."""

    states: dict[str, dict[str, Any]]  # 'G' / 'G_ema' / 'D' -> {name: tensor}, those present
    g_config: GeneratorConfig | None
    d_config: DiscriminatorConfig | None
    file_sha256: str
    augment_p: float | None = None
    augment_kwargs: dict[str, Any] | None = None
    training_set_kwargs: dict[str, Any] | None = None
    module_src_sha256: list[str] = field(default_factory=list)  # distinct embedded sources

    def provenance_extra(self) -> dict[str, Any]:
        """JSON-safe facts worth keeping in the converted checkpoint."""
        return {
            "augment_p": self.augment_p,
            "augment_kwargs": self.augment_kwargs,
            "training_set_kwargs": self.training_set_kwargs,
            "reference_module_src_sha256": self.module_src_sha256,
        }


def _plain(value: Any, where: str, path) -> Any:
    """EasyDicts/OrderedDicts/tuples to JSON-able builtins; anything else is refused."""
    if isinstance(value, dict):  # includes SafeEasyDict and OrderedDict
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"{where}: non-text key {key!r}", path)
            out[key] = _plain(item, f"{where}.{key}", path)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, where, path) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InputError(f"{where}: unexpected value of type {type(value).__name__}", path)


def _collect_state(record: PersistentRecord, prefix: str, out: dict[str, Any], path) -> None:
    import torch

    state = record.state
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for slot in ("_parameters", "_buffers"):
        tensors = state.get(slot)
        if not isinstance(tensors, dict):
            raise InputError(f"{prefix or record.class_name}: {slot} missing from a {record.class_name}", path)
        for name, tensor in tensors.items():
            if tensor is None or (slot == "_buffers" and name in non_persistent):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise InputError(f"{prefix}{name} is a {type(tensor).__name__}, not a tensor", path)
            out[prefix + name] = tensor
    children = state.get("_modules")
    if not isinstance(children, dict):
        raise InputError(f"_modules missing from a {record.class_name}", path)
    for name, child in children.items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise UnsafeFileError(f"sub-module {prefix}{name} is not a reference network object", path)
        _collect_state(child, f"{prefix}{name}.", out, path)


def _src_hashes(record: PersistentRecord, out: set[str]) -> None:
    out.add(record.module_src_sha256)
    for child in (record.state.get("_modules") or {}).values():
        if isinstance(child, PersistentRecord):
            _src_hashes(child, out)


def _split(kwargs: dict[str, Any], known: set[str], what: str, path) -> dict[str, Any]:
    unknown = set(kwargs) - known - _RUNTIME_ONLY
    if unknown:
        raise InputError(f"{what}: unsupported reference constructor argument(s) {sorted(unknown)}", path)
    return {key: value for key, value in kwargs.items() if key in known}


def _fields(cls) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(cls)}


def _init_kwargs(record: PersistentRecord, path) -> dict[str, Any]:
    if record.state.get("_init_args"):
        raise InputError(f"{record.class_name} was built with positional arguments; cannot derive its config", path)
    kwargs = record.state.get("_init_kwargs")
    if not isinstance(kwargs, dict):
        raise InputError(f"{record.class_name} has no constructor arguments (_init_kwargs)", path)
    return _plain(kwargs, f"{record.class_name}._init_kwargs", path)


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}


def generator_config_from_kwargs(kwargs: dict[str, Any], path=None) -> GeneratorConfig:
    """Map the reference ``Generator(**kwargs)`` arguments onto :class:`GeneratorConfig`."""
    top = _split(
        kwargs,
        {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"},
        "Generator",
        path,
    )
    mapping = _split(top.pop("mapping_kwargs", {}) or {}, _fields(MappingConfig), "Generator.mapping_kwargs", path)
    synthesis = _split(
        top.pop("synthesis_kwargs", {}) or {}, _fields(SynthesisConfig), "Generator.synthesis_kwargs", path
    )
    try:
        return GeneratorConfig(
            **top, mapping=MappingConfig(**_tuples(mapping)), synthesis=SynthesisConfig(**_tuples(synthesis))
        )
    except TypeError as exc:
        raise InputError(f"Generator arguments do not form a valid config ({exc})", path) from None


def discriminator_config_from_kwargs(kwargs: dict[str, Any], path=None) -> DiscriminatorConfig:
    """Map the reference ``Discriminator(**kwargs)`` arguments onto :class:`DiscriminatorConfig`."""
    direct = {
        "c_dim",
        "img_resolution",
        "img_channels",
        "architecture",
        "channel_base",
        "channel_max",
        "num_fp16_res",
        "conv_clamp",
        "cmap_dim",
    }
    top = _split(kwargs, direct | {"block_kwargs", "mapping_kwargs", "epilogue_kwargs"}, "Discriminator", path)
    # The reference passes activation/resample_filter/freeze_layers to each block; our config
    # keeps them at the top level.
    block = _split(
        top.pop("block_kwargs", {}) or {},
        {"activation", "resample_filter", "freeze_layers"},
        "Discriminator.block_kwargs",
        path,
    )
    mapping = _split(top.pop("mapping_kwargs", {}) or {}, _fields(MappingConfig), "Discriminator.mapping_kwargs", path)
    epilogue = _split(
        top.pop("epilogue_kwargs", {}) or {}, _fields(EpilogueConfig), "Discriminator.epilogue_kwargs", path
    )
    mapping = {"w_avg_beta": None, **mapping}  # the reference D's mapping never tracks w_avg
    try:
        return DiscriminatorConfig(
            **top,
            **_tuples(block),
            mapping=MappingConfig(**_tuples(mapping)),
            epilogue=EpilogueConfig(**epilogue),
        )
    except TypeError as exc:
        raise InputError(f"Discriminator arguments do not form a valid config ({exc})", path) from None


def _expect(record: Any, class_name: str, key: str, path) -> PersistentRecord:
    if not isinstance(record, PersistentRecord):
        raise InputError(f"snapshot entry {key!r} is a {type(record).__name__}, not a reference network", path)
    if record.class_name != class_name:
        raise InputError(f"snapshot entry {key!r} is a {record.class_name}, expected a {class_name}", path)
    return record


def read_reference_pickle(path: str | os.PathLike) -> ReferenceSnapshot:
    """Read a reference snapshot without executing anything from it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", path) from None
    snapshot = restricted_load(path, data)
    if not isinstance(snapshot, dict) or not any(key in snapshot for key in NETWORK_KEYS):
        raise InputError("pickle is not a StyleGAN2-ADA network snapshot (no G, G_ema or D entry)", path)

    states: dict[str, dict[str, Any]] = {}
    g_config = d_config = None
    src_hashes: set[str] = set()
    for key, class_name in (("G", "Generator"), ("G_ema", "Generator"), ("D", "Discriminator")):
        if snapshot.get(key) is None:
            continue
        record = _expect(snapshot[key], class_name, key, path)
        tensors: dict[str, Any] = {}
        _collect_state(record, "", tensors, path)
        states[key] = tensors
        _src_hashes(record, src_hashes)
        if class_name == "Generator":
            config = generator_config_from_kwargs(_init_kwargs(record, path), path)
            if g_config is not None and config != g_config:
                raise InputError("G and G_ema were built with different architectures", path)
            g_config = config
        else:
            d_config = discriminator_config_from_kwargs(_init_kwargs(record, path), path)

    augment_p = augment_kwargs = None
    pipe = snapshot.get("augment_pipe")
    if pipe is not None:
        pipe = _expect(pipe, "AugmentPipe", "augment_pipe", path)
        augment_kwargs = _init_kwargs(pipe, path)
        p = (pipe.state.get("_buffers") or {}).get("p")
        augment_p = None if p is None else float(p.reshape(-1)[0])
    training_set_kwargs = snapshot.get("training_set_kwargs")
    if training_set_kwargs is not None:
        training_set_kwargs = _plain(training_set_kwargs, "training_set_kwargs", path)

    return ReferenceSnapshot(
        states=states,
        g_config=g_config,
        d_config=d_config,
        file_sha256=hashlib.sha256(data).hexdigest(),
        augment_p=augment_p,
        augment_kwargs=augment_kwargs,
        training_set_kwargs=training_set_kwargs,
        module_src_sha256=sorted(src_hashes),
    )


__all__ = [
    "ReferenceSnapshot",
    "SafeEasyDict",
    "discriminator_config_from_kwargs",
    "generator_config_from_kwargs",
    "read_reference_pickle",
]
