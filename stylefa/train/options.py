"""Training options: what the user asks for (``TrainOptions``) and what the loop runs
(``ResolvedTrainConfig``), with the reference's ``--cfg`` presets in between.

The presets follow ``train.py`` of the reference StyleGAN2-ADA (Karras et al. 2020). One
deliberate difference: for ``auto`` (and ``small``) R1 gamma and the EMA half-life are
derived from the *final* batch size, so ``--batch`` keeps them consistent
(gamma = 0.0002 * res^2 / batch, ema_kimg = batch * 10 / 32); the reference derives them
from its automatic batch size even when ``--batch`` overrides it.
"""

from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stylefa.errors import InputError
from stylefa.train.ada import AdaConfig
from stylefa.nets.config import (
    DiscriminatorConfig,
    GeneratorConfig,
    SMALL_CHANNEL_BASE,
    SMALL_CHANNEL_MAX,
    SMALL_MBSTD_GROUP,
    ArchitectureSpec,
    build_configs,
)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # = stylefa.runtime.PRECISION_CHOICES


@dataclass(frozen=True)
class Preset:
    """One ``--cfg`` entry; ``None`` means "derive from resolution and batch" (auto rules)."""

    kimg: float
    batch: int | None
    mbstd: int | None
    channel_base: int | None
    channel_max: int
    lr: float | None
    gamma: float | None
    ema_kimg: float | None
    ema_rampup: float | None
    map_layers: int
    d_architecture: str = "resnet"
    pl_weight: float = 2.0
    style_mixing_prob: float = 0.9


PRESETS: dict[str, Preset] = {
    # The study's configuration (= reference --cfg auto).
    "auto": Preset(25000, None, None, None, 512, None, None, None, 0.05, 2),
    "stylegan2": Preset(25000, 32, 4, 32768, 512, 0.002, 10.0, 10.0, None, 8),
    "paper256": Preset(25000, 64, 8, 16384, 512, 0.0025, 1.0, 20.0, None, 8),
    "paper512": Preset(25000, 64, 8, 32768, 512, 0.0025, 0.5, 20.0, None, 8),
    "paper1024": Preset(25000, 32, 4, 32768, 512, 0.002, 2.0, 10.0, None, 8),
    # The reference also switches off path-length regularisation and style mixing for cifar.
    "cifar": Preset(100000, 64, 32, 32768, 512, 0.0025, 0.01, 500.0, 0.05, 2, "orig", 0.0, 0.0),
    # CPU-sized network for the shipped 64x64 demo model; auto rules for gamma / EMA. The
    # minibatch-std group is the whole batch: the first demo run, with groups of 4, collapsed
    # onto one slice level (pixel std across fakes 0.10 -> 0.04 over 10-55 kimg, reals 0.09).
    "small": Preset(500, 16, SMALL_MBSTD_GROUP, SMALL_CHANNEL_BASE, SMALL_CHANNEL_MAX, 0.0025, None, None, 0.05, 2),
    # Smoke tests and pipeline checks only: a few thousand parameters per layer.
    "tiny": Preset(1, 4, 4, 512, 32, 0.0025, None, None, 0.05, 2),
}


@dataclass(frozen=True)
class TrainOptions:
    """The command line of ``stylefa train`` as a typed object (``None`` = preset/auto)."""

    data: str
    outdir: str
    cfg: str = "auto"
    kimg: float | None = None
    batch: int | None = None
    resolution: int | None = None
    gamma: float | None = None
    glr: float | None = None  # base Adam lr of G (default: the preset's lr)
    dlr: float | None = None
    mirror: bool = False
    seed: int = 0
    tick_kimg: float = 4.0
    snap: int = 50
    metrics: tuple[str, ...] = ()
    resume: str | None = None
    init_from: str | None = None  # warm start: networks of this file, kimg counter from its provenance
    augment: AdaConfig = field(default_factory=AdaConfig)
    device: str = "auto"
    precision: str = "auto"  # auto: fp16 in the 4 highest resolutions on CUDA, fp32 on the CPU
    tf32: bool | None = None  # None: on for CUDA
    channels_last: bool = False
    compile: bool = False  # torch.compile G and D for the Gmain/Dmain phases
    deterministic: bool = False
    workers: int | None = None  # None: 0 on CPU (no process contention), 3 on CUDA
    desc: str | None = None
    dry_run: bool = False
    mbstd_group: int | None = None  # minibatch-std group size (default: the preset's)

    def __post_init__(self):
        if self.cfg not in PRESETS:
            raise InputError(f"--cfg must be one of {', '.join(PRESETS)}, got {self.cfg!r}")
        if self.device not in DEVICES:
            raise InputError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.kimg is not None and not self.kimg > 0:
            raise InputError(f"--kimg must be > 0, got {self.kimg}")
        if self.batch is not None and self.batch < 1:
            raise InputError(f"--batch must be >= 1, got {self.batch}")
        if self.gamma is not None and self.gamma < 0:
            raise InputError(f"--gamma must be >= 0, got {self.gamma}")
        for flag, value in (("--glr", self.glr), ("--dlr", self.dlr)):
            if value is not None and not value > 0:
                raise InputError(f"{flag} must be > 0, got {value}")
        if not self.tick_kimg > 0:
            raise InputError(f"--tick must be > 0 kimg, got {self.tick_kimg}")
        if self.snap < 1:
            raise InputError(f"--snap must be >= 1 tick, got {self.snap}")
        if self.init_from is not None and self.resume is not None:
            raise InputError("--init-from starts a new run; it cannot be combined with --resume")
        if self.workers is not None and self.workers < 0:
            raise InputError(f"--workers must be >= 0, got {self.workers}")
        if self.mbstd_group is not None and self.mbstd_group < 1:
            raise InputError(f"--mbstd-group must be >= 1, got {self.mbstd_group}")


