"""One-command GPU check: CUDA correctness and speed of training and projection -> one JSON.

    python benchmarks/gpu_check.py --out gpu_check.json                 # CUDA, <= 8 min on one H100/H200
    python benchmarks/gpu_check.py --device cpu --quick --out q.json    # tiny sizes: checks the script itself

Sections run in order of importance, each under its own time cap (SIGALRM) and all under one
budget (``--budget``, default 420 s, so start-up and imports fit in 8 minutes). The JSON is
rewritten atomically after every measurement, so a run cut short still leaves valid partial
results; a section that fails or hits its cap is recorded as such and the next one runs.

Correctness (CUDA, TF32 off for the exact checks):
  golden          the reference StyleGAN2-ADA tensors (``--reference``, default ../shared/reference)
                  on this device in float32 (tolerance 1e-4 as in tests/nets/test_golden.py), and
                  fp16 / bf16 in the 4 highest resolutions against them (relative mean error)
  precision       the study's 256x256 G and D (random weights): fp16 / bf16 vs fp32 outputs
  train_tick      ``run_training`` for one tick + snapshot, losses and weights finite
  project_batch   a projection batch of 4 equals 4 single projections (as tests/project)
Speed (TF32 on, cuDNN autotuning: the CUDA defaults of stylefa.runtime):
  train_256       sec/kimg at 256x256, --cfg auto, batch 32, ADA (p=0.2), R1, path length, for each
                  precision; per-phase (Gmain/Greg/Dmain/Dreg) times; peak memory; hours for 18.6 Mimg
  project_256     images*steps/s with ST-LPIPS (VGG16, offline weights) for batch 1/32/128; peak
                  memory; hours for 8568 targets x 1000 steps
  demo_64         the same two at 64x64 for the demo configuration (--cfg small)
  compile         torch.compile (inductor) vs eager: equality, compile time and speed
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY_KIMG = 18600  # the study's training length
STUDY_TARGETS, STUDY_STEPS = 8568, 1000  # the study's projections
GOAL_SEC_PER_KIMG = 4.6  # 18.6 Mimg in under a day
GOAL_PROJECT_HOURS = 3.0
GOLDEN_TOLERANCE = 1e-4  # = tests/nets/test_golden.py
# Reduced precision vs float32: mean |difference| / mean |float32 output|.
REDUCED_TOLERANCE = {"fp16": 0.02, "bf16": 0.05}
# Batched vs single projections (= tests/project/test_projector.py): max / mean |w difference|.
BATCH_TOLERANCE = {"max": 1e-2, "mean": 1e-3}
COMPILE_TOLERANCE = 1e-3  # inductor vs eager, float32, max |difference| of images in [-1, 1]


class SectionTimeout(Exception):
    pass


@dataclasses.dataclass
class Plan:
    """Sizes of one mode: the study's (full, CUDA) or tiny ones (--quick, for CI)."""

    big_res: int = 256
    big_cfg: str = "auto"
    big_batch: int = 32
    demo_res: int = 64
    demo_cfg: str = "small"
    demo_batch: int = 16
    precisions: tuple[str, ...] = ("fp16", "bf16", "fp32", "fp32-tf32")  # fp32 = exact (TF32 off)
    train_minibatches: int = 16  # timed, a multiple of the lazy R1 interval
    train_warmup: int = 2
    project_batches: tuple[int, ...] = (1, 32, 128)
    project_steps: int = 20
    project_warmup: int = 3
    equal_steps: int = 20
    dataset_images: int = 256
    perceptual: str = "stlpips-vgg16"
    stlpips_weights: str | None = None  # None: from the stlpips-pytorch wheel


QUICK = Plan(big_res=16, big_cfg="tiny", big_batch=4, demo_res=16, demo_cfg="tiny", demo_batch=4,
             precisions=("auto",), train_minibatches=16, train_warmup=1, project_batches=(1, 2),
             project_steps=2, project_warmup=1, equal_steps=3, dataset_images=16, perceptual="mse")


