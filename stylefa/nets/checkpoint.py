"""Network snapshots as one ``.safetensors`` file: weights + JSON metadata, no pickle.

Layout of a snapshot:

- tensors ``G.<name>``, ``G_ema.<name>``, ``D.<name>`` (whichever networks were saved), under
  the reference StyleGAN2-ADA state-dict names, plus ``extra.<name>`` for anything a caller
  wants to keep beside them (augment-pipe state, optimiser moments, ...);
- metadata key ``"stylefa"``: JSON ``{"format": 1, "config": {"G": ..., "D": ...},
  "provenance": {...}}`` so a snapshot rebuilds its own networks with no outside knowledge.

``load_generator`` / ``load_networks`` also accept the reference's ``network-snapshot-*.pkl``
(read by :mod:`stylefa.nets.pkl_import`, which runs nothing from the file). The format is
chosen from the file's first bytes, not its name.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylefa.errors import InputError
from stylefa.nets.config import DiscriminatorConfig, GeneratorConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT_VERSION = 1
METADATA_KEY = "stylefa"
NETWORK_KEYS = ("G", "G_ema", "D")
EXTRA_PREFIX = "extra."
_MAX_HEADER = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB too


@dataclass
class Provenance:
    """Where a snapshot came from; stored as JSON next to the weights."""

    source: str = "unknown"  # "train", "init-network", "import-pkl <sha256>"
    kimg: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # caller's free-form JSON (options, augment p)
    stylefa_version: str = ""
    created: str = ""  # ISO-8601 UTC

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Provenance":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


# ----------------------------------------------------------------------------------------------
# File sniffing


def detect_format(path: str | os.PathLike) -> str:
    """``"safetensors"`` or ``"pickle"`` from the file's leading bytes; InputError otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a folder, expected a network file (.safetensors or reference .pkl)", path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", path) from None
    if not head:
        raise InputError("file is empty", path)
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len > _MAX_HEADER or 8 + header_len > size:
            raise InputError("truncated or corrupt safetensors file (header runs past the end)", path)
        return "safetensors"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(b"\x89PNG"):
        kind = "a PNG image"
    elif head.startswith(b"PK\x03\x04"):
        kind = "a zip archive (e.g. a torch.save file), which is not supported"
    elif head.startswith(b"\x93NUMPY"):
        kind = "a numpy .npy array"
    else:
        kind = "in an unknown format"
    raise InputError(f"not a network file: it is {kind}; expected a stylefa .safetensors or a reference .pkl", path)


# ----------------------------------------------------------------------------------------------
# Building networks


def _network_classes():
    from stylefa.nets import Discriminator, Generator

    return Generator, Discriminator


def build_network(kind: str, config, state: dict[str, "torch.Tensor"] | None, path=None, device="cpu"):
    """Construct G/G_ema (``kind`` 'G'/'G_ema') or D from ``config`` and load ``state`` strictly.

    Names and shapes are compared before loading so a mismatch names the offending tensors.
    """
    Generator, Discriminator = _network_classes()
    cls = Discriminator if kind == "D" else Generator
    try:
        module = cls(config)
    except (ValueError, TypeError, AssertionError, KeyError) as exc:
        raise InputError(f"{kind}: architecture config cannot be built ({exc})", path) from None
    if state is not None:
        expected = module.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {_few(missing)}")
            if unexpected:
                parts.append(f"unexpected {_few(unexpected)}")
            raise InputError(f"{kind} tensors do not match its config: {'; '.join(parts)}", path)
        wrong = [
            f"{name} {tuple(state[name].shape)} vs {tuple(expected[name].shape)}"
            for name in expected
            if tuple(state[name].shape) != tuple(expected[name].shape)
        ]
        if wrong:
            raise InputError(f"{kind} tensor shapes do not match its config: {_few(wrong)}", path)
        module.load_state_dict(state, strict=True)
    return module.to(device).eval().requires_grad_(False)


