"""`stylefa fa` vs MRtrix3 (`dwi2tensor` + `tensor2metric`) CPU time on the shared real DWI series
(issue 20 item 7, issue 22), and the automatic mask against dipy's `median_otsu`.

CPU time = user time of the command(s) (children's rusage), median of ``--runs``; each tool runs
as a user would (MRtrix3 with its default threads, stylefa with OMP_NUM_THREADS=1):

- same mask: `stylefa fa --mask M` vs `dwi2tensor -mask M` + `tensor2metric -fa`;
- automatic masks: `stylefa fa` vs `dwi2mask` + `dwi2tensor -mask` + `tensor2metric -fa`.

    python benchmarks/bench_fa_speed.py --runs 3

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STYLEFA = [sys.executable, "-m", "stylefa.cli", "fa"]


def user_seconds(commands: list[list[str]]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    for command in commands:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before


def median_time(commands, runs: int) -> float:
    return statistics.median(user_seconds(commands) for _ in range(runs))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from dipy.segment.mask import median_otsu

    series = sorted((SHARED / "dwi").glob("*_dwi.nii.gz")) + sorted((SHARED / "pepolar").glob("sub-*/dwi/*_dwi.nii.gz"))
    print("| series | stylefa, same mask | MRtrix3, same mask | ratio | stylefa, auto mask | MRtrix3 + dwi2mask | "
          "ratio | mask Dice vs median_otsu |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for dwi in series:
            base = str(dwi)[: -len(".nii.gz")]
            grads = ["--bval", base + ".bval", "--bvec", base + ".bvec"]
            fsl = ["-fslgrad", base + ".bvec", base + ".bval"]
            mask = out / "mask.nii.gz"
            subprocess.run(STYLEFA + [str(dwi), *grads, "-o", str(out / "fa.nii.gz"), "--mask-out", str(mask)],
                           check=True, stdout=subprocess.DEVNULL)
            ours_same = median_time([STYLEFA + [str(dwi), *grads, "--mask", str(mask), "-o", str(out / "a.nii.gz")]],
                                    args.runs)
            mrtrix_same = median_time([
                ["dwi2tensor", "-quiet", "-force", *fsl, "-mask", str(mask), str(dwi), str(out / "dt.mif")],
                ["tensor2metric", "-quiet", "-force", "-fa", str(out / "m.nii"), str(out / "dt.mif")]], args.runs)
            ours_auto = median_time([STYLEFA + [str(dwi), *grads, "-o", str(out / "b.nii.gz")]], args.runs)
            mrtrix_auto = median_time([
                ["dwi2mask", "-quiet", "-force", *fsl, str(dwi), str(out / "mm.mif")],
                ["dwi2tensor", "-quiet", "-force", *fsl, "-mask", str(out / "mm.mif"), str(dwi), str(out / "dt.mif")],
                ["tensor2metric", "-quiet", "-force", "-fa", str(out / "m.nii"), str(out / "dt.mif")]], args.runs)
            data = np.asarray(nib.load(dwi).dataobj, dtype=np.float32)
            b0 = np.flatnonzero(np.loadtxt(base + ".bval") <= 50)
            _, reference = median_otsu(data, vol_idx=b0, median_radius=4, numpass=4)
            overlap = dice(np.asarray(nib.load(mask).dataobj) > 0, np.asarray(reference, bool))
            print(f"| {dwi.name[:-len('_dwi.nii.gz')]} | {ours_same:.2f} s | {mrtrix_same:.2f} s | "
                  f"{ours_same / mrtrix_same:.1f}x | {ours_auto:.2f} s | {mrtrix_auto:.2f} s | "
                  f"{ours_auto / mrtrix_auto:.1f}x | {overlap:.3f} |", flush=True)


if __name__ == "__main__":
    main()
