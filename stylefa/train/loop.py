"""The StyleGAN2-ADA training loop (reference ``training_loop.py`` semantics).

One minibatch = the phases Gmain, Greg (every ``pl_interval``), Dmain, Dreg (every
``r1_interval``), each with its own fresh latents; then the G_ema update, then the ADA
p update. Every ``tick_kimg`` thousand images a tick: statistics, and every ``snap``
ticks image grids, a network snapshot with its exact-resume state and metrics.

All randomness the optimisation depends on comes from seeded generators that are saved in
the resume state, so ``N`` steps straight equal ``N/2`` + resume + ``N/2``.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylefa.train.distributed import (
    DistContext,
    GlobalBatchSampler,
    average_float_buffers_,
    average_gradients_,
    broadcast_module_,
)
from stylefa.train.options import ResolvedTrainConfig


@dataclass
class Phase:
    name: str
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int


@dataclass
class TrainResult:
    run_dir: Path
    cur_nimg: int
    last_snapshot: Path | None
    stats: dict[str, Any]


@dataclass
class TrainingState:
    """Everything besides the networks that the next minibatch depends on."""

    cur_nimg: int = 0
    cur_tick: int = 0
    batch_idx: int = 0
    tick_start_nimg: int = 0
    elapsed_sec: float = 0.0


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """Per-minibatch decay of G_ema: half-life ``ema_kimg`` thousand images, shortened to
    ``cur_nimg * ema_rampup`` early in training (reference formula)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema_(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def make_optimizer(module: torch.nn.Module, config: ResolvedTrainConfig, reg_interval: int,
                   net: str | None = None) -> torch.optim.Adam:
    """Adam for ``net`` ('G' or 'D': its own base lr if ``--glr``/``--dlr`` set one)."""
    lr, betas = config.optim.effective(reg_interval, net)
    # foreach=False: the per-parameter loop gives bit-identical results however the
    # parameters are grouped, which the resume and multi-process tests rely on.
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=config.optim.eps, foreach=False)


def _label_of(dataset, idx: int) -> np.ndarray:
    if hasattr(dataset, "label"):
        return np.asarray(dataset.label(idx), dtype=np.float32)
    return np.asarray(dataset[idx][1], dtype=np.float32)


def configure_backends(config: ResolvedTrainConfig, device: torch.device) -> None:
    from stylefa.runtime import apply_backend_flags

    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    apply_backend_flags(config.cuda_settings(), device)


def compiled_networks(G: torch.nn.Module, D: torch.nn.Module):
    """torch.compile'd views of G.mapping, G.synthesis and D (shared parameters) for the loss's
    first-order phases; ``stylefa.train.loss.CompiledNetworks``."""
    from stylefa.runtime import compiled
    from stylefa.train.loss import CompiledNetworks

    return CompiledNetworks(mapping=compiled(G.mapping), synthesis=compiled(G.synthesis), D=compiled(D))


