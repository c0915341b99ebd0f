"""The distortion forward model, the B-spline field and the field-map conversion, each checked
against something independent of the code under test: closed forms, scipy's B-splines, analytic
fields on two different grids, and synthetic Siemens-coded field maps."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.interpolate import BSpline

from stylefa.errors import InputError
from stylefa.preprocess.sdc import (PhaseEncoding, compare_fields, displacement_voxels, distort, estimate_field,
                                    gre_field_hz, pe_jacobian, unwarp)
from stylefa.preprocess.sdc.bspline import SplineField, basis
from stylefa.preprocess.sdc.fieldmap import phase_to_radians

READOUT = 0.0475693  # s, the shared Siemens pair's TotalReadoutTime


def test_phase_encoding_from_bids():
    assert PhaseEncoding.from_bids("j-", READOUT) == PhaseEncoding(1, -1, READOUT)
    assert PhaseEncoding.from_bids("i", 0.05).label == "i" and PhaseEncoding.from_bids("k-", 0.05).label == "k-"
    for bad in ("y", "j+", "-j", "", "jj"):
        with pytest.raises(InputError, match="PhaseEncodingDirection"):
            PhaseEncoding.from_bids(bad, READOUT)
    with pytest.raises(InputError, match="TotalReadoutTime"):
        PhaseEncoding.from_bids("j", 47.5)  # milliseconds by mistake


def _gaussian_line(y, centre, width):
    return np.exp(-((y - centre) ** 2) / (2 * width**2))


@pytest.mark.parametrize("label", ["j", "j-"])
def test_linear_field_is_a_uniform_stretch(label):
    """field(y) = a*y + b along the PE axis: d(y) = s T (a y + b), so a point x lands at
    y = (1 + sTa) x + sTb and intensity is divided by the constant Jacobian 1 + sTa (closed form)."""
    pe = PhaseEncoding.from_bids(label, READOUT)
    n, a, b = 96, 1.5, 10.0  # Hz per voxel, Hz -> Jacobian 1 +- 0.071, shift +-0.48 voxel
    y = np.arange(n, dtype=np.float64)
    field = np.broadcast_to(a * y + b, (2, 3, n)).transpose(0, 2, 1).copy()  # PE is axis 1
    true = np.broadcast_to(_gaussian_line(y, 40.0, 8.0), (2, 3, n)).transpose(0, 2, 1).copy()
    gain = pe.sign * pe.readout_time
    jac = 1 + gain * a
    expected = _gaussian_line((y - gain * b) / jac, 40.0, 8.0) / jac  # I_pe(y) = I_true(x(y)) / J
    observed = distort(true, field, pe)
    # linear interpolation inside distort errs by up to h^2/8 max|f''| = 1/(8 * 8^2) = 0.002
    np.testing.assert_allclose(observed[1, :, 2], expected, atol=2.5e-3)
    np.testing.assert_allclose(pe_jacobian(field, pe), jac, rtol=1e-12)
    np.testing.assert_allclose(displacement_voxels(field, pe)[0, :, 0], gain * (a * y + b), rtol=1e-12)
    analytic = np.broadcast_to(expected, (2, 3, n)).transpose(0, 2, 1)
    np.testing.assert_allclose(unwarp(analytic, field, pe)[1, :, 2], true[1, :, 2], atol=1e-3)  # cubic
    # the displacement is large enough that leaving it out is visibly wrong
    assert np.abs(unwarp(analytic, np.zeros_like(field), pe) - true).max() > 0.03


def _smooth_phantom(shape=(24, 40, 16)):
    x, y, z = np.indices(shape, dtype=np.float64)
    c = (np.array(shape) - 1) / 2
    r2 = ((x - c[0]) / 9) ** 2 + ((y - c[1]) / 14) ** 2 + ((z - c[2]) / 6) ** 2
    image = 100 / (1 + np.exp((np.sqrt(r2) - 1) * 8)) * (1 + 0.3 * np.sin(y / 3))
    field = 60 * np.exp(-((y - 12) ** 2 / 50 + (x - c[0]) ** 2 / 80)) - 30 * np.exp(-((y - 28) ** 2) / 80)
    return image, field


def test_distort_then_unwarp_round_trips():
    """Two independently written directions of the model (inverse map + division vs. sampling +
    multiplication) undo each other; a field displacing by up to ~2.9 voxels."""
    image, field = _smooth_phantom()
    for label in ("j", "j-"):
        pe = PhaseEncoding.from_bids(label, READOUT)
        observed = distort(image, field, pe)
        assert np.abs(observed - image).max() > 20  # the distortion is large
        restored = unwarp(observed, field, pe)
        inner = np.zeros(image.shape, bool)
        inner[:, 3:-3] = True
        # measured: 0.45 max, 0.035 mean on a 0..130 image (linear interpolation inside distort)
        assert np.abs(restored - image)[inner].max() < 1.5
        assert np.abs(restored - image)[inner].mean() < 0.1
        # and intensity is conserved along each PE line (Jacobian modulation; measured within 0.26 %,
        # without the Jacobian the sums differ by several per cent)
        np.testing.assert_allclose(observed.sum(axis=1), image.sum(axis=1), rtol=5e-3)
    four_d = unwarp(np.stack([observed, 2 * observed], axis=-1), field, pe)
    np.testing.assert_allclose(four_d[..., 1], 2 * four_d[..., 0], rtol=1e-5, atol=1e-4)


def test_distort_refuses_a_folding_field():
    image, field = _smooth_phantom()
    with pytest.raises(InputError, match="folds"):
        distort(image, field * 20, PhaseEncoding.from_bids("j", READOUT))


def test_bspline_basis_matches_scipy():
    """Our cubic basis and derivatives equal scipy's ``BSpline.basis_element`` on uniform knots."""
    n, spacing, voxel = 30, 2.5, 2.0
    b, db, d2b = (m.numpy() for m in basis(n, spacing, voxel))
    intervals = int(np.ceil((n - 1) / spacing))
    origin = ((n - 1) - intervals * spacing) / 2
    x = np.arange(n, dtype=np.float64)
    for k in range(b.shape[1]):
        centre = origin + spacing * (k - 1)
        element = BSpline.basis_element(centre + spacing * np.arange(-2, 3), extrapolate=False)
        for ours, order in ((b, 0), (db, 1), (d2b, 2)):
            ref = np.nan_to_num(element(x, nu=order)) / voxel**order  # per mm
            np.testing.assert_allclose(ours[:, k], ref, atol=1e-12)


