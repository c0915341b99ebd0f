"""Conditions: reproducible with a seed and with the documented statistics."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.restoration import inpaint_biharmonic

from stylefa.errors import InputError
from stylefa.study import conditions as C


def _fa(shape=(128, 128)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    brain = ((yy - shape[0] / 2) / (0.4 * shape[0])) ** 2 + ((xx - shape[1] / 2) / (0.35 * shape[1])) ** 2 < 1
    fa = (0.5 + 0.2 * np.sin(xx / 6.0)) * brain
    return fa.astype(np.float32)


def _apply(spec, fa, seed=0, key="s0"):
    cond = C.parse_condition(spec)
    return cond.apply(fa, cond.rng(seed, key))


def test_parse_default_list_and_canonical_names():
    names = [c.name for c in C.parse_conditions(C.DEFAULT_CONDITIONS)]
    assert names == C.DEFAULT_CONDITIONS.split(",")
    assert [c.name for c in C.parse_conditions("noise:0.050, noise:0.05,blur:1.0")] == ["noise:0.05", "blur:1"]


@pytest.mark.parametrize(
    "spec", ["jpeg:10", "noise", "noise:abc", "noise:-1", "saltpepper:2", "inpaint:rect:telea", "inpaint:circle:zero", ""]
)
def test_bad_specs_raise_input_error(spec):
    with pytest.raises(InputError):
        C.parse_conditions(spec)


@pytest.mark.parametrize("spec", ["noise:0.1", "saltpepper:0.05", "inpaint:rect:zero", "blur:2"])
def test_reproducible_with_seed(spec):
    fa = _fa()
    a, b = _apply(spec, fa, seed=3), _apply(spec, fa, seed=3)
    np.testing.assert_array_equal(a.image, b.image)
    if spec.startswith(("noise", "saltpepper", "inpaint")):
        assert not np.array_equal(a.image, _apply(spec, fa, seed=4).image)
        assert not np.array_equal(a.image, _apply(spec, fa, seed=3, key="s1").image)


def test_unmodified_is_identity():
    fa = _fa()
    out = _apply("none", fa)
    np.testing.assert_array_equal(out.image, fa)
    assert out.known is None


def test_noise_std_and_clipping():
    fa = np.full((256, 256), 0.5, np.float32)
    out = _apply("noise:0.05", fa).image
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    resid = out.astype(np.float64) - 0.5
    assert abs(resid.std() - 0.05) < 0.05 * 0.02  # 65k samples: std error ~0.3%
    assert abs(resid.mean()) < 0.001
    clipped = _apply("noise:0.3", np.zeros((64, 64), np.float32)).image
    assert clipped.min() == 0.0 and (clipped == 0).mean() == pytest.approx(0.5, abs=0.03)


def test_salt_and_pepper_density():
    fa = np.full((256, 256), 0.5, np.float32)
    out = _apply("saltpepper:0.05", fa).image
    changed = out != 0.5
    assert changed.mean() == pytest.approx(0.05, abs=0.004)
    assert set(np.unique(out[changed])) == {0.0, 1.0}
    assert (out == 1).sum() / changed.sum() == pytest.approx(0.5, abs=0.03)


def test_blur_matches_scipy():
    fa = _fa()
    np.testing.assert_allclose(_apply("blur:2", fa).image, gaussian_filter(fa.astype(np.float64), 2), atol=1e-6)


def test_inpaint_rect_zero_biharmonic_masked():
    fa = _fa()
    zero = _apply("inpaint:rect:zero", fa, seed=1)
    bih = _apply("inpaint:rect:biharmonic", fa, seed=1)
    masked = _apply("inpaint:rect:masked", fa, seed=1)
    removed = zero.removed
    side = round(0.25 * 128)
    assert removed.sum() == side * side
    rows, cols = np.nonzero(removed)
    assert np.ptp(rows) + 1 == side and np.ptp(cols) + 1 == side
    # Same rectangle for the three methods with one seed: they differ only in the fill.
    np.testing.assert_array_equal(removed, bih.removed)
    np.testing.assert_array_equal(removed, masked.removed)
    assert np.all(zero.image[removed] == 0)
    np.testing.assert_array_equal(zero.image[~removed], fa[~removed])
    assert zero.known is None and bih.known is None
    np.testing.assert_array_equal(masked.known, ~removed)
    expected = inpaint_biharmonic(np.where(removed, 0, fa).astype(np.float64), removed)
    np.testing.assert_allclose(bih.image, np.clip(expected, 0, 1), atol=1e-6)
    # The rectangle is centred on brain tissue.
    assert fa[removed].mean() > 0


def test_inpaint_with_given_mask():
    fa = _fa((32, 32))
    region = np.zeros(fa.shape, bool)
    region[10:14, 3:20] = True
    out = C.inpaint(fa, region, "masked")
    np.testing.assert_array_equal(out.known, ~region)
    assert np.all(out.image[region] == 0)
