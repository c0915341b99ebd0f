"""Registration methods side by side on every shared real series (issue 22): stylefa / aladin / hybrid.

For each FA map (fitted here from ../shared/data/dwi and ../shared/data/pepolar with `stylefa fa`'s
library, plus the native-space FA map in ../shared/data/fa) and each method: the brain correlation
with the template within the scan's coverage, the coverage, the gate's verdict, and the CPU time
(this process + reg_aladin children, user + system). Then the angle / largest / RMS displacement of
the template brain between methods, and the within-person consistency of the three Toshiba series
(one head, one session, three slice tilts: a correct method gives them the same pose).

    OMP_NUM_THREADS=1 python benchmarks/bench_registration_methods.py [--methods stylefa,aladin,hybrid]

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import resource
from pathlib import Path


from stylefa.data.fa import fa_from_files
from stylefa.data.nifti import load_fa
from stylefa.data.register import (RegistrationConfig, RegistrationQualityError, downsample, pose_difference,
                                   register_rigid)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def fa_maps() -> dict:
    maps = {}
    for dwi in sorted((SHARED / "dwi").glob("*_dwi.nii.gz")) + sorted((SHARED / "pepolar").glob("sub-*/dwi/*_dwi.nii.gz")):
        stem = dwi.name[: -len("_dwi.nii.gz")]
        base = str(dwi)[: -len(".nii.gz")]
        maps[stem] = fa_from_files(dwi, base + ".bval", base + ".bvec").fa
    maps["niivue-native"] = load_fa(SHARED / "fa" / "subj-niivue_space-native_res-2p2mm_FA.nii.gz")
    return maps


def pose_rows(pairs, poses: dict, brain) -> None:
    """Table rows: (label, pose key a, pose key b) -> angle / largest / RMS displacement of the brain."""
    for label, a, b in pairs:
        angle, largest, rms = pose_difference(poses[a], poses[b], brain)
        print(f"| {label} | {angle:.2f} | {largest:.1f} | {rms:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="stylefa,aladin,hybrid")
    args = parser.parse_args()
    methods = args.methods.split(",")
    template = load_fa(SHARED / "fa" / "mni_fa_template_1p25mm.nii.gz")
    brain = downsample(template, 2.5)
    maps = fa_maps()
    poses: dict = {}
    print("| series | method | r within coverage | coverage | verdict | CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, volume in maps.items():
        for method in methods:
            cpu = cpu_seconds()
            try:
                result = register_rigid(volume, template, RegistrationConfig(output_resolution_mm=2.5, method=method))
                verdict = "pass" if not result.metrics.get("warning") else "pass (partial coverage warning)"
            except RegistrationQualityError as exc:
                result, verdict = exc.result, "refused: " + exc.problem.split(":")[0]
            cpu = cpu_seconds() - cpu
            poses[name, method] = result.matrix
            m = result.metrics
            print(f"| {name} | {method} | {m['correlation_after']:.3f} | {m['coverage_after']:.0%} | {verdict} | "
                  f"{cpu:.1f} |", flush=True)
    print("\n| series: methods | angle deg | largest mm | RMS mm |")
    print("| --- | --- | --- | --- |")
    pose_rows([(f"{name}: {a} vs {b}", (name, a), (name, b))
               for name in maps for a, b in itertools.combinations(methods, 2)], poses, brain)
    toshiba = [n for n in maps if n.startswith("sub-toshiba01")]
    print("\n| method: Toshiba pair (one head, three tilts) | angle deg | largest mm | RMS mm |")
    print("| --- | --- | --- | --- |")
    pose_rows([(f"{method}: {a[14:]} vs {b[14:]}", (a, method), (b, method))
               for method in methods for a, b in itertools.combinations(toshiba, 2)], poses, brain)


if __name__ == "__main__":
    main()
