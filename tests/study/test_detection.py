"""Lesion-detection scores against scikit-learn and scikit-image."""

import math

import numpy as np
import pytest
from skimage.filters import threshold_otsu
from sklearn.metrics import average_precision_score, roc_auc_score

from stylefa.study.lesions import detection


def _scores(seed, n=2000, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.1
    s = rng.normal(0, 1, n) + 1.2 * y
    if ties:
        s = np.round(s, 1)  # many tied scores
    return s, y


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_auroc_and_ap_match_sklearn(seed, ties):
    s, y = _scores(seed, ties=ties)
    assert detection.auroc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert detection.average_precision(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_within_mask_restricts_pixels():
    s, y = _scores(3)
    within = np.arange(s.size) % 3 != 0
    assert detection.auroc(s, y, within) == pytest.approx(roc_auc_score(y[within], s[within]))
    assert detection.average_precision(s, y, within) == pytest.approx(
        average_precision_score(y[within], s[within])
    )


def test_degenerate_cases():
    assert math.isnan(detection.auroc([0.1, 0.2], [False, False]))
    assert math.isnan(detection.average_precision([0.1, 0.2], [False, False]))
    assert detection.auroc([0.0, 1.0], [False, True]) == 1.0
    assert detection.auroc([1.0, 0.0], [False, True]) == 0.0
    assert math.isnan(detection.dice(np.zeros(3, bool), np.zeros(3, bool)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otsu_matches_skimage(seed):
    rng = np.random.default_rng(seed)
    values = np.r_[rng.normal(0.05, 0.02, 3000), rng.normal(0.3, 0.05, 300 * (seed + 1))]
    assert detection.otsu_threshold(values) == pytest.approx(threshold_otsu(values), abs=1e-12)
    image = rng.random((30, 30)) ** 3
    assert detection.otsu_threshold(image) == pytest.approx(threshold_otsu(image), abs=1e-12)


def test_dice_closed_form():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:4] = True  # 40
    b[2:6] = True  # 40, overlap 20
    assert detection.dice(a, b) == pytest.approx(0.5)
    assert detection.dice(a, a) == 1.0


def test_lesion_detection_separates_a_bright_lesion():
    rng = np.random.default_rng(7)
    brain = np.zeros((40, 40), bool)
    brain[5:35, 5:35] = True
    lesion = np.zeros_like(brain)
    lesion[15:20, 15:22] = True
    diff = rng.normal(0, 0.01, brain.shape)
    diff[lesion] += 0.2
    result = detection.lesion_detection(diff, lesion, brain)
    score = np.abs(diff)
    assert result.auroc == pytest.approx(roc_auc_score(lesion[brain], score[brain]))
    assert result.average_precision == pytest.approx(average_precision_score(lesion[brain], score[brain]))
    assert result.threshold == pytest.approx(threshold_otsu(score[brain]))
    assert result.dice == pytest.approx(
        detection.dice((score > threshold_otsu(score[brain])) & brain, lesion)
    )
    assert result.auroc > 0.99 and result.dice > 0.9
    assert result.mean_diff_lesion > 10 * result.mean_diff_outside


def _brute_best_dice(s, y):
    best, best_t = -1.0, math.nan
    for t in np.unique(s):  # ascending: a tie keeps the higher threshold
        d = detection.dice(s >= t, y)
        if d >= best:
            best, best_t = d, t
    return best, best_t


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (4, True)])
def test_best_dice_matches_brute_force(seed, ties):
    s, y = _scores(seed, n=400, ties=ties)
    dice, threshold = detection.best_dice(s, y)
    expected, expected_t = _brute_best_dice(s, y)
    assert dice == pytest.approx(expected, abs=1e-12)
    assert detection.dice(s >= threshold, y) == pytest.approx(expected, abs=1e-12)
    if not ties:
        assert threshold == expected_t
    assert all(detection.dice(s >= t, y) <= dice + 1e-12 for t in np.unique(s))
    assert all(math.isnan(v) for v in detection.best_dice(s, np.zeros_like(y)))


def test_healthy_threshold_dice_against_brute_force():
    rng = np.random.default_rng(5)
    healthy = rng.normal(0, 1, 5000)
    threshold = detection.healthy_threshold(healthy, 99)
    assert threshold == pytest.approx(np.sort(healthy)[int(round(0.99 * 4999))], abs=0.05)
    assert np.mean(healthy > threshold) == pytest.approx(0.01, abs=1e-3)
    s, y = _scores(6)
    predicted = np.array([v > threshold for v in s])
    tp = sum(p and t for p, t in zip(predicted, y))
    expected = 2 * tp / (predicted.sum() + y.sum())
    assert detection.dice_at_threshold(s, y, threshold) == pytest.approx(expected)
    assert math.isnan(detection.healthy_threshold([math.nan]))


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True)])
def test_weighted_ranked_pixels_match_sklearn_sample_weight(seed, ties):
    s, y = _scores(seed, n=600, ties=ties)
    rng = np.random.default_rng(seed + 10)
    groups = rng.integers(0, 7, s.size)
    ranked = detection.RankedPixels(s, y, groups)
    assert ranked.auroc() == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert ranked.average_precision() == pytest.approx(average_precision_score(y, s), abs=1e-12)
    counts = rng.integers(0, 3, 7)  # a bootstrap draw of the 7 groups
    w = ranked.group_weights(counts)
    np.testing.assert_array_equal(w, counts[groups])
    assert ranked.auroc(w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert ranked.average_precision(w) == pytest.approx(average_precision_score(y, s, sample_weight=w), abs=1e-12)
    # Integer weights = pixels repeated: the unweighted functions on the repeated pixels are the oracle.
    rep = np.repeat(np.arange(s.size), w.astype(int))
    assert ranked.best_dice(w)[0] == pytest.approx(_brute_best_dice(s[rep], y[rep])[0], abs=1e-12)
    assert ranked.dice_above(0.5, w) == pytest.approx(detection.dice(s[rep] > 0.5, y[rep]), abs=1e-12)
    t = float(s[10])  # a threshold equal to a score: that pixel is not above it
    assert ranked.dice_above(t, w) == pytest.approx(detection.dice(s[rep] > t, y[rep]), abs=1e-12)
    m = ranked.metrics(w, threshold=0.5)
    assert (m["auroc"], m["ap"], m["best_dice"], m["dice_healthy"]) == pytest.approx(
        (ranked.auroc(w), ranked.average_precision(w), ranked.best_dice(w)[0], ranked.dice_above(0.5, w)))


@pytest.mark.parametrize("threshold", [0.5, math.nan, 10.0, -10.0])
def test_vectorised_bootstrap_equals_weighted_metrics(threshold):
    s, y = _scores(3, n=500, ties=True)
    groups = np.random.default_rng(0).integers(0, 5, s.size)
    y[groups == 4] = False  # a group without lesion pixels: some draws have none
    ranked = detection.RankedPixels(s, y, groups)
    draws = ranked.bootstrap(5, 40, seed=3, threshold=threshold, chunk_pixels=1500)  # several chunks
    rng = np.random.default_rng(3)
    picks = rng.integers(0, 5, 40 * 5).reshape(40, 5)
    for b in range(40):
        expected = ranked.metrics(ranked.group_weights(np.bincount(picks[b], minlength=5)), threshold)
        for key in ("auroc", "ap", "best_dice", "dice_healthy"):
            assert draws[key][b] == pytest.approx(expected[key], abs=1e-12, nan_ok=True), (b, key)
