"""Render images from a generator: one PNG + one .npy per seed (or per projected latent).

Seeds map to latents exactly as the reference ``generate.py`` does
(``z = np.random.RandomState(seed).randn(z_dim)``), so a seed names the same image in both.
Outputs are on the FA scale: ``FA = (x + 1) / 2`` of the network output ``x``; the PNG is
``round(clip(FA, 0, 1) * 255)`` and the ``.npy`` keeps the unclipped float32 FA values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stylefa.errors import InputError
from stylefa.fileio import check_run_settings, file_digest
from stylefa.runtime import resolve_device

NOISE_MODES = ("const", "random", "none")
MAX_SEED = 2**32 - 1  # np.random.RandomState accepts seeds in [0, 2**32)
SETTINGS_FILE = "generate.json"


@dataclass(frozen=True)
class GenerateConfig:
    network: Path
    outdir: Path
    seeds: tuple[int, ...] = ()
    projected_w: Path | None = None
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    class_index: int | None = None
    device: str = "auto"
    overwrite: bool = False


def parse_seeds(text: str) -> list[int]:
    """``"0-7,12"`` -> [0, 1, ..., 7, 12]; duplicates dropped, order kept."""
    seeds: list[int] = []
    if not text or not text.strip():
        raise InputError("--seeds is empty; give e.g. 0-7,12")
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise InputError(f"--seeds {text!r}: cannot read {part!r}; use non-negative integers and ranges like 0-7,12")
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise InputError(f"--seeds {text!r}: range {part!r} ends before it starts")
        if stop > MAX_SEED:
            raise InputError(f"--seeds {text!r}: seeds must be at most {MAX_SEED}")
        if stop - start >= 1_000_000:
            raise InputError(f"--seeds {text!r}: range {part!r} has over a million seeds")
        seeds.extend(range(start, stop + 1))
    return list(dict.fromkeys(seeds))


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The reference's latent for a seed, float32 [1, z_dim]."""
    return np.random.RandomState(seed).randn(1, z_dim).astype(np.float32)


def to_fa(image) -> np.ndarray:
    """Network output [1, C, H, W] in ~[-1, 1] -> float32 FA [C, H, W]."""
    return ((image[0].detach().float().cpu().numpy() + 1.0) / 2.0).astype(np.float32)


def write_fa_outputs(outdir: Path, stem: str, fa: np.ndarray) -> list[Path]:
    """``stem.npy`` ([H, W], or [C, H, W] for several channels) and ``stem.png`` (channel 0);
    further channels as ``stem_c<k>.png``."""
    from stylefa.fileio import write_npy, write_png_gray

    paths = [outdir / f"{stem}.npy", outdir / f"{stem}.png"]
    write_npy(paths[0], fa[0] if fa.shape[0] == 1 else fa)
    write_png_gray(paths[1], fa[0])
    for channel in range(1, fa.shape[0]):
        paths.append(outdir / f"{stem}_c{channel}.png")
        write_png_gray(paths[-1], fa[channel])
    return paths


def _check_settings(config: GenerateConfig) -> None:
    """Outputs in an existing folder are reused only if they came from the same settings."""
    settings: dict[str, Any] = {
        "network_sha256": file_digest(config.network),
        "projected_w_sha256": None if config.projected_w is None else file_digest(config.projected_w),
        "truncation_psi": config.truncation_psi,
        "noise_mode": config.noise_mode,
        "class_index": config.class_index,
    }
    check_run_settings(config.outdir, settings, "images", file_name=SETTINGS_FILE,
                       remedy="use another --outdir or --overwrite", replace=config.overwrite)


