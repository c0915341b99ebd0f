"""Seconds per subject of `stylefa prepare`, without and with --register.

Repeats the real FA maps in ../shared/data/fa (the MNI-space subject for plain slicing,
the native-space subject for registration) to N subjects as copies in a temp folder
and times ``prepare_dataset`` end to end (load, reorient, [register], slice, mask, shard,
finalise). Extrapolates to the study's 408 subjects.

    python benchmarks/bench_prepare.py --subjects 50 --workers 2 [--register-subjects 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from stylefa.runtime import tune_cpu_allocator

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLEFA_SHARED", ROOT.parent / "shared"))


def _link_cohort(source: Path, folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        # Real copies: prepare treats paths that resolve to one file as one subject.
        copy = folder / f"sub-{index:03d}_FA.nii.gz"
        shutil.copyfile(source, copy)
        paths.append(copy)
    return paths


def _time(inputs, output, config) -> float:
    from stylefa.data.prepare import prepare_dataset

    start = time.perf_counter()
    prepare_dataset(inputs, output, config)
    return time.perf_counter() - start


def main() -> None:
    tune_cpu_allocator()  # as the stylefa command does at start-up
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--register-subjects", type=int, default=None,
                        help="subjects for the --register run (default: --subjects)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args()

    from stylefa.data.prepare import PrepareConfig
    from stylefa.data.slices import SliceGrid

    fa_dir = SHARED / "data" / "fa"
    mni = fa_dir / "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    native = fa_dir / "subj-niivue_space-native_res-2p2mm_FA.nii.gz"
    template = fa_dir / "mni_fa_template_1p25mm.nii.gz"
    grid = SliceGrid(resolution=args.resolution)
    n_reg = args.register_subjects or args.subjects
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain = _time(_link_cohort(mni, tmp / "mni", args.subjects), tmp / "ds_plain",
                      PrepareConfig(grid=grid, workers=args.workers))
        registered = _time(_link_cohort(native, tmp / "native", n_reg), tmp / "ds_reg",
                           PrepareConfig(grid=grid, workers=args.workers, register=True, template=str(template)))
    per_plain = plain / args.subjects
    per_reg = registered / n_reg
    print(f"workers={args.workers} cpus={os.cpu_count()} resolution={args.resolution} slices={grid.num_slices}")
    print(f"prepare            : {args.subjects} subjects in {plain:.1f} s = {per_plain:.3f} s/subject "
          f"(wall, {args.workers} workers) -> 408 subjects: {408 * per_plain / 60:.1f} min")
    print(f"prepare --register : {n_reg} subjects in {registered:.1f} s = {per_reg:.2f} s/subject "
          f"(wall, {args.workers} workers) -> 408 subjects: {408 * per_reg / 60:.1f} min (goal <= 30 min)")


if __name__ == "__main__":
    main()