def test_spline_field_reproduces_cubics():
    shape, voxel = (20, 16, 12), (2.0, 2.5, 3.0)
    x, y, z = (torch.arange(n, dtype=torch.float64) * v for n, v in zip(shape, voxel))
    x, y, z = torch.meshgrid(x, y, z, indexing="ij")
    values = 1e-4 * x**3 - 0.01 * x * y + 0.02 * z**2 + 3
    spline = SplineField(shape, voxel, knot_mm=8.0)
    coef = spline.fit(values, smooth=0.0)
    torch.testing.assert_close(spline.field(coef), values, atol=1e-8, rtol=0)
    torch.testing.assert_close(spline.derivative(coef, 0), 3e-4 * x**2 - 0.01 * y, atol=1e-8, rtol=0)
    # bending energy of a quadratic: (d2/dz2)^2 = 0.04^2, mixed xy term counted twice = 2 * 0.01^2,
    # plus (d2/dx2)^2 = (6e-4 x)^2 averaged; the P-spline form is exact for polynomials up to degree 2
    quadratic = spline.fit(-0.01 * x * y + 0.02 * z**2, smooth=0.0)
    assert spline.bending_energy(quadratic).item() == pytest.approx(0.04**2 + 2 * 0.01**2, rel=1e-6)


def _world_field(affine, shape):
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    xyz = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape(3, *shape)
    return 40 * np.sin(xyz[0] / 30) + 0.5 * xyz[1] - 0.01 * xyz[2] ** 2


def test_compare_fields_on_different_grids():
    """An analytic field of world coordinates sampled on two grids (3 mm LAS and 3.4 mm RAS with
    an offset) agrees with itself; a constant offset shows in the raw differences only."""
    affine_a = np.diag([-3.0, 3.0, 3.0, 1.0])
    affine_a[:3, 3] = [100, -110, -60]
    affine_b = np.diag([3.4, 3.4, 3.4, 1.0])
    affine_b[:3, 3] = [-110, -120, -70]
    shape_a, shape_b = (64, 72, 40), (66, 70, 40)
    a, b = _world_field(affine_a, shape_a), _world_field(affine_b, shape_b)
    same = compare_fields(a, affine_a, b + 7.0, affine_b)
    assert same["r"] > 0.999 and same["n_voxels"] > 100_000
    assert same["offset_hz"] == pytest.approx(7.0, abs=0.1)
    assert same["median_abs_diff_hz_demeaned"] < 0.1 and same["median_abs_diff_hz"] > 6.5
    mask_b = np.zeros(shape_b, bool)
    mask_b[10:50, 10:50, 10:30] = True
    masked = compare_fields(a, affine_a, b, affine_b, mask_b=mask_b)
    assert masked["n_voxels"] < same["n_voxels"] / 2
    with pytest.raises(InputError, match="overlap"):
        compare_fields(a, affine_a, b, affine_b + _shift(5000))


