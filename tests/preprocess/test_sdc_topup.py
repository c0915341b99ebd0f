"""Field estimation from a reversed-PE pair (topup model) against independent oracles:
a known field imposed on a real b0 with the forward model, and the real Siemens pair whose
field must make the two polarities agree and match the session's GRE field map."""

import json

import nibabel as nib
import numpy as np
import pytest

from stylefa.preprocess.sdc import (PhaseEncoding, TopupConfig, compare_fields, distort, estimate_field,
                                    gre_field_hz, pe_jacobian, unwarp)
from stylefa.preprocess.sdc.topup import brain_mask

from .test_sdc_model import READOUT, _smooth_phantom


def _pepolar(shared_dir):
    subject = shared_dir / "data" / "pepolar" / "sub-siemens01"
    if not subject.is_dir():
        pytest.skip(f"{subject} is absent: the reversed-PE tests need ../shared/data/pepolar")
    return subject


def _mean_b0(subject, direction):
    stem = subject / "dwi" / f"sub-siemens01_dir-{direction}_dwi"
    image = nib.load(f"{stem}.nii.gz")
    bvals = np.loadtxt(f"{stem}.bval")
    sidecar = json.loads((stem.parent / f"{stem.name}.json").read_text())
    b0 = image.get_fdata(dtype=np.float32)[..., bvals <= 50].mean(axis=-1)
    return b0, image.affine, PhaseEncoding.from_bids(sidecar["PhaseEncodingDirection"], sidecar["TotalReadoutTime"])


def test_estimation_is_deterministic_and_reports_levels():
    image, field = _smooth_phantom()
    up, down = PhaseEncoding.from_bids("j", READOUT), PhaseEncoding.from_bids("j-", READOUT)
    config = TopupConfig(knot_mm=(12.0, 6.0), fwhm_mm=(4.0, 0.0), bending=(0.1, 0.1), iterations=(10, 10))
    levels = []
    pair = distort(image, field, up), distort(image, field, down)
    first = estimate_field(pair[0], up, pair[1], down, np.eye(4) * [2, 2, 2, 1], config=config,
                           progress=lambda level, n, info: levels.append((level, n, info["knot_mm"])))
    second = estimate_field(pair[0], up, pair[1], down, np.eye(4) * [2, 2, 2, 1], config=config)
    np.testing.assert_array_equal(first.field_hz, second.field_hz)
    assert levels == [(1, 2, 12.0), (2, 2, 6.0)]
    assert first.field_hz.dtype == np.float32 and first.field_hz.shape == image.shape
    assert first.agreement["corr_after"] > first.agreement["corr_before"]
    json.dumps(first.settings)  # goes into the sidecar
    # the data term restricted to a (dilated) mask: a different, still improving fit
    mask = image > 20
    masked = estimate_field(pair[0], up, pair[1], down, np.eye(4) * [2, 2, 2, 1], mask=mask,
                            config=TopupConfig(**{**vars(config), "use_mask": True}))
    assert not np.array_equal(masked.field_hz, first.field_hz)
    assert masked.agreement["corr_after"] > masked.agreement["corr_before"] + 0.2


def test_known_field_is_recovered(shared_dir):
    """A smooth field (-48..+89 Hz in the brain, displacements up to 4.3 voxels) imposed on the real
    PA b0 in both polarities with the forward model, plus independent 3 % Gaussian noise per polarity.
    Measured (default TopupConfig, 8 s CPU): field error median 0.51 Hz, 95th percentile 1.8 Hz,
    r 0.9990; image error after correction 3.5 % of the mean brain signal (14 % before; 3.8 % with
    the true field, which carries the same interpolation and noise)."""
    b0, affine, _ = _mean_b0(_pepolar(shared_dir), "PA")
    mask = brain_mask(b0)
    grid = np.indices(b0.shape) * 3.0
    centre = np.array([g[mask].mean() for g in grid])

    def blob(offset, width):
        return np.exp(-sum((g - c - o) ** 2 for g, c, o in zip(grid, centre, offset)) / (2 * width**2))

    field = 100 * blob((0, 45, -25), 22) - 60 * blob((-35, -10, -15), 25) + 40 * blob((30, 10, 20), 30) + 10
    up, down = PhaseEncoding.from_bids("j", READOUT), PhaseEncoding.from_bids("j-", READOUT)
    rng = np.random.default_rng(0)
    sigma = 0.03 * b0[mask].mean()
    a = distort(b0, field, up) + rng.normal(0, sigma, b0.shape)
    b = distort(b0, field, down) + rng.normal(0, sigma, b0.shape)
    estimate = estimate_field(a, up, b, down, affine)
    error = np.abs(estimate.field_hz - field)[mask]
    assert np.median(error) < 1.0 and np.percentile(error, 95) < 4.0
    assert np.corrcoef(estimate.field_hz[mask], field[mask])[0, 1] > 0.995

    def image_error(image):
        return np.abs(image - b0)[mask].mean() / b0[mask].mean()

    assert image_error(a) > 0.12
    assert image_error(unwarp(a, estimate.field_hz, up)) < 0.05
    assert image_error(unwarp(b, estimate.field_hz, down)) < 1.2 * image_error(unwarp(b, field, down))


