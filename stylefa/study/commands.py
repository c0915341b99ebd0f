"""``stylefa study`` and ``stylefa demo``."""

from __future__ import annotations

import argparse

LESIONS_HELP = ("binary lesion masks (NIfTI, same world space as the FA, at most 250 mL of lesion each) or quoted "
                "globs, e.g. 'ms/patient*_space-MNI_lesionmask.nii.gz'; see docs/inputs.md")
FLAIR_HELP = ("FLAIR images (or globs) on the voxel grid of their lesion mask, each paired with exactly one mask: "
              "by patient name (patientNN_..._FLAIR with patientNN_..._lesionmask) when every FLAIR names a "
              "mask, else in the order of --lesions, which then needs one FLAIR per mask")


def register(subparsers) -> None:
    from stylefa.cli_options import add_deprecated_alias
    from stylefa.project.perceptual.loader import add_perceptual_arguments
    from stylefa.study.demo import DemoConfig
    from stylefa.study.conditions import DEFAULT_CONDITIONS

    study = subparsers.add_parser(
        "study",
        help="project slices under corruptions and lesions; metrics, figures, HTML report",
        description="Project target FA slices under each condition (and with lesions), compare every projection "
                    "with the unmodified original and with its modified input, and write metrics.csv, "
                    "summary.json, figures and a self-contained report.html. Re-running resumes.",
    )
    study.add_argument("--network", required=True, help="generator checkpoint (.safetensors or reference .pkl)")
    study.add_argument("--data", required=True, nargs="+",
                       help="a prepared dataset folder, or FA NIfTI files/folders in MNI space (cut like the "
                            "network's training data when its snapshot records their geometry)")
    study.add_argument("--outdir", required=True, help="output folder (resumable)")
    study.add_argument("--conditions", default=DEFAULT_CONDITIONS,
                       help=f"comma-separated condition specs (default: {DEFAULT_CONDITIONS})")
    study.add_argument("--lesions", nargs="+", default=[], metavar="MASK",
                       help=LESIONS_HELP)
    study.add_argument("--flair", nargs="+", default=[], metavar="FLAIR", help=FLAIR_HELP)
    study.add_argument("--lesion-threshold", type=float, metavar="P",
                       help="the lesion masks are probability maps in [0, 1]: lesion = value >= P "
                            "(default: masks must be binary)")
    study.add_argument("--synthetic-lesions", action="store_true",
                       help="without --lesions, place a built-in synthetic lesion mask")
    study.add_argument("--lesion-reduction", type=float, default=0.4,
                       help="relative FA reduction at the lesion core (default 0.4)")
    study.add_argument("--lesion-sigma", type=float, default=1.0,
                       help="Gaussian sigma (mm) of the lesion border (default 1)")
    study.add_argument("--lesion-slices", type=int, default=2,
                       help="slices per lesion mask and scan (default 2; per-patient CIs need >= 3 in all)")
    study.add_argument("--lesion-placement", choices=("one", "all"), default="one",
                       help="one: mask i on scan i mod n (default); all: every mask on every scan")
    study.add_argument("--normative", nargs="+", default=[], metavar="FA",
                       help="lesion-free FA (NIfTI files/globs or a prepared dataset: its train split) for the "
                            "normative |z| baseline; default: the dataset's train split when --data is a dataset")
    study.add_argument("--wplus-residual", action="store_true",
                       help="also project every lesion slice and its control in W+ and score that residual "
                            "(doubles the lesion projections)")
    study.add_argument("--template", default=None,
                       help="FA template for the |FA - template| baseline (default: $STYLEFA_TEMPLATE, tractseg, "
                            "or the cache)")
    study.add_argument("--split", default="test", help="dataset split (default test)")
    study.add_argument("--max-slices", type=int, default=8, help="slices to study (default 8)")
    study.add_argument("--steps", type=int, default=1000, help="projection steps (default 1000)")
    add_perceptual_arguments(study)
    study.add_argument("--no-lpips-metric", action="store_true", help="skip the LPIPS metric column")
    study.add_argument("--figure-slices", type=int, default=3,
                       help="slices drawn in Figs. 1-2 (and twice as many lesion panels; default 3)")
    study.add_argument("--restarts", type=int, default=1,
                       help="projections per target with other random seeds; > 1 reports their spread "
                            "(optimiser luck vs condition effects; default 1)")
    study.add_argument("--batch", dest="batch_size", type=int, default=8,
                       help="projections optimised at once (default 8)")
    add_deprecated_alias(study, "--batch-size", "--batch", "batch_size", int)
    study.add_argument("--w-avg-samples", type=int, default=10000, metavar="N",
                       help="z samples mapped to estimate w_avg and w_std (default 10000)")
    study.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    study.add_argument("--seed", type=int, default=0, help="seed of the conditions' noise, synthetic lesions and bootstrap (default 0)")
    study.set_defaults(handler=_run_study)

    demo = subparsers.add_parser(
        "demo",
        help="the whole study on the built-in cohort and the shipped demo model (CPU, minutes)",
        description="Run the study on the built-in simulated cohort with the shipped demo model and synthetic "
                    "lesions (or real masks with --lesions), then print the report's path.",
    )
    demo.add_argument("--outdir", default="stylefa-demo", help="output folder (default ./stylefa-demo)")
    demo.add_argument("--lesions", nargs="+", default=[], metavar="MASK", help=LESIONS_HELP)
    demo.add_argument("--flair", nargs="+", default=[], metavar="FLAIR", help=FLAIR_HELP)
    demo.add_argument("--lesion-threshold", type=float, metavar="P",
                      help="the lesion masks are probability maps in [0, 1]: lesion = value >= P "
                           "(default: masks must be binary)")
    demo.add_argument("--network", default=None, help="use this checkpoint instead of the shipped demo model")
    demo.add_argument("--conditions", default=DemoConfig.conditions,
                      help=f"comma-separated condition specs (default: {DemoConfig.conditions}; "
                           "`stylefa study --help` lists them)")
    demo.add_argument("--steps", type=int, default=DemoConfig.steps,
                      help=f"projection steps (default {DemoConfig.steps}: the demo's time budget; the study uses 1000)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    demo.set_defaults(handler=_run_demo)


def _run_study(args: argparse.Namespace) -> int:
    from stylefa.runtime import resolve_device
    from stylefa.study.study import StudyConfig, run_study

    config = StudyConfig(
        network=args.network, data=list(args.data), outdir=args.outdir,
        conditions=args.conditions, lesions=list(args.lesions), flair=list(args.flair),
        lesion_threshold=args.lesion_threshold,
        synthetic_lesions=args.synthetic_lesions, split=args.split, max_slices=args.max_slices,
        lesion_slices=args.lesion_slices, lesion_placement=args.lesion_placement, normative=list(args.normative),
        template=args.template, wplus_residual=args.wplus_residual, lesion_reduction=args.lesion_reduction,
        lesion_sigma_mm=args.lesion_sigma, steps=args.steps, perceptual=args.perceptual, vgg16=args.vgg16,
        lpips_heads=args.lpips_heads, stlpips_weights=args.stlpips_weights, download=args.download,
        lpips_metric=not args.no_lpips_metric, batch_size=args.batch_size, w_avg_samples=args.w_avg_samples,
        seed=args.seed, device=str(resolve_device(args.device)), figure_slices=args.figure_slices,
        restarts=args.restarts,
    )
    result = run_study(config)
    _print_findings(result)
    print(f"{result.num_projections} projections; report: {result.report}; "
          f"volumes: {result.outdir / 'derivatives' / 'stylefa'}")
    return 0


def _print_findings(result) -> None:
    import json

    from stylefa.study.report.sections import findings_text

    summary = json.loads(result.summary_json.read_text())
    print("Findings (the study's claims against these measurements; details in the report):")
    for line in findings_text(summary):
        print("  " + line)


def _run_demo(args: argparse.Namespace) -> int:
    from stylefa.study.demo import DemoConfig, run_demo

    if args.steps < 1:
        from stylefa.errors import InputError

        raise InputError(f"--steps must be >= 1, got {args.steps}")
    result = run_demo(DemoConfig(outdir=args.outdir, lesions=list(args.lesions), flair=list(args.flair),
                                 lesion_threshold=args.lesion_threshold, network=args.network,
                                 conditions=args.conditions, steps=args.steps, device=args.device))
    _print_findings(result)
    print(result.report)
    return 0
