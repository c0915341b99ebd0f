"""Gradient-table validation before the tensor fit: the shared bug-report cases through the real
CLI, and further instances of each fault kind (non-unit norms, too few non-collinear directions,
b=0 detection, counts, failures inside dipy)."""

import re

import nibabel as nib
import numpy as np
import pytest

from stylefa.cli import main
from stylefa.data.fa import compute_fa, fa_from_files, read_gradients
from stylefa.data.gradients import GradientRules, b_matrix, distinct_directions, tensor_rank, validate_gradients
from stylefa.data.nifti import make_volume
from stylefa.errors import InputError

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
TENSOR = (1.7e-3, 0.4e-3, 0.2e-3)


def unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def spread_directions(n, seed=1):
    return unit(np.random.default_rng(seed).normal(size=(n, 3)))


def jitter(v, degrees, seed=0):
    """Each direction turned by ``degrees`` about a random perpendicular axis."""
    rng = np.random.default_rng(seed)
    perp = rng.normal(size=v.shape)
    perp -= np.sum(perp * v, axis=1, keepdims=True) * v
    perp = unit(perp)
    t = np.radians(degrees)
    return v * np.cos(t) + perp * np.sin(t)


def closed_form_fa(l1, l2, l3):
    md = (l1 + l2 + l3) / 3
    return np.sqrt(1.5 * ((l1 - md) ** 2 + (l2 - md) ** 2 + (l3 - md) ** 2) / (l1**2 + l2**2 + l3**2))


def signals(bvals, bvecs, eigenvalues=TENSOR, shape=(4, 4, 4)):
    """Noise-free S = S0 exp(-b g^T D g) of one rotated tensor in every voxel (true b, unit g)."""
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    tensor = rotation @ np.diag(eigenvalues) @ rotation.T
    s = 1000.0 * np.exp(-bvals * np.einsum("ni,ij,nj->n", bvecs, tensor, bvecs))
    return np.broadcast_to(s, shape + (len(bvals),)).astype(np.float32)


