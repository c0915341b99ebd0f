"""Seconds per series for DWI -> FA (``stylefa fa``) and FA -> MNI registration with the
orientation search (as ``stylefa prepare --register`` runs it) on the real multi-vendor DWI
series in ../shared/data/dwi.

    python benchmarks/bench_dwi.py [--runs 3] [--threads 1]

Prints, per series, the median wall and CPU time of ``fa_from_files`` (automatic mask) and of
``register_rigid`` (2.5 mm output grid, orientation + rotation search, quality gate), the
correlation with the template, the QC picture's time, and the extrapolation to 408 subjects
of ``prepare --register`` (registration + QC picture + ~0.1 s slicing per subject) with two
single-threaded workers on 2 cores. CPU times are the robust figure on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

from stylefa.runtime import tune_cpu_allocator

SHARED = Path(os.environ.get("STYLEFA_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def timed(function, runs):
    walls, cpus, result = [], [], None
    for _ in range(runs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> int:
    tune_cpu_allocator()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    from stylefa.data.fa import fa_from_files
    from stylefa.data.nifti import canonical, load_fa
    from stylefa.data.qc import registration_qc_png
    from stylefa.data.register import RegistrationConfig, register_rigid

    dwi_dir, template_path = SHARED / "data" / "dwi", SHARED / "data" / "fa" / "mni_fa_template_1p25mm.nii.gz"
    if not dwi_dir.is_dir() or not template_path.is_file():
        print(f"{dwi_dir} or {template_path} is absent: nothing to benchmark", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    template = canonical(load_fa(template_path))  # as prepare --register loads it
    config = RegistrationConfig(output_resolution_mm=2.5)
    print(f"threads={args.threads} runs={args.runs} registration={config.to_dict()}")
    fa_cpu, reg_cpu, qc_cpu = [], [], []
    qc_path = Path(os.environ.get("TMPDIR", "/tmp")) / "stylefa-bench-qc.png"
    for dwi in sorted(dwi_dir.glob("*_dwi.nii.gz")):
        stem = str(dwi)[: -len(".nii.gz")]
        fa_wall, fa_c, fa = timed(lambda: fa_from_files(dwi, f"{stem}.bval", f"{stem}.bvec"), args.runs)
        moving = canonical(fa.fa)
        reg_wall, reg_c, reg = timed(lambda: register_rigid(moving, template, config), args.runs)
        m = reg.metrics
        _, qc_c, _ = timed(lambda: registration_qc_png(reg.volume, template, qc_path, "bench", m), args.runs)
        fa_cpu.append(fa_c)
        reg_cpu.append(reg_c)
        qc_cpu.append(qc_c)
        print(f"{dwi.name}: fa {fa_wall:.2f} s wall / {fa_c:.2f} s CPU; register {reg_wall:.2f} s wall / "
              f"{reg_c:.2f} s CPU; QC picture {qc_c:.2f} s CPU; correlation {m['correlation_before']:.3f} -> {m['correlation_after']:.3f} "
              f"(coverage {m['coverage_after']:.0%})", flush=True)
    qc_path.unlink(missing_ok=True)
    fa_median, reg_median, qc_median = (statistics.median(v) for v in (fa_cpu, reg_cpu, qc_cpu))
    print(f"median over series: fa {fa_median:.2f} s CPU, register {reg_median:.2f} s CPU, QC picture "
          f"{qc_median:.2f} s CPU")
    per_subject = reg_median + qc_median + 0.1  # + slicing and shards (~0.1 s, bench_prepare.py)
    print(f"408 subjects on 2 cores (2 single-threaded workers): fa {408 * fa_median / 2 / 60:.1f} min, "
          f"prepare --register ~{408 * per_subject / 2 / 60:.1f} min ({per_subject:.2f} s CPU per subject)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