@dataclass(frozen=True)
class LossConfig:
    """StyleGAN2 loss with lazy regularisation (reference defaults)."""

    r1_gamma: float = 10.0
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    pl_interval: int = 4
    style_mixing_prob: float = 0.9


def lazy_regularization_factor(interval: int | None) -> float:
    """``c = interval / (interval + 1)``: the reference scales Adam's lr by c and betas to beta**c
    so that lazily regularised training matches the per-minibatch optimiser statistics."""
    return 1.0 if interval is None else interval / (interval + 1)


@dataclass(frozen=True)
class OptimConfig:
    """Adam as in the reference; ``lr`` and ``betas`` are the *base* values."""

    lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    # Per-network base lr (``--glr`` / ``--dlr``), e.g. a slower G when a small D cannot keep up.
    g_lr: float | None = None
    d_lr: float | None = None

    def base_lr(self, net: str | None = None) -> float:
        """The base lr of network ``net`` ('G', 'D' or None for the shared one)."""
        override = {"G": self.g_lr, "D": self.d_lr}.get(net) if net else None
        return self.lr if override is None else override

    def effective(self, reg_interval: int | None, net: str | None = None) -> tuple[float, tuple[float, float]]:
        c = lazy_regularization_factor(reg_interval)
        return self.base_lr(net) * c, (self.betas[0] ** c, self.betas[1] ** c)


