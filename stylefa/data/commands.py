"""``stylefa fa``, ``stylefa register`` and ``stylefa template``: thin wrappers over the library."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from stylefa.data.prepare_cli import add_cohort_command, add_prepare_command

    _register_fa(subparsers)
    _register_register(subparsers)
    _register_template(subparsers)
    add_prepare_command(subparsers)
    add_cohort_command(subparsers)


def _register_fa(subparsers) -> None:
    parser = subparsers.add_parser(
        "fa",
        help="DWI series -> FA maps (diffusion-tensor fit, weighted least squares); one series or a cohort",
        description="Fit a diffusion tensor (dipy, weighted least squares) and write FA clipped to [0, 1]. "
        "One series: `stylefa fa dwi.nii.gz [--bval B --bvec V] -o FA.nii.gz`. Many series (files, globs or a "
        "BIDS folder, sub-*/[ses-*/]dwi/*_dwi.nii.gz, gradients found by BIDS naming): "
        "`stylefa fa BIDS_DIR -o DERIVATIVES_DIR [--workers N] [--skip-bad]`.",
    )
    parser.add_argument("inputs", nargs="+", metavar="DWI",
                        help="4-D diffusion-weighted NIfTI file(s), glob(s) or BIDS folder(s)")
    parser.add_argument("--bval", type=Path, help="FSL-style b-values file (one series; default: the BIDS sibling "
                                                  "X_dwi.bval of X_dwi.nii.gz)")
    parser.add_argument("--bvec", type=Path, help="FSL-style b-vectors file, 3 rows (one series; default: the BIDS "
                                                  "sibling X_dwi.bvec)")
    parser.add_argument("--mask", type=Path, help="brain mask on the DWI grid (one series; default: automatic, "
                                                  "median_otsu on b=0)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output FA NIfTI (one series) or output folder (BIDS derivatives, several series)")
    add_fit_method_argument(parser)
    parser.add_argument("--mask-out", nargs="?", const=True, default=None, metavar="PATH",
                        help="also write the brain mask used: at PATH (one series) or beside each FA map "
                             "(..._desc-brain_mask.nii.gz)")
    parser.add_argument("--md", nargs="?", const=True, default=None, metavar="PATH",
                        help="also write mean diffusivity (mm^2/s): at PATH (one series) or beside each FA map")
    parser.add_argument("--b0-threshold", type=float, default=50.0,
                        help="b-values (s/mm^2) <= this are b=0 volumes (default 50)")
    parser.add_argument("--bvec-norm-encodes-b", action="store_true",
                        help="b-vectors whose length is not 1 encode the shell (MRtrix convention): use g/|g| and "
                             "b*|g|^2 (default: such b-vectors are an error)")
    parser.add_argument("--bvec-norm-tolerance", type=float, default=0.05,
                        help="accept (and renormalise) b-vectors with | |g| - 1 | <= this (default 0.05)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for several series (default 1)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="several series: exit 0 when some are bad (they are listed; the good ones are written "
                             "either way)")
    parser.set_defaults(handler=_run_fa)


def _fa_config(args):
    from stylefa.data.fa import FAConfig

    return FAConfig(fit_method=args.fit_method, b0_threshold=args.b0_threshold,
                    bvec_norm_tolerance=args.bvec_norm_tolerance, bvec_norm_encodes_b=args.bvec_norm_encodes_b)


def _is_single(args) -> bool:
    from stylefa.data.nifti import is_nifti_path

    return len(args.inputs) == 1 and Path(args.inputs[0]).is_file() and is_nifti_path(args.output)


def _run_fa(args) -> None:
    import os

    from stylefa.discovery import missing_file_problem
    from stylefa.errors import InputError

    if len(args.inputs) == 1 and os.path.islink(args.inputs[0]) and not os.path.exists(args.inputs[0]):
        raise InputError(missing_file_problem(args.inputs[0]), args.inputs[0])  # a git-annex file not fetched
    if args.bval is not None or args.bvec is not None or args.mask is not None:
        if len(args.inputs) == 1 and not Path(args.inputs[0]).exists():
            raise InputError("file not found", args.inputs[0])
        if not _is_single(args):
            raise InputError("--bval/--bvec/--mask name the files of one series (one DWI file and an -o ending in "
                             ".nii/.nii.gz); for several series leave them out: gradients are found by BIDS naming")
    if _is_single(args):
        _run_fa_single(args)
    else:
        _run_fa_batch(args)


def _run_fa_single(args) -> None:
    import numpy as np

    from stylefa.data.fa import fa_from_files, mask_volume
    from stylefa.data.fa_batch import series_from_path
    from stylefa.data.nifti import is_nifti_path, save_volume
    from stylefa.errors import InputError

    dwi = Path(args.inputs[0])
    if args.md is True:
        raise InputError("--md needs a path for one series (e.g. --md MD.nii.gz)")
    if args.mask_out is True:
        raise InputError("--mask-out needs a path for one series (e.g. --mask-out mask.nii.gz)")
    for path in (args.output, args.md, args.mask_out):
        if path is not None and not is_nifti_path(path):
            raise InputError("output must end in .nii or .nii.gz", path)
    siblings = series_from_path(dwi)
    bval = args.bval if args.bval is not None else siblings.bval
    bvec = args.bvec if args.bvec is not None else siblings.bvec
    for given, path, what in ((args.bval, bval, "--bval"), (args.bvec, bvec, "--bvec")):
        if given is None and not path.is_file():
            raise InputError(f"no {what} given and no BIDS sibling {path.name} beside the DWI", dwi)
    result = fa_from_files(dwi, bval, bvec, args.mask, _fa_config(args))
    if result.auto_mask:
        print(f"no --mask given: automatic brain mask (median_otsu recipe on the mean b=0) has "
              f"{int(result.mask.sum())} voxels")
    if result.gradients.get("rescaled_by_bvec_norm"):
        print(f"--bvec-norm-encodes-b: {result.gradients['rescaled_by_bvec_norm']} b-value(s) scaled by |g|^2; "
              f"shells {', '.join(f'{b:g}' for b in result.gradients['shells_s_per_mm2'])} s/mm^2")
    print(f"clipped {result.clipped_voxels} FA voxel(s) to [0, 1] (non-positive tensor eigenvalue)")
    save_volume(result.fa, args.output)
    print(f"wrote {args.output}")
    if args.md is not None:
        save_volume(result.md, Path(args.md))
        print(f"wrote {args.md}")
    if args.mask_out is not None:
        save_volume(mask_volume(result), Path(args.mask_out), dtype=np.uint8)
        print(f"wrote {args.mask_out}")


def _run_fa_batch(args) -> None:
    from tqdm import tqdm

    from stylefa.data.fa_batch import fa_cohort
    from stylefa.data.nifti import is_nifti_path
    from stylefa.errors import InputError

    if is_nifti_path(args.output):
        raise InputError("several DWI series (or a folder/glob) need an output folder, not a NIfTI file name",
                         args.output)
    result = fa_cohort(args.inputs, args.output, _fa_config(args), workers=args.workers,
                       write_md=args.md is not None, skip_bad=args.skip_bad, write_mask=args.mask_out is not None)
    from stylefa.data.prepare_cli import print_discovery

    print_discovery("fa", result.discovery)
    for item in result.skipped:
        tqdm.write(f"stylefa fa: skipped {item.line()}")
    reused = f", {len(result.reused)} already done" if result.reused else ""
    skipped = f", skipped {len(result.skipped)} bad series" if result.skipped else ""
    print(f"wrote FA maps of {len(result.written)} series to {result.output}{reused}{skipped}")


def _register_register(subparsers) -> None:
    parser = subparsers.add_parser(
        "register",
        help="rigidly register an FA map to the MNI FA template",
        description=(
            "Rigid (6 DOF) mutual-information registration of an FA map to an FA template; "
            "the result is resampled (linear) onto the template grid."
        ),
    )
    parser.add_argument("moving", type=Path, help="FA map to register (NIfTI)")
    parser.add_argument("--template", type=Path, help="FA template (default: $STYLEFA_TEMPLATE, tractseg, or the cache)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="registered FA on the template grid")
    parser.add_argument("--transform", type=Path, help="write the 4x4 matrix (template world -> moving world) and metrics as JSON")
    parser.add_argument("--resolution", type=float, default=None, metavar="MM",
                        help="output on an isotropic grid of MM over the template's field of view (default: template grid)")
    parser.add_argument("--rotation-search", type=float, default=30.0, metavar="DEG",
                        help="largest starting rotation tried about each axis (0 disables the search; default 30)")
    parser.add_argument("--no-orientation-search", action="store_true",
                        help="skip the search over the 24 axis-aligned orientations and the principal axes")
    from stylefa.data.prepare_cli import add_gate_arguments

    add_gate_arguments(parser)
    parser.add_argument("--qc", type=Path, metavar="PNG",
                        help="write a QC picture: registered FA with the template's edges, three orthogonal views")
    parser.set_defaults(handler=_run_register)


def _run_register(args) -> None:
    import warnings

    from stylefa.data.nifti import ClippedValuesWarning, is_nifti_path, load_fa, save_volume
    from stylefa.data.register import RegistrationConfig, register_rigid
    from stylefa.data.template import find_template
    from stylefa.errors import InputError
    from stylefa.fileio import write_json

    if not is_nifti_path(args.output):
        raise InputError("output must end in .nii or .nii.gz", args.output)
    if args.qc is not None and args.qc.suffix.lower() != ".png":
        raise InputError("QC picture must end in .png", args.qc)
    config = RegistrationConfig(output_resolution_mm=args.resolution, rotation_search_degrees=args.rotation_search,
                                orientation_search=not args.no_orientation_search,
                                min_correlation=args.min_correlation, method=args.method)
    template_path = find_template(args.template)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ClippedValuesWarning)
        moving = load_fa(args.moving)
        template = load_fa(template_path)
    for warning in caught:
        print(f"warning: {warning.message}")
    result = register_rigid(moving, template, config)
    metrics = result.metrics
    print(
        f"{metrics['method']}: rotation {metrics['rotation_degrees']:.1f} deg; brain correlation with the template "
        f"{_number(metrics['correlation_before'])} -> {_number(metrics['correlation_after'])} "
        f"(template brain covered: {metrics['coverage_after']:.0%}; gate {_number(metrics['gate'])})"
    )
    if metrics.get("warning"):
        print(f"warning: {metrics['warning']}")
    if args.qc is not None:
        from stylefa.data.qc import registration_qc_png

        registration_qc_png(result.volume, template, args.qc, title=f"{args.moving.name}", metrics=metrics)
    save_volume(result.volume, args.output)
    print(f"wrote {args.output}")
    if args.qc is not None:
        print(f"wrote {args.qc}")
    if args.transform is not None:
        record = result.transform_dict(config)
        record["moving"] = str(args.moving)
        record["template"] = str(template_path)
        write_json(args.transform, record)
        print(f"wrote {args.transform}")


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _register_template(subparsers) -> None:
    parser = subparsers.add_parser(
        "template",
        help="show or download the default MNI FA template",
        description="Print the FA template that `stylefa register` would use; --download fetches it (tractseg wheel, PyPI).",
    )
    parser.add_argument("--download", action="store_true", help="pip-download tractseg 2.10 and keep only its FA template")
    parser.set_defaults(handler=_run_template)


def _run_template(args: argparse.Namespace) -> None:
    from stylefa.data.template import download_template, find_template

    if args.download:
        print(f"downloaded {download_template()}")
        return
    print(find_template())


def add_fit_method_argument(parser) -> None:
    """``--fit-method`` (``stylefa fa`` and ``stylefa preprocess``): ``stylefa.data.fa.FIT_METHODS``."""
    from stylefa.data.fa import FIT_METHODS

    parser.add_argument("--fit-method", choices=FIT_METHODS, default=FIT_METHODS[0],
                        help="mrtrix (default): weighted least squares on the measured signal + 2 reweightings, as "
                             "MRtrix3 dwi2tensor; dipy-wls: dipy's WLS (OLS + 1 reweighting; white-matter FA lower at "
                             "high b)")