def _label(G, class_index: int | None, batch: int, device):
    import torch

    c = torch.zeros([batch, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_index is not None:
            raise InputError("--class given but the network is unconditional (c_dim = 0)")
        return c
    if class_index is None:
        raise InputError(f"the network is conditional (c_dim = {G.c_dim}): give --class K")
    if not 0 <= class_index < G.c_dim:
        raise InputError(f"--class {class_index} is out of range: the network has {G.c_dim} classes (0..{G.c_dim - 1})")
    c[:, class_index] = 1
    return c


def load_projected_w(path: Path, G) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``w`` as [N, num_ws, w_dim] and the noise maps {layer: [N or 1, 1, H, W]} of a projection.

    Raises ``InputError`` for a missing or unreadable file, NaN/Inf values and wrong shapes."""
    from stylefa.readers import read_npz

    arrays = read_npz(path)  # numeric and finite: a diverged projection's NaN w is refused here
    if "w" not in arrays:
        raise InputError(f"no 'w' array (found: {', '.join(sorted(arrays)) or 'nothing'})", path)
    w = arrays["w"].astype(np.float32)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim) or w.shape[0] == 0:
        raise InputError(
            f"'w' has shape {arrays['w'].shape}; this network needs [{G.num_ws}, {G.w_dim}] or [N, {G.num_ws}, {G.w_dim}]",
            path,
        )
    shapes = G.synthesis.noise_shapes()
    noise = {}
    for key, value in arrays.items():
        if not key.startswith("noise."):
            continue
        layer = key[len("noise.") :]
        if layer not in shapes:
            raise InputError(f"{key!r}: the network has no noise layer {layer!r} (it has {', '.join(shapes)})", path)
        value = value.astype(np.float32)
        value = value.reshape((1, 1) + value.shape) if value.ndim == 2 else value
        value = value[:, None] if value.ndim == 3 else value
        if value.ndim != 4 or value.shape[1] != 1 or value.shape[2:] != shapes[layer] or value.shape[0] not in (1, w.shape[0]):
            raise InputError(f"{key!r} has shape {arrays[key].shape}; expected {shapes[layer]} per image", path)
        noise[layer] = value
    return w, noise


def generate(config: GenerateConfig) -> list[Path]:
    """Write the images of ``config``; returns the paths written (existing ones are skipped)."""
    import torch

    from stylefa.nets.checkpoint import load_generator
    from stylefa.progress import progress

    if config.noise_mode not in NOISE_MODES:
        raise InputError(f"--noise-mode must be one of {', '.join(NOISE_MODES)}, got {config.noise_mode!r}")
    if bool(config.seeds) == (config.projected_w is not None):
        raise InputError("give either --seeds or --projected-w (exactly one of them)")
    device = resolve_device(config.device)
    G = load_generator(config.network, device=device)
    if config.projected_w is not None:
        w_all, noise_all = load_projected_w(config.projected_w, G)
        if noise_all and config.noise_mode != "const":
            # The projection's optimised noise maps are part of the result; silently replacing
            # them would render a different image than the one the projection reported.
            raise InputError(
                f"holds projected noise maps, which are rendered with --noise-mode const only "
                f"(got {config.noise_mode})", config.projected_w)
        jobs = [(f"proj{index:04d}", index) for index in range(w_all.shape[0])]
    else:
        if config.truncation_psi != 1 and getattr(G.mapping, "w_avg_beta", 0) is None:
            raise InputError("--trunc needs a network that tracks w_avg; this one does not", config.network)
        jobs = [(f"seed{seed:04d}", seed) for seed in config.seeds]
    c = _label(G, config.class_index, 1, device)
    _check_settings(config)

    written: list[Path] = []
    todo = [job for job in jobs if config.overwrite or not (config.outdir / f"{job[0]}.png").exists()
            or not (config.outdir / f"{job[0]}.npy").exists()]
    for stem, key in progress(todo, desc="generate", unit="img"):
        # A per-image RNG makes noise_mode='random' reproducible too, whatever else ran before.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(key)
            if config.projected_w is not None:
                ws = torch.from_numpy(w_all[key : key + 1]).to(device)
                override = {
                    layer: torch.from_numpy(maps[key : key + 1] if maps.shape[0] > 1 else maps).to(device)
                    for layer, maps in noise_all.items()
                }
                image = G.synthesis(ws, noise_mode=config.noise_mode, noise_override=override or None)
            else:
                z = torch.from_numpy(seed_to_z(key, G.z_dim)).to(device)
                image = G(z, c, truncation_psi=config.truncation_psi, noise_mode=config.noise_mode)
        written += write_fa_outputs(config.outdir, stem, to_fa(image))
    return written