def _shift(mm):
    out = np.zeros((4, 4))
    out[:3, 3] = mm
    return out


def _write(path, data, affine, sidecar=None):
    nib.save(nib.Nifti1Image(data, affine), path)
    if sidecar:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))


def test_gre_field_from_siemens_phase_difference(tmp_path):
    """A known field coded the Siemens way (-4096..4096 <-> -pi..pi), with and without phase wraps."""
    te1, te2 = 0.00492, 0.00738
    shape, affine = (40, 40, 20), np.diag([3.0, 3.0, 3.0, 1.0])
    x, y, z = np.indices(shape, dtype=np.float64)
    head = ((x - 19.5) / 15) ** 2 + ((y - 19.5) / 17) ** 2 + ((z - 9.5) / 8) ** 2 < 1
    magnitude = np.where(head, 1000.0, 5.0) + np.random.default_rng(0).normal(0, 5, shape)
    _write(tmp_path / "mag.nii.gz", magnitude.astype(np.float32), affine)
    limit = 1 / (2 * (te2 - te1))  # 203 Hz: beyond it the phase wraps
    for peak in (0.6 * limit, 1.8 * limit):
        field = peak * np.exp(-((x - 19.5) ** 2 + (y - 12) ** 2) / 80.0) - 20
        phase = np.angle(np.exp(2j * np.pi * field * (te2 - te1)))
        codes = np.round(phase / np.pi * 4096).astype(np.int16)
        _write(tmp_path / "phasediff.nii.gz", codes, affine)
        hz, out_affine, mask = gre_field_hz(tmp_path / "phasediff.nii.gz", tmp_path / "mag.nii.gz", te1, te2)
        np.testing.assert_array_equal(out_affine, affine)
        assert 0.6 * head.sum() < mask.sum() <= head.sum()
        err = np.abs(hz - field)[mask]
        assert np.median(err) < 0.2 and err.max() < 1.0  # quantisation of the 4096 codes: 0.05 Hz
    with pytest.raises(InputError, match="EchoTime"):
        gre_field_hz(tmp_path / "phasediff.nii.gz", tmp_path / "mag.nii.gz", te2, te1)
    np.testing.assert_allclose(phase_to_radians(np.array([0.0, 2048.0, 4095.0])), [0.0, np.pi, -2 * np.pi / 4096],
                               atol=1e-9)


def test_estimate_field_rejects_bad_pairs():
    image, _ = _smooth_phantom()
    up, down = PhaseEncoding.from_bids("j", READOUT), PhaseEncoding.from_bids("j-", READOUT)
    affine = np.eye(4)
    with pytest.raises(InputError, match="one grid"):
        estimate_field(image, up, image[:, :-1], down, affine)
    with pytest.raises(InputError, match="reversed-polarity"):
        estimate_field(image, up, image, up, affine)
    with pytest.raises(InputError, match="different axes"):
        estimate_field(image, up, image, PhaseEncoding.from_bids("i-", READOUT), affine)
    with pytest.raises(InputError, match="NaN"):
        estimate_field(image, up, np.where(image > 50, np.nan, image), down, affine)


@pytest.mark.parametrize("order", [1, 3])
def test_sampling_along_the_pe_axis_matches_scipy(order):
    """The 1-D interpolation inside ``unwarp`` equals scipy's 3-D ``map_coordinates`` (same B-spline
    order, mirror boundary) when only the PE coordinate is fractional."""
    from scipy import ndimage

    from stylefa.preprocess.sdc.model import _sample_along

    rng = np.random.default_rng(1)
    volume = rng.random((12, 30, 9))
    positions = np.arange(30)[None, :, None] + rng.uniform(-4, 4, volume.shape)
    coords = np.indices(volume.shape, dtype=np.float64)
    coords[1] = np.clip(positions, 0, 29)
    expected = ndimage.map_coordinates(volume, coords, order=order, mode="mirror")
    np.testing.assert_allclose(_sample_along(volume, 1, positions, order), expected, atol=1e-12)
    with pytest.raises(InputError, match="order"):
        _sample_along(volume, 1, positions, 2)


def test_topup_config_round_trips_and_rejects_bad_settings():
    from stylefa.preprocess.sdc import TopupConfig

    config = TopupConfig(knot_mm=(10.0, 5.0), fwhm_mm=(4.0, 0.0), bending=(0.1, 0.1), iterations=(5, 5))
    assert TopupConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(InputError, match="unknown setting"):
        TopupConfig.from_dict({"knots": [10]})
    with pytest.raises(InputError, match="one entry per level"):
        TopupConfig(knot_mm=(10.0, 5.0))
    with pytest.raises(InputError, match="device"):
        TopupConfig(device="warp-drive")
