"""CLI of the nets stage: ``generate``, ``init-network``, ``import-pkl``, ``network-info``.

Kept import-light (argparse, pathlib): torch is imported by the handlers only.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _generate(args: argparse.Namespace) -> None:
    from stylefa.errors import InputError
    from stylefa.nets.generate import GenerateConfig, generate, parse_seeds

    if args.projected_w is not None and args.trunc is not None:
        raise InputError("--trunc applies to --seeds only; a projected w is rendered as it is")
    config = GenerateConfig(
        network=args.network,
        outdir=args.outdir,
        seeds=tuple(parse_seeds(args.seeds)) if args.seeds is not None else (),
        projected_w=args.projected_w,
        truncation_psi=1.0 if args.trunc is None else args.trunc,
        noise_mode=args.noise_mode,
        class_index=args.class_index,
        device=args.device,
        overwrite=args.overwrite,
    )
    written = generate(config)
    print(f"wrote {len(written)} files to {args.outdir}")


def _init_network(args: argparse.Namespace) -> None:
    from stylefa.nets.init_network import InitNetworkOptions, init_network

    options = InitNetworkOptions(
        output=args.output,
        resolution=args.resolution,
        channels=args.channels,
        preset=args.cfg,
        c_dim=args.c_dim,
        z_dim=args.z_dim,
        w_dim=args.w_dim,
        channel_base=args.channel_base,
        channel_max=args.channel_max,
        map_layers=args.map_layers,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"wrote {init_network(options)}")


def _import_pkl(args: argparse.Namespace) -> None:
    from stylefa.errors import InputError
    from stylefa.nets.checkpoint import import_pkl

    if args.output.exists() and not args.overwrite:
        raise InputError("already exists; use --overwrite to replace it", args.output)
    print(f"wrote {import_pkl(args.snapshot, args.output)}")


def _network_info(args: argparse.Namespace) -> None:
    import json

    from stylefa.nets.checkpoint import read_metadata

    meta = read_metadata(args.network)
    config = {kind: None if cfg is None else cfg.to_dict() for kind, cfg in meta["config"].items()}
    print(
        json.dumps(
            {
                "format": meta["format"],
                "networks": meta["networks"],
                "config": config,
                "provenance": meta["provenance"].to_dict(),
            },
            indent=2,
        )
    )


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="render images (PNG + FA .npy) from seeds or a projected w",
        description="Render images from a network (.safetensors or reference .pkl). Per seed: seedNNNN.png "
        "(8-bit, round(clip(FA,0,1)*255)) and seedNNNN.npy (float32 FA = (x+1)/2). Multi-channel "
        "networks: the .npy holds all channels, seedNNNN.png channel 0, seedNNNN_c<k>.png channel k.",
    )
    p.add_argument("--network", type=Path, required=True, metavar="PATH", help=".safetensors snapshot or reference .pkl")
    p.add_argument("--seeds", metavar="LIST", help="seeds and ranges, e.g. 0-7,12")
    p.add_argument(
        "--projected-w", type=Path, metavar="FILE.npz",
        help="render a projection: 'w' [num_ws, w_dim] or [N, num_ws, w_dim], optional 'noise.<layer>' maps; "
        "outputs projNNNN.*",
    )
    p.add_argument("--trunc", type=float, metavar="PSI", help="truncation psi for --seeds (default 1: none)")
    p.add_argument("--noise-mode", choices=("const", "random", "none"), default="const", help="default: const")
    p.add_argument("--class", dest="class_index", type=int, metavar="K", help="class index (conditional networks)")
    p.add_argument("--outdir", type=Path, required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--overwrite", action="store_true", help="regenerate images that already exist")
    p.set_defaults(handler=_generate)

    p = subparsers.add_parser(
        "init-network",
        help="write a freshly initialised G/G_ema/D snapshot",
        description="Create randomly initialised networks from an architecture preset and save them as .safetensors.",
    )
    p.add_argument("-o", "--output", type=Path, required=True, metavar="NET.safetensors",
                   help="the snapshot to write")
    p.add_argument("--resolution", type=int, default=64, help="image size, a power of two (default 64)")
    p.add_argument("--channels", type=int, default=1, help="image channels (default 1)")
    p.add_argument(
        "--cfg", choices=("auto", "small"), default="auto",
        help="auto: the reference's --cfg auto (study setting); small: tiny network for tests/demos",
    )
    p.add_argument("--c-dim", type=int, default=0, help="number of classes (default 0: unconditional)")
    p.add_argument("--z-dim", type=int, help="override the preset's z_dim")
    p.add_argument("--w-dim", type=int, help="override the preset's w_dim")
    p.add_argument("--channel-base", type=int, help="override the preset's channel_base")
    p.add_argument("--channel-max", type=int, help="override the preset's channel_max")
    p.add_argument("--map-layers", type=int, help="override the number of mapping layers")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=_init_network)

    p = subparsers.add_parser(
        "import-pkl",
        help="convert a reference network-snapshot-*.pkl to .safetensors (runs nothing from the file)",
        description="Read a stylegan2-ada-pytorch network snapshot with a restricted unpickler (no code from the "
        "file is run) and write it as a stylefa .safetensors snapshot.",
    )
    p.add_argument("snapshot", type=Path, metavar="SNAPSHOT.pkl", help="a stylegan2-ada-pytorch network snapshot")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.safetensors",
                   help="the stylefa snapshot to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=_import_pkl)

    p = subparsers.add_parser(
        "network-info",
        help="print a network file's architecture and provenance as JSON",
        description="Print the architecture configs and provenance of a .safetensors snapshot or reference .pkl.",
    )
    p.add_argument("network", type=Path, metavar="PATH", help=".safetensors snapshot or reference .pkl")
    p.set_defaults(handler=_network_info)
