"""../shared/cases/project-nifti-no-geometry-check: `project --nifti` cuts slices exactly as prepare
and study do and gives prepare's refusals (not in template space; no brain on a slice)."""

import numpy as np
import pytest

from stylefa.cli import main

FA_FILE = "data/fa/subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"


@pytest.fixture()
def real_fa(shared_dir):
    path = shared_dir / FA_FILE
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture()
def corner_fa(real_fa, tmp_path):
    """As the case's make_case.py: the real MNI subject with its world origin moved to voxel (0,0,0)."""
    import nibabel as nib

    fa = nib.load(real_fa)
    affine = fa.affine.copy()
    affine[:3, 3] = 0
    img = nib.Nifti1Image(np.asarray(fa.dataobj), affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    path = tmp_path / "corner_FA.nii.gz"
    nib.save(img, path)
    return path


def _project(nifti, outdir, *extra):
    from stylefa.study.demo import demo_model_path

    return main(["project", "--network", str(demo_model_path()), "--nifti", str(nifti), *extra,
                 "--perceptual", "mse", "--steps", "1", "--w-avg-samples", "200", "--outdir", str(outdir),
                 "--device", "cpu"])


def test_corner_file_refused_like_prepare(corner_fa, tmp_path, capsys):
    indir = tmp_path / "in"
    indir.mkdir()
    (indir / "sub-corner_FA.nii.gz").write_bytes(corner_fa.read_bytes())
    assert main(["prepare", str(indir), "-o", str(tmp_path / "DS"), "--resolution", "64", "--split", "1,0,0"]) == 2
    prepare_err = capsys.readouterr().err.strip()
    assert "no brain (FA > 0) on the slice(s)" in prepare_err and "template space" in prepare_err
    # "stylefa prepare: error: <path>: <problem> (1 bad input(s), ...)"
    problem = prepare_err.split(": ", 3)[-1].split(" (1 bad input")[0]
    for slices, outdir in (("36", tmp_path / "P1"), ("0", tmp_path / "P0")):
        assert _project(corner_fa, outdir, "--slices", slices) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(corner_fa) in err and err.endswith(f"{corner_fa}: {problem}")
        assert not outdir.exists()


def test_slice_without_brain_refused(real_fa, tmp_path, capsys):
    assert _project(real_fa, tmp_path / "P0", "--slices", "0") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no brain (FA > 0) on the slice(s) at z = -72 mm" in err
    assert not (tmp_path / "P0").exists()


def test_training_levels_are_the_study_slices(real_fa):
    """Oracle: the study's NIfTI source (prepare's slice_subject) on the same recorded geometry."""
    from stylefa.data.training_slicing import training_slicing
    from stylefa.nets.checkpoint import read_metadata
    from stylefa.project.targets import nifti_targets
    from stylefa.study.demo import demo_model_path
    from stylefa.study.inputs import NiftiSource

    network = demo_model_path()
    slicing = training_slicing(read_metadata(network)["provenance"], 64, network)
    specs = nifti_targets(real_fa, None, slicing)
    source = NiftiSource([real_fa], slicing)
    assert len(specs) == len(source.items) == len(slicing.grid.levels_mm)
    for spec, item in zip(specs, source.items):
        np.testing.assert_array_equal(spec.load(), source.load(item).fa)
