"""../shared/cases/md-map-accepted-as-fa: maps that are not FA (a diffusivity, the tensor mode, FA in
percent or x1000, a mask) are refused wherever an FA map enters, in one line saying what they look
like, with nothing written; real FA maps (the shared ones and FA fitted from every shared DWI series)
pass. The rule's thresholds are the measured ones of docs/inputs.md (benchmarks/fa_value_maps.py)."""

import os

import nibabel as nib
import numpy as np
import pytest

from stylefa.cli import main
from stylefa.data.fa_values import DIFFUSIVITY_P99_MAX, not_fa_problem, value_summary
from stylefa.errors import InputError

CASE = "cases/md-map-accepted-as-fa/sub-02_space-MNI_desc-dti_meandiff.nii.gz"
MD_LINE = "look like a diffusivity in mm^2/s (MD, AD, RD or a tensor eigenvalue), not an FA map"


@pytest.fixture()
def md_map(shared_dir):
    return shared_dir / CASE


@pytest.fixture()
def demo_network():
    from stylefa.study.demo import demo_model_path

    return str(demo_model_path())


def _one_line_error(capsys, command, path):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert err.startswith(f"stylefa {command}: error: {path}: values 5.18e-11 to 0.0148 (median 0.000803, "
                          f"99th percentile 0.00286 of the 87929 non-zero voxels) {MD_LINE}")
    return err


def test_prepare_refuses_the_md_map(md_map, tmp_path, capsys):
    out = tmp_path / "DS"
    code = main(["prepare", str(md_map), "-o", str(out), "--resolution", "64", "--split", "1,0,0", "--slices", "5"])
    assert code == 2
    _one_line_error(capsys, "prepare", md_map)
    assert not out.exists()


def test_project_nifti_refuses_the_md_map(md_map, demo_network, tmp_path, capsys):
    out = tmp_path / "P"
    code = main(["project", "--network", demo_network, "--nifti", str(md_map), "--perceptual", "mse", "--steps", "2",
                 "--w-avg-samples", "200", "--device", "cpu", "--max-targets", "2", "--outdir", str(out)])
    assert code == 2
    _one_line_error(capsys, "project", md_map)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("flag", ["--data", "--normative"])
def test_study_refuses_the_md_map_as_data_and_as_normative_data(md_map, shared_dir, demo_network, tmp_path, capsys,
                                                                monkeypatch, flag):
    monkeypatch.setenv("STYLEFA_TEMPLATE", str(shared_dir / "data/fa/mni_fa_template_1p25mm.nii.gz"))
    out = tmp_path / "S"
    data = str(md_map) if flag == "--data" else str(shared_dir / "data/fa/subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz")
    extra = [] if flag == "--data" else ["--synthetic-lesions", "--normative", str(md_map), "--lesion-slices", "1"]
    code = main(["study", "--network", demo_network, "--data", data, "--outdir", str(out), "--perceptual", "mse",
                 "--steps", "2", "--w-avg-samples", "200", "--device", "cpu", "--no-lpips-metric", "--max-slices", "2",
                 "--conditions", "none", *extra])
    assert code == 2
    _one_line_error(capsys, "study", md_map)
    assert not (out / "report.html").exists()


def test_template_baseline_refuses_a_diffusivity_template(md_map):
    from stylefa.study.lesions.baselines import TemplateFA

    with pytest.raises(InputError, match="look like a diffusivity in mm"):
        TemplateFA.load(md_map)


# ----------------------------------------------------------------------------- the rule, on real maps


@pytest.fixture(scope="module")
def tensor_maps(shared_dir):
    """FA as `stylefa fa` fits it and dipy's MD/AD/RD/eigenvalues/mode of a real DWI series (the smallest;
    benchmarks/fa_value_maps.py measures all of them)."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    from stylefa.data.fa import FAConfig, fa_from_files
    from stylefa.data.nifti import load_volume

    maps = {}
    for name in ("sub-uih01",):
        stem = shared_dir / "data/dwi" / name
        dwi = f"{stem}_dwi.nii.gz"
        result = fa_from_files(dwi, f"{stem}_dwi.bval", f"{stem}_dwi.bvec", None, FAConfig())
        bvecs = np.loadtxt(f"{stem}_dwi.bvec")
        fit = TensorModel(gradient_table(np.loadtxt(f"{stem}_dwi.bval"), bvecs=bvecs.T)).fit(
            load_volume(dwi, expect_ndim=4).data, mask=result.mask)
        evals = np.asarray(fit.evals)
        maps[name] = {"FA": result.fa.data, "MD": fit.md, "AD": fit.ad, "RD": fit.rd, "L2": evals[..., 1],
                      "L3": evals[..., 2], "MO": fit.mode}
    return {name: {k: np.where(np.isfinite(v), v, 0).astype(np.float32) for k, v in m.items()}
            for name, m in maps.items()}


def test_real_fa_maps_pass(shared_dir, tensor_maps):
    for path in sorted((shared_dir / "data/fa").glob("*_FA.nii.gz")) + [shared_dir / "data/fa/mni_fa_template_1p25mm.nii.gz"]:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        assert not_fa_problem(data) is None, path
        assert value_summary(data).p99 > 6 * DIFFUSIVITY_P99_MAX  # the measured margin (0.66+ vs 0.1)
    for maps in tensor_maps.values():
        assert not_fa_problem(maps["FA"]) is None


@pytest.mark.parametrize("kind, expected", [
    ("MD", "a diffusivity in mm^2/s"), ("AD", "a diffusivity in mm^2/s"), ("RD", "a diffusivity in mm^2/s"),
    ("L2", "a diffusivity in mm^2/s"), ("L3", "a diffusivity in mm^2/s"),
    ("MD_SI", "a diffusivity in m^2/s"), ("MD_um2ms", "a diffusivity in um^2/ms"),
    ("MO", "the tensor mode (MO, -1 to 1)"), ("FA_percent", "FA in percent (0-100)"),
    ("FA_x1000", "FA x 1000"), ("FA_x10000", "FA x 10000"), ("FA_uint8", "FA stored as 8-bit integers (0-255)"),
    ("mask", "a mask (every non-zero voxel is 1)"),
])
def test_maps_that_are_not_fa_are_named(tensor_maps, kind, expected):
    for maps in tensor_maps.values():
        fa = maps["FA"]
        data = {
            "MD_SI": lambda: maps["MD"] * 1e-6, "MD_um2ms": lambda: maps["MD"] * 1e3,
            "FA_percent": lambda: fa * 100, "FA_x1000": lambda: np.round(fa * 1000),
            "FA_x10000": lambda: np.round(fa * 10000), "FA_uint8": lambda: np.round(fa * 255),
            "mask": lambda: (fa > 0).astype(np.float32),
        }.get(kind, lambda: maps[kind])()
        problem = not_fa_problem(data)
        assert problem is not None and f"look like {expected}" in problem, (kind, problem)


def test_load_fa_refuses_in_one_line_naming_the_file(tmp_path, tensor_maps):
    from stylefa.data.nifti import load_fa

    fa = tensor_maps["sub-uih01"]["FA"]
    path = tmp_path / "sub-01_FA.nii.gz"
    nib.save(nib.Nifti1Image(np.round(fa * 1000).astype(np.int16), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    with pytest.raises(InputError) as caught:
        load_fa(path)
    assert caught.value.path == os.fspath(path) and "look like FA x 1000" in caught.value.problem
    assert "divide by 1000" in caught.value.problem and "\n" not in caught.value.problem