def _few(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def create_networks(
    g_config: GeneratorConfig, d_config: DiscriminatorConfig | None = None, seed: int = 0
) -> dict[str, Any]:
    """Freshly initialised ``{"G", "G_ema", "D"}`` (D only with a config), reproducible by ``seed``.

    G_ema starts as an exact copy of G, as in the reference training loop.
    """
    import torch

    Generator, Discriminator = _network_classes()
    # fork_rng keeps the caller's global RNG untouched while initialisers draw from it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = Generator(g_config)
        D = Discriminator(d_config) if d_config is not None else None
    nets = {"G": G, "G_ema": copy.deepcopy(G).eval().requires_grad_(False)}
    if D is not None:
        nets["D"] = D
    return nets


# ----------------------------------------------------------------------------------------------
# Saving


def _module_config(module, given, kind: str):
    config = given if given is not None else getattr(module, "config", None)
    if config is None:
        raise ValueError(f"{kind} has no .config attribute; pass its config explicitly")
    return config


def save_networks(
    path: str | os.PathLike,
    G=None,
    G_ema=None,
    D=None,
    provenance: Provenance | None = None,
    extra_tensors: dict[str, "torch.Tensor"] | None = None,
    g_config: GeneratorConfig | None = None,
    d_config: DiscriminatorConfig | None = None,
) -> Path:
    """Write one snapshot atomically; returns ``path``.

    ``g_config`` / ``d_config`` default to the modules' ``.config``. ``extra_tensors`` are
    stored as ``extra.<name>`` and come back from :func:`load_networks` under ``"extra"``.
    """
    from safetensors.torch import save_file

    from stylefa._version import __version__
    from stylefa.fileio import atomic_path

    if G is None and G_ema is None and D is None:
        raise ValueError("save_networks needs at least one of G, G_ema, D")
    g_cfg = None
    for kind, module in (("G", G), ("G_ema", G_ema)):
        if module is not None:
            cfg = _module_config(module, g_config, kind)
            if g_cfg is not None and cfg != g_cfg:
                raise ValueError("G and G_ema have different configs")
            g_cfg = cfg
    d_cfg = _module_config(D, d_config, "D") if D is not None else None

    tensors: dict[str, Any] = {}
    seen_storage: set[int] = set()

    def put(key: str, tensor) -> None:
        tensor = tensor.detach().to("cpu").contiguous()
        # safetensors refuses tensors that share memory (e.g. one filter buffer registered
        # in several layers); a copy per name keeps the file self-describing.
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen_storage and tensor.numel() > 0:
            tensor = tensor.clone()
        seen_storage.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor

    for kind, module in (("G", G), ("G_ema", G_ema), ("D", D)):
        if module is not None:
            for name, tensor in module.state_dict().items():
                put(f"{kind}.{name}", tensor)
    for name, tensor in (extra_tensors or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"extra tensor name must be a non-empty string, got {name!r}")
        put(EXTRA_PREFIX + name, tensor)

    prov = copy.deepcopy(provenance) if provenance is not None else Provenance()
    prov.stylefa_version = __version__
    prov.created = prov.created or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    header = {
        "format": FORMAT_VERSION,
        "config": {
            "G": None if g_cfg is None else g_cfg.to_dict(),
            "D": None if d_cfg is None else d_cfg.to_dict(),
        },
        "provenance": prov.to_dict(),
    }
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"provenance is not JSON-serialisable ({exc})") from None
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: text})
    return path


# ----------------------------------------------------------------------------------------------
# Loading


def _read_safetensors(path: Path, want_tensors: bool):
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            keys = list(handle.keys())
            tensors = {key: handle.get_tensor(key) for key in keys} if want_tensors else None
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError variants
        raise InputError(f"corrupt or truncated safetensors file ({exc})", path) from None
    if METADATA_KEY not in metadata:
        raise InputError("safetensors file has no stylefa metadata (not a stylefa network snapshot)", path)
    try:
        header = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise InputError(f"stylefa metadata is not valid JSON ({exc})", path) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        found = header.get("format") if isinstance(header, dict) else None
        raise InputError(f"unsupported stylefa snapshot format {found!r} (this version reads {FORMAT_VERSION})", path)
    return header, keys, tensors


