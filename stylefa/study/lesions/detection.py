"""How well a difference map finds lesions: voxel-wise AUROC, average precision, Dice.

The score of each pixel is ``|projection - input|``; the label is the lesion mask; only
pixels inside the brain count (the background is trivially unchanged and would inflate
every score). Definitions match scikit-learn and scikit-image, which the tests use as
oracles:

- AUROC = the Mann-Whitney probability that a lesion pixel scores above a non-lesion pixel,
  ties counting one half (``sklearn.metrics.roc_auc_score``).
- Average precision = sum over distinct score thresholds of (recall step) x precision
  (``sklearn.metrics.average_precision_score``; no interpolation).
- Otsu's threshold on a 256-bin histogram of the scores (``skimage.filters.threshold_otsu``),
  Dice = 2 |P & L| / (|P| + |L|) for the pixels above the threshold.
- Best-possible Dice: the largest Dice over every threshold (predicted = score >= t, t running
  over the distinct scores), as the unsupervised anomaly-detection literature reports it
  (an upper bound: the threshold is chosen with the labels).
- Dice at a threshold chosen without labels: predicted = score > t, with t e.g. the 99th
  percentile of the scores of lesion-free slices (``healthy_threshold``).

:class:`RankedPixels` computes AUROC, average precision and best Dice with per-pixel weights
on one sorting of the scores, so that a cluster bootstrap (slices or patients drawn with
replacement = integer weights on their pixels) costs O(n) per resample; with unit weights it
equals the functions above and with integer weights scikit-learn's ``sample_weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _scores_labels(scores, labels, within):
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    if within is not None:
        within = np.asarray(within, dtype=bool)
        if within.shape != scores.shape:
            raise ValueError(f"mask {within.shape} and scores {scores.shape} differ in shape")
        return scores[within], labels[within]
    return scores.ravel(), labels.ravel()


def auroc(scores, labels, within=None) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    from scipy.stats import rankdata

    s, y = _scores_labels(scores, labels, within)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(s)  # average ranks give ties half credit
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(scores, labels, within=None) -> float:
    """Step-wise average precision (no interpolation); NaN without positives."""
    s, y = _scores_labels(scores, labels, within)
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # A threshold sits after the last of each run of tied scores.
    last_of_run = np.r_[s[1:] != s[:-1], True]
    true_pos = np.cumsum(y)[last_of_run]
    predicted = (np.arange(1, s.size + 1))[last_of_run]
    precision = true_pos / predicted
    recall = true_pos / n_pos
    recall_step = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_step * precision))


def otsu_threshold(values, nbins: int = 256) -> float:
    """Otsu's threshold of ``values``: the bin centre maximising between-class variance."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no values to threshold")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return lo
    counts, edges = np.histogram(v, bins=nbins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    counts = counts.astype(np.float64)
    # Class 0 = bins <= t, class 1 = bins > t, for every split t between two bins.
    w0 = np.cumsum(counts)[:-1]
    w1 = np.cumsum(counts[::-1])[::-1][1:]
    s0 = np.cumsum(counts * centres)[:-1]
    s1 = np.cumsum((counts * centres)[::-1])[::-1][1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        between = w0 * w1 * (s0 / w0 - s1 / w1) ** 2
    between = np.nan_to_num(between, nan=-1.0)
    return float(centres[int(np.argmax(between))])


def dice(predicted, truth) -> float:
    """Dice overlap of two boolean masks; NaN when both are empty."""
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {t.shape}")
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return math.nan
    return 2.0 * int(np.logical_and(p, t).sum()) / total


@dataclass(frozen=True)
class LesionDetection:
    auroc: float
    average_precision: float
    mean_diff_lesion: float
    mean_diff_outside: float
    threshold: float
    dice: float

    def to_dict(self) -> dict:
        return {
            "auroc": self.auroc,
            "ap": self.average_precision,
            "mean_diff_lesion": self.mean_diff_lesion,
            "mean_diff_outside": self.mean_diff_outside,
            "threshold": self.threshold,
            "dice": self.dice,
        }


def lesion_detection(
    difference: np.ndarray,
    lesion: np.ndarray,
    brain: np.ndarray,
    threshold: float | None = None,
) -> LesionDetection:
    """Score ``|difference|`` as a lesion detector inside ``brain``.

    ``threshold`` (FA units) defaults to Otsu's threshold of the in-brain absolute
    differences.
    """
    score = np.abs(np.asarray(difference, dtype=np.float64))
    lesion = np.asarray(lesion, dtype=bool)
    brain = np.asarray(brain, dtype=bool)
    if not (score.shape == lesion.shape == brain.shape):
        raise ValueError(f"shapes differ: difference {score.shape}, lesion {lesion.shape}, brain {brain.shape}")
    inside = lesion & brain
    outside = brain & ~lesion
    if threshold is None:
        threshold = otsu_threshold(score[brain]) if brain.any() else math.nan
    predicted = (score > threshold) & brain
    return LesionDetection(
        auroc=auroc(score, lesion, brain),
        average_precision=average_precision(score, lesion, brain),
        mean_diff_lesion=float(score[inside].mean()) if inside.any() else math.nan,
        mean_diff_outside=float(score[outside].mean()) if outside.any() else math.nan,
        threshold=float(threshold),
        dice=dice(predicted, inside),
    )


def best_dice(scores, labels, within=None) -> tuple[float, float]:
    """The largest Dice of ``score >= t`` with ``labels`` over all thresholds ``t``, and that ``t``.

    Returns ``(dice, threshold)``; ``(nan, nan)`` without lesion pixels. Ties between
    thresholds are resolved towards the highest threshold (fewest predicted pixels).
    """
    s, y = _scores_labels(scores, labels, within)
    return RankedPixels(s, y).best_dice()


def dice_at_threshold(scores, labels, threshold: float, within=None) -> float:
    """Dice of ``score > threshold`` with ``labels`` (pixels in ``within``)."""
    s, y = _scores_labels(scores, labels, within)
    return dice(s > threshold, y)


def healthy_threshold(healthy_scores, percentile: float = 99.0) -> float:
    """A detection threshold chosen on lesion-free data only: the ``percentile`` of their scores.

    ``numpy.percentile`` with linear interpolation; NaN when there are no finite scores.
    """
    v = np.asarray(healthy_scores, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan
    return float(np.percentile(v, percentile))


class RankedPixels:
    """Scores and labels sorted once (descending), for weighted AUROC, AP and Dice.

    ``scores``, ``labels`` 1-D of one length; ``groups`` (optional, int array of that length)
    names each pixel's cluster (slice or patient) for :meth:`group_weights`. Every method
    takes ``weights`` (float, per pixel in the original order; ``None`` = 1) and returns
    NaN where the weighted positives (or negatives, for AUROC) are zero.
    """

    def __init__(self, scores, labels, groups=None):
        scores = np.asarray(scores, dtype=np.float64).ravel()
        labels = np.asarray(labels, dtype=bool).ravel()
        if scores.shape != labels.shape:
            raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
        self.order = np.argsort(-scores, kind="stable")
        self.scores = scores[self.order]
        self.labels = labels[self.order]
        # Index of the last pixel of each run of tied scores: thresholds sit there.
        self.run_ends = np.flatnonzero(np.r_[self.scores[1:] != self.scores[:-1], True]) if scores.size else \
            np.zeros(0, int)
        self.groups = None if groups is None else np.asarray(groups).ravel()[self.order]

    def group_weights(self, counts) -> np.ndarray:
        """Per-pixel weights (original order) from a weight per group id (``counts[group]``)."""
        if self.groups is None:
            raise ValueError("no groups were given")
        weights = np.empty(self.scores.size)
        weights[self.order] = np.asarray(counts, dtype=np.float64)[self.groups]
        return weights

    def _sorted_weights(self, weights):
        if weights is None:
            return np.ones(self.scores.size)
        weights = np.asarray(weights, dtype=np.float64).ravel()
        if weights.shape != self.scores.shape:
            raise ValueError(f"{weights.size} weights for {self.scores.size} pixels")
        return weights[self.order]

    def curve(self, weights=None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted cumulative sums over the descending scores: (true positives, predicted)."""
        w = self._sorted_weights(weights)
        return np.cumsum(w * self.labels), np.cumsum(w)

    def auroc(self, weights=None, curve=None) -> float:
        tp, predicted = curve if curve is not None else self.curve(weights)
        tp, predicted = tp[self.run_ends], predicted[self.run_ends]
        fp = predicted - tp
        if tp.size == 0 or tp[-1] <= 0 or fp[-1] <= 0:
            return math.nan
        # Trapezoids between consecutive thresholds = Mann-Whitney with ties counting one half.
        tpr = np.r_[0.0, tp / tp[-1]]
        fpr = np.r_[0.0, fp / fp[-1]]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))

    def average_precision(self, weights=None, curve=None) -> float:
        tp, predicted = curve if curve is not None else self.curve(weights)
        tp, predicted = tp[self.run_ends], predicted[self.run_ends]
        if tp.size == 0 or tp[-1] <= 0:
            return math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall_step = np.diff(np.r_[0.0, tp / tp[-1]])
        return float(np.sum(recall_step * precision))

    def best_dice(self, weights=None, curve=None) -> tuple[float, float]:
        tp, predicted = curve if curve is not None else self.curve(weights)
        tp, predicted = tp[self.run_ends], predicted[self.run_ends]
        if tp.size == 0 or tp[-1] <= 0:
            return math.nan, math.nan
        dices = 2.0 * tp / (predicted + tp[-1])
        k = int(np.argmax(dices))  # first maximum = highest threshold
        return float(dices[k]), float(self.scores[self.run_ends[k]])

    def dice_above(self, threshold: float, weights=None, curve=None) -> float:
        tp, predicted = curve if curve is not None else self.curve(weights)
        if tp.size == 0 or not math.isfinite(threshold):
            return math.nan
        # Pixels scoring above the threshold are a prefix of the descending order.
        k = int(np.searchsorted(-self.scores, -threshold, side="left"))
        tp_above = tp[k - 1] if k else 0.0
        above = predicted[k - 1] if k else 0.0
        total = above + tp[-1]
        return 2.0 * float(tp_above) / float(total) if total > 0 else math.nan

    def metrics(self, weights=None, threshold: float = math.nan) -> dict:
        """AUROC, AP, best Dice (and its threshold) and Dice above ``threshold`` from one pass."""
        curve = self.curve(weights)
        best, best_t = self.best_dice(curve=curve)
        return {"auroc": self.auroc(curve=curve), "ap": self.average_precision(curve=curve), "best_dice": best,
                "best_dice_threshold": best_t, "dice_healthy": self.dice_above(threshold, curve=curve)}

    def bootstrap(self, n_clusters: int, n_boot: int, seed: int, threshold: float = math.nan,
                  chunk_pixels: int = 4_000_000) -> dict[str, np.ndarray]:
        """Cluster bootstrap: ``n_boot`` draws of the ``n_clusters`` groups with replacement.

        Returns each metric of :meth:`metrics` (but the threshold) for every draw (arrays
        [n_boot], NaN where a draw has no lesion pixel), equal to :meth:`metrics` with
        :meth:`group_weights` of the draw's counts, vectorised over draws.
        """
        if self.groups is None:
            raise ValueError("no groups were given")
        rng = np.random.default_rng(seed)
        counts = np.zeros((n_boot, n_clusters))
        np.add.at(counts, (np.repeat(np.arange(n_boot), n_clusters), rng.integers(0, n_clusters, n_boot * n_clusters)),
                  1.0)
        out = {k: np.empty(n_boot) for k in ("auroc", "ap", "best_dice", "dice_healthy")}
        step = max(1, chunk_pixels // max(1, self.scores.size))
        above = int(np.searchsorted(-self.scores, -threshold, side="left")) if math.isfinite(threshold) else -1
        for start in range(0, n_boot, step):
            w = counts[start : start + step][:, self.groups]
            tp_all = np.cumsum(w * self.labels, axis=1)
            predicted_all = np.cumsum(w, axis=1)
            tp, predicted = tp_all[:, self.run_ends], predicted_all[:, self.run_ends]
            positives = tp[:, -1:]
            negatives = predicted[:, -1:] - positives
            with np.errstate(invalid="ignore", divide="ignore"):
                tpr = np.concatenate([np.zeros_like(positives), tp / positives], axis=1)
                fpr = np.concatenate([np.zeros_like(positives), (predicted - tp) / negatives], axis=1)
                auroc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
                precision = np.where(predicted > 0, tp / predicted, 0.0)
                ap = np.sum(np.diff(tpr, axis=1) * precision, axis=1)
                best = np.max(2.0 * tp / (predicted + positives), axis=1)
                if above < 0:
                    healthy = np.full(len(w), math.nan)
                elif above == 0:
                    healthy = np.where(positives[:, 0] > 0, 0.0, math.nan)
                else:
                    total = predicted_all[:, above - 1] + positives[:, 0]
                    healthy = np.where(total > 0, 2.0 * tp_all[:, above - 1] / total, math.nan)
            no_pos = positives[:, 0] <= 0
            auroc[no_pos | (negatives[:, 0] <= 0)] = math.nan
            ap[no_pos] = math.nan
            best[no_pos] = math.nan
            chunk = slice(start, start + len(w))
            out["auroc"][chunk], out["ap"][chunk], out["best_dice"][chunk], out["dice_healthy"][chunk] = (
                auroc, ap, best, healthy)
        return out
