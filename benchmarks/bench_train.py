"""Training speed in sec/kimg (the reference's unit) for one configuration.

    python benchmarks/bench_train.py                      # CPU demo config: 64x64, --cfg small
    python benchmarks/bench_train.py --device cuda --resolution 256 --cfg auto --batch 32

Times whole minibatches of the real loop (all four phases at their lazy intervals, G_ema,
ADA) after warm-up, on a synthetic dataset (smooth blobs) unless --data is given. A multiple
of 16 minibatches is timed so every regularisation phase runs its true share.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from stylefa.runtime import resolve_device, tune_cpu_allocator


def write_blob_dataset(root: Path, n: int, res: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:res, 0:res] / res
    images = np.lib.format.open_memmap(root / "images.npy", mode="w+", dtype=np.float32, shape=(n, 1, res, res))
    for i in range(n):
        cx, cy = rng.uniform(0.3, 0.7, 2)
        s = rng.uniform(0.1, 0.25)
        images[i, 0] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    images.flush()
    np.save(root / "masks.npy", np.ones((n, res, res), bool))
    with open(root / "slices.csv", "w", newline="") as handle:
        fields = ["index", "key", "subject", "session", "split", "level", "z_mm", "label", "source"]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for i in range(n):
            writer.writerow(dict(index=i, key=f"s{i}", subject=f"s{i}", session="", split="train", level=0,
                                 z_mm="0.0", label="", source="blob"))
    (root / "dataset.json").write_text(json.dumps({
        "format": "stylefa-fa-slices", "format_version": 1, "resolution": res, "num_channels": 1, "num_images": n,
        "labels": {"kind": "none", "label_dim": 0},
        "files": {"images": "images.npy", "masks": "masks.npy", "metadata": "slices.csv"},
    }))
    return root


def main() -> None:
    tune_cpu_allocator()  # as the stylefa command does at start-up
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="prepared dataset (default: synthetic blobs)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--cfg", default="small")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="auto: stylefa's default (fp16 in the 4 highest resolutions on CUDA, fp32 on CPU)")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=None, help="default: on with CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile G and D (Gmain/Dmain phases)")
    parser.add_argument("--aug", default="ada", choices=["ada", "fixed", "noaug"])
    parser.add_argument("--p", type=float, default=0.2, help="augmentation p while timing (ADA runs start at 0)")
    parser.add_argument("--steps", type=int, default=16, help="timed minibatches (rounded up to a multiple of 16)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    args = parser.parse_args()

    import torch

    from stylefa.train.ada import AdaConfig
    from stylefa.train.distributed import DistContext
    from stylefa.train.loop import Trainer, open_dataset, resolve_config
    from stylefa.train.options import TrainOptions

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(write_blob_dataset(Path(tmp) / "blobs", 256, args.resolution))
        augment = AdaConfig(mode=args.aug, p=args.p if args.aug == "fixed" else 0.0)
        options = TrainOptions(data=data, outdir=tmp, cfg=args.cfg, batch=args.batch, device=args.device,
                               precision=args.precision, tf32=args.tf32, compile=args.compile, augment=augment)
        dist = DistContext(device=resolve_device(args.device))
        dataset = open_dataset(options)
        config = resolve_config(options, dataset, dist)
        trainer = Trainer(config, dataset, dist, None)
        if trainer.augment_pipe is not None:
            trainer.augment_pipe.p.fill_(args.p)  # time augmentation at a typical strength

        def sync():
            if dist.device.type == "cuda":
                torch.cuda.synchronize()

        warm_start = time.perf_counter()
        for _ in range(args.warmup):
            trainer.step()
        warmup_s = time.perf_counter() - warm_start
        steps = -(-args.steps // 16) * 16
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        sync()
        elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in trainer.G.parameters()) + sum(p.numel() for p in trainer.D.parameters())
    print(json.dumps({
        "device": torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "resolution": config.resolution, "cfg": config.cfg, "batch": config.batch, "precision": config.precision,
        "tf32": config.tf32, "compile": config.compile, "warmup_s": round(warmup_s, 1),
        "augment": f"{args.aug} p={args.p}", "params_G_plus_D": params, "minibatches": steps,
        "sec_per_minibatch": round(elapsed / steps, 4),
        "sec_per_kimg": round(elapsed / (steps * config.batch) * 1000, 2),
    }))


if __name__ == "__main__":
    main()