def _configs_from_header(header: dict[str, Any], path) -> dict[str, Any]:
    raw = header.get("config") or {}
    configs: dict[str, Any] = {"G": None, "D": None}
    for kind, cls in (("G", GeneratorConfig), ("D", DiscriminatorConfig)):
        if raw.get(kind) is not None:
            try:
                configs[kind] = cls.from_dict(raw[kind])
            except (ValueError, TypeError) as exc:
                raise InputError(f"{kind} config in metadata is invalid ({exc})", path) from None
    return configs


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """``{"format", "config": {"G": GeneratorConfig|None, "D": ...}, "provenance": Provenance,
    "networks": [...present...]}`` without loading any weights (a .pkl is read fully)."""
    path = Path(path)
    if detect_format(path) == "pickle":
        snapshot = _read_pickle(path)
        return {
            "format": "reference-pkl",
            "config": {"G": snapshot.g_config, "D": snapshot.d_config},
            "provenance": _pickle_provenance(path, snapshot),
            "networks": [kind for kind in NETWORK_KEYS if kind in snapshot.states],
        }
    header, keys, _ = _read_safetensors(path, want_tensors=False)
    return {
        "format": header["format"],
        "config": _configs_from_header(header, path),
        "provenance": Provenance.from_dict(header.get("provenance") or {}),
        "networks": [kind for kind in NETWORK_KEYS if any(key.startswith(kind + ".") for key in keys)],
    }


def _read_pickle(path: Path):
    from stylefa.nets.pkl_import import read_reference_pickle

    return read_reference_pickle(path)


def _pickle_provenance(path: Path, snapshot) -> Provenance:
    match = re.search(r"network-snapshot-(\d+)", path.name)
    extra = snapshot.provenance_extra()
    extra["original_file"] = path.name
    if match:
        extra["kimg_from"] = "file name"
    return Provenance(
        source=f"import-pkl {snapshot.file_sha256}",
        kimg=float(match.group(1)) if match else None,
        extra=extra,
    )


def load_networks(path: str | os.PathLike, device="cpu") -> dict[str, Any]:
    """All networks in a snapshot, in eval mode with gradients off.

    Returns ``{"G", "G_ema", "D"}`` (those present) plus ``"config"`` ({"G", "D"} typed
    configs), ``"provenance"`` (:class:`Provenance`) and ``"extra"`` ({name: tensor}).
    """
    return _load(Path(path), device, NETWORK_KEYS)


def _load(path: Path, device, kinds: tuple[str, ...], first_only: bool = False) -> dict[str, Any]:
    if detect_format(path) == "pickle":
        snapshot = _read_pickle(path)
        configs = {"G": snapshot.g_config, "D": snapshot.d_config}
        states = snapshot.states
        provenance = _pickle_provenance(path, snapshot)
        extra: dict[str, Any] = {}
    else:
        header, _, tensors = _read_safetensors(path, want_tensors=True)
        configs = _configs_from_header(header, path)
        provenance = Provenance.from_dict(header.get("provenance") or {})
        states = {}
        extra = {}
        for key, tensor in tensors.items():
            kind, _, name = key.partition(".")
            if key.startswith(EXTRA_PREFIX):
                extra[key[len(EXTRA_PREFIX) :]] = tensor
            elif kind in NETWORK_KEYS and name:
                states.setdefault(kind, {})[name] = tensor
            else:
                raise InputError(f"unexpected tensor {key!r} (expected G., G_ema., D. or extra. names)", path)
    result: dict[str, Any] = {}
    for kind in kinds:
        if kind not in states or (first_only and result):
            continue
        config = configs["D" if kind == "D" else "G"]
        if config is None:
            raise InputError(f"file holds {kind} tensors but no {'D' if kind == 'D' else 'G'} config", path)
        result[kind] = build_network(kind, config, states[kind], path, device)
    if not states:
        raise InputError("file holds no network (no G, G_ema or D tensors)", path)
    result.update(config=configs, provenance=provenance, extra=extra)
    return result


def load_generator(path: str | os.PathLike, device="cpu"):
    """The generator to sample from: G_ema if the snapshot has it, else G (eval, no grad)."""
    path = Path(path)
    nets = _load(path, device, ("G_ema", "G"), first_only=True)
    for kind in ("G_ema", "G"):
        if kind in nets:
            return nets[kind]
    raise InputError("file holds no generator (only a discriminator)", path)


def import_pkl(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Convert a reference ``network-snapshot-*.pkl`` into a stylefa ``.safetensors`` snapshot."""
    src = Path(src)
    if detect_format(src) != "pickle":
        raise InputError("not a pickle file; import-pkl converts reference network-snapshot-*.pkl files", src)
    nets = load_networks(src)
    return save_networks(
        dst,
        G=nets.get("G"),
        G_ema=nets.get("G_ema"),
        D=nets.get("D"),
        provenance=nets["provenance"],
        g_config=nets["config"]["G"],
        d_config=nets["config"]["D"],
    )
