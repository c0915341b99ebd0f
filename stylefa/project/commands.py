"""``stylefa project``: thin CLI over ``stylefa.project.runner.run_projection``."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylefa.errors import InputError


def _slices(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slices {text!r}: give comma-separated voxel indices, e.g. 40,45") from None
    if not values:
        raise argparse.ArgumentTypeError("--slices is empty")
    return values


def _handle(args: argparse.Namespace) -> int:
    from stylefa.project.config import ProjectConfig
    from stylefa.project.perceptual.loader import PerceptualSpec
    from stylefa.project.runner import RunConfig, run_projection
    from stylefa.project import targets as sources

    sources_given = [args.data is not None, bool(args.targets), args.nifti is not None]
    if sum(sources_given) != 1:
        raise InputError("give exactly one target source: --data DATASET, --targets FILES... or --nifti FA [--slices K,...]")
    if args.slices and args.nifti is None:
        raise InputError("--slices selects voxel planes of --nifti; give --nifti FA.nii.gz too")
    if not Path(args.network).is_file():
        raise InputError("network file not found", args.network)
    from stylefa.readers import ImageOptions

    image_options = ImageOptions(scale=args.png_scale, alpha_background=args.png_alpha_background)
    try:
        project = ProjectConfig(
            steps=args.steps, init=args.init, space=args.space, mse_weight=args.mse_weight,
            noise_weight=args.noise_weight, initial_lr=args.lr, seed=args.seed, pti_steps=args.pti_steps,
            video_every=(args.video_every if args.save_video else 0), w_avg_samples=args.w_avg_samples,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    config = RunConfig(
        network=str(args.network), outdir=str(args.outdir), project=project,
        perceptual=PerceptualSpec(name=args.perceptual, vgg16=args.vgg16, lpips_heads=args.lpips_heads,
                                  stlpips_weights=args.stlpips_weights, download=args.download),
        batch=args.batch, device=args.device, mask=args.mask, image_options=image_options,
        precision=args.precision, compile=args.compile,
    )
    resolution = _generator_resolution(args.network)
    if args.data is not None:
        specs = sources.dataset_targets(args.data, args.split, args.subjects, args.max_targets, resolution)
    elif args.targets:
        specs = sources.file_targets(args.targets, resolution, image_options)
    else:
        from stylefa.data.training_slicing import training_slicing
        from stylefa.nets.checkpoint import read_metadata

        slicing = training_slicing(read_metadata(args.network)["provenance"], resolution, args.network)
        specs = sources.nifti_targets(args.nifti, args.slices, slicing)
    if args.max_targets is not None:
        specs = specs[: args.max_targets]
    summary = run_projection(specs, config)
    if summary is not None:
        volumes = Path(args.outdir) / "derivatives" / "stylefa"
        print(f"stylefa project: {len(specs)} target(s); summary in {summary}"
              + (f"; volumes in {volumes}" if (volumes / "dataset_description.json").is_file() else ""))
    return 0


def _generator_resolution(network) -> int:
    from stylefa.nets.checkpoint import read_metadata

    g_config = read_metadata(network)["config"].get("G")
    if g_config is None:
        raise InputError("file holds no generator", network)
    from stylefa.readers import check_resolution

    return check_resolution(g_config.img_resolution, "the generator's resolution", network)


def register(subparsers) -> None:
    from stylefa.project.config import INIT_CHOICES, PRECISION_CHOICES, SPACE_CHOICES
    from stylefa.project.perceptual.loader import add_perceptual_arguments

    parser = subparsers.add_parser(
        "project",
        help="project real FA slices into a generator's latent space (StyleGAN2-ADA projector)",
        description="Optimise a latent (w or w+) and the noise maps so the generator reproduces each target. "
        "Defaults are the reference projector's; see docs/project.md.",
    )
    parser.add_argument("--network", required=True, type=Path, help="generator checkpoint (.safetensors or reference .pkl)")
    source = parser.add_argument_group("targets (exactly one source)")
    source.add_argument("--data", type=Path, metavar="DATASET", help="a prepared dataset folder")
    source.add_argument("--split", default="test", help="dataset split (default: test)")
    source.add_argument("--subjects", nargs="+", metavar="ID", help="only these dataset subjects")
    source.add_argument("--max-targets", type=int, metavar="K", help="at most K targets")
    source.add_argument("--targets", nargs="+", type=Path, metavar="FILE", help=".npy (FA in [0,1]) or .png images")
    source.add_argument("--nifti", type=Path, metavar="FA.nii.gz",
                        help="an FA map in MNI space, cut as prepare and study cut it (the network's recorded slice "
                             "geometry; refused if not in template space); default targets: the training levels")
    source.add_argument("--slices", type=_slices, metavar="K,...",
                        help="instead of the training levels: these axial voxel planes of --nifti, on the same "
                             "in-plane grid (each must hold brain)")
    parser.add_argument("--outdir", required=True, type=Path, help="one folder per target is written here")
    parser.add_argument("--steps", type=int, default=1000, help="optimisation steps (default 1000)")
    parser.add_argument("--batch", type=int, default=16, help="targets optimised at once (default 16)")
    add_perceptual_arguments(parser)
    parser.add_argument("--init", choices=INIT_CHOICES, default="w-avg", help="start at w_avg (reference) or at mapping(random z)")
    parser.add_argument("--space", choices=SPACE_CHOICES, default="w", help="optimise one w (reference) or one per layer (w+)")
    parser.add_argument("--mse-weight", type=float, default=0.0, help="weight of an added pixel MSE term (default 0)")
    parser.add_argument("--noise-weight", type=float, default=1e5, help="noise regularisation weight (default 1e5)")
    parser.add_argument("--w-avg-samples", type=int, default=10000, metavar="N",
                        help="z samples mapped to estimate w_avg and w_std (default 10000)")
    parser.add_argument("--lr", type=float, default=0.1, help="initial learning rate (default 0.1)")
    parser.add_argument("--mask", metavar="FILE",
                        help="known-pixel mask (.npy/.png, binary: 0 = unknown, the other value = known): the loss "
                             "ignores the unknown pixels")
    parser.add_argument("--png-scale", type=float, metavar="S",
                        help="integer PNG value meaning FA 1 (default: full range, 255 or 65535; e.g. 1000 for "
                             "FA x 1000 files); see docs/inputs.md")
    parser.add_argument("--png-alpha-background", type=float, metavar="FA",
                        help="flatten transparent PNG pixels onto this FA value (default: refuse PNGs with "
                             "transparency)")
    parser.add_argument("--pti-steps", type=int, default=0, metavar="N", help="pivotal tuning steps after projection (default 0: off)")
    parser.add_argument("--save-video", action="store_true", help="write progress.gif (target | projection) per target")
    parser.add_argument("--video-every", type=int, default=10, metavar="N", help="GIF frame every N steps (default 10)")
    parser.add_argument("--seed", type=int, default=303, help="run seed; each target's RNG derives from it and its id")
    parser.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if available), cpu, cuda, cuda:K")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                        help="GPU only: auto (the network's own: fp16 in its highest resolutions), fp32 or bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile each step (faster after the first)")
    parser.set_defaults(handler=_handle)