class Trainer:
    """Holds the networks, optimisers, data and RNGs of one run on one rank."""

    def __init__(self, config: ResolvedTrainConfig, dataset, dist: DistContext, run_dir: Path | None):
        from stylefa.nets.checkpoint import create_networks
        from stylefa.train.ada import build_augmentation
        from stylefa.train.loss import StyleGAN2Loss

        self.config = config
        self.dataset = dataset
        self.dist = dist
        self.run_dir = run_dir
        self.device = dist.device
        configure_backends(config, self.device)
        # Global RNGs feed only in-network noise and augmentation; seeded per rank as the reference.
        torch.manual_seed(config.seed * dist.world_size + dist.rank)
        np.random.seed((config.seed * dist.world_size + dist.rank) % 2**32)

        nets = create_networks(config.G, config.D, seed=config.seed)
        self.G = nets["G"].train().requires_grad_(False).to(self.device)
        self.D = nets["D"].train().requires_grad_(False).to(self.device)
        self.G_ema = nets["G_ema"].eval().requires_grad_(False).to(self.device)
        if config.precision == "bf16":
            for net in (self.G.synthesis, self.G_ema.synthesis, self.D):
                net.set_reduced_precision(torch.bfloat16)
        if config.channels_last and self.device.type == "cuda":
            for net in (self.G, self.G_ema, self.D):
                net.to(memory_format=torch.channels_last)

        self.augment_pipe, self.ada = build_augmentation(config.augment, device=self.device)
        # Identically seeded on every rank: global-batch latents and labels, then sharded.
        self.latent_rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.label_rng = np.random.default_rng(config.seed)
        self.loss = StyleGAN2Loss(
            self.G, self.D, config.loss, augment_pipe=self.augment_pipe,
            rng=torch.Generator(device=self.device).manual_seed(config.seed + 1), dist=dist,
            compiled=compiled_networks(self.G, self.D) if config.compile else None,
        )
        self.phases = [
            Phase("Gmain", self.G, make_optimizer(self.G, config, config.loss.pl_interval, "G"), 1),
            Phase("Greg", self.G, None, config.loss.pl_interval),
            Phase("Dmain", self.D, make_optimizer(self.D, config, config.loss.r1_interval, "D"), 1),
            Phase("Dreg", self.D, None, config.loss.r1_interval),
        ]
        self.phases[1].opt = self.phases[0].opt
        self.phases[3].opt = self.phases[2].opt
        self.state = TrainingState()
        self.batch_size = config.batch
        self.batch_gpu = config.batch // dist.world_size
        self._data_iter = None

    # -- parameters in, parameters out ----------------------------------------------------------
    def load_networks(self, networks: dict[str, Any], source) -> None:
        """Copy G / G_ema / D from a loaded snapshot (fine-tuning start or resume)."""
        from stylefa.errors import InputError

        loaded_any = False
        for name, module in (("G", self.G), ("G_ema", self.G_ema), ("D", self.D)):
            src = networks.get(name)
            if src is None and name == "G":
                src = networks.get("G_ema")
            if src is None:
                continue
            try:
                module.load_state_dict(src.state_dict(), strict=True)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()
                raise InputError(f"{name} does not match this run's architecture ({first[1] if len(first) > 1 else first[0]})",
                                 source) from None
            loaded_any = True
        if "G_ema" not in networks and "G" in networks:
            self.G_ema.load_state_dict(self.G.state_dict())
        if not loaded_any:
            raise InputError("snapshot holds no networks", source)

    def synchronise_initial_state(self) -> None:
        for module in (self.G, self.D, self.G_ema):
            broadcast_module_(module, self.dist)
        if self.augment_pipe is not None:
            broadcast_module_(self.augment_pipe, self.dist)

    # -- data -------------------------------------------------------------------------------------
    def _start_data(self) -> None:
        workers = self.config.workers
        if workers is None:
            workers = 3 if self.device.type == "cuda" else 0
        sampler = GlobalBatchSampler(len(self.dataset), self.batch_size, self.config.seed, self.dist,
                                     start_batch=self.state.batch_idx)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=2 if workers > 0 else None,
            persistent_workers=False,
            # Its own generator: creating an iterator must not draw from the global RNG, or a
            # resumed run would be one draw off.
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        self._data_iter = iter(loader)

    def _fetch_reals(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._data_iter is None:
            self._start_data()
        img, c = next(self._data_iter)
        img = img.to(self.device, torch.float32, non_blocking=True)
        if self.config.channels_last and self.device.type == "cuda":
            img = img.contiguous(memory_format=torch.channels_last)
        return img, c.to(self.device, torch.float32, non_blocking=True).reshape(img.shape[0], -1)

    def _fake_inputs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Latents and labels for every phase (drawn even for skipped phases, like the
        reference, so the stream does not depend on the regularisation schedule)."""
        n_phase = len(self.phases)
        z = torch.randn([n_phase * self.batch_size, self.G.z_dim], generator=self.latent_rng, device=self.device)
        picks = self.label_rng.integers(len(self.dataset), size=n_phase * self.batch_size)
        if self.G.c_dim > 0:
            c = torch.from_numpy(np.stack([_label_of(self.dataset, int(i)) for i in picks])).to(self.device)
        else:
            c = torch.zeros([n_phase * self.batch_size, 0], device=self.device)
        zs = [self.dist.shard(part) for part in z.split(self.batch_size)]
        cs = [self.dist.shard(part) for part in c.split(self.batch_size)]
        return zs, cs

    # -- one minibatch ----------------------------------------------------------------------------
    def step(self, stats=None) -> None:
        real_img, real_c = self._fetch_reals()
        all_z, all_c = self._fake_inputs()

        def report(name: str, value: torch.Tensor) -> None:
            if stats is not None:
                stats.report(name, value)
            if self.ada is not None and name == "Loss/scores/real":
                self.ada.report(value)

        for phase, gen_z, gen_c in zip(self.phases, all_z, all_c):
            if self.state.batch_idx % phase.interval != 0:
                continue
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            self.loss.accumulate_gradients(phase.name, real_img, real_c, gen_z, gen_c, gain=phase.interval, stats=report)
            phase.module.requires_grad_(False)
            average_gradients_(list(phase.module.parameters()), self.dist)
            phase.opt.step()

        average_float_buffers_(self.G, self.dist)
        update_ema_(self.G_ema, self.G, ema_beta(self.batch_size, self.state.cur_nimg, self.config.ema_kimg,
                                                 self.config.ema_rampup))
        self.state.cur_nimg += self.batch_size
        self.state.batch_idx += 1
        if self.ada is not None:
            self.ada.step(self.batch_size)

    # -- resume state -----------------------------------------------------------------------------
    def resume_payload(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON scalars of the exact-resume state (collective under DDP)."""
        from stylefa.train.state import capture_global_rng, optimizer_to_flat

        tensors: dict[str, torch.Tensor] = {}
        opt_meta = {}
        for key, opt in (("G", self.phases[0].opt), ("D", self.phases[2].opt)):
            t, m = optimizer_to_flat(opt, f"opt.{key}")
            tensors.update(t)
            opt_meta[key] = m
        if self.augment_pipe is not None:
            for name, buf in self.augment_pipe.state_dict().items():
                tensors[f"augment.{name}"] = buf
        tensors["loss.pl_mean"] = self.loss.pl_mean
        tensors["rng.latent"] = self.latent_rng.get_state()
        tensors["rng.loss"] = self.loss.rng.get_state()
        rank_rng = self.dist.all_gather_objects(capture_global_rng(self.device))
        rng_meta = []
        for rank, (rng_tensors, meta) in enumerate(rank_rng):
            for name, value in rng_tensors.items():
                tensors[f"rng.rank{rank}.{name}"] = value.cpu()
            rng_meta.append(meta)
        meta = {
            "cur_nimg": self.state.cur_nimg,
            "cur_tick": self.state.cur_tick,
            "batch_idx": self.state.batch_idx,
            "tick_start_nimg": self.state.tick_start_nimg,
            "elapsed_sec": self.state.elapsed_sec,
            "world_size": self.dist.world_size,
            "optimizers": opt_meta,
            "ada": None if self.ada is None else self.ada.state_dict(),
            "label_rng": self.label_rng.bit_generator.state,
            "global_rng": rng_meta,
            "options": self.config.to_dict(),
        }
        return tensors, meta

    def restore(self, resume) -> None:
        """Load a ``stylefa.train.state.ResumeState`` (networks, optimisers, RNGs, counters)."""
        import warnings

        from stylefa.train.state import optimizer_from_flat, restore_global_rng

        meta, tensors = resume.meta, resume.tensors
        self.load_networks(resume.networks, resume.meta_path)
        optimizer_from_flat(self.phases[0].opt, "opt.G", tensors, meta["optimizers"]["G"])
        optimizer_from_flat(self.phases[2].opt, "opt.D", tensors, meta["optimizers"]["D"])
        if self.augment_pipe is not None:
            self.augment_pipe.load_state_dict(
                {k[len("augment."):]: v for k, v in tensors.items() if k.startswith("augment.")}
            )
        if self.ada is not None and meta.get("ada"):
            self.ada.load_state_dict(meta["ada"])
        self.loss.pl_mean.copy_(tensors["loss.pl_mean"].to(self.device))
        self.latent_rng.set_state(tensors["rng.latent"])
        self.loss.rng.set_state(tensors["rng.loss"])
        self.label_rng.bit_generator.state = meta["label_rng"]
        if meta.get("world_size") == self.dist.world_size:
            prefix = f"rng.rank{self.dist.rank}."
            rank_tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            restore_global_rng(self.device, rank_tensors, meta["global_rng"][self.dist.rank])
        elif self.dist.is_main:
            warnings.warn(
                f"resuming with {self.dist.world_size} processes instead of {meta.get('world_size')}: in-network noise "
                "and augmentation draws are reseeded (everything else continues exactly)",
                stacklevel=2,
            )
        self.state = TrainingState(
            cur_nimg=int(meta["cur_nimg"]),
            cur_tick=int(meta["cur_tick"]),
            batch_idx=int(meta["batch_idx"]),
            tick_start_nimg=int(meta["tick_start_nimg"]),
            elapsed_sec=float(meta.get("elapsed_sec", 0.0)),
        )
        self._data_iter = None


def training_loop(
    config: ResolvedTrainConfig,
    dataset,
    dist: DistContext,
    run_dir: Path,
    resume_meta: Path | None = None,
    init_networks: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train until ``config.total_kimg``; rank 0 writes into ``run_dir``. Restores the
    process-wide deterministic-algorithms flag on exit."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        return _training_loop(config, dataset, dist, run_dir, resume_meta, init_networks, progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


GEOMETRY_KEYS = ("resolution", "fov_mm", "center_mm", "levels_mm", "pixel_size_mm", "orientation", "values", "mask")


def training_geometry(dataset) -> dict[str, Any]:
    """The slice geometry of the training data (levels, field of view, mask rule), recorded in
    every snapshot so that ``stylefa study`` can cut new FA volumes exactly as the model saw them."""
    info = getattr(dataset, "info", None) or {}
    return {key: info[key] for key in GEOMETRY_KEYS if key in info}


def data_identity(dataset) -> dict[str, Any] | None:
    """The training images' content identity (``FADataset.content_identity``), kept in every
    snapshot; None for a dataset object that cannot tell."""
    identity = getattr(dataset, "content_identity", None)
    return identity() if callable(identity) else None


def _training_loop(config, dataset, dist, run_dir, resume_meta, init_networks, progress) -> TrainResult:
    from stylefa.nets.checkpoint import Provenance, load_networks, save_networks
    from stylefa.train.logging import RunLogger, StatsCollector, format_tick_line, grid_indices, grid_shape, save_image_grid
    from stylefa.train.state import load_resume_state, snapshot_files, write_snapshot

    trainer = Trainer(config, dataset, dist, run_dir)
    identity = data_identity(dataset) if dist.is_main else None
    if resume_meta is not None:
        trainer.restore(load_resume_state(resume_meta, device=dist.device))
    elif init_networks is not None:
        trainer.load_networks(load_networks(init_networks, device=dist.device), init_networks)
        # --init-from: count images on from the file's kimg (EMA ramp-up and snapshot names follow).
        trainer.state.cur_nimg = trainer.state.tick_start_nimg = int(round(config.init_kimg * 1000))
    trainer.synchronise_initial_state()

    feature_net = None
    if config.metrics and dist.is_main:
        from stylefa.train.metrics.compute import MetricsConfig, check_image_counts
        from stylefa.train.metrics.inception import load_inception

        # Before training, not at the first snapshot: a split too small for FID/KID is refused now.
        num_real = len(dataset) // (2 if getattr(dataset, "xflip", False) else 1)
        for note in check_image_counts(config.metrics, num_real, MetricsConfig().num_gen, MetricsConfig(), dataset):
            print(f"stylefa train: note: {note}", file=sys.stderr)

        feature_net = load_inception(None, device=dist.device)

    # Grid of fixed latents for fakes (rank 0 only; drawn from its own generator so the
    # training streams are untouched and a resumed run shows the same grid).
    main = dist.is_main
    grid = grid_shape(config.resolution)
    grid_z = grid_c = None
    if main:
        labels = None
        if trainer.G.c_dim > 0:
            labels = np.stack([_label_of(dataset, i) for i in range(len(dataset))])
        picks = grid_indices(labels, len(dataset), *grid, seed=config.seed)
        grid_z = torch.randn([len(picks), trainer.G.z_dim], generator=torch.Generator().manual_seed(config.seed))
        grid_c = torch.from_numpy(np.stack([_label_of(dataset, i) for i in picks]).reshape(len(picks), -1))
        if not (run_dir / "reals.png").exists():
            save_image_grid(run_dir / "reals.png", torch.stack([torch.as_tensor(dataset[i][0]) for i in picks]), grid)

    def fakes() -> torch.Tensor:
        with torch.no_grad(), torch.random.fork_rng(devices=[dist.device] if dist.device.type == "cuda" else []):
            out = [
                trainer.G_ema(z.to(dist.device), c.to(dist.device), noise_mode="const").float().cpu()
                for z, c in zip(grid_z.split(trainer.batch_gpu), grid_c.split(trainer.batch_gpu))
            ]
        return torch.cat(out)

    if main and trainer.state.cur_nimg == 0:
        save_image_grid(run_dir / "fakes_init.png", fakes(), grid)

    state = trainer.state
    stats = StatsCollector(dist.device)
    resume_kimg = state.cur_nimg / 1e3 if resume_meta is not None else None
    logger = RunLogger(run_dir, resume_kimg=resume_kimg) if main else None
    total_nimg = int(round(config.total_kimg * 1000))
    bar = None
    if main and progress:
        from stylefa.progress import progress as progress_bar

        bar = progress_bar(total=round(config.total_kimg, 3), initial=round(state.cur_nimg / 1000, 3), unit="kimg",
                           desc="train", bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg "
                           "[{elapsed}<{remaining}{postfix}]")
    start_time = time.time() - state.elapsed_sec
    tick_start_time = time.time()
    last_snapshot = None
    last_stats: dict[str, Any] = {}
    metrics_results: dict[str, float] = {}
    done = state.cur_nimg >= total_nimg

    while not done:
        trainer.step(stats)
        if bar is not None:
            bar.update(config.batch / 1000)
        done = state.cur_nimg >= total_nimg
        if not done and state.cur_tick != 0 and state.cur_nimg < state.tick_start_nimg + config.tick_kimg * 1000:
            continue

        # -- tick -------------------------------------------------------------------------------
        tick_end_time = time.time()
        state.elapsed_sec = tick_end_time - start_time
        p = float(trainer.augment_pipe.p) if trainer.augment_pipe is not None else 0.0
        stats.report_scalar("Progress/tick", state.cur_tick)
        stats.report_scalar("Progress/kimg", state.cur_nimg / 1e3)
        stats.report_scalar("Progress/augment", p)
        stats.report_scalar("Timing/total_sec", state.elapsed_sec)
        stats.report_scalar("Timing/sec_per_tick", tick_end_time - tick_start_time)
        stats.report_scalar("Timing/sec_per_kimg", (tick_end_time - tick_start_time) / max(state.cur_nimg - state.tick_start_nimg, 1) * 1e3)
        tick_stats = stats.collect(dist)
        snapshot_now = done or state.cur_tick % config.snap == 0
        metrics_results = {}

        if snapshot_now:
            if main:
                save_image_grid(run_dir / f"fakes{state.cur_nimg // 1000:06d}.png", fakes(), grid)
            # The resume state describes the loop *after* this tick's bookkeeping.
            finished_tick, finished_start = state.cur_tick, state.tick_start_nimg
            state.cur_tick, state.tick_start_nimg = finished_tick + 1, state.cur_nimg
            tensors, meta = trainer.resume_payload()
            meta["data"] = identity
            state.cur_tick, state.tick_start_nimg = finished_tick, finished_start
            if main:
                files = snapshot_files(run_dir, state.cur_nimg)
                provenance = Provenance(source="train", kimg=state.cur_nimg / 1000,
                                        extra={"run_dir": run_dir.name, "cur_nimg": state.cur_nimg,
                                               "augment_p": p, "options": config.to_dict(),
                                               "dataset": training_geometry(dataset), "data": identity})

                def save_nets(path: Path) -> None:
                    save_networks(path, G=trainer.G, G_ema=trainer.G_ema, D=trainer.D, provenance=provenance)

                write_snapshot(files, save_nets, tensors, meta)
                last_snapshot = files.network
            if config.metrics:
                metrics_results = _evaluate_metrics(trainer, config, feature_net) if main else {}
            dist.barrier()

        if main:
            line = format_tick_line(tick_stats)
            if metrics_results:
                line += " " + " ".join(f"{k} {v:.4g}" for k, v in metrics_results.items())
            if bar is not None:
                bar.set_postfix_str(f"{tick_stats['Timing/sec_per_kimg']['mean']:.1f} s/kimg, p {p:.3f}", refresh=False)
                bar.write(line)
            else:
                print(line, flush=True)
            logger.write(tick_stats, metrics_results, state.cur_nimg / 1e3, state.elapsed_sec, time.time())
        last_stats = tick_stats
        state.cur_tick += 1
        state.tick_start_nimg = state.cur_nimg
        tick_start_time = time.time()

    if bar is not None:
        bar.close()
    if logger is not None:
        logger.close()
    return TrainResult(run_dir=run_dir, cur_nimg=state.cur_nimg, last_snapshot=last_snapshot, stats=last_stats)


def _evaluate_metrics(trainer: Trainer, config: ResolvedTrainConfig, feature_net) -> dict[str, float]:
    """FID/KID of G_ema on rank 0, in a forked RNG so training draws stay unchanged."""
    from stylefa.data import FADataset
    from stylefa.train.metrics import compute_metrics
    from stylefa.train.metrics.compute import MetricsConfig

    device = trainer.device
    devices = [device] if device.type == "cuda" else []
    metric_dataset = trainer.dataset
    if getattr(trainer.dataset, "xflip", False) and hasattr(trainer.dataset, "root"):
        metric_dataset = FADataset(trainer.dataset.root, split="train", xflip=False)
    with torch.random.fork_rng(devices=devices):
        G = copy.deepcopy(trainer.G_ema).eval()
        results = compute_metrics(G, metric_dataset, list(config.metrics),
                                  MetricsConfig(device=str(device), seed=config.seed, progress=False),
                                  feature_net=feature_net)
    return {k: float(v) for k, v in results.items()}


def open_dataset(options):
    from stylefa.data import FADataset

    return FADataset(options.data, split="train", xflip=options.mirror)


def resolve_config(options, dataset, dist: DistContext) -> ResolvedTrainConfig:
    import dataclasses

    from stylefa.train.options import resolve

    config = resolve(options, int(dataset.resolution), int(dataset.label_dim), dist.world_size, dist.device.type)
    return dataclasses.replace(config, device=dist.device.type)


def plan_init_from(outdir, config: ResolvedTrainConfig):
    """A new run that starts from ``config.init_from``'s networks at that file's kimg."""
    import dataclasses

    from stylefa.errors import InputError
    from stylefa.nets.checkpoint import read_metadata
    from stylefa.train.state import RunPlan, new_run_dir

    path = Path(config.init_from)
    if not path.is_file():
        raise InputError("--init-from: no such network file", path)
    try:
        provenance = read_metadata(path)["provenance"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise InputError(f"--init-from: not a network file ({exc})", path) from None
    kimg = float(getattr(provenance, "kimg", 0.0) or 0.0)
    config = dataclasses.replace(config, init_kimg=kimg)
    if kimg >= config.total_kimg:
        raise InputError(f"--init-from: the file is at {kimg:g} kimg, --kimg {config.total_kimg:g} leaves nothing to train",
                         path)
    return RunPlan(run_dir=new_run_dir(Path(outdir), config.desc), init_networks=path), config


def run_training(options, dataset=None, progress: bool = True) -> TrainResult:
    """``stylefa train`` as a function: set up processes, data, run directory and resume point,
    then train. ``dataset`` (anything like ``FADataset``: ``resolution``, ``label_dim``,
    ``__len__``, ``__getitem__`` -> (image [1, R, R] in [-1, 1], label), optional ``label(i)``)
    replaces ``options.data``; under torchrun every process calls this."""
    import dataclasses

    from stylefa.fileio import write_json
    from stylefa.train.distributed import init_distributed, shutdown_distributed
    from stylefa.train.options import summary_lines
    from stylefa.train.state import (
        OPTIONS_FILE,
        check_same_data,
        check_same_training,
        plan_run,
        remove_stale_temporaries,
        settle_snapshots,
    )

    dist = init_distributed(options.device)
    try:
        if dataset is None:
            dataset = open_dataset(options)
        config = resolve_config(options, dataset, dist)
        plan = None
        error = None
        if dist.is_main:
            try:
                plan = plan_run(options.outdir, config.desc, options.resume)
                if options.init_from is not None:
                    plan, config = plan_init_from(options.outdir, config)
                if plan.resume_meta is not None:
                    import json

                    record = json.loads(plan.resume_meta.read_text())
                    stored = ResolvedTrainConfig.from_dict(record["options"])
                    check_same_data(record.get("data"), data_identity(dataset), plan.resume_meta)
                    check_same_training(stored.training_identity(), config.training_identity(), plan.resume_meta)
                    # A resumed warm start still records where it started.
                    config = dataclasses.replace(config, init_from=stored.init_from, init_kimg=stored.init_kimg)
                plan.run_dir.mkdir(parents=True, exist_ok=True)
                remove_stale_temporaries(plan.run_dir)
                settle_snapshots(plan.run_dir)
                write_json(plan.run_dir / OPTIONS_FILE, config.to_dict())
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                error = exc
        # The config too: --init-from sets its start kimg on rank 0.
        plan, config, error_text = dist.broadcast_object((plan, config, None if error is None else repr(error)))
        if error is not None:
            raise error
        if error_text is not None:
            raise RuntimeError(f"rank 0 failed to set up the run: {error_text}")
        if dist.is_main:
            start = "resuming from " + str(plan.resume_meta) if plan.resume_meta else (
                "fine-tuning from " + str(plan.init_networks) if plan.init_networks else "new run")
            print(f"stylefa train: {plan.run_dir} ({start}, {dist.world_size} process(es) on {dist.device})", flush=True)
            for line in summary_lines(config, dist.world_size):
                print("  " + line, flush=True)
        return training_loop(config, dataset, dist, plan.run_dir, resume_meta=plan.resume_meta,
                             init_networks=plan.init_networks, progress=progress)
    finally:
        shutdown_distributed(dist)
