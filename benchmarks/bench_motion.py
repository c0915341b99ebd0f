"""Time stylefa.preprocess.motion: estimate_motion + resample_once.

1. The shared Siemens pair (../shared/data/pepolar): PA + AP concatenated (2 x 21 volumes, 72x72x39,
   3 mm), one call with per-volume phase encodings, as the pipeline runs it; median of --repeats.
2. A synthetic 100-volume 2 mm protocol (112x112x70x100: 10 b0 + 90 directions at b=1000): the PA
   series' tensor fit (dipy) upsampled to 2 mm and evaluated at new directions, Rician-like noise added;
   one run by default (it is long on one thread).

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_motion.py [--repeats 3] [--skip-large] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

PEPOLAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pepolar" / "sub-siemens01" / "dwi"


class PE:
    def __init__(self, axis, sign, readout_time):
        self.axis, self.sign, self.readout_time = axis, sign, readout_time


def _mask(b0):
    from dipy.segment.mask import median_otsu

    return median_otsu(b0, median_radius=2, numpass=1)[1]


def _load(label):
    import nibabel as nib

    stem = PEPOLAR / f"sub-siemens01_dir-{label}_dwi"
    img = nib.load(f"{stem}.nii.gz")
    return img.get_fdata(dtype=np.float32), img.affine, np.loadtxt(f"{stem}.bval"), np.loadtxt(f"{stem}.bvec")


def _run(data, bvals, bvecs, affine, mask, pes):
    from stylefa.preprocess.motion import MotionConfig, estimate_motion, resample_once

    t0 = time.perf_counter()
    tr = estimate_motion(data, bvals, bvecs, affine, mask, pe=pes, config=MotionConfig(), progress=lambda *_: None)
    t1 = time.perf_counter()
    resample_once(data, affine, tr, pe=pes, order=3, progress=False)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def bench_pair(repeats):
    pa, affine, bval_pa, bvec_pa = _load("PA")
    ap, _, bval_ap, bvec_ap = _load("AP")
    data = np.concatenate([pa, ap], axis=3)
    bvals, bvecs = np.r_[bval_pa, bval_ap], np.concatenate([bvec_pa, bvec_ap], axis=1)
    pes = [PE(1, 1, 0.0475693)] * pa.shape[3] + [PE(1, -1, 0.0475693)] * ap.shape[3]
    mask = _mask(pa[..., 0])
    times = [_run(data, bvals, bvecs, affine, mask, pes) for _ in range(repeats)]
    est, res = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
    print(f"pair {data.shape}: estimate {est:.1f} s, resample_once (cubic) {res:.1f} s "
          f"(median of {repeats}; all: {[tuple(round(x, 1) for x in t) for t in times]})")


def synthetic_100(seed=0):
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel
    from scipy.ndimage import zoom

    pa, affine, bvals, bvecs = _load("PA")
    mask = _mask(pa[..., 0])
    fit = TensorModel(gradient_table(bvals, bvecs=bvecs.T, b0_threshold=50)).fit(pa, mask=mask)
    factors = (112 / 72, 112 / 72, 70 / 39)
    quad = zoom(fit.quadratic_form.reshape(pa.shape[:3] + (9,)), factors + (1,), order=1)
    s0 = zoom(pa[..., 0], factors, order=1)
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(3, 90))
    g /= np.linalg.norm(g, axis=0)
    new_bvecs = np.concatenate([np.zeros((3, 10)), g], axis=1)
    new_bvals = np.r_[np.zeros(10), np.full(90, 1000.0)]
    adc = np.einsum("in,xyzij,jn->xyzn", new_bvecs, quad.reshape(s0.shape + (3, 3)), new_bvecs)
    data = s0[..., None] * np.exp(-new_bvals * np.clip(adc, 0, 3e-3))
    sigma = 0.03 * float(np.percentile(s0, 99))
    data = np.sqrt((data + rng.normal(0, sigma, data.shape)) ** 2 + rng.normal(0, sigma, data.shape) ** 2)
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] / np.array(factors)
    return data.astype(np.float32), new_affine, new_bvals, new_bvecs, zoom(mask.astype(np.float32), factors, order=0) > 0.5


def bench_large():
    data, affine, bvals, bvecs, mask = synthetic_100()
    est, res = _run(data, bvals, bvecs, affine, mask, PE(1, 1, 0.05))
    print(f"synthetic {data.shape}: estimate {est:.1f} s, resample_once (cubic) {res:.1f} s (one run)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    bench_pair(args.repeats)
    if not args.skip_large:
        bench_large()


if __name__ == "__main__":
    main()
