"""Time the StyleGAN2-ADA networks: G forward and one generator training step.

The training step is the reference's "Gmain" phase without augmentation: G forward
(training mode, random noise), D forward, backward of softplus(-D(G(z))) into G with D
frozen (D's weights get no gradient, as in the reference loop; --d-grads to include them).

Variants, measured interleaved so background load hits them alike:
  reference  the reference's kernels and operation order (FIR by zero insertion,
             demodulation from materialised per-sample weights, unfused bias/act/clamp,
             fused grouped modconv in eval mode)
  fast       our kernels and our default modconv choice (non-fused on the CPU)
  fast-fused our kernels, fused grouped modconv forced (training included)

    python benchmarks/bench_nets.py                       # CPU, 64x64, batch 8, 2 threads
    python benchmarks/bench_nets.py --device cuda --resolution 256 --batch 32
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from stylefa.nets import Discriminator, Generator, auto_configs
from stylefa.nets.layers import set_kernel_impl
from stylefa.runtime import tune_cpu_allocator

VARIANTS = {
    "reference": ("reference", "reference-rule"),
    "fast": ("fast", None),
    "fast-fused": ("fast", True),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> tuple[float, float]:
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    tune_cpu_allocator()  # as the stylefa command does at start-up
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="reference,fast")
    parser.add_argument("--what", default="gforward,gstep", help="comma list of gforward, gstep")
    parser.add_argument("--d-grads", action="store_true", help="also compute D's weight gradients in the step")
    parser.add_argument("--fp32", action="store_true", help="force fp32 on CUDA (default: fp16 in 4 top resolutions)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g_cfg, d_cfg = auto_configs(args.resolution, args.channels)  # channel_base 16384, 2 mapping layers
    torch.manual_seed(0)
    G = Generator(g_cfg).to(device)
    D = Discriminator(d_cfg).to(device)
    z = torch.randn(args.batch, g_cfg.z_dim, device=device)
    c = torch.zeros(args.batch, 0, device=device)

    def modconv_mode(fused, training):
        # The reference fuses in eval mode (fp32) and scales activations in training.
        return (not training) if fused == "reference-rule" else fused

    def g_forward(fused):
        fused = modconv_mode(fused, training=False)
        G.eval()
        with torch.no_grad():
            G(z, c, noise_mode="const", fused_modconv=fused, force_fp32=args.fp32)

    def g_step(fused):
        fused = modconv_mode(fused, training=True)
        G.train()
        D.train()
        G.requires_grad_(True)
        D.requires_grad_(args.d_grads)
        G.zero_grad(set_to_none=True)
        img = G(z, c, noise_mode="random", fused_modconv=fused, force_fp32=args.fp32)
        F.softplus(-D(img, c, force_fp32=args.fp32)).mean().backward()

    tasks = {"gforward": g_forward, "gstep": g_step}
    variants = args.variants.split(",")
    print(
        f"device={device} threads={args.threads} res={args.resolution} ch={args.channels} batch={args.batch} "
        f"runs={args.runs} d_grads={args.d_grads} torch={torch.__version__}"
    )
    print("| what | variant | median wall s | median CPU s | min wall s |")
    print("|---|---|---|---|---|")
    for what in args.what.split(","):
        task = tasks[what]
        samples: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
        for v in variants:  # warm-up
            impl, fused = VARIANTS[v]
            set_kernel_impl(G, impl)
            set_kernel_impl(D, impl)
            task(fused)
        for _ in range(args.runs):
            for v in variants:
                impl, fused = VARIANTS[v]
                set_kernel_impl(G, impl)
                set_kernel_impl(D, impl)
                samples[v].append(_timed(lambda: task(fused), device))
        for v in variants:
            walls = [s[0] for s in samples[v]]
            cpus = [s[1] for s in samples[v]]
            print(
                f"| {what} | {v} | {statistics.median(walls):.3f} | {statistics.median(cpus):.3f} | {min(walls):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
