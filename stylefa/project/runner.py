"""``stylefa project`` as a library call: targets in, one result folder per target out.

Targets are processed in chunks of ``batch`` (memory does not grow with their number),
finished targets are skipped, and under torchrun every rank takes the targets whose
index is congruent to its rank; rank 0 then waits for the others' folders and merges
the summary.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from stylefa.errors import InputError
from stylefa.fileio import check_run_settings, file_digest
from stylefa.project.config import ProjectConfig
from stylefa.project.outputs import (
    TargetResult, is_finished, rank_and_world, write_summary, write_target,
)
from stylefa.project.perceptual.loader import PerceptualSpec
from stylefa.project.targets import TargetSpec, shard
from stylefa.readers import ImageOptions, check_resolution
from stylefa.runtime import resolve_device


@dataclass(frozen=True)
class RunConfig:
    network: str
    outdir: str
    project: ProjectConfig = field(default_factory=ProjectConfig)
    perceptual: PerceptualSpec = field(default_factory=PerceptualSpec)
    batch: int = 16
    device: str = "auto"
    mask: str | None = None  # known-pixel mask applied to every target
    image_options: ImageOptions = field(default_factory=ImageOptions)  # how a PNG --mask is read
    precision: str = "auto"  # stylefa.project.config.PRECISION_CHOICES (CUDA only)
    compile: bool = False  # torch.compile each step's rendering and loss
    merge_wait_s: float = 6 * 3600.0  # rank 0 waits this long for the other ranks

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_settings(config: RunConfig) -> dict:
    """What a result depends on (not the batch size, device, precision, compile or video
    frames: a target's trajectory is the same either way, up to rounding), compared on every
    re-run so one folder never mixes two configurations."""
    perceptual = dataclasses.asdict(config.perceptual)
    perceptual.pop("download")
    for key in ("vgg16", "lpips_heads", "stlpips_weights"):
        if perceptual[key] is not None:
            perceptual[key] = file_digest(perceptual[key]) if Path(perceptual[key]).is_file() else perceptual[key]
    return {
        "network_sha256": file_digest(config.network),
        "mask_sha256": None if config.mask is None else file_digest(config.mask),
        "project": {k: v for k, v in config.project.to_dict().items() if k != "video_every"},
        "perceptual": perceptual,
    }


def chunks(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_projection(targets: Sequence[TargetSpec], config: RunConfig) -> Path | None:
    """Project every target; returns the summary path on rank 0 (None on other ranks)."""
    import torch

    from stylefa.nets.checkpoint import load_generator
    from stylefa.project.perceptual.loader import load_perceptual
    from stylefa.project.pti import pivotal_tuning
    from stylefa.project.projector import compute_w_stats, frozen_copy, project_batch, set_precision_
    from stylefa.runtime import apply_backend_flags, resolve_cuda_settings
    from stylefa.project.targets import read_mask

    if config.batch < 1:
        raise InputError(f"--batch must be >= 1, got {config.batch}")
    if not targets:
        raise InputError("no targets to project")
    outdir = Path(config.outdir)
    rank, world = rank_and_world()
    device = resolve_device(config.device)
    # TF32 (off for fp32) and cuDNN autotuning on CUDA; 'auto' precision = the network's own.
    speed = resolve_cuda_settings(device.type, config.precision, compile=config.compile)
    apply_backend_flags(speed, device)
    G = frozen_copy(load_generator(config.network, device=device), device)
    set_precision_(G, config.precision if device.type == "cuda" else "fp32")
    if G.img_channels != 1:
        raise InputError(f"expected a single-channel (FA) generator, this one has {G.img_channels} channels", config.network)
    resolution = check_resolution(G.img_resolution, "the generator's resolution", config.network)
    mask = None if config.mask is None else read_mask(config.mask, resolution, config.image_options)

    mine = shard(targets, rank, world)
    pending = [spec for spec in mine if not is_finished(outdir, spec.target_id)]
    # Every target is read once before anything is written: a bad file fails the run up front,
    # not after the targets before it were projected.
    for spec in pending:
        _load_fa(spec, resolution)
    # Loaded before the settings are recorded so a missing weights file leaves no trace.
    distance = load_perceptual(config.perceptual, device) if pending else None
    check_run_settings(outdir, run_settings(config), what="projections")
    if pending:
        w_stats = compute_w_stats(G, config.project.w_avg_samples, config.project.w_avg_seed, device)
        run_record = {
            "network": str(config.network),
            "perceptual": distance.record.to_dict(),
            "config": config.project.to_dict(),
            "batch": config.batch,
            "w_std": w_stats.w_std,
            "device": str(device),
            "precision": config.precision,
            "compile": config.compile,
        }
        steps = config.project.steps
        from stylefa.progress import progress

        bar = progress(total=len(pending) * steps, desc=f"project[{rank}]" if world > 1 else "project",
                       unit="img-step", smoothing=0.05)
        for chunk in chunks(pending, config.batch):
            fa = np.stack([_load_fa(spec, resolution) for spec in chunk])
            targets_t = torch.from_numpy(fa).to(device)[:, None] * 2 - 1
            masks_t = None
            if mask is not None:
                masks_t = torch.from_numpy(mask).to(device)[None, None].expand(len(chunk), 1, -1, -1)
            labels = _labels(G, chunk, device)
            result = project_batch(G, targets_t, distance, config.project, w_stats,
                                   [spec.target_id for spec in chunk], masks=masks_t, labels=labels,
                                   on_step=lambda _step, n=len(chunk): bar.update(n),
                                   compile_backend=speed.compile_backend if speed.compile else None)
            projected_fa = ((result.images[:, 0] + 1) / 2).cpu().numpy()
            for index, spec in enumerate(chunk):
                pti_fa = pti_curves = None
                if config.project.pti_steps:
                    pti_image, pti_curves = pivotal_tuning(
                        G, result.ws[index : index + 1],
                        {name: value[index : index + 1] for name, value in result.noise.items()},
                        targets_t[index : index + 1], distance, config.project.pti_steps,
                        config.project.pti_lr, config.project.pti_l2_weight,
                        None if masks_t is None else masks_t[index : index + 1],
                    )
                    pti_fa = ((pti_image[0, 0] + 1) / 2).cpu().numpy()
                curves = {name: (values[:, index] if values.ndim == 2 else values) for name, values in result.curves.items()}
                write_target(outdir, TargetResult(
                    target_id=spec.target_id, subject=spec.subject, slice_index=spec.slice_index,
                    source=spec.source, target_fa=fa[index], projected_fa=projected_fa[index],
                    w=result.ws[index].cpu().numpy(),
                    noise={name: value[index, 0].cpu().numpy() for name, value in result.noise.items()},
                    curves=curves, final_distance=float(result.final_distance[index]),
                    mask=mask, frames=result.frames[index] if result.frames else None,
                    pti_fa=pti_fa, pti_curves=pti_curves,
                ), run_record)
        bar.close()

    if rank != 0:
        return None
    all_ids = [spec.target_id for spec in targets]
    _wait_for_other_ranks(outdir, all_ids, config.merge_wait_s)
    path, count = write_summary(outdir, all_ids)
    from stylefa.project.volumes import write_projection_volumes

    write_projection_volumes(outdir, targets, run_settings(config))
    if count < len(all_ids):
        import warnings

        warnings.warn(f"{path}: {len(all_ids) - count} of {len(all_ids)} targets are unfinished; re-run to complete them")
    return path


def _load_fa(spec: TargetSpec, resolution: int) -> np.ndarray:
    image = np.asarray(spec.load(), dtype=np.float32)
    if image.shape != (resolution, resolution):
        raise InputError(f"target is {image.shape}, the generator makes {resolution}x{resolution}", spec.source)
    return image


def _labels(G, chunk: Sequence[TargetSpec], device):
    import torch

    if G.c_dim == 0 or any(spec.label is None for spec in chunk):
        return None
    onehot = torch.zeros(len(chunk), G.c_dim, device=device)
    for row, spec in enumerate(chunk):
        onehot[row, spec.label] = 1
    return onehot


def _wait_for_other_ranks(outdir: Path, target_ids: list[str], max_wait_s: float, poll_s: float = 10.0) -> None:
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline:
        if all(is_finished(outdir, tid) for tid in target_ids):
            return
        _, world = rank_and_world()
        if world == 1:
            return
        time.sleep(poll_s)