class Report:
    """The JSON document, rewritten atomically after every change."""

    def __init__(self, path: Path, mode: str, budget: float):
        self.path = path
        self.data = {"schema": 1, "mode": mode, "budget_s": budget,
                     "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "finished": None, "environment": {}, "sections": {}, "summary": {}}

    def save(self) -> None:
        from stylefa.fileio import write_json

        write_json(self.path, json.loads(json.dumps(self.data, default=_jsonable)))


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


@contextlib.contextmanager
def time_cap(seconds: float):
    def handler(signum, frame):
        raise SectionTimeout(f"time cap of {seconds:.0f} s reached")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_section(report: Report, name: str, cap: float, deadline: float, fn, *args) -> None:
    remaining = deadline - time.monotonic()
    section = {"status": "running", "cap_s": cap, "result": {}}
    report.data["sections"][name] = section
    if remaining < 5:
        section["status"] = "skipped: budget spent"
        report.save()
        return
    cap = min(cap, remaining)
    section["cap_s"] = round(cap, 1)
    report.save()
    start = time.monotonic()
    try:
        with time_cap(cap):
            fn(section["result"], report.save, *args)
        section["status"] = "ok"
    except SectionTimeout as exc:
        section["status"] = "timeout"
        section["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded, and the next section runs
        section["status"] = "failed"
        section["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        section["traceback"] = traceback.format_exc()[-4000:]
    finally:
        section["seconds"] = round(time.monotonic() - start, 2)
        _free_memory()
        report.save()
    print(f"[gpu_check] {name}: {section['status']} in {section['seconds']} s", flush=True)


# -- helpers -----------------------------------------------------------------------------------------

def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


@contextlib.contextmanager
def exact_float32(device):
    """TF32 off while comparing against float32 references."""
    import torch

    if device.type != "cuda":
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _relative_error(got, want) -> float:
    got, want = got.double(), want.double()
    return float((got - want).abs().mean() / want.abs().mean().clamp_min(1e-12))


def _split_precision(name: str) -> tuple[str, bool | None]:
    """'fp32-tf32' -> ('fp32', True); others -> (name, None: stylefa's default TF32)."""
    return ("fp32", True) if name == "fp32-tf32" else (name, None)


def _precisions_for(device, plan: Plan) -> tuple[str, ...]:
    return plan.precisions if device.type == "cuda" else ("fp32",)


# -- sections ----------------------------------------------------------------------------------------

def section_environment(out: dict, save, device) -> None:
    import platform
    import subprocess

    import torch

    out.update(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
               device=str(device), cpu_count=os.cpu_count(), platform=platform.platform())
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", gpu_count=torch.cuda.device_count(),
                   bf16_supported=torch.cuda.is_bf16_supported())
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None


def _reference_configs(raw: dict):
    """The reference's constructor kwargs -> our typed configs (the .pkl importer's conversion)."""
    from stylefa.nets.pkl_import import discriminator_config_from_kwargs, generator_config_from_kwargs

    return generator_config_from_kwargs(raw["G"]), discriminator_config_from_kwargs(raw["D"])


def section_golden(out: dict, save, device, reference: Path | None) -> None:
    import numpy as np
    import torch

    from stylefa.nets import Discriminator, Generator

    if reference is None:
        out["skipped"] = "no reference tensors (give --reference DIR with sg2ada_configs.json)"
        return
    configs = json.loads((reference / "sg2ada_configs.json").read_text())
    all_ok = True
    for case, raw in configs.items():
        with np.load(reference / f"sg2ada_{case}.npz", allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        g_cfg, d_cfg = _reference_configs(raw)
        t = {k: torch.from_numpy(v).to(device) for k, v in data.items()}
        errors: dict = {}
        with torch.no_grad(), exact_float32(device):
            G = Generator(g_cfg).eval().to(device)
            D = Discriminator(d_cfg).eval().to(device)
            G.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("G.")})
            D.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("D.")})
            z, c = t["in.z"], t["in.c"]
            ws = G.mapping(z, c)
            checks = {
                "ws_psi1": (ws, "out.ws_psi1"),
                "ws_psi0.7": (G.mapping(z, c, truncation_psi=0.7), "out.ws_psi0.7"),
                "img_const": (G.synthesis(ws, noise_mode="const", force_fp32=True), "out.img_const"),
                "img_none": (G.synthesis(ws, noise_mode="none", force_fp32=True), "out.img_none"),
                "img_const_fused": (G.synthesis(ws, noise_mode="const", fused_modconv=True, force_fp32=True),
                                    "out.img_const"),
                "D_fake_logits": (D(t["out.img_const"], c, force_fp32=True), "out.D_fake_logits"),
                "D_real_logits": (D(t["in.real"], c, force_fp32=True), "out.D_real_logits"),
            }
            for name, (got, key) in checks.items():
                errors[name] = float((got.double().cpu() - torch.from_numpy(data[key]).double()).abs().max())
        ok = all(e < GOLDEN_TOLERANCE for e in errors.values())
        all_ok &= ok
        entry = {"fp32_max_abs_error": errors, "fp32_ok": ok, "tolerance": GOLDEN_TOLERANCE}
        # The same weights with the 4 highest resolutions in reduced precision (the reference
        # runs conv_clamp 256 with fp16; a case without a clamp is reported, not judged).
        if device.type == "cuda":
            for precision in ("fp16", "bf16"):
                g_red = dataclasses.replace(g_cfg, synthesis=dataclasses.replace(g_cfg.synthesis, num_fp16_res=4))
                d_red = dataclasses.replace(d_cfg, num_fp16_res=4)
                with torch.no_grad():
                    G = Generator(g_red).eval().to(device)
                    D = Discriminator(d_red).eval().to(device)
                    G.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("G.")})
                    D.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("D.")})
                    if precision == "bf16":
                        G.synthesis.set_reduced_precision(torch.bfloat16)
                        D.set_reduced_precision(torch.bfloat16)
                    img = G.synthesis(G.mapping(z, c), noise_mode="const")
                    logits = D(t["in.real"], c)
                err = {"img_const": _relative_error(img.cpu(), torch.from_numpy(data["out.img_const"])),
                       "D_real_logits": _relative_error(logits.cpu(), torch.from_numpy(data["out.D_real_logits"]))}
                judged = g_cfg.synthesis.conv_clamp is not None
                entry[precision] = {"relative_mean_error": err, "tolerance": REDUCED_TOLERANCE[precision],
                                    "ok": (max(err.values()) < REDUCED_TOLERANCE[precision]) if judged else None}
                if judged:
                    all_ok &= entry[precision]["ok"]
        out[case] = entry
        save()
    out["ok"] = all_ok


