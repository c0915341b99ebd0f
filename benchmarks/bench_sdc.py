"""Seconds for the susceptibility-field estimate (``stylefa.preprocess.sdc.estimate_field``, the topup
model) on the shared Siemens reversed-PE pair (72x72x39, 3 mm) and on a synthetic 2 mm-sized pair
(112x112x70: the real b0 zoomed, distorted in both polarities by a known field), plus the Jacobian
unwarping of a 100-volume series at that size.

    python benchmarks/bench_sdc.py [--runs 3] [--threads 1 2]

Prints median wall and CPU time per size and thread count, the b0 agreement before -> after, and
for the synthetic pair the field error against the known field. CPU time is the robust figure on a
shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from bench_dwi import timed  # median wall / CPU seconds of a few runs (benchmarks/ is on sys.path)

SHARED = Path(os.environ.get("STYLEFA_SHARED", Path(__file__).resolve().parents[2] / "shared"))
PEPOLAR = SHARED / "data" / "pepolar" / "sub-siemens01" / "dwi"


def load_pair():
    import nibabel as nib

    from stylefa.preprocess.sdc import PhaseEncoding

    out = []
    for direction in ("PA", "AP"):
        stem = PEPOLAR / f"sub-siemens01_dir-{direction}_dwi"
        image = nib.load(f"{stem}.nii.gz")
        bvals = np.loadtxt(f"{stem}.bval")
        sidecar = json.loads(Path(f"{stem}.json").read_text())
        pe = PhaseEncoding.from_bids(sidecar["PhaseEncodingDirection"], sidecar["TotalReadoutTime"])
        out.append((image.get_fdata(dtype=np.float32)[..., bvals <= 50].mean(axis=-1), image.affine, pe))
    return out


def synthetic_pair(b0, shape=(112, 112, 70), voxel_mm=2.0):
    """The real b0 zoomed to ``shape`` and distorted both ways by a smooth known field (Hz)."""
    from scipy import ndimage

    from stylefa.preprocess.sdc import PhaseEncoding, distort

    image = ndimage.zoom(b0, np.array(shape) / b0.shape, order=1)
    grid = np.indices(shape) * voxel_mm
    centre = np.array(shape) * voxel_mm / 2
    field = 100 * np.exp(-((grid[0] - centre[0]) ** 2 + (grid[1] - centre[1] - 45) ** 2
                           + (grid[2] - centre[2] + 25) ** 2) / (2 * 22**2)) - 20
    up, down = PhaseEncoding.from_bids("j", 0.0475693), PhaseEncoding.from_bids("j-", 0.0475693)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    return image, field, distort(image, field, up), up, distort(image, field, down), down, affine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if not PEPOLAR.is_dir():
        print(f"{PEPOLAR} is absent: nothing to benchmark", file=sys.stderr)
        return 1
    from stylefa.preprocess.sdc import TopupConfig, estimate_field, unwarp
    from stylefa.preprocess.sdc.topup import brain_mask
    from stylefa.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    (b0_pa, affine, pe_pa), (b0_ap, _, pe_ap) = load_pair()
    image, field, syn_a, up, syn_b, down, syn_affine = synthetic_pair(b0_pa)
    syn_mask = brain_mask(image)
    print(f"config={TopupConfig().to_dict()}")
    for threads in args.threads:
        config = TopupConfig(threads=threads)
        wall, cpu, est = timed(lambda: estimate_field(b0_pa, pe_pa, b0_ap, pe_ap, affine, config=config), args.runs)
        a = est.agreement
        print(f"shared pair 72x72x39 3 mm, {threads} thread(s): {wall:.1f} s wall / {cpu:.1f} s CPU; b0 r "
              f"{a['corr_before']:.3f} -> {a['corr_after']:.4f}, nsd {a['nsd_before']:.4f} -> {a['nsd_after']:.4f}",
              flush=True)
        wall, cpu, est = timed(lambda: estimate_field(syn_a, up, syn_b, down, syn_affine, config=config), args.runs)
        error = np.abs(est.field_hz - field)[syn_mask]
        print(f"synthetic pair 112x112x70 2 mm, {threads} thread(s): {wall:.1f} s wall / {cpu:.1f} s CPU; "
              f"field error median {np.median(error):.2f} Hz, p95 {np.percentile(error, 95):.2f} Hz", flush=True)
    series = np.repeat(syn_a[..., None], 100, axis=-1)
    wall, cpu, _ = timed(lambda: unwarp(series, field, up), 1)
    print(f"unwarp of 100 volumes 112x112x70 (cubic, Jacobian): {wall:.1f} s wall / {cpu:.1f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
