"""Reading and validating an FSL-style gradient table before a diffusion-tensor fit.

Everything a tensor fit needs is checked here, each failure one ``InputError`` naming the
file (``bval`` or ``bvec``):

- counts: one b-value and one b-vector per volume of the DWI's 4th dimension;
- numbers: no NaN/Inf (NaN directions are accepted on b=0 volumes, as some tools write
  them), no negative b-values;
- b=0 detection: ``b <= b0_threshold`` (s/mm^2, default 50) is non-weighted; at least one
  b=0 volume is required (the fit's S0);
- b-vector norms: every diffusion-weighted direction must have unit length within
  ``norm_tolerance`` (default 0.05; such vectors are renormalised). Longer or shorter
  vectors are an error unless ``bvec_norm_encodes_b`` is set, the MRtrix3 convention
  (``dwigradcheck``/``mrconvert -bvalue_scaling``, used by dcm2niix for some multi-shell
  data): the direction is ``g/|g|`` and the b-value is scaled to ``b' = b |g|^2``;
- directions: the 6-column B-matrix ``[gx^2, gy^2, gz^2, 2gxgy, 2gxgz, 2gygz]`` of the
  weighted volumes must have rank 6 (a symmetric tensor has 6 unknowns). The number of
  volumes is not enough: a 3-direction "trace" protocol stored twice has 6 volumes and
  rank 3, and dipy's least squares then returns a minimum-norm, meaningless tensor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stylefa.errors import InputError

TENSOR_UNKNOWNS = 6  # a symmetric 3x3 tensor (S0 is fitted from the b=0 volumes)
# Singular values of the B-matrix below this fraction of the largest count as zero: real schemes
# (6-64 directions, 5 vendors) have a smallest/largest ratio of 0.37-0.76, the ideal 6-direction
# scheme 0.5; 3 directions repeated with a few degrees of jitter stay below 0.01, so a fit there
# would amplify noise more than 50-fold.
RANK_TOLERANCE = 0.02
DISTINCT_DEGREES = 2.0  # directions closer than this (or antipodal) count as one, in messages


@dataclass(frozen=True)
class GradientRules:
    """How a gradient table is read.

    ``b0_threshold``: b-values (s/mm^2) at or below it are b=0 volumes.
    ``norm_tolerance``: weighted b-vectors with ``| |g| - 1 | <= norm_tolerance`` are
    accepted (and renormalised). ``bvec_norm_encodes_b``: instead of rejecting other
    norms, take ``g/|g|`` as the direction and ``b |g|^2`` as the b-value (MRtrix3).
    """

    b0_threshold: float = 50.0
    norm_tolerance: float = 0.05
    bvec_norm_encodes_b: bool = False

    def __post_init__(self):
        if self.b0_threshold < 0:
            raise InputError(f"b=0 threshold must be >= 0 s/mm^2, got {self.b0_threshold:g}")
        if not 0 < self.norm_tolerance < 1:
            raise InputError(f"b-vector norm tolerance must lie in (0, 1), got {self.norm_tolerance:g}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GradientTable:
    """A validated table: ``bvals`` [N] s/mm^2, ``bvecs`` [N, 3] unit (zero on b=0 volumes)."""

    bvals: np.ndarray
    bvecs: np.ndarray
    b0_threshold: float
    rescaled: int  # weighted volumes whose b-value was scaled by |g|^2 (bvec_norm_encodes_b)

    @property
    def weighted(self) -> np.ndarray:
        return self.bvals > self.b0_threshold

    def summary(self) -> dict:
        """Numbers for a JSON sidecar."""
        weighted = self.weighted
        shells = shell_values(self.bvals[weighted])
        return {
            "volumes": int(self.bvals.size),
            "b0_volumes": int(np.sum(~weighted)),
            "weighted_volumes": int(np.sum(weighted)),
            "distinct_directions": distinct_directions(self.bvecs[weighted]),
            "shells_s_per_mm2": shells,
            "rescaled_by_bvec_norm": self.rescaled,
        }


def _read_numbers(path: Path, what: str, allow_nan: bool = False) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{what} file not found", path)
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        values = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{what} file must hold whitespace-separated numbers (rows of equal length)", path) from None
    if values.size == 0:
        raise InputError(f"{what} file is empty", path)
    if np.any(np.isinf(values)) or (not allow_nan and np.any(np.isnan(values))):
        raise InputError(f"{what} file contains NaN or Inf", path)
    return values


def b_matrix(bvecs: np.ndarray) -> np.ndarray:
    """[N, 6] rows ``[gx^2, gy^2, gz^2, 2gxgy, 2gxgz, 2gygz]`` of unit directions [N, 3]."""
    x, y, z = np.asarray(bvecs, dtype=np.float64).T
    return np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z], axis=1)


def tensor_rank(bvecs: np.ndarray) -> int:
    """Rank of the B-matrix: how many tensor components the directions determine (<= 6)."""
    if len(bvecs) == 0:
        return 0
    singular = np.linalg.svd(b_matrix(bvecs), compute_uv=False)
    return int(np.sum(singular > RANK_TOLERANCE * singular[0]))


def distinct_directions(bvecs: np.ndarray, degrees: float = DISTINCT_DEGREES) -> int:
    """Number of directions that differ by more than ``degrees`` (g and -g are one direction)."""
    kept: list[np.ndarray] = []
    limit = np.cos(np.radians(degrees))
    for g in np.asarray(bvecs, dtype=np.float64):
        if all(abs(float(g @ k)) < limit for k in kept):
            kept.append(g)
    return len(kept)


def shell_values(bvals: np.ndarray, relative: float = 0.05) -> list[float]:
    """Mean b-value of each shell (b-values within ``relative`` of a shell's lowest join it)."""
    shells: list[list[float]] = []
    for b in np.sort(np.asarray(bvals, dtype=np.float64)):
        if shells and b <= shells[-1][0] * (1 + relative):
            shells[-1].append(float(b))
        else:
            shells.append([float(b)])
    return [float(round(np.mean(group))) for group in shells]


def read_bvals(path, n_volumes: int) -> np.ndarray:
    path = Path(path)
    bvals = _read_numbers(path, "bval")
    if min(bvals.shape) != 1:
        raise InputError(f"bval must be a single row of numbers (got {bvals.shape[0]}x{bvals.shape[1]})", path)
    bvals = bvals.ravel()
    if bvals.size != n_volumes:
        raise InputError(f"bval has {bvals.size} values but the DWI has {n_volumes} volumes", path)
    if np.any(bvals < 0):
        raise InputError("negative b-values", path)
    return bvals


def read_bvecs(path, n_volumes: int) -> np.ndarray:
    """[N, 3] from FSL's 3 rows (or 3 columns); NaN kept for the caller to judge."""
    path = Path(path)
    bvecs = _read_numbers(path, "bvec", allow_nan=True)
    if bvecs.shape[0] == 3 and bvecs.shape[1] != 3:
        bvecs = bvecs.T
    elif bvecs.shape == (3, 3):
        bvecs = bvecs.T  # FSL writes one row per axis
    if bvecs.shape != (n_volumes, 3):
        raise InputError(
            f"bvec has {bvecs.shape[0]}x{bvecs.shape[1]} values; the DWI has {n_volumes} volumes (need 3 x {n_volumes})",
            path,
        )
    return bvecs


def load_gradients(bval_path, bvec_path, n_volumes: int, rules: GradientRules | None = None) -> GradientTable:
    """Read ``bval``/``bvec`` for a DWI with ``n_volumes`` volumes and check them (see the module doc).

    Raises ``InputError`` naming the file at fault.
    """
    rules = rules or GradientRules()
    bval_path, bvec_path = Path(bval_path), Path(bvec_path)
    bvals = read_bvals(bval_path, n_volumes)
    bvecs = read_bvecs(bvec_path, n_volumes)
    return validate_gradients(bvals, bvecs, rules, bval_path, bvec_path)


def validate_gradients(bvals: np.ndarray, bvecs: np.ndarray, rules: GradientRules, bval_path=None,
                       bvec_path=None) -> GradientTable:
    """Check arrays ``bvals`` [N] and ``bvecs`` [N, 3]; return a unit-direction table."""
    bvals = np.asarray(bvals, dtype=np.float64).copy()
    bvecs = np.asarray(bvecs, dtype=np.float64).copy()
    weighted = bvals > rules.b0_threshold
    undefined = np.isnan(bvecs).any(axis=1)
    if np.any(undefined & weighted):
        raise InputError(f"{int(np.sum(undefined & weighted))} diffusion-weighted volume(s) have NaN directions", bvec_path)
    bvecs[undefined] = 0.0
    norms = np.linalg.norm(bvecs, axis=1)
    zero = weighted & (norms < 1e-3)
    if np.any(zero):
        raise InputError(f"{int(np.sum(zero))} diffusion-weighted volume(s) have a zero gradient direction", bvec_path)
    off = weighted & (np.abs(norms - 1.0) > rules.norm_tolerance)
    rescaled = 0
    if np.any(off):
        if not rules.bvec_norm_encodes_b:
            bad = norms[off]
            spread = f"{bad.min():.2f}" if np.ptp(bad) < 0.01 else f"{bad.min():.2f}-{bad.max():.2f}"
            raise InputError(
                f"{int(off.sum())} of {int(weighted.sum())} diffusion-weighted b-vectors are not unit length "
                f"(|g| = {spread}, tolerance {rules.norm_tolerance:g}); normalise them, or pass "
                f"--bvec-norm-encodes-b if the norm encodes the shell (MRtrix convention b' = b |g|^2)",
                bvec_path,
            )
        bvals[off] = bvals[off] * norms[off] ** 2
        rescaled = int(off.sum())
    safe = np.where(norms > 0, norms, 1.0)
    bvecs = np.where((norms > 0)[:, None], bvecs / safe[:, None], 0.0)
    weighted = bvals > rules.b0_threshold
    bvecs[~weighted] = 0.0
    if not np.any(weighted):
        raise InputError(
            f"no diffusion-weighted volume (every b-value <= {rules.b0_threshold:g} s/mm^2; "
            f"are the b-values in s/mm^2?)",
            bval_path,
        )
    if not np.any(~weighted):
        raise InputError(f"no b=0 volume (no b-value <= {rules.b0_threshold:g} s/mm^2; see --b0-threshold)", bval_path)
    rank = tensor_rank(bvecs[weighted])
    if rank < TENSOR_UNKNOWNS:
        distinct = distinct_directions(bvecs[weighted])
        what = (f"have only {distinct} distinct direction(s)" if distinct < TENSOR_UNKNOWNS
                else f"have {distinct} distinct directions that do not span a tensor (e.g. all in one plane)")
        raise InputError(
            f"the {int(weighted.sum())} diffusion-weighted volumes {what} (B-matrix rank {rank}); "
            f"a tensor needs {TENSOR_UNKNOWNS} non-collinear directions",
            bvec_path,
        )
    return GradientTable(bvals=bvals, bvecs=bvecs, b0_threshold=rules.b0_threshold, rescaled=rescaled)