def test_left_right_phase_encoding_with_different_readout_times(shared_dir):
    """PE along the first voxel axis (as left-right PE data is stored) and polarities with different
    readout times (47.6 / 35 ms): the real b0 with its first two axes swapped, a known field
    (-30..+80 Hz), three coarse levels (the field is smooth). Measured: median error 0.22 Hz,
    95th percentile 0.81 Hz, 4.7 s CPU."""
    b0, _, _ = _mean_b0(_pepolar(shared_dir), "PA")
    b0 = np.ascontiguousarray(b0.transpose(1, 0, 2))
    mask = brain_mask(b0)
    grid = np.indices(b0.shape) * 3.0
    c = np.array([g[mask].mean() for g in grid])
    field = (80 * np.exp(-((grid[0] - c[0] - 40) ** 2 + (grid[1] - c[1]) ** 2 + (grid[2] - c[2] + 20) ** 2) / 1250)
             - 30 * np.exp(-((grid[0] - c[0] + 30) ** 2 + (grid[1] - c[1] - 20) ** 2) / 1800))
    left, right = PhaseEncoding.from_bids("i-", 0.0476), PhaseEncoding.from_bids("i", 0.035)
    config = TopupConfig(knot_mm=(20.0, 10.0, 6.0), fwhm_mm=(8.0, 4.0, 0.0), bending=(0.1,) * 3, iterations=(20, 20, 30))
    estimate = estimate_field(distort(b0, field, left), left, distort(b0, field, right), right,
                              np.diag([3.0, 3.0, 3.0, 1.0]), config=config)
    error = np.abs(estimate.field_hz - field)[mask]
    assert np.median(error) < 0.6 and np.percentile(error, 95) < 2.5


@pytest.fixture(scope="module")
def real_pair(shared_dir):
    subject = _pepolar(shared_dir)
    b0_pa, affine, pe_pa = _mean_b0(subject, "PA")
    b0_ap, _, pe_ap = _mean_b0(subject, "AP")
    estimate = estimate_field(b0_pa, pe_pa, b0_ap, pe_ap, affine)
    corrected = [unwarp(b0, estimate.field_hz, pe) for b0, pe in ((b0_pa, pe_pa), (b0_ap, pe_ap))]
    return subject, estimate, brain_mask((corrected[0] + corrected[1]) / 2)


def test_real_pair_polarities_agree_after_correction(real_pair):
    """The PA (j) and AP (j-) b0s of the Siemens pair, inside the brain of the corrected mean.
    Measured (9 s CPU, 1 thread): r 0.604 -> 0.9906, normalised squared difference 0.171 -> 0.0033
    (52x lower). The issue asks for >= 5x and r near 0.99."""
    _, estimate, _ = real_pair
    agreement = estimate.agreement
    assert agreement["corr_before"] < 0.7
    assert agreement["corr_after"] > 0.985
    assert agreement["nsd_after"] * 20 < agreement["nsd_before"]
    for pe in estimate.pe:  # the positive-Jacobian guard held: no folding in either polarity
        assert pe_jacobian(estimate.field_hz, pe).min() > 0


def test_real_pair_field_matches_the_gre_field_map(real_pair):
    """The independently measured GRE field map (phase difference, TE 10 / 12.46 ms) resampled onto
    the EPI grid through world coordinates, inside both brain masks. Measured: r 0.945 raw
    (0.955 with the GRE smoothed by 6 mm FWHM), slope 0.86, median |difference| 2.8 Hz after removing
    each map's median (the issue asks r >= 0.85; the prototype reached 0.905)."""
    subject, estimate, mask = real_pair
    fmap = subject / "fmap"
    sidecar = json.loads((fmap / "sub-siemens01_phasediff.json").read_text())
    gre, gre_affine, gre_mask = gre_field_hz(fmap / "sub-siemens01_phasediff.nii.gz",
                                             fmap / "sub-siemens01_magnitude1.nii.gz",
                                             sidecar["EchoTime1"], sidecar["EchoTime2"])
    raw = compare_fields(estimate.field_hz, estimate.affine, gre, gre_affine, mask, gre_mask)
    smooth = compare_fields(estimate.field_hz, estimate.affine, gre, gre_affine, mask, gre_mask, smooth_b_fwhm_mm=6.0)
    assert raw["n_voxels"] > 30_000
    assert raw["r"] > 0.90 and smooth["r"] > raw["r"]
    assert 0.7 < raw["slope"] < 1.2  # same sign and scale: the conventions of both maps agree
    assert raw["median_abs_diff_hz_demeaned"] < 5.0
