"""Is this an FA map? The one rule every command applies where an FA map enters.

An FA map holds FA in [0, 1] (a tensor fit's artefacts reach sqrt(3/2) ~= 1.22) with white
matter at 0.4-0.9, so the 99th percentile of its non-zero voxels lies near 0.7. The maps it is
mistaken for differ by orders of magnitude or by sign, which the statistics of the non-zero
voxels show at once:

- a diffusivity in mm^2/s (MD, AD, RD, the eigenvalues L1-L3 of FSL's dtifit, dipy, MRtrix3 and
  ``stylefa fa --md``): brain 0.0003-0.003, CSF up to ~0.004, 99th percentile below 0.006;
- the same in m^2/s (1e-9 times smaller) or in um^2/ms (1000 times larger: 0.3-4);
- the tensor mode MO, in [-1, 1] with a third or more of the brain negative;
- FA stored as a percentage (0-100), as FA x 1000 or x 10000 (integer files), or 8-bit (0-255);
- a binary mask (one non-zero value).

The thresholds are measured (``benchmarks/fa_value_maps.py``, table in docs/inputs.md): the
lowest 99th percentile of the 12 real FA maps is 0.714 and the highest of the 55 diffusivity
maps 0.0042; ``DIFFUSIVITY_P99_MAX`` = 0.1 sits between them with a factor 7 to spare on the FA
side and 24 on the diffusivity side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FA_FORMULA_MAX = math.sqrt(1.5)
# 99th percentile of the non-zero voxels: real FA maps 0.714-1.08, diffusivities (mm^2/s) <= 0.0042.
DIFFUSIVITY_P99_MAX = 0.1
# Below this a diffusivity is in m^2/s, not mm^2/s (mm^2/s maps measured: 99th percentile >= 0.0015).
SI_DIFFUSIVITY_P99_MAX = 1e-5
# The tensor mode: measured 31-35% of the brain negative; FA maps (even interpolated) 0%.
MODE_NEGATIVE_FRACTION_MIN = 0.05
# A scaled FA (x100, x1000, ...) divided back has its 99th percentile inside the FA range
# (measured 0.714-1.08: the niivue subject's fit artefacts reach above 1).
FA_P99_RANGE = (0.3, FA_FORMULA_MAX)
SCALED_FA = ((100.0, "FA in percent (0-100)"), (255.0, "FA stored as 8-bit integers (0-255)"),
             (1000.0, "FA x 1000"), (10000.0, "FA x 10000"))
# A diffusivity in um^2/ms (= 1e-3 mm^2/s): measured median 0.66-1.38, 99th percentile 1.8-3.6 (CSF).
MICRO_DIFFUSIVITY_P50 = (0.2, 1.6)
MICRO_DIFFUSIVITY_P99 = (1.3, 6.0)


@dataclass(frozen=True)
class ValueSummary:
    """Statistics of the finite non-zero voxels of a map (the brain of a masked map)."""

    count: int
    minimum: float
    p1: float
    p50: float
    p99: float
    maximum: float
    negative_fraction: float

    def to_dict(self) -> dict:
        return {"count": self.count, "min": self.minimum, "p1": self.p1, "p50": self.p50, "p99": self.p99,
                "max": self.maximum, "negative_fraction": self.negative_fraction}


def value_summary(data: np.ndarray) -> ValueSummary:
    """Summary of ``data``'s finite non-zero voxels (any shape, any real dtype)."""
    values = np.asarray(data, dtype=np.float32).ravel()
    values = values[np.isfinite(values) & (values != 0)]
    if values.size == 0:
        return ValueSummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p1, p50, p99 = (float(v) for v in np.percentile(values, [1, 50, 99]))
    return ValueSummary(int(values.size), float(values.min()), p1, p50, p99, float(values.max()),
                        float(np.count_nonzero(values < 0)) / values.size)


def _looks_like(s: ValueSummary) -> tuple[str, str] | None:
    """(what the values look like, what to do) or None when they may be FA."""
    if s.count == 0:
        return None
    if s.negative_fraction >= MODE_NEGATIVE_FRACTION_MIN:
        if s.p1 >= -1.0 - 1e-3 and s.p99 <= 1.0 + 1e-3:  # a few fit outliers reach beyond +-1
            return "the tensor mode (MO, -1 to 1)", "FA is never negative; give the FA map"
        return "a signed map (FA is never negative)", "give the FA map"
    if s.p99 < DIFFUSIVITY_P99_MAX:  # not the maximum: a fit's outliers reach 4.5 (measured)
        unit = "m^2/s" if s.p99 < SI_DIFFUSIVITY_P99_MAX else "mm^2/s"
        return (f"a diffusivity in {unit} (MD, AD, RD or a tensor eigenvalue)",
                "an FA map's white matter reaches 0.4-0.9; give the FA map")
    if s.minimum == s.maximum and (s.maximum == 1.0 or s.maximum > FA_FORMULA_MAX):
        return f"a mask (every non-zero voxel is {s.maximum:g})", "give the FA map"
    if s.maximum <= FA_FORMULA_MAX:
        return None
    for scale, name in SCALED_FA:
        if s.maximum <= scale * FA_FORMULA_MAX and FA_P99_RANGE[0] <= s.p99 / scale <= FA_P99_RANGE[1]:
            return name, f"divide by {scale:g} (e.g. fslmaths IN -div {scale:g} OUT)"
    if (MICRO_DIFFUSIVITY_P50[0] <= s.p50 <= MICRO_DIFFUSIVITY_P50[1]
            and MICRO_DIFFUSIVITY_P99[0] <= s.p99 <= MICRO_DIFFUSIVITY_P99[1]):
        return ("a diffusivity in um^2/ms (MD, AD, RD or a tensor eigenvalue, x1000 mm^2/s)",
                "an FA map's white matter reaches 0.4-0.9; give the FA map")
    return None


def not_fa_problem(data: np.ndarray) -> str | None:
    """One line saying what ``data`` looks like when it is not an FA map, else None.

    ``data``: the map's voxels (any shape); zeros (background) are ignored. Only the gross
    confusions listed in the module docstring are named; values just outside [0, 1] (fit and
    interpolation artefacts) are left to ``stylefa.data.nifti.sanitize_fa``'s clipping policy.
    """
    s = value_summary(data)
    verdict = _looks_like(s)
    if verdict is None:
        return None
    what, advice = verdict
    return (f"values {s.minimum:.3g} to {s.maximum:.3g} (median {s.p50:.3g}, 99th percentile {s.p99:.3g} of the "
            f"{s.count} non-zero voxels) look like {what}, not an FA map; {advice}")


__all__ = ["ValueSummary", "value_summary", "not_fa_problem", "DIFFUSIVITY_P99_MAX"]