def _build_nets(res: int, cfg: str, precision: str, device, seed: int = 0):
    import torch

    from stylefa.nets import Discriminator, Generator
    from stylefa.train.options import TrainOptions, resolve

    config = resolve(TrainOptions(data="-", outdir="-", cfg=cfg, precision=precision), res, 0, device_type=device.type)
    torch.manual_seed(seed)
    G = Generator(config.G).eval().requires_grad_(False).to(device)
    D = Discriminator(config.D).eval().requires_grad_(False).to(device)
    if config.precision == "bf16":
        G.synthesis.set_reduced_precision(torch.bfloat16)
        D.set_reduced_precision(torch.bfloat16)
    return G, D


def section_precision(out: dict, save, device, plan: Plan) -> None:
    import torch

    z = torch.randn(8, 512, generator=torch.Generator().manual_seed(1)).to(device)
    c = torch.zeros(8, 0, device=device)
    with torch.no_grad(), exact_float32(device):
        G, D = _build_nets(plan.big_res, plan.big_cfg, "fp32", device)
        ref_img = G(z, c, noise_mode="const")
        ref_logits = D(ref_img, c)
    out["fp32_image_mean_abs"] = float(ref_img.abs().mean())
    ok = True
    for precision in _precisions_for(device, plan):
        if precision in ("fp32", "fp32-tf32", "auto"):
            continue
        with torch.no_grad():
            G, D = _build_nets(plan.big_res, plan.big_cfg, precision, device)
            img = G(z, c, noise_mode="const")
            logits = D(ref_img, c)
        err = {"image": _relative_error(img, ref_img), "D_logits": _relative_error(logits, ref_logits),
               "image_max_abs": float((img - ref_img).abs().max())}
        passed = max(err["image"], err["D_logits"]) < REDUCED_TOLERANCE[precision]
        ok &= passed
        out[precision] = {"relative_mean_error": err, "tolerance": REDUCED_TOLERANCE[precision], "ok": passed}
        save()
    out["ok"] = ok


