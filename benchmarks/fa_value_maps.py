"""Measure the value statistics that tell an FA map from the maps it is mistaken for.

    python benchmarks/fa_value_maps.py [--json OUT.json]

For every real FA map we have (../shared/data/fa, FA from each real DWI series of
../shared/data/dwi and ../shared/data/pepolar through ``stylefa fa``'s own fit, dipy's bundled
small_64D crop) and for the maps FA is confused with (MD, AD, RD, the eigenvalues L1-L3 and the
mode MO from dipy's tensor fit of the same series inside the same mask, the shared MD case map,
FA x 100, FA x 1000 and MD in um^2/ms), prints the statistics of the non-zero voxels that
``stylefa.data.fa_values.not_fa_problem`` reads: the 1st/50th/99th percentiles, the maximum, the
fraction of negative voxels, and the verdict of the rule. The numbers are quoted in
docs/inputs.md ("Values that are not FA").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("STYLEFA_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def stats(data: np.ndarray) -> dict:
    from stylefa.data.fa_values import value_summary

    return value_summary(np.asarray(data, dtype=np.float32)).to_dict()


def dwi_series() -> list[tuple[str, Path, Path, Path]]:
    out = []
    for root in (SHARED / "data" / "dwi", SHARED / "data" / "pepolar"):
        for dwi in sorted(root.rglob("*_dwi.nii.gz")):
            base = str(dwi)[: -len(".nii.gz")]
            out.append((dwi.name[: -len("_dwi.nii.gz")], dwi, Path(base + ".bval"), Path(base + ".bvec")))
    from dipy.data import get_fnames

    nii, bval, bvec = get_fnames(name="small_64D")
    out.append(("dipy-small_64D", Path(nii), Path(bval), Path(bvec)))
    return out


def tensor_maps(dwi: Path, bval: Path, bvec: Path) -> dict[str, np.ndarray]:
    """FA as ``stylefa fa`` writes it, then MD/AD/RD/L1-L3/MO of dipy's fit inside the same mask."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from stylefa.data.fa import FAConfig, fa_from_files
    from stylefa.data.nifti import load_volume

    config = FAConfig()
    result = fa_from_files(dwi, bval, bvec, None, config)
    data = load_volume(dwi, expect_ndim=4, name="DWI").data
    bvals, bvecs = np.loadtxt(bval), np.loadtxt(bvec)
    bvecs = bvecs.T if bvecs.shape[0] == 3 else bvecs
    fit = TensorModel(gradient_table(bvals, bvecs=bvecs, b0_threshold=config.b0_threshold)).fit(data, mask=result.mask)
    maps = {"FA": result.fa.data}
    evals = np.nan_to_num(np.asarray(fit.evals))
    for name, values in (("MD", fit.md), ("AD", fit.ad), ("RD", fit.rd), ("L1", evals[..., 0]),
                         ("L2", evals[..., 1]), ("L3", evals[..., 2]), ("MO", fit.mode)):
        values = np.nan_to_num(np.asarray(values, dtype=np.float32))
        values[~result.mask] = 0.0
        maps[name] = values
    return maps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import nibabel as nib

    from stylefa.data.fa_values import not_fa_problem

    rows = []

    def add(source: str, kind: str, data: np.ndarray) -> None:
        data = np.asarray(data, dtype=np.float32)
        row = {"source": source, "map": kind, **stats(data), "verdict": not_fa_problem(data) or "accepted as FA"}
        rows.append(row)
        print(f"{source:40s} {kind:4s} p1={row['p1']:<10.4g} p50={row['p50']:<10.4g} p99={row['p99']:<10.4g} "
              f"max={row['max']:<10.4g} neg={row['negative_fraction']:<7.3f} -> {row['verdict'][:90]}", flush=True)

    for path in sorted((SHARED / "data" / "fa").glob("*.nii.gz")):
        if "brainmask" not in path.name:
            add(path.name, "FA", np.asarray(nib.load(path).dataobj))
    case = SHARED / "cases" / "md-map-accepted-as-fa" / "sub-02_space-MNI_desc-dti_meandiff.nii.gz"
    if case.is_file():
        add(case.name, "MD", np.asarray(nib.load(case).dataobj))
    for name, dwi, bval, bvec in dwi_series():
        maps = tensor_maps(dwi, bval, bvec)
        for kind, data in maps.items():
            add(name, kind, data)
        add(name, "FA%", maps["FA"] * 100)
        add(name, "FAk", np.round(maps["FA"] * 1000))
        add(name, "MDu", maps["MD"] * 1000)  # µm²/ms
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
