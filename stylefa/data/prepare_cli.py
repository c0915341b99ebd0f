"""Argument parsing for ``stylefa prepare`` and ``stylefa cohort`` (thin: build a config, call the library)."""

from __future__ import annotations

import argparse
import sys


def _floats(text: str, count: int | None, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise argparse.ArgumentTypeError(f"{what}: expected {count} comma-separated numbers, got {text!r}")
    return values


def print_discovery(command: str, discovery) -> None:
    """The input search's report (``stylefa.discovery.Discovery``): what it met and left out, on stderr;
    broken symlinks skipped with --skip-bad are listed with the skipped inputs instead."""
    if discovery is None:
        return
    from stylefa.discovery import UNAVAILABLE

    rest = type(discovery)(skipped=[s for s in discovery.skipped if s.kind not in UNAVAILABLE])
    for line in rest.report_lines():
        print(f"stylefa {command}: {line}", file=sys.stderr)


def add_gate_arguments(parser) -> None:
    """``--min-correlation`` and ``--method`` (shared by ``register`` and ``prepare``)."""
    from stylefa.data.register import DEFAULT_MIN_CORRELATION, METHODS

    parser.add_argument("--method", choices=("auto",) + METHODS, default="auto",
                        help="registration: aladin = NiftyReg reg_aladin alone (the study's way); hybrid = our "
                             "orientation search, then reg_aladin -rigOnly -noSym from that pose and a symmetric polish; stylefa = our own "
                             "(no NiftyReg needed); auto (default) = hybrid when NiftyReg is installed "
                             "(pip install 'stylefa[niftyreg]'), else stylefa")
    parser.add_argument("--min-correlation", type=float, default=DEFAULT_MIN_CORRELATION, metavar="R",
                        help="quality gate: a registration whose brain correlation with the template stays below R "
                             f"is an error (default {DEFAULT_MIN_CORRELATION:g}, 0.05 lower for subjects covering "
                             "< 80%% of the template brain; correct ones reach 0.55-0.7; -1 disables)")


def add_prepare_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="FA NIfTI maps -> dataset of axial slices (training/projection input)",
        description="Sample N axial slices at fixed world-z levels (MNI mm) from each FA map, on a fixed "
        "in-plane grid, and write one dataset folder (images.npy float32 FA, masks.npy, slices.csv, "
        "dataset.json). Splits are by subject.",
    )
    parser.add_argument("inputs", nargs="+", help="FA NIfTI files, folders (searched recursively) or globs")
    parser.add_argument("-o", "--output", required=True, help="dataset folder to write")
    parser.add_argument("--register", action="store_true", help="rigidly register each map to the template first")
    parser.add_argument("--template", help="FA template for --register (default: the MNI FA template found by `stylefa template`)")
    parser.add_argument("--slices", type=int, default=21, help="number of axial levels (default 21)")
    levels = parser.add_mutually_exclusive_group()
    levels.add_argument("--z-range", metavar="ZMIN,ZMAX",
                        type=lambda t: _floats(t, 2, "--z-range"),
                        help="world z (mm) of the lowest and highest level (default 0,40: lateral ventricles to "
                             "centrum semiovale in MNI space); write negative values as --z-range=-10,30")
    levels.add_argument("--z-index-range", metavar="KMIN,KMAX",
                        type=lambda t: _floats(t, 2, "--z-index-range"),
                        help="the same as voxel indices along z of the (RAS-reoriented) template grid")
    parser.add_argument("--resolution", type=int, default=256, help="image size in pixels (default 256)")
    parser.add_argument("--fov", type=float, default=216.0, help="square field of view in mm (default 216)")
    parser.add_argument("--center", metavar="X,Y", type=lambda t: _floats(t, 2, "--center"), default=(0.0, -18.0),
                        help="world x,y (mm) of the field of view's centre (default 0,-18)")
    parser.add_argument("--split", type=lambda t: _floats(t, 3, "--split"), default=(0.8, 0.1, 0.1),
                        help="train,val,test fractions of subjects (default 0.8,0.1,0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subject split (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--format", action="append", choices=("stylefa", "nvlabs-zip"), dest="formats",
                        help="nvlabs-zip also writes nvlabs-<split>.zip for the reference code (repeatable)")
    parser.add_argument("--labels", choices=("none", "level"), default="none",
                        help="class labels: none, or the slice level index (for a conditional GAN)")
    parser.add_argument("--mask-threshold", type=float, default=0.05,
                        help="brain mask = FA > this, holes filled, when no X_brainmask.nii.gz sits beside X_FA "
                             "(default 0.05)")
    parser.add_argument("--no-sibling-masks", action="store_true", help="ignore brain masks beside the FA maps")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unusable inputs (listed; broken symlinks included) instead of failing")
    parser.add_argument("--drop-duplicates", action="store_true",
                        help="inputs with the same voxels (one scan under two names) are an error; with this option "
                             "the later ones (in subject-key order) are dropped and listed")
    add_gate_arguments(parser)
    parser.set_defaults(handler=run_prepare)


