"""Seconds per subject for ``register_rigid`` on the real FA maps in ../shared.

    python benchmarks/bench_register.py [--runs 3] [--threads 2] [--resolution MM]

Goal: 408 subjects in <= 30 min on 2 cores, i.e. <= ~8.8 s per subject per core (two
single-threaded workers) or <= ~4.4 s per subject with 2 threads.
Prints the median wall time of ``--runs`` runs, CPU time, and the brain correlation
(niivue subject: must stay >= 0.40).
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
SUBJECTS = ("subj-niivue_space-native_res-2p2mm_FA.nii.gz", "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz")


def main() -> int:
    tune_cpu_allocator()  # as the stylefa command does at start-up
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resolution", type=float, default=None, help="output grid (mm); default: template grid")
    parser.add_argument("--rotation-search", type=float, default=30.0)
    args = parser.parse_args()
    # dipy's Cython loops use OpenMP; the variable must be set before they load.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    from stylefa.data.nifti import load_fa
    from stylefa.data.register import RegistrationConfig, register_rigid

    fa_dir = SHARED / "data" / "fa"
    if not fa_dir.is_dir():
        print(f"{fa_dir} is absent: nothing to benchmark", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore")
    template = load_fa(fa_dir / "mni_fa_template_1p25mm.nii.gz")
    config = RegistrationConfig(output_resolution_mm=args.resolution, rotation_search_degrees=args.rotation_search)
    print(f"threads={args.threads} runs={args.runs} config={config.to_dict()}")
    for name in SUBJECTS:
        moving = load_fa(fa_dir / name)
        walls, cpus = [], []
        for _ in range(args.runs):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            result = register_rigid(moving, template, config)
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.process_time() - cpu0)
        m = result.metrics
        print(
            f"{name}: median {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU; "
            f"correlation {m['correlation_before']:.3f} -> {m['correlation_after']:.3f}, "
            f"rotation {m['rotation_degrees']:.1f} deg"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