def _blob_dataset(root: Path, n: int, res: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_train import write_blob_dataset

    path = root / f"blobs{res}"
    if not (path / "dataset.json").exists():
        write_blob_dataset(path, n, res)
    return path


def section_train_tick(out: dict, save, device, plan: Plan, tmp: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from stylefa.train.ada import AdaConfig
    from stylefa.train.loop import run_training
    from stylefa.train.options import TrainOptions

    data = _blob_dataset(tmp, plan.dataset_images, plan.demo_res)
    batch = plan.demo_batch
    result = run_training(TrainOptions(
        data=str(data), outdir=str(tmp / "tick"), cfg=plan.demo_cfg, batch=batch, kimg=2 * batch / 1000,
        tick_kimg=batch / 1000, snap=1, device=device.type, augment=AdaConfig(mode="ada"),
    ), progress=False)
    losses = {k: v.get("mean") for k, v in result.stats.items() if k.startswith("Loss/") and isinstance(v, dict)}
    weights = load_file(str(result.last_snapshot))
    finite_weights = all(bool(torch.isfinite(v).all()) for v in weights.values() if v.is_floating_point())
    out.update(cur_nimg=result.cur_nimg, losses=losses, finite_weights=finite_weights,
               ok=bool(finite_weights and losses and all(v is not None and math.isfinite(v) for v in losses.values())))


def _distance(plan: Plan, device):
    from stylefa.project.perceptual import PerceptualSpec, load_perceptual

    return load_perceptual(PerceptualSpec(plan.perceptual, stlpips_weights=plan.stlpips_weights), device)


def section_project_batch(out: dict, save, device, plan: Plan) -> None:
    import torch

    from stylefa.project.config import ProjectConfig
    from stylefa.project.projector import WStats, project_batch, set_precision_

    distance = _distance(plan, device)
    ok = True
    for precision in ("fp32", "auto") if device.type == "cuda" else ("fp32",):
        G, _ = _build_nets(plan.demo_res, plan.demo_cfg, "auto", device)
        set_precision_(G, precision)
        stats = WStats(G.mapping.w_avg.detach().clone(), 1.0)
        gen = torch.Generator().manual_seed(3)
        targets = (torch.rand(4, 1, plan.demo_res, plan.demo_res, generator=gen) * 2 - 1).to(device)
        ids = [f"t{i}" for i in range(4)]
        config = ProjectConfig(steps=plan.equal_steps, w_avg_samples=1)
        batched = project_batch(G, targets, distance, config, stats, ids)
        diffs = []
        for i in range(4):
            single = project_batch(G, targets[i : i + 1], distance, config, stats, ids[i : i + 1])
            diffs.append((batched.ws[i] - single.ws[0]).abs())
        diff = torch.stack(diffs)
        entry = {"max_abs_w_diff": float(diff.max()), "mean_abs_w_diff": float(diff.mean()),
                 "w_moved": float((batched.ws - stats.w_avg).abs().max()), "tolerance": BATCH_TOLERANCE}
        entry["ok"] = entry["max_abs_w_diff"] < BATCH_TOLERANCE["max"] and entry["mean_abs_w_diff"] < BATCH_TOLERANCE["mean"]
        # The reduced-precision run is reported; only float32 is held to the CPU test's tolerance.
        if precision == "fp32":
            ok &= entry["ok"]
        out[precision] = entry
        save()
    out["ok"] = ok


def _time_training(device, plan: Plan, res: int, cfg: str, batch: int, precision: str, data: Path, tmp: Path,
                   compile: bool = False) -> dict:
    from stylefa.train.ada import AdaConfig
    from stylefa.train.distributed import DistContext
    from stylefa.train.loop import Trainer, open_dataset, resolve_config
    from stylefa.train.options import TrainOptions

    precision, tf32 = _split_precision(precision)
    options = TrainOptions(data=str(data), outdir=str(tmp), cfg=cfg, batch=batch, device=device.type,
                           precision=precision, tf32=tf32, compile=compile, augment=AdaConfig(mode="ada"))
    dist = DistContext(device=device)
    dataset = open_dataset(options)
    config = resolve_config(options, dataset, dist)
    setup = time.perf_counter()
    trainer = Trainer(config, dataset, dist, None)
    if trainer.augment_pipe is not None:
        trainer.augment_pipe.p.fill_(0.2)  # a typical ADA strength while timing
    _reset_peak(device)
    for _ in range(plan.train_warmup):
        trainer.step()
    _sync(device)
    warmup_s = time.perf_counter() - setup
    steps = -(-plan.train_minibatches // 16) * 16
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _sync(device)
    elapsed = time.perf_counter() - start
    sec_per_kimg = elapsed / (steps * config.batch) * 1000

    # Per-phase times (forward + backward of one phase) in a second, synchronised pass.
    phase_times: dict[str, list[float]] = {}
    original = trainer.loss.accumulate_gradients

    def timed(phase, *args, **kwargs):
        _sync(device)
        t0 = time.perf_counter()
        original(phase, *args, **kwargs)
        _sync(device)
        phase_times.setdefault(phase, []).append(time.perf_counter() - t0)

    trainer.loss.accumulate_gradients = timed
    for _ in range(16):
        trainer.step()
    trainer.loss.accumulate_gradients = original
    return {
        "precision": config.precision, "tf32": config.tf32, "compile": compile, "batch": config.batch,
        "resolution": config.resolution, "cfg": cfg, "minibatches": steps,
        "sec_per_minibatch": round(elapsed / steps, 4), "sec_per_kimg": round(sec_per_kimg, 3),
        "hours_for_18600_kimg": round(sec_per_kimg * STUDY_KIMG / 3600, 2),
        "phase_ms_median": {k: round(statistics.median(v) * 1000, 2) for k, v in phase_times.items()},
        "setup_and_warmup_s": round(warmup_s, 2), "peak_memory_gib": _peak_gib(device),
    }


def _time_projection(device, plan: Plan, res: int, cfg: str, precision: str, batch: int, distance,
                     compile: bool = False) -> dict:
    import torch

    from stylefa.project.config import ProjectConfig
    from stylefa.project.projector import WStats, project_batch, set_precision_
    from stylefa.runtime import apply_backend_flags, resolve_cuda_settings

    apply_backend_flags(resolve_cuda_settings(device.type, precision), device)  # as stylefa project does
    G, _ = _build_nets(res, cfg, "auto", device)
    set_precision_(G, precision)
    stats = WStats(G.mapping.w_avg.detach().clone(), 1.0)
    targets = torch.rand(batch, 1, res, res, device=device) * 2 - 1
    ids = [f"b{i}" for i in range(batch)]
    backend = "inductor" if compile else None
    _reset_peak(device)
    t0 = time.perf_counter()
    project_batch(G, targets, distance, ProjectConfig(steps=plan.project_warmup, w_avg_samples=1), stats, ids,
                  compile_backend=backend)
    _sync(device)
    warmup_s = time.perf_counter() - t0
    start = time.perf_counter()
    project_batch(G, targets, distance, ProjectConfig(steps=plan.project_steps, w_avg_samples=1), stats, ids,
                  compile_backend=backend)
    _sync(device)
    rate = batch * plan.project_steps / (time.perf_counter() - start)
    return {"batch": batch, "precision": precision, "compile": compile, "images_steps_per_s": round(rate, 2),
            "hours_for_8568x1000": round(STUDY_TARGETS * STUDY_STEPS / rate / 3600, 2),
            "warmup_s": round(warmup_s, 2), "peak_memory_gib": _peak_gib(device)}


def section_train_speed(out: dict, save, device, plan: Plan, tmp: Path, res: int, cfg: str, batch: int) -> None:
    data = _blob_dataset(tmp, plan.dataset_images, res)
    for precision in _precisions_for(device, plan):
        out[precision] = _time_training(device, plan, res, cfg, batch, precision, data, tmp)
        out[precision]["setting"] = precision
        save()
        _free_memory()


def section_project_speed(out: dict, save, device, plan: Plan, res: int, cfg: str) -> None:
    distance = _distance(plan, device)
    out["perceptual"] = plan.perceptual
    precision = "auto" if device.type == "cuda" else "fp32"
    for batch in plan.project_batches:
        out[f"batch{batch}"] = _time_projection(device, plan, res, cfg, precision, batch, distance)
        save()
        _free_memory()
    if device.type == "cuda":
        mid = plan.project_batches[len(plan.project_batches) // 2]
        out[f"batch{mid}_fp32"] = _time_projection(device, plan, res, cfg, "fp32", mid, distance)
        save()


def section_demo(out: dict, save, device, plan: Plan, tmp: Path) -> None:
    out["train"], out["project"] = {}, {}
    section_train_speed(out["train"], save, device, plan, tmp, plan.demo_res, plan.demo_cfg, plan.demo_batch)
    section_project_speed(out["project"], save, device, plan, plan.demo_res, plan.demo_cfg)


def section_compile(out: dict, save, device, plan: Plan, tmp: Path) -> None:
    import torch

    from stylefa.runtime import compiled

    # Equality first (float32, TF32 off), on the demo architecture: quick to compile.
    z = torch.randn(4, 512, generator=torch.Generator().manual_seed(4)).to(device)
    c = torch.zeros(4, 0, device=device)
    with torch.no_grad(), exact_float32(device):
        G, D = _build_nets(plan.demo_res, plan.demo_cfg, "fp32", device)
        t0 = time.perf_counter()
        img_c = compiled(G)(z, c, noise_mode="const")
        logits_c = compiled(D)(img_c, c)
        _sync(device)
        compile_s = time.perf_counter() - t0
        img, logits = G(z, c, noise_mode="const"), D(img_c, c)
    err = {"image_max_abs": float((img_c - img).abs().max()), "D_max_abs": float((logits_c - logits).abs().max())}
    out["equality"] = {"max_abs_error": err, "tolerance": COMPILE_TOLERANCE, "compile_s": round(compile_s, 1),
                       "ok": max(err.values()) < COMPILE_TOLERANCE}
    save()
    precision = "auto" if device.type == "cuda" else "fp32"
    distance = _distance(plan, device)
    mid = plan.project_batches[len(plan.project_batches) // 2]
    out["project_256"] = _time_projection(device, plan, plan.big_res, plan.big_cfg, precision, mid, distance,
                                          compile=True)
    save()
    data = _blob_dataset(tmp, plan.dataset_images, plan.big_res)
    out["train_256"] = _time_training(device, plan, plan.big_res, plan.big_cfg, plan.big_batch, precision, data, tmp,
                                      compile=True)
    save()


def summarise(report: Report) -> None:
    sections = report.data["sections"]
    summary: dict = {}
    correctness = [sections.get(n, {}).get("result", {}).get("ok") for n in ("golden", "precision", "train_tick",
                                                                            "project_batch")]
    summary["correctness_ok"] = all(v is not False for v in correctness) and any(v is True for v in correctness)
    train = {k: v for k, v in sections.get("train_256", {}).get("result", {}).items() if isinstance(v, dict)}
    if train:
        best = min(train.values(), key=lambda r: r["sec_per_kimg"])
        summary["train_256_sec_per_kimg"] = {k: v["sec_per_kimg"] for k, v in train.items()}
        summary["train_256_fastest"] = best.get("setting", best["precision"])
        summary["train_18600_kimg_hours"] = best["hours_for_18600_kimg"]
        summary["train_goal_met"] = best["sec_per_kimg"] <= GOAL_SEC_PER_KIMG
    proj = {k: v for k, v in sections.get("project_256", {}).get("result", {}).items() if isinstance(v, dict)}
    if proj:
        best = max(proj.values(), key=lambda r: r["images_steps_per_s"])
        summary["project_256_images_steps_per_s"] = {k: v["images_steps_per_s"] for k, v in proj.items()}
        summary["project_8568x1000_hours"] = best["hours_for_8568x1000"]
        summary["project_goal_met"] = best["hours_for_8568x1000"] <= GOAL_PROJECT_HOURS
    summary["goals"] = {"train_sec_per_kimg": GOAL_SEC_PER_KIMG, "project_hours": GOAL_PROJECT_HOURS}
    report.data["summary"] = summary


CARRY_DIR = ROOT / "gpu_carry"  # what --prepare-carry writes; travels to the device machine
CARRY_STLPIPS = "vgg_shift_tolerant_fp16.pth"


def _default_reference() -> Path | None:
    candidates = [Path(os.environ["STYLEFA_SHARED"]) / "reference"] if os.environ.get("STYLEFA_SHARED") else []
    candidates += [CARRY_DIR / "reference", ROOT / "shared" / "reference", ROOT.parent / "shared" / "reference"]
    return next((p for p in candidates if (p / "sg2ada_configs.json").is_file()), None)


def prepare_carry(folder: Path, reference: Path | None) -> None:
    """Copy what the check reads from outside the repository into ``folder`` (~32 MB): the
    reference tensors and the ST-LPIPS weights stored as float16 (half the 59 MB file, so the
    working tree fits a device machine's 64 MiB transfer; loaded into a float32 network, the
    distances agree to ~1e-4). The scaling constants and blur kernels stay float32 (checked exactly)."""
    import shutil

    import torch

    from stylefa.project.perceptual.loader import packaged_file

    folder.mkdir(parents=True, exist_ok=True)
    if reference is not None:
        shutil.copytree(reference, folder / "reference", dirs_exist_ok=True)
    source = packaged_file("stlpips_pytorch", "weights/vST0.0/vgg_shift_tolerant.pth")
    if source is None:
        raise SystemExit("[gpu_check] the stlpips-pytorch wheel is not installed here")
    state = torch.load(source, map_location="cpu", weights_only=True)
    half = {k: v.half() if v.is_floating_point() and not k.startswith("scaling_layer") and not k.endswith(".filt")
            else v for k, v in state.items()}
    torch.save(half, folder / CARRY_STLPIPS)
    print(f"[gpu_check] wrote {folder}: reference={'yes' if reference else 'no'}, {CARRY_STLPIPS}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json", help="the JSON written (atomically, as it goes)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs (CI)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all sections (default 420)")
    parser.add_argument("--reference", type=Path, default=None, help="folder of the reference tensors")
    parser.add_argument("--skip", default="", help="comma list of sections to leave out")
    parser.add_argument("--compile-check", action="store_true", help="run the compile section on the CPU too")
    parser.add_argument("--perceptual", default=None,
                        help="projection distance (default stlpips-vgg16; mse in --quick): a fallback where the "
                        "stlpips-pytorch wheel's weights are missing")
    parser.add_argument("--stlpips-weights", default=None, metavar="PATH",
                        help="vgg_shift_tolerant.pth where the stlpips-pytorch wheel is not installed "
                        "(default: gpu_carry/ if --prepare-carry made it)")
    parser.add_argument("--prepare-carry", action="store_true",
                        help="(run here, before the GPU run) copy the reference tensors and float16 ST-LPIPS "
                        "weights into gpu_carry/, then exit")
    args = parser.parse_args(argv)
    if args.prepare_carry:
        prepare_carry(CARRY_DIR, args.reference or _default_reference())
        return 0

    from stylefa.runtime import apply_backend_flags, resolve_cuda_settings, resolve_device, tune_cpu_allocator

    tune_cpu_allocator()
    device = resolve_device(args.device)
    plan = QUICK if args.quick else Plan()
    if args.perceptual:
        plan = dataclasses.replace(plan, perceptual=args.perceptual)
    if args.stlpips_weights:
        plan = dataclasses.replace(plan, stlpips_weights=args.stlpips_weights)
    elif (CARRY_DIR / CARRY_STLPIPS).is_file():
        plan = dataclasses.replace(plan, stlpips_weights=str(CARRY_DIR / CARRY_STLPIPS))
    if device.type != "cuda" and not args.quick:
        print("[gpu_check] the full sizes need a GPU; use --quick on the CPU", file=sys.stderr)
        return 2
    apply_backend_flags(resolve_cuda_settings(device.type), device)  # the defaults being measured
    report = Report(Path(args.out), "quick" if args.quick else "full", args.budget)
    deadline = time.monotonic() + args.budget
    reference = args.reference or _default_reference()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if device.type != "cuda" and not args.compile_check:
        skip.add("compile")  # inductor needs minutes per network on a small CPU
    with tempfile.TemporaryDirectory(prefix="gpu_check") as tmp_name:
        tmp = Path(tmp_name)
        sections = [
            ("environment", 15, section_environment, (device,)),
            ("golden", 40, section_golden, (device, reference)),
            ("precision", 40, section_precision, (device, plan)),
            ("train_tick", 60, section_train_tick, (device, plan, tmp)),
            ("project_batch", 45, section_project_batch, (device, plan)),
            ("train_256", 150, section_train_speed, (device, plan, tmp, plan.big_res, plan.big_cfg, plan.big_batch)),
            ("project_256", 100, section_project_speed, (device, plan, plan.big_res, plan.big_cfg)),
            ("demo_64", 60, section_demo, (device, plan, tmp)),
            ("compile", 120, section_compile, (device, plan, tmp)),
        ]
        for name, cap, fn, extra in sections:
            if name in skip:
                report.data["sections"][name] = {"status": "skipped", "result": {}}
                continue
            if name == "environment":
                section = report.data["environment"]
                fn(section, report.save, *extra)
                report.save()
                continue
            run_section(report, name, cap, deadline, fn, *extra)
            summarise(report)
    report.data["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    summarise(report)
    report.save()
    print(json.dumps(report.data["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
