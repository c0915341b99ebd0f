"""One thread or two on a busy machine: the wall time of the demo's projection step (the shipped
demo model, ST-LPIPS, batch 16) at each thread count, measured the way ``stylefa demo``'s start-up
estimate measures it (``stylefa.study.runner._seconds_per_image_step``: steps 2-4 of a 4-step
projection), alternating the counts so both see the same load.

    python benchmarks/bench_threads_under_load.py --threads 1 2 --repeats 3

Prints the 1-minute load average before and after, and per thread count the median over
``--repeats`` of ms per image and step. Run it beside other work to see what the demo sees.
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--w-avg-samples", type=int, default=2000)
    args = parser.parse_args()

    from stylefa.nets.checkpoint import load_generator
    from stylefa.project.config import ProjectConfig
    from stylefa.project.perceptual import PerceptualSpec, load_perceptual
    from stylefa.project.projector import compute_w_stats
    from stylefa.runtime import machine_load
    from stylefa.study.demo import demo_model_path
    from stylefa.study.runner import Target, _seconds_per_image_step

    G = load_generator(demo_model_path()).eval().requires_grad_(False)
    distance = load_perceptual(PerceptualSpec(name="stlpips-vgg16"), device="cpu")
    stats = compute_w_stats(G, args.w_avg_samples)
    rng = np.random.default_rng(0)
    batch = [Target(f"t{i}", rng.random((G.img_resolution,) * 2).astype(np.float32), None, None)
             for i in range(args.batch)]
    print(f"load before: {machine_load()}, cpus {os.cpu_count()}", flush=True)
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    for _ in range(args.repeats):
        for n in args.threads:
            torch.set_num_threads(n)
            times[n].append(1000 * _seconds_per_image_step(G, batch, ProjectConfig(steps=100), distance, stats))
    for n, values in times.items():
        print(f"{n} thread(s): {statistics.median(values):.0f} ms per image and step "
              f"(runs: {', '.join(f'{v:.0f}' for v in values)})", flush=True)
    print(f"load after: {machine_load()}", flush=True)


if __name__ == "__main__":
    main()