def write_series(folder, bvals, bvecs_in_file, data):
    """DWI, bval and bvec files (the bvec file may hold non-unit vectors) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, AFFINE), folder / "dwi.nii.gz")
    np.savetxt(folder / "dwi.bval", np.asarray(bvals)[None], fmt="%.6f")
    np.savetxt(folder / "dwi.bvec", np.asarray(bvecs_in_file).T, fmt="%.8f")
    return folder / "dwi.nii.gz", folder / "dwi.bval", folder / "dwi.bvec"


def run_fa_cli(capsys, dwi, bval, bvec, out, *extra):
    code = main(["fa", str(dwi), "--bval", str(bval), "--bvec", str(bvec), "-o", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def assert_one_line_error(code, err, path, out_path, *fragments):
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"stylefa fa: error: {path}: "), err
    for fragment in fragments:
        assert fragment in err, err
    assert not out_path.exists()
    assert not any(p.name.startswith(out_path.name) for p in out_path.parent.iterdir())


# ----------------------------------------------------------------------------- shared cases


NONUNIT = ("cases", "fa-nonunit-bvec")
COLLINEAR = ("cases", "fa-collinear-directions")


@pytest.mark.parametrize("bvec_name, count", [("bvec_scaled.bvec", "64 of 64"), ("bvec_shell_in_norm.bvec", "32 of 64")])
def test_shared_case_nonunit_bvec_is_one_line(shared_dir, tmp_path, capsys, bvec_name, count):
    case = shared_dir.joinpath(*NONUNIT)
    bvec = case / bvec_name
    out = tmp_path / "FA.nii.gz"
    code, _, err = run_fa_cli(capsys, case / "dwi.nii.gz", case / "dwi.bval", bvec, out)
    assert_one_line_error(code, err, bvec, out, count, "not unit length", "--bvec-norm-encodes-b")


@pytest.mark.parametrize("name, distinct, rank", [("dwi_3dir", 3, 3), ("dwi_1dir", 1, 1)])
def test_shared_case_collinear_directions_is_one_line(shared_dir, tmp_path, capsys, name, distinct, rank):
    case = shared_dir.joinpath(*COLLINEAR)
    bvec = case / f"{name}.bvec"
    out = tmp_path / "FA.nii.gz"
    code, _, err = run_fa_cli(capsys, case / f"{name}.nii.gz", case / f"{name}.bval", bvec, out)
    assert_one_line_error(code, err, bvec, out, f"only {distinct} distinct direction", f"rank {rank}",
                          "6 non-collinear directions")


def test_shared_case_reference_series_still_fits(shared_dir, tmp_path, capsys):
    case = shared_dir.joinpath(*COLLINEAR)
    out = tmp_path / "FA.nii.gz"
    code, stdout, err = run_fa_cli(capsys, case / "dwi_full.nii.gz", case / "dwi_full.bval", case / "dwi_full.bvec", out)
    assert code == 0, err
    assert out.is_file()


def test_norm_encodes_b_option_on_the_shared_case(shared_dir, tmp_path, capsys):
    # Every direction scaled to 0.7: with the option, b' = 0.49 b. Scaling every b-value by one
    # factor scales the fitted tensor by its inverse and leaves FA unchanged, so the FA must equal
    # the fit of the original (unit) table: an oracle that needs no ground truth.
    case = shared_dir.joinpath(*NONUNIT)
    out = tmp_path / "FA.nii.gz"
    code, stdout, err = run_fa_cli(capsys, case / "dwi.nii.gz", case / "dwi.bval", case / "bvec_scaled.bvec", out,
                                   "--bvec-norm-encodes-b")
    assert code == 0, err
    # 0.7^2 x 1000 = 490, less where the original vectors were a little short of unit length
    assert re.search(r"64 b-value\(s\) scaled by \|g\|\^2; shells 4[89]\d s/mm\^2", stdout), stdout
    from dipy.data import get_fnames

    dwi_path, bval_path, bvec_path = get_fnames(name="small_64D")
    reference = fa_from_files(dwi_path, bval_path, bvec_path)
    ours = nib.load(out).get_fdata()
    inside = reference.mask
    assert inside.sum() > 300
    np.testing.assert_allclose(ours[inside], reference.fa.data[inside], atol=2e-3)


# ----------------------------------------------------------------------------- norms


def test_shell_encoded_in_norm_recovers_closed_form_fa(tmp_path, capsys):
    # Two real shells (b=500 and b=1000) written the MRtrix/dcm2niix#245 way: one b-value (1000)
    # and the b=500 shell as |g| = sqrt(0.5). With the option, FA and MD equal the closed form.
    g = spread_directions(24)
    true_b = np.r_[0.0, np.where(np.arange(24) % 2 == 0, 500.0, 1000.0)]
    unit_g = np.vstack([np.zeros(3), g])
    in_file = unit_g * np.sqrt(np.maximum(true_b, 1e-12) / 1000.0)[:, None]
    in_file[0] = 0
    dwi, bval, bvec = write_series(tmp_path / "in", np.r_[0.0, np.full(24, 1000.0)], in_file, signals(true_b, unit_g))
    out = tmp_path / "FA.nii.gz"
    code, _, err = run_fa_cli(capsys, dwi, bval, bvec, out, "--mask", str(_full_mask(tmp_path)))
    assert_one_line_error(code, err, bvec, out, "12 of 24", "|g| = 0.71")
    code, stdout, err = run_fa_cli(capsys, dwi, bval, bvec, out, "--mask", str(_full_mask(tmp_path)),
                                   "--bvec-norm-encodes-b")
    assert code == 0, err
    assert "shells 500, 1000 s/mm^2" in stdout
    np.testing.assert_allclose(nib.load(out).get_fdata(), closed_form_fa(*TENSOR), atol=1e-4)


def _full_mask(tmp_path):
    path = tmp_path / "mask.nii.gz"
    if not path.exists():
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), AFFINE), path)
    return path


@pytest.mark.parametrize("norms, fragment", [
    (np.full(20, 1.2), "20 of 20"),  # every vector too long (Bruker-like export)
    (np.r_[np.ones(19), 0.5], "1 of 20"),  # a single bad vector
    (np.linspace(0.3, 1.0, 20), "18 of 20 diffusion-weighted b-vectors are not unit length (|g| = 0.30-0.93"),  # a range of norms
])
def test_nonunit_norm_kinds_are_rejected(tmp_path, norms, fragment):
    g = spread_directions(20) * norms[:, None]
    bvals = np.r_[0.0, np.full(20, 1000.0)]
    with pytest.raises(InputError, match="not unit length") as info:
        validate_gradients(bvals, np.vstack([np.zeros(3), g]), GradientRules(), bvec_path=tmp_path / "x.bvec")
    assert fragment in info.value.problem and info.value.path == str(tmp_path / "x.bvec")


def test_norms_within_tolerance_are_renormalised():
    g = spread_directions(20) * np.linspace(0.96, 1.04, 20)[:, None]
    table = validate_gradients(np.r_[0.0, np.full(20, 1000.0)], np.vstack([np.zeros(3), g]), GradientRules())
    np.testing.assert_allclose(np.linalg.norm(table.bvecs[1:], axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(table.bvals[1:], 1000.0)
    with pytest.raises(InputError, match="not unit length"):
        validate_gradients(np.r_[0.0, np.full(20, 1000.0)], np.vstack([np.zeros(3), g]),
                           GradientRules(norm_tolerance=0.01))


def test_norm_encodes_b_scales_b_values():
    g = spread_directions(10)
    norms = np.linspace(0.5, 1.5, 10)
    table = validate_gradients(np.r_[0.0, np.full(10, 2000.0)], np.vstack([np.zeros(3), g * norms[:, None]]),
                               GradientRules(bvec_norm_encodes_b=True))
    expected = 2000.0 * norms**2
    expected[np.abs(norms - 1) <= 0.05] = 2000.0  # within tolerance: renormalised, b unchanged
    np.testing.assert_allclose(table.bvals[1:], expected)
    np.testing.assert_allclose(table.bvecs[1:], g, atol=1e-12)


# ----------------------------------------------------------------------------- directions


def test_b_matrix_rank_against_closed_form():
    # Brute force: the rank of the design matrix of g^T D g over all symmetric D, built from
    # the six unit basis tensors.
    basis = []
    for i, j in [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]:
        d = np.zeros((3, 3))
        d[i, j] = d[j, i] = 1
        basis.append(d)
    for g in (spread_directions(6), spread_directions(30), unit([[1, 0, 0], [0, 1, 0], [1, 1, 0]])):
        design = np.array([[v @ d @ v for d in basis] for v in g])
        np.testing.assert_allclose(b_matrix(g), design, atol=1e-12)
        assert tensor_rank(g) == np.linalg.matrix_rank(design)


SIX = unit([[1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1], [0, 1, 1], [0, 1, -1]])


@pytest.mark.parametrize("name, weighted, distinct_fragment", [
    ("3 axes stored twice", np.vstack([np.eye(3), np.eye(3)]), "only 3 distinct"),
    ("5 directions x2", np.vstack([SIX[:5], SIX[:5]]), "only 5 distinct"),
    ("one direction x8", np.tile(unit([[0.3, 0.9, 0.1]]), (8, 1)), "only 1 distinct"),
    ("antipodal pairs", np.vstack([np.eye(3), -np.eye(3), np.eye(3)]), "only 3 distinct"),
    ("12 directions in one plane", unit(np.c_[np.cos(np.arange(12) * 0.26), np.sin(np.arange(12) * 0.26),
                                                np.zeros(12)]), "do not span"),
    ("30 directions on a cone", jitter(np.tile([[0.0, 0.0, 1.0]], (30, 1)), 35), "do not span"),
    ("3 axes with 1 deg jitter", jitter(np.vstack([np.eye(3)] * 4), 1.0), "only 3 distinct"),
])
def test_too_few_noncollinear_directions(tmp_path, name, weighted, distinct_fragment):
    bvals = np.r_[0.0, np.full(len(weighted), 1000.0)]
    bval, bvec = tmp_path / "d.bval", tmp_path / "d.bvec"
    np.savetxt(bval, bvals[None])
    np.savetxt(bvec, np.vstack([np.zeros(3), weighted]).T)
    with pytest.raises(InputError, match="6 non-collinear directions") as info:
        read_gradients(bval, bvec, len(bvals))
    assert distinct_fragment in info.value.problem and info.value.path == str(bvec), name


def test_six_good_directions_pass_and_fit_closed_form():
    bvals = np.r_[0.0, np.full(6, 1000.0)]
    bvecs = np.vstack([np.zeros(3), SIX])
    assert distinct_directions(SIX) == 6 and tensor_rank(SIX) == 6
    dwi = make_volume(signals(bvals, bvecs), AFFINE)
    result = compute_fa(dwi, bvals, bvecs, mask=np.ones((4, 4, 4), bool))
    np.testing.assert_allclose(result.fa.data, closed_form_fa(*TENSOR), atol=1e-4)


def test_compute_fa_api_validates_arrays():
    bvals = np.r_[0.0, np.full(6, 1000.0)]
    bvecs = np.vstack([np.zeros(3), np.eye(3), np.eye(3)])
    dwi = make_volume(signals(bvals, bvecs), AFFINE)
    with pytest.raises(InputError, match="only 3 distinct"):
        compute_fa(dwi, bvals, bvecs, mask=np.ones((4, 4, 4), bool))


# ----------------------------------------------------------------------------- b=0, counts, dipy


def test_b0_threshold_option(tmp_path, capsys):
    # United Imaging writes its b=0 as b=1.25: b=0 by the default threshold (50), not with 0.
    g = spread_directions(12)
    bvals = np.r_[1.25, np.full(12, 1000.0)]
    bvecs = np.vstack([[0.0, 0.0, 0.0], g])
    dwi, bval, bvec = write_series(tmp_path / "in", bvals, bvecs, signals(bvals, bvecs))
    out = tmp_path / "FA.nii.gz"
    code, _, err = run_fa_cli(capsys, dwi, bval, bvec, out, "--mask", str(_full_mask(tmp_path)))
    assert code == 0, err
    code, _, err = run_fa_cli(capsys, dwi, bval, bvec, tmp_path / "FA0.nii.gz", "--b0-threshold", "0")
    assert code == 2 and "zero gradient direction" in err  # b=1.25 is then weighted, with no direction
    bvals_ms = np.r_[0.0, np.full(12, 1.0)]  # b-values in ms/um^2 instead of s/mm^2
    dwi, bval, bvec = write_series(tmp_path / "ms", bvals_ms, bvecs, signals(bvals_ms * 1000, bvecs))
    out = tmp_path / "FAms.nii.gz"
    code, _, err = run_fa_cli(capsys, dwi, bval, bvec, out)
    assert_one_line_error(code, err, bval, out, "no diffusion-weighted volume", "s/mm^2")


def test_counts_must_match_the_fourth_dimension(tmp_path, capsys):
    g = spread_directions(12)
    bvals = np.r_[0.0, np.full(12, 1000.0)]
    bvecs = np.vstack([np.zeros(3), g])
    dwi, bval, bvec = write_series(tmp_path / "in", bvals, bvecs, signals(bvals, bvecs))
    np.savetxt(bvec, bvecs[:-1].T)
    out = tmp_path / "FA.nii.gz"
    code, _, err = run_fa_cli(capsys, dwi, bval, bvec, out)
    assert_one_line_error(code, err, bvec, out, "bvec has 12x3 values; the DWI has 13 volumes")


@pytest.mark.parametrize("fit_method", ["dipy-wls", "mrtrix"])
def test_a_failure_inside_the_tensor_fit_is_one_line(tmp_path, capsys, monkeypatch, fit_method):
    from dipy.reconst import dti

    from stylefa.data import tensor_fit

    def broken(*args, **kwargs):
        raise ValueError("something deep inside dipy\nwith a second line")

    monkeypatch.setattr(dti.TensorModel, "fit", broken)
    monkeypatch.setattr(tensor_fit, "fit_voxels", broken)
    g = spread_directions(12)
    bvals = np.r_[0.0, np.full(12, 1000.0)]
    bvecs = np.vstack([np.zeros(3), g])
    dwi, bval, bvec = write_series(tmp_path / "in", bvals, bvecs, signals(bvals, bvecs))
    out = tmp_path / "FA.nii.gz"
    code, _, err = run_fa_cli(capsys, dwi, bval, bvec, out, "--mask", str(_full_mask(tmp_path)),
                              "--fit-method", fit_method)
    assert_one_line_error(code, err, dwi, out, "tensor fit failed (ValueError: something deep inside dipy with a")
