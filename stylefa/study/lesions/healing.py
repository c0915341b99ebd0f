"""How much of a lesion a projection "heals": the healing index.

For a lesion slice with unlesioned original ``O``, lesioned input ``L`` (what was projected)
and its projection ``P``, over the lesion pixels ``M``::

    HI = sum_M (P - L) / sum_M (O - L)

1 = the projection restored the original FA inside the lesion (fully healed), 0 = it
reproduced the lesioned FA, < 0 = it deepened the lesion, > 1 = it overshot. It is the mean
over lesion pixels of the per-pixel ratio (P - L) / (O - L), weighted by the lesion's depth
O - L: an unweighted mean would divide by ~0 at the soft lesion border and be dominated by it.

**Control-corrected index.** The projection of the same slice without the lesion (the
control ``C``, projected with the same seed) separates the lesion's effect from the ordinary
projection error: HI_control = 1 - sum_M (C - P) / sum_M (O - L). It is 1 when the lesioned
and the unlesioned slice project to the same image inside the lesion, 0 when the projection
carries the whole FA drop of the lesion on top of the control.

**Real lesions (no original).** For an input whose lesions are real, O is unknown; the
normative estimate replaces it: the voxel-wise mean FA of the normative model at that slice
level (``stylefa.study.lesions.baselines.NormativeModel``), HI_normative = sum_M (P - L) / sum_M (mu - L).
For simulated lesions the study reports it too, so its bias against the true HI is visible.

All indices are NaN when the denominator is not positive (no lesion pixel, or a "lesion"
that does not lower FA against the reference).
"""

from __future__ import annotations

import math

import numpy as np


def _arrays(lesion, *images):
    lesion = np.asarray(lesion, dtype=bool)
    out = [np.asarray(im, dtype=np.float64) for im in images]
    for im in out:
        if im.shape != lesion.shape:
            raise ValueError(f"image {im.shape} and lesion mask {lesion.shape} differ in shape")
    return lesion, out


def healing_index(projection, lesioned, reference, lesion) -> float:
    """``sum_M (P - L) / sum_M (R - L)`` over lesion pixels ``M``; ``R`` = original FA or normative mean.

    Arrays of one shape (FA units); ``lesion`` bool. NaN when ``sum_M (R - L) <= 0``.
    """
    lesion, (p, low, ref) = _arrays(lesion, projection, lesioned, reference)
    depth = float(np.sum(ref[lesion] - low[lesion]))
    if not lesion.any() or not depth > 0:
        return math.nan
    return float(np.sum(p[lesion] - low[lesion])) / depth


def control_healing_index(projection, control, original, lesioned, lesion) -> float:
    """``1 - sum_M (C - P) / sum_M (O - L)``: 1 = lesion invisible in the projection, 0 = fully carried."""
    lesion, (p, c, o, low) = _arrays(lesion, projection, control, original, lesioned)
    depth = float(np.sum(o[lesion] - low[lesion]))
    if not lesion.any() or not depth > 0:
        return math.nan
    return 1.0 - float(np.sum(c[lesion] - p[lesion])) / depth
