"""Healing index on constructed arrays; the normative model against numpy; the template score."""

import math

import numpy as np
import pytest

from stylefa.errors import InputError
from stylefa.study.lesions.baselines import NormativeModel, TemplateFA
from stylefa.study.lesions.healing import control_healing_index, healing_index


def _lesion_case():
    original = np.full((6, 6), 0.5)
    lesion = np.zeros((6, 6), bool)
    lesion[2:4, 2:5] = True  # 6 pixels
    lesioned = original.copy()
    lesioned[lesion] = [0.2, 0.3, 0.3, 0.4, 0.25, 0.35]
    return original, lesioned, lesion


def test_healing_index_known_answers():
    original, lesioned, lesion = _lesion_case()
    assert healing_index(original, lesioned, original, lesion) == pytest.approx(1.0)  # healed
    assert healing_index(lesioned, lesioned, original, lesion) == pytest.approx(0.0)  # reproduced
    half = lesioned + 0.5 * (original - lesioned)
    assert healing_index(half, lesioned, original, lesion) == pytest.approx(0.5)
    deeper = lesioned - (original - lesioned)
    assert healing_index(deeper, lesioned, original, lesion) == pytest.approx(-1.0)
    # Outside the lesion nothing counts.
    noisy = original.copy()
    noisy[~lesion] = 0.9
    assert healing_index(noisy, lesioned, original, lesion) == pytest.approx(1.0)
    # Depth-weighted mean of per-pixel ratios: sum(P - L) / sum(O - L), computed by hand.
    rng = np.random.default_rng(0)
    p = lesioned + rng.uniform(0, 0.3, lesioned.shape)
    d = original[lesion] - lesioned[lesion]
    ratios = (p[lesion] - lesioned[lesion]) / d
    assert healing_index(p, lesioned, original, lesion) == pytest.approx(np.sum(ratios * d) / np.sum(d))
    assert math.isnan(healing_index(p, lesioned, original, np.zeros_like(lesion)))
    assert math.isnan(healing_index(p, original, original, lesion))  # no FA drop: undefined
    with pytest.raises(ValueError):
        healing_index(p, lesioned, original, lesion[:5])


def test_control_healing_index_known_answers():
    original, lesioned, lesion = _lesion_case()
    control = original + 0.05  # the projector's ordinary error on the healthy slice
    assert control_healing_index(control, control, original, lesioned, lesion) == pytest.approx(1.0)
    carried = control - (original - lesioned)
    assert control_healing_index(carried, control, original, lesioned, lesion) == pytest.approx(0.0)
    # The uncorrected index mistakes the projector's +0.05 bias for extra healing.
    assert healing_index(control, lesioned, original, lesion) > 1.0


def _training_set(seed=0):
    rng = np.random.default_rng(seed)
    fa = rng.uniform(0.1, 0.8, (5, 2, 4, 4))
    brain = rng.random((5, 2, 4, 4)) > 0.25
    return fa, brain


def test_normative_z_against_numpy():
    fa, brain = _training_set()
    model = NormativeModel.fit(fa, brain, (10.0, 20.0), std_floor=0.05)
    x = np.random.default_rng(1).uniform(0, 1, (4, 4))
    for k, z_mm in enumerate((10.0, 20.0)):
        for i in range(4):
            for j in range(4):
                values = fa[brain[:, k, i, j], k, i, j]
                if values.size < 2:
                    assert math.isnan(model.z_score(x, z_mm)[i, j]) and model.score(x, z_mm)[i, j] == 0.0
                    continue
                sd = max(np.std(values, ddof=1), 0.05)
                expected = (x[i, j] - np.mean(values)) / sd
                assert model.z_score(x, z_mm)[i, j] == pytest.approx(expected, rel=1e-12)
                assert model.score(x, z_mm)[i, j] == pytest.approx(abs(expected), rel=1e-12)
                assert model.count[k, i, j] == values.size
    # The floor binds where the training subjects agree.
    flat = np.full((3, 1, 2, 2), 0.4)
    flat[:, 0, 0, 0] = [0.4, 0.5, 0.6]
    model = NormativeModel.fit(flat, np.ones_like(flat, bool), (0.0,), std_floor=0.02)
    z = model.z_score(np.full((2, 2), 0.44), 0.0)
    assert z[0, 1] == pytest.approx(0.04 / 0.02)
    assert z[0, 0] == pytest.approx((0.44 - 0.5) / np.std([0.4, 0.5, 0.6], ddof=1))
    with pytest.raises(InputError, match="no slice level"):
        model.z_score(np.zeros((2, 2)), 5.0)
    with pytest.raises(InputError, match="at least 2"):
        NormativeModel.fit(flat[:1], np.ones_like(flat[:1], bool), (0.0,))


def test_template_score_samples_the_template_on_the_plane():
    from stylefa.data.slices import SliceGrid

    data = np.random.default_rng(2).random((20, 20, 10)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    template = TemplateFA(data, affine, "template")
    # Pixels on voxel centres (2 mm, x = 2 c, y decreasing down the rows), level z = 8 mm (k = 4).
    plane = SliceGrid(levels_mm=(8.0,), resolution=20, fov_mm=40.0, center_mm=(19.0, 19.0))
    expected = data[:, ::-1, 4].T
    np.testing.assert_allclose(template.on(plane), expected, atol=1e-6)
    fa = np.full((20, 20), 0.3)
    np.testing.assert_allclose(template.score(fa, plane), np.abs(0.3 - expected), atol=1e-6)
    with pytest.raises(InputError, match="outside the FA template"):
        template.on(SliceGrid(levels_mm=(80.0,), resolution=20, fov_mm=40.0, center_mm=(19.0, 19.0)))
