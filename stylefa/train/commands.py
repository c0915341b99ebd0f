"""``stylefa train``: StyleGAN2-ADA training on a prepared FA dataset."""

from __future__ import annotations

import argparse
import os


def _metrics_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if names in ((), ("none",)):
        return ()
    unknown = [n for n in names if n not in ("fid", "kid")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {', '.join(unknown)}; use fid, kid or none")
    return names


def register(subparsers) -> None:
    from stylefa.train.ada import add_augment_arguments
    from stylefa.train.options import PRESETS

    p = subparsers.add_parser(
        "train",
        help="train a StyleGAN2-ADA on a prepared dataset",
        description="Train a StyleGAN2-ADA (reference loss, schedule and augmentation) on FA slices. "
        "Multi-GPU: torchrun --nproc_per_node K -m stylefa train ...",
    )
    p.add_argument("--data", required=True, help="dataset folder made by `stylefa prepare` (train split is used)")
    p.add_argument("--outdir", required=True, help="parent folder of run directories (NNNNN-<desc>)")
    p.add_argument("--cfg", default="auto", choices=sorted(PRESETS), help="configuration preset (default: auto = the study's)")
    p.add_argument("--kimg", type=float, default=None, help="training length in thousands of real images (default: preset)")
    p.add_argument("--batch", type=int, default=None, help="global batch size (default: preset)")
    p.add_argument("--resolution", type=int, default=None, help="expected image size; must match the data (default: from data)")
    p.add_argument("--gamma", type=float, default=None, help="R1 weight (default auto: 0.0002 * res^2 / batch)")
    p.add_argument("--glr", type=float, default=None, metavar="LR",
                   help="base Adam learning rate of G (default: the preset's, 0.0025 below 1024 px; the "
                        "effective lr is LR * 4/5 for lazy path-length regularisation)")
    p.add_argument("--dlr", type=float, default=None, metavar="LR",
                   help="base Adam learning rate of D (default: the preset's; effective LR * 16/17)")
    p.add_argument("--mirror", action="store_true", help="add left-right mirrored copies of the data")
    p.add_argument("--mbstd-group", type=int, default=None, metavar="N",
                   help="minibatch-std group size (default: the preset's); must divide the per-process batch, "
                        "so any number of processes trains the same D")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--tick", type=float, default=4.0, help="kimg between progress ticks (default: 4)")
    p.add_argument("--snap", type=int, default=50, help="ticks between snapshots (default: 50)")
    p.add_argument("--metrics", type=_metrics_list, default=(), help="metrics at each snapshot: fid,kid or none (default: none)")
    p.add_argument("--resume", default=None, help="auto | run directory | snapshot file (.safetensors or reference .pkl)")
    p.add_argument("--init-from", default=None, metavar="NETWORK",
                   help="warm start a new run from a network file (.safetensors or reference .pkl): G and G_ema "
                        "(G from G_ema if the file has only that), D if present (else fresh), copied by name; the "
                        "kimg counter starts at the file's kimg")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if available")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="auto (default): fp16 in the 4 highest resolutions on GPU (the reference's), fp32 on CPU; "
                   "fp32: exact float32 everywhere; bf16: bfloat16 in those resolutions (GPU only)")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=None,
                   help="TF32 matmuls/convolutions (GPU only; default on, off with --precision fp32)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (GPU only)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile G and D for the main phases (first minibatches slower while it compiles)")
    p.add_argument("--deterministic", action="store_true", help="torch deterministic algorithms (slower on GPU)")
    p.add_argument("--workers", type=int, default=None, help="data loader processes (default: 0 on CPU, 3 on GPU)")
    p.add_argument("--desc", default=None, help="run directory name after the number (default: from options)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    add_augment_arguments(p)
    p.set_defaults(handler=handle_train)

    try:
        from stylefa.train.metrics_cli import add_metrics_command
    except ModuleNotFoundError as exc:
        if exc.name != "stylefa.train.metrics_cli":
            raise
    else:
        add_metrics_command(subparsers)


def options_from_args(args: argparse.Namespace):
    from stylefa.train.ada import ada_config_from_args
    from stylefa.train.options import TrainOptions

    return TrainOptions(
        data=args.data,
        outdir=args.outdir,
        cfg=args.cfg,
        kimg=args.kimg,
        batch=args.batch,
        resolution=args.resolution,
        gamma=args.gamma,
        glr=args.glr,
        dlr=args.dlr,
        mirror=args.mirror,
        seed=args.seed,
        tick_kimg=args.tick,
        snap=args.snap,
        metrics=tuple(args.metrics),
        resume=args.resume,
        init_from=args.init_from,
        augment=ada_config_from_args(args),
        device=args.device,
        precision=args.precision,
        tf32=args.tf32,
        channels_last=args.channels_last,
        compile=args.compile,
        deterministic=args.deterministic,
        workers=args.workers,
        desc=args.desc,
        dry_run=args.dry_run,
        mbstd_group=args.mbstd_group,
    )


def handle_train(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if options.dry_run:
        import json

        from stylefa.runtime import resolve_device
        from stylefa.train.distributed import DistContext
        from stylefa.train.loop import open_dataset, resolve_config
        from stylefa.train.options import summary_lines

        # Under torchrun the dry run shows what each of WORLD_SIZE processes would use (no process group).
        world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        dist = DistContext(rank=rank, world_size=world_size, device=resolve_device(options.device))
        config = resolve_config(options, open_dataset(options), dist)
        if rank != 0:
            return 0
        for line in summary_lines(config, world_size):
            print(line)
        print(json.dumps(config.to_dict(), indent=2))
        return 0

    from stylefa.train.loop import run_training

    result = run_training(options)
    if result is not None and result.last_snapshot is not None:
        print(f"stylefa train: done at {result.cur_nimg / 1000:g} kimg; last snapshot {result.last_snapshot}")
    return 0
