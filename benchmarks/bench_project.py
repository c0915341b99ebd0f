"""Projection throughput: images x steps per second, by batch size.

    python benchmarks/bench_project.py                       # CPU: 64 px net, batch 1 and 16
    python benchmarks/bench_project.py --device cuda --resolution 256 --batches 32 64 128

The generator is the study's ``--cfg auto`` architecture (or, with ``--cfg small``, the
demo model's) at the given resolution with random weights (speed does not depend on the
weights); the loss is the chosen perceptual distance + the noise regulariser, exactly as ``stylefa project`` runs it. The first steps
(warm-up) are not timed. The GPU mode also prints the time the study's workload would
take (8568 slices x 1000 steps) on the device used.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from stylefa.runtime import tune_cpu_allocator

STUDY_SLICES = 8568
STUDY_STEPS = 1000


def build_generator(resolution: int, device, fp32: bool, cfg: str = "auto"):
    from stylefa.nets import Generator
    from stylefa.nets.config import auto_configs, small_configs

    config, _ = (auto_configs if cfg == "auto" else small_configs)(resolution)
    if fp32:
        from dataclasses import replace

        config = replace(config, synthesis=replace(config.synthesis, num_fp16_res=0))
    return Generator(config).eval().requires_grad_(False).to(device)


def throughput(G, distance, batch: int, steps: int, warmup: int, device, compile_backend: str | None = None) -> float:
    from stylefa.project.config import ProjectConfig
    from stylefa.project.projector import WStats, project_batch

    stats = WStats(G.mapping.w_avg.detach().clone(), 1.0)
    targets = torch.rand(batch, 1, G.img_resolution, G.img_resolution, device=device) * 2 - 1
    ids = [f"bench{i}" for i in range(batch)]
    project_batch(G, targets, distance, ProjectConfig(steps=warmup, w_avg_samples=1), stats, ids,
                  compile_backend=compile_backend)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    project_batch(G, targets, distance, ProjectConfig(steps=steps, w_avg_samples=1), stats, ids,
                  compile_backend=compile_backend)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    tune_cpu_allocator()  # as the stylefa command does at start-up
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--perceptual", default="stlpips-vgg16")
    parser.add_argument("--cfg", choices=("auto", "small"), default="auto",
                        help="generator architecture: the study's (auto) or the demo model's (small)")
    parser.add_argument("--fp32", action="store_true", help="no fp16 blocks (they only apply on CUDA anyway)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile each step (inductor; warm-up compiles)")
    args = parser.parse_args()

    from stylefa.project.perceptual import PerceptualSpec, load_perceptual

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from stylefa.runtime import apply_backend_flags, resolve_cuda_settings

    apply_backend_flags(resolve_cuda_settings(device.type), device)  # stylefa project's TF32/cuDNN defaults
    G = build_generator(args.resolution, device, args.fp32, args.cfg)
    distance = load_perceptual(PerceptualSpec(args.perceptual), device)
    results = {}
    for batch in args.batches:
        rate = throughput(G, distance, batch, args.steps, args.warmup, device, "inductor" if args.compile else None)
        results[batch] = rate
        line = f"batch {batch:4d}: {rate:9.2f} images*steps/s"
        if device.type == "cuda":
            line += f"  -> study workload ({STUDY_SLICES} x {STUDY_STEPS}) in {STUDY_SLICES * STUDY_STEPS / rate / 3600:.2f} h"
        print(line, flush=True)
    if len(results) > 1:
        first, last = args.batches[0], args.batches[-1]
        print(f"speed-up batch {last} vs {first}: {results[last] / results[first]:.2f}x")
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(), "resolution": args.resolution,
                      "cfg": args.cfg, "compile": args.compile,
                      "perceptual": args.perceptual, "steps": args.steps,
                      "images_steps_per_s": {str(k): v for k, v in results.items()}}))


if __name__ == "__main__":
    main()