@dataclass(frozen=True)
class ResolvedTrainConfig:
    """Everything the loop needs, concrete: written as training_options.json in the run dir."""

    data: str
    mirror: bool
    resolution: int
    label_dim: int
    cfg: str
    G: GeneratorConfig
    D: DiscriminatorConfig
    batch: int
    total_kimg: float
    tick_kimg: float
    snap: int
    loss: LossConfig
    optim: OptimConfig
    ema_kimg: float
    ema_rampup: float | None
    augment: AdaConfig
    metrics: tuple[str, ...]
    seed: int
    device: str
    precision: str
    tf32: bool
    channels_last: bool
    deterministic: bool
    workers: int | None
    desc: str
    resume: str | None = None
    init_from: str | None = None
    init_kimg: float = 0.0  # the warm-start file's kimg: the run's image counter starts there
    compile: bool = False

    def cuda_settings(self):
        """The ``stylefa.runtime.CudaSettings`` this run uses (``apply_backend_flags`` ignores them on the CPU)."""
        from stylefa.runtime import CudaSettings

        return CudaSettings(precision=self.precision, num_fp16_res=self.G.synthesis.num_fp16_res, tf32=self.tf32,
                            cudnn_benchmark=not self.deterministic,
                            channels_last=self.channels_last, compile=self.compile)

    @property
    def G_lr(self) -> float:
        return self.optim.effective(self.loss.pl_interval, "G")[0]

    @property
    def D_lr(self) -> float:
        return self.optim.effective(self.loss.r1_interval, "D")[0]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        g_lr, g_betas = self.optim.effective(self.loss.pl_interval, "G")
        d_lr, d_betas = self.optim.effective(self.loss.r1_interval, "D")
        out["effective_optim"] = {
            "G": {"lr": g_lr, "betas": list(g_betas)},
            "D": {"lr": d_lr, "betas": list(d_betas)},
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResolvedTrainConfig":
        data = dict(data)
        data.pop("effective_optim", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        data["G"] = GeneratorConfig.from_dict(data["G"])
        data["D"] = DiscriminatorConfig.from_dict(data["D"])
        data["loss"] = LossConfig(**data["loss"])
        optim = dict(data["optim"])
        optim["betas"] = tuple(optim["betas"])
        data["optim"] = OptimConfig(**optim)
        data["augment"] = AdaConfig.from_dict(data["augment"])
        data["metrics"] = tuple(data["metrics"])
        return cls(**data)

    # Options that may change between a run and its resumption without changing the maths.
    RUNTIME_KEYS = ("data", "total_kimg", "tick_kimg", "snap", "metrics", "workers", "device", "resume", "desc",
                    "init_from", "init_kimg", "compile")

    def training_identity(self) -> dict[str, Any]:
        """The options that define the optimisation trajectory (compared on resume)."""
        out = self.to_dict()
        for key in self.RUNTIME_KEYS:
            out.pop(key, None)
        return out


def _is_power_of_two(n: int) -> bool:
    return n >= 4 and n & (n - 1) == 0


def resolve(
    options: TrainOptions, data_resolution: int, label_dim: int, num_gpus: int = 1, device_type: str = "cuda"
) -> ResolvedTrainConfig:
    """Apply the ``--cfg`` preset and overrides for a dataset of ``data_resolution`` pixels.

    Precision, TF32, channels_last and compile are chosen by ``stylefa.runtime.resolve_cuda_settings``
    (CUDA: fp16 in the 4 highest resolutions + TF32 by default; CPU: fp32, an explicit GPU-only
    request is dropped with a warning), so the written config says what actually ran."""
    from stylefa.runtime import resolve_cuda_settings

    res = data_resolution
    speed = resolve_cuda_settings(device_type, options.precision, options.tf32, options.channels_last,
                                  options.compile, deterministic=options.deterministic)
    precision, tf32, channels_last = speed.precision, speed.tf32, speed.channels_last
    if options.resolution is not None and options.resolution != res:
        raise InputError(f"--resolution {options.resolution} does not match the dataset's {res} px", options.data)
    if not _is_power_of_two(res):
        raise InputError(f"image resolution must be a power of two >= 4, got {res}", options.data)
    from stylefa.readers import check_resolution

    check_resolution(res, "the dataset's image resolution", options.data)
    spec = PRESETS[options.cfg]

    if options.batch is not None:
        batch = options.batch
    elif spec.batch is not None:
        batch = spec.batch
    else:
        batch = max(min(num_gpus * min(4096 // res, 32), 64), num_gpus)
    if batch % num_gpus != 0:
        raise InputError(f"--batch {batch} must be divisible by the number of processes ({num_gpus})")
    mbstd = mbstd_group(options, spec, batch, num_gpus)
    channel_base = spec.channel_base if spec.channel_base is not None else (32768 if res >= 512 else 16384)
    lr = spec.lr if spec.lr is not None else (0.002 if res >= 1024 else 0.0025)
    if options.gamma is not None:
        gamma = options.gamma
    elif spec.gamma is not None:
        gamma = spec.gamma
    else:
        gamma = 0.0002 * res**2 / batch
    ema_kimg = spec.ema_kimg if spec.ema_kimg is not None else batch * 10 / 32

    # Mixed precision as in the reference: fp16 (or bf16) in the 4 highest resolutions,
    # conv_clamp 256 keeps activations inside fp16 range; weights stay float32.
    num_fp16_res = speed.num_fp16_res
    G, D = build_configs(
        ArchitectureSpec(
            channel_base=channel_base,
            channel_max=spec.channel_max,
            num_fp16_res=num_fp16_res,
            map_layers=spec.map_layers,
            mbstd_group_size=mbstd,
            d_architecture=spec.d_architecture,
            fp16_channels_last=channels_last,
        ),
        res, img_channels=1, c_dim=label_dim,
    )
    augment = options.augment.validate()
    desc = options.desc or _describe(options, batch, gamma)
    return ResolvedTrainConfig(
        data=options.data,
        mirror=options.mirror,
        resolution=res,
        label_dim=label_dim,
        cfg=options.cfg,
        G=G,
        D=D,
        batch=batch,
        total_kimg=options.kimg if options.kimg is not None else spec.kimg,
        tick_kimg=options.tick_kimg,
        snap=options.snap,
        loss=LossConfig(r1_gamma=gamma, pl_weight=spec.pl_weight, style_mixing_prob=spec.style_mixing_prob),
        optim=OptimConfig(lr=lr, g_lr=options.glr, d_lr=options.dlr),
        ema_kimg=ema_kimg,
        ema_rampup=spec.ema_rampup,
        augment=augment,
        metrics=tuple(options.metrics),
        seed=options.seed,
        device=options.device,
        precision=precision,
        tf32=tf32,
        channels_last=channels_last,
        deterministic=options.deterministic,
        workers=options.workers,
        desc=desc,
        resume=options.resume,
        init_from=options.init_from,
        compile=speed.compile,
    )


def mbstd_group(options: TrainOptions, spec: Preset, batch: int, num_gpus: int) -> int:
    """The minibatch-std group size, the same for any number of processes.

    Each process's D sees only its own images, so a group cannot span processes. With the
    rank-strided sampler (rank r holds global items r, r+K, ...) and the layer's strided groups,
    K processes with group G form exactly the groups of one process with group G whenever G
    divides the per-process batch (docs/train.md, "Several GPUs or nodes"); otherwise the run is
    refused rather than silently given smaller groups (the reference's min(batch // gpus, 4))."""
    group = options.mbstd_group if options.mbstd_group is not None else (spec.mbstd if spec.mbstd is not None else 4)
    group = min(group, batch)  # as the layer itself does for a smaller minibatch
    per_gpu = batch // num_gpus
    if batch % group:
        raise InputError(f"--batch {batch} is not a multiple of the minibatch-std group {group}; "
                         f"use --mbstd-group with a divisor of {batch}")
    if per_gpu % group:
        raise InputError(
            f"--batch {batch} on {num_gpus} processes gives {per_gpu} images per process, not a multiple of the "
            f"minibatch-std group {group} (a group cannot span processes, and smaller groups would train another "
            f"discriminator than one process); use --batch {group * num_gpus}, fewer processes, or "
            f"--mbstd-group {math.gcd(per_gpu, group)} (then one process with it trains the same)")
    return group


def _describe(options: TrainOptions, batch: int, gamma: float) -> str:
    from pathlib import Path

    name = Path(options.data).name
    for suffix in (".safetensors", ".npz", ".zip", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    parts = [name or "data", options.cfg, f"batch{batch}", f"gamma{gamma:g}"]
    parts += [f"{flag}{value:g}" for flag, value in (("glr", options.glr), ("dlr", options.dlr)) if value is not None]
    if options.mirror:
        parts.append("mirror")
    aug = options.augment
    parts.append(aug.mode if aug.mode == "noaug" else f"{aug.mode}-{aug.pipe}")
    return "-".join(parts)


def summary_lines(config: ResolvedTrainConfig, processes: int = 1) -> list[str]:
    """Human-readable lines with base and effective learning rates (as printed at start); the
    minibatch-std group with the per-process batch when ``processes`` > 1."""
    per_process = f" ({config.batch // processes} images per process x {processes} processes)" if processes > 1 else ""
    g_lr, g_betas = config.optim.effective(config.loss.pl_interval, "G")
    d_lr, d_betas = config.optim.effective(config.loss.r1_interval, "D")
    return [
        f"resolution {config.resolution}, labels {config.label_dim}, batch {config.batch}, cfg {config.cfg}",
        f"G channels base {config.G.synthesis.channel_base} max {config.G.synthesis.channel_max}, "
        f"mapping layers {config.G.mapping.num_layers}, mbstd group {config.D.epilogue.mbstd_group_size}{per_process}",
        f"Adam base lr G {config.optim.base_lr('G'):g} D {config.optim.base_lr('D'):g}, betas {tuple(config.optim.betas)}; "
        f"effective G lr {g_lr:.6g} betas ({g_betas[0]:.6g}, {g_betas[1]:.6g}) [Greg every {config.loss.pl_interval}], "
        f"D lr {d_lr:.6g} betas ({d_betas[0]:.6g}, {d_betas[1]:.6g}) [Dreg every {config.loss.r1_interval}]",
        f"R1 gamma {config.loss.r1_gamma:g}, path length weight {config.loss.pl_weight:g}, "
        f"style mixing {config.loss.style_mixing_prob:g}",
        f"G_ema half-life {config.ema_kimg:g} kimg, ramp-up {config.ema_rampup}",
        f"augment {config.augment.mode} pipe {config.augment.pipe} p {config.augment.p:g} "
        f"target {config.augment.target:g}",
        f"device {config.device}, precision {config.precision}, tf32 {config.tf32}, "
        f"channels_last {config.channels_last}, compile {config.compile}, deterministic {config.deterministic}",
        f"{config.total_kimg:g} kimg, tick {config.tick_kimg:g} kimg, snapshot every {config.snap} ticks, "
        f"metrics {','.join(config.metrics) or 'none'}",
    ]
