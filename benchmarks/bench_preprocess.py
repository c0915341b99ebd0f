"""Time ``stylefa preprocess`` per step: the shared real pair, and a synthetic-size 100-volume 2 mm protocol.

    python benchmarks/bench_preprocess.py [--case pair|protocol100|both] [--threads 1] [--repeats 1] [--out DIR]

``pair``: ``../shared/data/pepolar`` (72x72x39, 3 mm, 2 x 21 volumes, both polarities full DWI).
``protocol100``: the shared PA series resampled to 2 mm (108x108x58) and tiled to 100 volumes (10 b=0 + 90
b=1000 directions spread on the sphere), with 2 b=0 volumes of the AP series as the reverse (a b=0-only EPI,
the usual clinical protocol). Its signal does not follow the directions: it times the steps, nothing else.
Prints one JSON line per run: wall-clock and CPU seconds of each step (CPU = all threads of the process).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAIR = ROOT.parent / "shared" / "data" / "pepolar"


def _directions(n: int) -> np.ndarray:
    """``n`` unit vectors on a Fibonacci sphere (half-sphere: antipodes are the same direction)."""
    k = np.arange(n) + 0.5
    z = 1 - k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def make_protocol100(folder: Path):
    import nibabel as nib
    from scipy.ndimage import zoom

    from stylefa.preprocess.config import SeriesFiles, SubjectInputs

    dwi = PAIR / "sub-siemens01" / "dwi"
    pa = nib.load(str(dwi / "sub-siemens01_dir-PA_dwi.nii.gz"))
    ap = nib.load(str(dwi / "sub-siemens01_dir-AP_dwi.nii.gz"))
    affine = pa.affine.copy()
    affine[:3, :3] /= 1.5
    source = np.asarray(pa.dataobj, np.float32)
    volumes = [zoom(source[..., i], 1.5, order=1) for i in range(source.shape[3])]
    order = [0] * 10 + [1 + (i % 20) for i in range(90)]
    data = np.stack([volumes[i] for i in order], axis=3)
    bvals = np.array([0] * 10 + [1000] * 90)
    bvecs = np.concatenate([np.zeros((10, 3)), _directions(90)])
    reverse = np.stack([zoom(np.asarray(ap.dataobj, np.float32)[..., 0], 1.5, order=1)] * 2, axis=3)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(folder / "sub-p100_dwi.nii.gz"))
    nib.save(nib.Nifti1Image(reverse, affine), str(folder / "sub-p100_dir-AP_epi.nii.gz"))
    (folder / "sub-p100_dwi.bval").write_text(" ".join(map(str, bvals)) + "\n")
    (folder / "sub-p100_dwi.bvec").write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in bvecs.T) + "\n")
    for name, direction in (("sub-p100_dwi.json", "j"), ("sub-p100_dir-AP_epi.json", "j-")):
        (folder / name).write_text(json.dumps({"PhaseEncodingDirection": direction, "TotalReadoutTime": 0.0475693}))
    return SubjectInputs("sub-p100", "sub-p100", None,
                         SeriesFiles(folder / "sub-p100_dwi.nii.gz", folder / "sub-p100_dwi.bval",
                                     folder / "sub-p100_dwi.bvec", folder / "sub-p100_dwi.json", "PA"),
                         SeriesFiles(folder / "sub-p100_dir-AP_epi.nii.gz", sidecar=folder / "sub-p100_dir-AP_epi.json",
                                     label="AP"))


def run_case(case: str, work: Path, threads: int) -> dict:
    from stylefa.preprocess.bids import discover_subjects
    from stylefa.preprocess.config import PreprocessConfig
    from stylefa.preprocess.pipeline import preprocess_subject
    from stylefa.study.report.provenance import cpu_name

    subject = discover_subjects(PAIR)[0][0] if case == "pair" else make_protocol100(work / "input")
    config = PreprocessConfig(sdc_settings={"threads": threads})
    start = time.perf_counter()
    result = preprocess_subject(subject, work / "out", config)
    return {"case": case, "wall_s": round(time.perf_counter() - start, 1), "steps_wall_s": result.timings,
            "qc": {k: v for k, v in result.qc.items() if k != "fa"}, "threads": threads, "cpu": cpu_name(),
            "cores": os.cpu_count(), "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("pair", "protocol100", "both"), default="both")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cases = ("pair", "protocol100") if args.case == "both" else (args.case,)
    for case in cases:
        for repeat in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                work = (args.out / f"{case}-{repeat}") if args.out else Path(tmp)
                print(json.dumps(run_case(case, work, args.threads)), flush=True)


if __name__ == "__main__":
    main()
