"""Where the demo's time goes: one projection step of the shipped demo model with ST-LPIPS,
split into generator forward, distance forward and the backward pass of both.

    python benchmarks/bench_demo_profile.py --batches 4 16 32 --threads 1 --repeats 5

Reports the median over ``--repeats`` steps (after one warm-up step) of *process CPU time*
(``time.process_time``), which on a machine shared with other jobs is a steadier measure
than wall time; on an idle machine with one thread they agree.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stylefa.runtime import tune_cpu_allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[16])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tune_cpu_allocator()
    torch.set_num_threads(args.threads)

    from stylefa.nets.checkpoint import load_generator
    from stylefa.project.perceptual import PerceptualSpec, load_perceptual
    from stylefa.study.demo import demo_model_path

    G = load_generator(demo_model_path()).eval().requires_grad_(False)
    distance = load_perceptual(PerceptualSpec(name="stlpips-vgg16"), device="cpu")
    for batch in args.batches:
        target = torch.rand(batch, 1, G.img_resolution, G.img_resolution, generator=torch.Generator().manual_seed(0))
        features = distance.target_features(target * 2 - 1)
        w = G.mapping(torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(1)), None)[:, :1]
        w = w.clone().requires_grad_(True)
        parts: dict[str, list[float]] = {"G forward": [], "distance forward": [], "backward": [], "total": []}
        for repeat in range(args.repeats + 1):
            t0 = time.process_time()
            image = G.synthesis(w.expand(-1, G.num_ws, -1), noise_mode="const", fused_modconv=False)
            t1 = time.process_time()
            d = distance.distance(image, features)
            t2 = time.process_time()
            d.sum().backward()
            t3 = time.process_time()
            w.grad = None
            if repeat:
                for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    parts[key].append(value / batch * 1000)
        med = {k: statistics.median(v) for k, v in parts.items()}
        share = ", ".join(f"{k} {v:.1f} ms ({100 * v / med['total']:.0f} %)" for k, v in med.items() if k != "total")
        print(f"batch {batch}: {med['total']:.1f} ms CPU per image and step = {share}", flush=True)


if __name__ == "__main__":
    main()
