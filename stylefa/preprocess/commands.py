"""``stylefa preprocess``: a thin wrapper over ``stylefa.preprocess`` (one subject or a BIDS cohort)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    from stylefa.data.commands import add_fit_method_argument
    from stylefa.runtime import add_threads_argument

    parser = subparsers.add_parser(
        "preprocess",
        help="raw DWI -> denoised, Gibbs-, distortion-, motion- and eddy-corrected DWI and FA (one subject or a "
             "BIDS cohort)",
        description="MP-PCA denoising -> Gibbs removal -> susceptibility-distortion correction from a reversed "
        "phase-encoding pair (topup model) -> head-motion and eddy-current correction (b-vectors rotated) -> one "
        "resampling -> brain mask -> tensor fit (FA as `stylefa fa` writes it). BIDS cohort: "
        "`stylefa preprocess BIDS_DIR -o DERIVS [--workers N] [--skip-bad]` (pairs: dir- entities in dwi/, or "
        "fmap/*_epi.nii.gz with IntendedFor). One subject: `stylefa preprocess DWI.nii.gz [--bval B --bvec V "
        "--json J] [--reverse-pe OTHER.nii.gz [--reverse-json J2]] -o DERIVS`. See docs/preprocess.md.",
    )
    parser.add_argument("input", type=Path, help="a BIDS folder, or one subject's 4-D DWI NIfTI")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (BIDS derivatives)")
    one = parser.add_argument_group("one subject (default: the BIDS siblings X.bval, X.bvec, X.json of X.nii.gz)")
    one.add_argument("--bval", type=Path, help="FSL-style b-values of the DWI")
    one.add_argument("--bvec", type=Path, help="FSL-style b-vectors of the DWI (3 rows)")
    one.add_argument("--json", type=Path, help="BIDS sidecar of the DWI (PhaseEncodingDirection, TotalReadoutTime)")
    one.add_argument("--reverse-pe", type=Path, metavar="NIFTI",
                     help="the reversed phase-encoding series: a full DWI series (with .bval/.bvec beside it or "
                          "--reverse-bval/--reverse-bvec: corrected too and concatenated into the output) or b=0 "
                          "EPI volumes only")
    one.add_argument("--reverse-json", type=Path, help="BIDS sidecar of the reversed series")
    one.add_argument("--reverse-bval", type=Path, help="b-values of a full reversed DWI series")
    one.add_argument("--reverse-bvec", type=Path, help="b-vectors of a full reversed DWI series")
    pe = parser.add_argument_group("phase encoding (only where sidecars lack it; a sidecar is never contradicted)")
    pe.add_argument("--pe-dir", choices=("i", "i-", "j", "j-", "k", "k-"),
                    help="PhaseEncodingDirection of the DWI (BIDS voxel-axis code)")
    pe.add_argument("--reverse-pe-dir", choices=("i", "i-", "j", "j-", "k", "k-"),
                    help="PhaseEncodingDirection of the reversed series (default with --pe-dir: its opposite)")
    pe.add_argument("--readout-time", type=float, metavar="S", help="TotalReadoutTime (s) of both series")
    steps = parser.add_argument_group("steps")
    steps.add_argument("--no-denoise", action="store_true", help="skip MP-PCA denoising")
    steps.add_argument("--no-degibbs", action="store_true", help="skip Gibbs-ringing removal")
    steps.add_argument("--no-sdc", action="store_true", help="skip susceptibility-distortion correction")
    steps.add_argument("--no-motion", action="store_true", help="skip head-motion and eddy-current correction")
    steps.add_argument("--no-qc", action="store_true", help="write no QC pictures and no QC page")
    steps.add_argument("--sdc-config", type=Path, metavar="JSON",
                       help="fields of the SDC TopupConfig to override, as a JSON object (docs/preprocess.md)")
    steps.add_argument("--motion-config", type=Path, metavar="JSON",
                       help="fields of the MotionConfig to override, as a JSON object")
    add_fit_method_argument(steps)
    steps.add_argument("--b0-threshold", type=float, default=50.0, help="b-values (s/mm^2) <= this are b=0 (default 50)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for a cohort (default 1)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="cohort: exit 0 when some subjects are bad (they are listed; the good ones are written)")
    add_threads_argument(parser)
    parser.set_defaults(handler=_run)


def _settings(path: Path | None) -> dict:
    from stylefa.errors import InputError

    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable JSON object ({type(exc).__name__})", path) from None
    if not isinstance(data, dict):
        raise InputError("must hold a JSON object of settings", path)
    return data


def _config(args: argparse.Namespace):
    from stylefa.data.fa import FAConfig
    from stylefa.errors import InputError
    from stylefa.preprocess.config import PreprocessConfig
    from stylefa.preprocess.pipeline import motion_config, sdc_config

    for path, check in ((args.sdc_config, sdc_config), (args.motion_config, lambda s: motion_config(s, 50.0))):
        try:
            check(_settings(path))
        except InputError as exc:
            raise InputError(exc.problem, path) from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid settings ({exc})", path) from None
    return PreprocessConfig(denoise=not args.no_denoise, degibbs=not args.no_degibbs, sdc=not args.no_sdc,
                            motion=not args.no_motion, qc=not args.no_qc, pe_dir=args.pe_dir,
                            reverse_pe_dir=args.reverse_pe_dir, readout_time=args.readout_time,
                            sdc_settings=_settings(args.sdc_config), motion_settings=_settings(args.motion_config),
                            fa=FAConfig(fit_method=args.fit_method, b0_threshold=args.b0_threshold))


def _single_subject(args: argparse.Namespace):
    from stylefa.errors import InputError
    from stylefa.preprocess.bids import dwi_series
    from stylefa.preprocess.config import SeriesFiles, SubjectInputs

    found = dwi_series(args.input)
    dwi = SeriesFiles(args.input, args.bval or found.bval, args.bvec or found.bvec, args.json or found.sidecar,
                      found.label)
    reverse = None
    if args.reverse_pe is not None:
        if not args.reverse_pe.is_file():
            raise InputError("file not found", args.reverse_pe)
        other = dwi_series(args.reverse_pe)
        bval, bvec = args.reverse_bval or other.bval, args.reverse_bvec or other.bvec
        is_dwi = args.reverse_bval is not None or (bval.is_file() and bvec.is_file())
        reverse = SeriesFiles(args.reverse_pe, bval if is_dwi else None, bvec if is_dwi else None,
                              args.reverse_json or other.sidecar, other.label)
    elif any(a is not None for a in (args.reverse_json, args.reverse_bval, args.reverse_bvec, args.reverse_pe_dir)):
        raise InputError("--reverse-json/--reverse-bval/--reverse-bvec/--reverse-pe-dir describe the --reverse-pe series; "
                         "give --reverse-pe")
    from stylefa.preprocess.bids import output_name

    name, subject, session = output_name(args.input)
    return SubjectInputs(name=name, subject=subject, session=session, dwi=dwi, reverse=reverse)


def _run(args: argparse.Namespace) -> None:
    import warnings

    from stylefa.errors import InputError

    config = _config(args)
    if args.input.is_dir():
        one_subject = [o for o in ("bval", "bvec", "json", "reverse_pe", "reverse_json", "reverse_bval",
                                   "reverse_bvec", "pe_dir", "reverse_pe_dir") if getattr(args, o) is not None]
        if one_subject:
            raise InputError(f"--{one_subject[0].replace('_', '-')} describes one subject's files; for a BIDS folder "
                             f"the sidecars must say it (or give one subject's DWI file)", args.input)
        return _run_cohort(args, config)
    if not args.input.exists():
        raise InputError("file not found", args.input)
    from stylefa.preprocess.outputs import write_description
    from stylefa.preprocess.pipeline import preprocess_subject

    subject = _single_subject(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = preprocess_subject(subject, args.output, config)
    for warning in caught:
        if warning.category.__name__ == "SDCSkippedWarning":
            print(f"warning: {warning.message}")
    write_description(args.output)
    if config.qc:
        from stylefa.preprocess.qc import write_cohort_index

        write_cohort_index(args.output)
    _report(result)


def _report(result) -> None:
    if result.reused:
        print(f"{result.name}: already done (same sources and settings)")
        return
    qc = result.qc
    parts = [f"{step} {seconds:.0f} s" for step, seconds in result.timings.items() if step not in ("total", "cpu")]
    if qc.get("b0_corr_after") is not None:
        print(f"{result.name}: b=0 up/down correlation {qc['b0_corr_before']:.3f} -> {qc['b0_corr_after']:.3f}")
    if qc.get("fd_max_mm") is not None:
        print(f"{result.name}: framewise displacement mean {qc['fd_mean_mm']:.2f} mm, max {qc['fd_max_mm']:.2f} mm")
    print(f"{result.name}: {result.timings.get('total', 0):.0f} s ({', '.join(parts)}); wrote {len(result.outputs)} files")


def _run_cohort(args: argparse.Namespace, config) -> None:
    from tqdm import tqdm

    from stylefa.preprocess.cohort import preprocess_cohort

    result = preprocess_cohort(args.input, args.output, config, workers=args.workers, skip_bad=args.skip_bad)
    for note in result.warnings:
        tqdm.write(f"warning: {note}")
    for item in result.skipped:
        tqdm.write(f"stylefa preprocess: skipped {item.line()}")
    for subject in result.written:
        _report(subject)
    reused = f", {len(result.reused)} already done" if result.reused else ""
    skipped = f", skipped {len(result.skipped)} bad subject(s)" if result.skipped else ""
    print(f"preprocessed {len(result.written)} subject(s) into {result.output}{reused}{skipped}")
    if result.index is not None:
        print(f"QC: {result.index}")