def run_prepare(args) -> int:
    from stylefa.data.prepare import PrepareConfig, prepare_dataset, resolve_template
    from stylefa.data.slices import DEFAULT_Z_RANGE_MM, SliceGrid, levels_from_indices, levels_from_range

    if args.z_index_range is not None:
        from stylefa.data.nifti import canonical, load_fa

        template_path = resolve_template(PrepareConfig(register=True, template=args.template))
        reference = canonical(load_fa(template_path))
        levels = levels_from_indices(*args.z_index_range, args.slices, reference.affine)
    else:
        levels = levels_from_range(*(args.z_range or DEFAULT_Z_RANGE_MM), args.slices)
    formats = tuple(dict.fromkeys(["stylefa", *(args.formats or [])]))
    config = PrepareConfig(
        grid=SliceGrid(levels_mm=levels, resolution=args.resolution, fov_mm=args.fov, center_mm=tuple(args.center)),
        register=args.register,
        template=args.template,
        split_fractions=tuple(args.split),
        seed=args.seed,
        mask_threshold=args.mask_threshold,
        sibling_masks=not args.no_sibling_masks,
        labels=args.labels,
        formats=formats,
        workers=args.workers,
        skip_bad=args.skip_bad,
        drop_duplicates=args.drop_duplicates,
        min_correlation=args.min_correlation,
        registration_method=args.method,
    )
    result = prepare_dataset(args.inputs, args.output, config)
    print_discovery("prepare", result.discovery)
    for item in result.dropped:
        print(f"stylefa prepare: {item.line()}", file=sys.stderr)
    skipped = f", skipped {len(result.skipped)} bad input(s)" if result.skipped else ""
    skipped += f", dropped {len(result.dropped)} duplicate(s)" if result.dropped else ""
    print(f"wrote {result.output}: {result.num_images} slices of {result.num_subjects} subject(s){skipped}")
    if args.register:
        print(f"registration QC: {result.output}/qc/index.html")
    return 0


def add_cohort_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "cohort",
        help="write a reproducible SIMULATED cohort of FA maps (template + random warps, FA changes, noise)",
        description="Simulated subjects derived from a real FA template: smooth diffeomorphic warps, head "
        "scaling, global/regional FA factors, Rician-like noise. Same seed -> identical files.",
    )
    parser.add_argument("-o", "--output", required=True, help="folder for sub-simNNN_space-MNI_FA.nii.gz files")
    parser.add_argument("--subjects", type=int, default=20, help="number of subjects (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--template", help="FA template (default: the MNI FA template found by `stylefa template`)")
    parser.add_argument("--voxel-size", type=float, help="resample the template to this isotropic size in mm "
                                                          "(e.g. 2.5 for a fast small cohort; default: its own grid)")
    parser.add_argument("--noise", type=float, default=0.08, help="per-voxel noise sigma in FA units (default 0.08)")
    parser.set_defaults(handler=run_cohort)


def run_cohort(args) -> int:
    from stylefa.data.cohort import CohortConfig, make_cohort

    config = CohortConfig(num_subjects=args.subjects, seed=args.seed, template=args.template,
                          voxel_size_mm=args.voxel_size, noise_sigma=args.noise)
    paths = make_cohort(args.output, config)
    print(f"wrote {len(paths)} simulated FA maps and cohort.json to {args.output}")
    return 0
