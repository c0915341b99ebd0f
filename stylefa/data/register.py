"""Rigid (6 degrees of freedom) registration of an FA map to an FA template.

Method (dipy's ``imaffine`` framework): Mattes mutual information, centre-of-mass
initialisation, a global orientation search (the 24 axis-aligned orientations and the
brain's principal axes, ``stylefa.data.orientation``), a local search over starting
rotations, then a translation-only and a rigid optimisation, each multi-resolution
(Gaussian scale space, L-BFGS-B).

Quality gate: the result's Pearson correlation with the template inside the template
brain (template FA > 0.05), over the part of it the moving image's field of view covers,
must reach ``min_correlation`` (default 0.45: correctly registered real subjects of five
vendors with whole-brain coverage reach 0.55-0.70, failed registrations 0.25-0.39;
docs/data.md), else ``RegistrationQualityError``. Subjects covering less than 80 % of the
template brain are held to a gate 0.05 lower (a correct 20-slice slab reaches 0.44-0.51) and
get a warning: their failed registrations reach up to 0.43, so the gate is a weak check there.

The optimisation runs on a copy of the template resampled to ``working_resolution_mm``; the
result is resampled (linear) onto the template's own grid, or onto an isotropic grid of
``output_resolution_mm`` covering the template's field of view.

Direction of the matrix: ``RegistrationResult.matrix`` maps **template world
coordinates (mm) to moving world coordinates (mm)**, i.e. for a template-grid voxel
``v``, the moving image is sampled at ``inv(moving.affine) @ matrix @ template.affine @ v``.
That is the matrix resampling needs ("pull"); its inverse carries points from the
subject to the template.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from stylefa.data.nifti import Volume, make_volume
from stylefa.errors import InputError

BRAIN_THRESHOLD = 0.05  # template FA above this counts as brain for the correlation
FINEST_ITERS = 200  # final polish at the finest level, all voxels: runs until the optimiser converges
SEARCH_SCALE = 4  # the rotation search runs at this multiple of the working resolution (10 mm)
SEARCH_KEEP = 3  # best-scoring starting rotations refined before choosing one
SEARCH_REFINE_ITERS = 30
ORIENTATION_KEEP = 4  # best-scoring global orientations refined before choosing one
DEFAULT_MIN_CORRELATION = 0.45
# Below this fraction of the template brain covered, correct and failed registrations overlap in
# correlation (a 20-slice slab: correct 0.44-0.51, failed 0.31-0.43), so the gate is only a weak
# check there; it is lowered by PARTIAL_RELIEF and a warning is given.
PARTIAL_COVERAGE = 0.8
PARTIAL_RELIEF = 0.05
# "stylefa": our own MI search; "aladin": NiftyReg reg_aladin alone (the study's way); "hybrid": our
# orientation search, then reg_aladin -rigOnly -noSym from that pose, then a symmetric reg_aladin polish
# from there (stylefa.data.niftyreg.polish_symmetric).
METHODS = ("stylefa", "aladin", "hybrid")
METHOD_DESCRIPTIONS = {
    "stylefa": "stylefa: orientation + rotation search, Mattes MI within the scan's field of view (dipy)",
    "aladin": "NiftyReg reg_aladin -rigOnly (symmetric block matching), from the image centres",
    "hybrid": "stylefa orientation + rotation search, then NiftyReg reg_aladin -rigOnly -noSym -inaff <that pose>, "
              "then symmetric reg_aladin -rigOnly from the result",
}
# Our own method's second opinion: two independent starts must land within this of each other
# (rotation angle; RMS displacement of the template brain).
AGREEMENT_DEGREES = 3.0
AGREEMENT_MM = 3.0


@dataclass
class RegistrationConfig:
    """Settings of ``register_rigid``; defaults are tuned for ~2 mm adult FA maps.

    ``level_iters``/``sigmas``/``factors`` are the multi-resolution schedule, coarsest
    first (``factors`` shrink the working template, ``sigmas`` smooth it, in voxels).
    ``sampling_proportion`` is the fraction of working-grid voxels that estimate the
    mutual information (None: all voxels). ``rotation_search_degrees`` > 0 first scores
    starting rotations on a grid of Euler angles (``rotation_search_step`` apart, within
    +-``rotation_search_degrees`` about each world axis, about the template brain's
    centre) by mutual information at 10 mm, refines the best three briefly and starts
    from the best: the centre-of-mass start alone lands in a worse local optimum for
    subjects whose head is pitched (the niivue subject: ~13 deg).
    ``orientation_search`` first tries the 24 axis-aligned orientations and the principal
    axes (``stylefa.data.orientation``), so gross misorientation (90/180 deg) is found.
    ``min_correlation``: quality gate on the after-registration brain correlation with the
    template (None: no gate); below it ``register_rigid`` raises ``RegistrationQualityError``.
    """

    working_resolution_mm: float = 2.5
    output_resolution_mm: float | None = None
    nbins: int = 32
    sampling_proportion: float | None = 0.3
    level_iters: tuple[int, ...] = (100, 50, 20)
    sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    factors: tuple[int, ...] = (4, 2, 1)
    rotation_search_degrees: float = 30.0
    rotation_search_step: float = 15.0
    orientation_search: bool = True
    min_correlation: float | None = DEFAULT_MIN_CORRELATION
    seed: int = 0
    method: str = "auto"
    agreement_degrees: float = AGREEMENT_DEGREES
    agreement_mm: float = AGREEMENT_MM

    def __post_init__(self):
        self.level_iters = tuple(int(v) for v in self.level_iters)
        self.sigmas = tuple(float(v) for v in self.sigmas)
        self.factors = tuple(int(v) for v in self.factors)
        if not (len(self.level_iters) == len(self.sigmas) == len(self.factors) >= 1):
            raise InputError("level_iters, sigmas and factors must have the same (non-zero) length")
        if self.working_resolution_mm <= 0 or (self.output_resolution_mm is not None and self.output_resolution_mm <= 0):
            raise InputError("resolutions must be positive (mm)")
        if self.rotation_search_degrees > 0 and self.rotation_search_step <= 0:
            raise InputError("rotation_search_step must be positive")
        if self.sampling_proportion is not None and not 0 < self.sampling_proportion <= 1:
            raise InputError("sampling_proportion must be in (0, 1] or None")
        if self.method not in METHODS + ("auto",):
            raise InputError(f"unknown registration method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.min_correlation is not None and not -1.0 <= self.min_correlation <= 1.0:
            raise InputError(f"minimum correlation must lie in [-1, 1], got {self.min_correlation:g}")

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("level_iters", "sigmas", "factors"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RegistrationConfig":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class RegistrationResult:
    """``volume``: the moving image on the output grid; ``matrix``: template world -> moving world."""

    volume: Volume
    matrix: np.ndarray
    metrics: dict = field(default_factory=dict)

    def transform_dict(self, config: RegistrationConfig | None = None) -> dict:
        """The JSON record of the transform (see ``save_transform``)."""
        record = {
            "format": "stylefa-rigid-1",
            "direction": "template_world_mm -> moving_world_mm (pull: resample moving at matrix @ x_template)",
            "matrix": [[float(v) for v in row] for row in self.matrix],
            "inverse_matrix": [[float(v) for v in row] for row in np.linalg.inv(self.matrix)],
            "rotation_degrees": rotation_angle_degrees(self.matrix),
            "translation_mm": [float(v) for v in self.matrix[:3, 3]],
            "metrics": dict(self.metrics),
        }
        if config is not None:
            record["config"] = config.to_dict()
        return record


class RegistrationQualityError(InputError):
    """The registration's correlation with the template is below the gate; ``result`` holds it
    (e.g. for a QC picture of the failure)."""

    def __init__(self, problem: str, path, result: "RegistrationResult"):
        super().__init__(problem, path)
        self.result = result


def rotation_angle_degrees(matrix: np.ndarray) -> float:
    """Angle of the rotation part of a rigid 4x4 (axis-angle magnitude)."""
    cosine = (np.trace(np.asarray(matrix)[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def axis_rotation(axis: int, degrees: float) -> np.ndarray:
    """3x3 rotation about world axis 0 (x), 1 (y) or 2 (z)."""
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


def isotropic_grid(volume: Volume, resolution_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of a grid with ``resolution_mm`` voxels over ``volume``'s field of view.

    Axis directions (e.g. LAS) are kept; voxel centres are placed so that the new grid's
    outer edges coincide with the old grid's.
    """
    affine = volume.affine
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    extent = zooms * np.asarray(volume.shape[:3])
    shape = tuple(max(1, int(round(e / resolution_mm))) for e in extent)
    directions = affine[:3, :3] / zooms
    new = np.eye(4)
    new[:3, :3] = directions * resolution_mm
    old_corner = affine[:3, :3] @ np.full(3, -0.5) + affine[:3, 3]
    new[:3, 3] = old_corner + new[:3, :3] @ np.full(3, 0.5)
    return shape, new


def resample(volume: Volume, shape, affine: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
    """Sample ``volume`` (linear) at the voxels of the grid (shape, affine).

    ``matrix`` (grid world -> volume world) defaults to the identity: plain resampling
    by the affines. Points outside the volume read 0.
    """
    from dipy.align.imaffine import AffineMap

    mapping = AffineMap(
        np.eye(4) if matrix is None else matrix,
        domain_grid_shape=tuple(shape),
        domain_grid2world=affine,
        codomain_grid_shape=volume.shape[:3],
        codomain_grid2world=volume.affine,
    )
    return np.asarray(mapping.transform(volume.data, interpolation="linear"), dtype=np.float32)


def downsample(volume: Volume, resolution_mm: float) -> Volume:
    """Anti-aliased resampling to isotropic ``resolution_mm`` (no-op if already that fine or coarser)."""
    from scipy.ndimage import gaussian_filter

    zooms = np.asarray(volume.zooms[:3])
    if np.all(zooms >= resolution_mm - 1e-6):
        return volume
    # Gaussian whose FWHM makes up the difference between old and new voxel sizes.
    sigma_vox = np.sqrt(np.maximum(resolution_mm**2 - zooms**2, 0.0)) / (2.3548 * zooms)
    smooth = gaussian_filter(volume.data.astype(np.float32), sigma=sigma_vox, mode="constant")
    shape, affine = isotropic_grid(volume, resolution_mm)
    return make_volume(resample(volume.with_data(smooth), shape, affine), affine, header=volume.header)


def brain_correlation(template: np.ndarray, moved: np.ndarray, threshold: float = BRAIN_THRESHOLD,
                      covered: np.ndarray | None = None) -> float:
    """Pearson correlation of two images over voxels where the template exceeds ``threshold``
    (and, if given, where ``covered`` is True: the moving image's field of view). NaN if
    fewer than 3 such voxels."""
    brain = template > threshold
    if covered is not None:
        brain &= covered
    if brain.sum() < 3:
        return float("nan")
    a = template[brain].astype(np.float64)
    b = moved[brain].astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@contextlib.contextmanager
def _seeded_numpy(seed: int):
    # dipy jitters its sparse MI samples with NumPy's global generator; seed it for
    # reproducible results and restore the caller's state afterwards.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _check_volume(volume: Volume, name: str) -> None:
    if volume.data.ndim != 3:
        raise InputError(f"{name} must be a 3-D FA map (shape {volume.shape})", volume.path)
    if not np.any(volume.data > 0):
        raise InputError(f"{name} has no positive voxels", volume.path)


def resolve_method(method: str) -> str:
    """``"auto"`` -> ``"hybrid"`` when NiftyReg is installed, else ``"stylefa"``; others unchanged.
    Raises ``InputError`` for ``aladin``/``hybrid`` without NiftyReg."""
    from stylefa.data.niftyreg import INSTALL_HINT, available

    if method == "auto":
        return "hybrid" if available() else "stylefa"
    if method in ("aladin", "hybrid") and not available():
        raise InputError(f"--method {method}: {INSTALL_HINT}")
    return method


def register_rigid(moving: Volume, template: Volume, config: RegistrationConfig | None = None) -> RegistrationResult:
    """Rigidly align ``moving`` (an FA map in any space) to ``template`` (an FA template).

    ``config.method`` chooses the optimiser (``METHODS``; module doc). Returns the moving image
    resampled (linear) onto the output grid, the 4x4 matrix (template world mm -> moving world mm)
    and metrics: the brain correlation with the template before (affines only) and after, the
    coverage, the method, and for our own method the disagreement of its two starts.
    Raises ``RegistrationQualityError`` when the result fails the gate (``check_quality``).
    """
    config = config or RegistrationConfig()
    _check_volume(moving, "moving image")
    _check_volume(template, "template")
    method = resolve_method(config.method)
    static = downsample(template, config.working_resolution_mm)
    clipped = moving.with_data(np.clip(moving.data, 0.0, 1.0).astype(np.float64))
    extra: dict = {}
    if method == "aladin":
        from stylefa.data.niftyreg import run_aladin

        matrix = run_aladin(moving, static, start=None, symmetric=True)
    else:
        with _seeded_numpy(config.seed), warnings.catch_warnings():
            # dipy warns about positional arguments inside its own calls; not ours to fix.
            warnings.simplefilter("ignore", UserWarning)
            start, extra["orientation_search"] = _starting_pose(static, clipped, config)
            if method == "hybrid":
                from stylefa.data.niftyreg import polish_symmetric, run_aladin

                matrix = polish_symmetric(moving, static, run_aladin(moving, static, start=start, symmetric=False))
            else:
                matrix, extra = _own_method(static, clipped, start, config, extra)

    if config.output_resolution_mm is None:
        out_shape, out_affine = template.shape, template.affine
        reference = template.data
    else:
        out_shape, out_affine = isotropic_grid(template, config.output_resolution_mm)
        reference = downsample(template, config.output_resolution_mm).data
    moved = resample(moving, out_shape, out_affine, matrix)
    metrics = {
        "method": method,
        "method_description": METHOD_DESCRIPTIONS[method],
        **quality_metrics(reference, moving, out_shape, out_affine, np.eye(4), "before"),
        **quality_metrics(reference, moving, out_shape, out_affine, matrix, "after", moved),
        "rotation_degrees": rotation_angle_degrees(matrix),
        "brain_threshold": BRAIN_THRESHOLD,
        "orientation_search": None,
        "min_correlation": config.min_correlation,
        **extra,
    }
    metrics["gate"] = effective_gate(config.min_correlation, metrics["coverage_after"])
    metrics["warning"] = partial_coverage_warning(metrics)
    header = template.header if config.output_resolution_mm is None else None
    result = RegistrationResult(volume=make_volume(moved, out_affine, header=header), matrix=matrix, metrics=metrics)
    check_quality(result, config.min_correlation, moving.path, config)
    return result


def _starting_pose(static: Volume, moving: Volume, config: RegistrationConfig) -> tuple[np.ndarray, dict | None]:
    """Centre-of-mass start, then the orientation search and the rotation search (as configured)."""
    from dipy.align.imaffine import transform_centers_of_mass

    start = transform_centers_of_mass(static.data.astype(np.float64), static.affine, moving.data,
                                      moving.affine).affine
    orientation = None
    if config.orientation_search:
        from stylefa.data.orientation import best_orientation

        coarse_mm = config.working_resolution_mm * SEARCH_SCALE
        start, orientation = best_orientation(downsample(static, coarse_mm), downsample(moving, coarse_mm),
                                              config.nbins, ORIENTATION_KEEP, SEARCH_REFINE_ITERS)
    if config.rotation_search_degrees > 0:
        start = _search_rotations(start, static, moving, config)
    return start, orientation


def _optimise(static: Volume, moving: Volume, start: np.ndarray, config: RegistrationConfig) -> tuple[np.ndarray, float]:
    """Translation, then rigid, multi-resolution Mattes MI from ``start``: (matrix, MI).

    The metric only sees template voxels inside the moving image's field of view (its
    ``moving_mask``): outside it the moving image reads 0, and on partial coverage (a 20-slice
    slab) that empty space would otherwise pull the pose.
    """
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric
    from dipy.align.transforms import RigidTransform3D, TranslationTransform3D

    def run(transform, begin):
        registration = AffineRegistration(
            metric=MutualInformationMetric(nbins=config.nbins, sampling_proportion=config.sampling_proportion),
            level_iters=list(config.level_iters), sigmas=list(config.sigmas), factors=list(config.factors),
            verbosity=0)
        mapping, _, value = registration.optimize(
            static.data.astype(np.float64), moving.data, transform, None, static_grid2world=static.affine,
            moving_grid2world=moving.affine, starting_affine=begin, ret_metric=True,
            moving_mask=np.ones(moving.shape[:3], np.int32))
        return mapping.affine, float(value)

    translated, _ = run(TranslationTransform3D(), start)
    matrix, value = run(RigidTransform3D(), translated)
    # Polish at the finest level until the rigid optimiser stops moving (issue 22: sub-philips01
    # stopped 5.6 deg short of the optimum of its own metric).
    registration = AffineRegistration(metric=MutualInformationMetric(nbins=config.nbins, sampling_proportion=None),
                                      level_iters=[FINEST_ITERS], sigmas=[0.0], factors=[1], verbosity=0)
    mapping, _, polished = registration.optimize(
        static.data.astype(np.float64), moving.data, RigidTransform3D(), None, static_grid2world=static.affine,
        moving_grid2world=moving.affine, starting_affine=matrix, ret_metric=True,
        moving_mask=np.ones(moving.shape[:3], np.int32))
    return mapping.affine, -float(polished)


def _own_method(static: Volume, moving: Volume, start: np.ndarray, config: RegistrationConfig,
                extra: dict) -> tuple[np.ndarray, dict]:
    """Our MI optimisation from the searched start. On partial coverage (< ``PARTIAL_COVERAGE`` of the
    template brain), where the metric can prefer a tilted pose (issue 22, sub-uih01), a second opinion:
    the same optimisation from the plain centre-of-mass start with the rotation search; the
    better-scoring pose wins, and how far the two land apart is recorded (``check_quality`` refuses a
    pose the two starts disagree on)."""
    matrix, value = _optimise(static, moving, start, config)
    extra = {**extra, "mutual_information": value}
    coverage = quality_metrics(static.data, moving, static.shape, static.affine, matrix, "first")["coverage_first"]
    if coverage >= PARTIAL_COVERAGE:
        return matrix, extra
    second_config = RegistrationConfig(**{**config.to_dict(), "orientation_search": False})
    second_start, _ = _starting_pose(static, moving, second_config)
    other, other_value = _optimise(static, moving, second_start, config)
    if other_value > value:
        matrix, value, other, other_value = other, other_value, matrix, value
    angle, _, rms = pose_difference(matrix, other, static)
    return matrix, {**extra, "mutual_information": value, "second_start_degrees": angle,
                    "second_start_rms_mm": rms, "second_start_mutual_information": other_value}


def pose_difference(first: np.ndarray, second: np.ndarray, template: Volume) -> tuple[float, float, float]:
    """How far apart two pull matrices are: (angle deg, largest mm, RMS mm), the displacements
    being those of the template brain's voxels (template FA > ``BRAIN_THRESHOLD``)."""
    angle = rotation_angle_degrees(np.linalg.inv(first) @ second)
    brain = np.argwhere(template.data > BRAIN_THRESHOLD)
    if len(brain) == 0:
        return angle, 0.0, 0.0
    points = template.affine @ np.vstack([brain.T, np.ones(len(brain))])
    moved = np.sqrt((((first - second) @ points)[:3] ** 2).sum(axis=0))
    return angle, float(moved.max()), float(np.sqrt(np.mean(moved**2)))


def quality_metrics(reference: np.ndarray, moving: Volume, shape, affine: np.ndarray, matrix: np.ndarray,
                    when: str, moved: np.ndarray | None = None) -> dict:
    """``correlation_<when>`` (Pearson, template brain inside the moving field of view; None if
    they do not overlap) and ``coverage_<when>`` (fraction of the template brain covered)."""
    if moved is None:
        moved = resample(moving, shape, affine, matrix)
    # Fully inside the moving grid: voxels interpolated half from outside would read too low.
    field_of_view = resample(moving.with_data(np.ones(moving.shape[:3], np.float32)), shape, affine, matrix) >= 0.999
    brain = reference > BRAIN_THRESHOLD
    correlation = brain_correlation(reference, moved, covered=field_of_view)
    return {
        f"correlation_{when}": None if math.isnan(correlation) else correlation,
        f"coverage_{when}": float(np.count_nonzero(brain & field_of_view) / max(1, np.count_nonzero(brain))),
    }


def partial_coverage_warning(metrics: dict) -> str | None:
    """A warning for subjects that cover too little of the template brain for the gate to be reliable."""
    coverage = metrics.get("coverage_after") or 0.0
    if coverage >= PARTIAL_COVERAGE:
        return None
    return (f"partial coverage: the subject covers {coverage:.0%} of the template brain; correct and failed "
            f"registrations of such data reach similar correlations, so check the QC picture")


def effective_gate(min_correlation: float | None, coverage: float) -> float | None:
    """The correlation a registration must reach: ``min_correlation``, less ``PARTIAL_RELIEF`` for
    subjects covering less than ``PARTIAL_COVERAGE`` of the template brain."""
    if min_correlation is None:
        return None
    return min_correlation - PARTIAL_RELIEF if coverage < PARTIAL_COVERAGE else min_correlation


def check_quality(result: RegistrationResult, min_correlation: float | None, path=None,
                  config: RegistrationConfig | None = None) -> None:
    """Raise ``RegistrationQualityError`` if the after-registration correlation is below the gate,
    or if our own method's two independent starts land further apart than ``config.agreement_*``
    (the correlation alone cannot tell a tilted slab from a straight one: issue 22, sub-uih01)."""
    if min_correlation is None:
        return
    shown = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    min_correlation = effective_gate(min_correlation, result.metrics.get("coverage_after") or 0.0)
    after = result.metrics.get("correlation_after")
    before = result.metrics.get("correlation_before")
    if after is None or after < min_correlation:
        raise RegistrationQualityError(
            f"registration failed the quality gate: brain correlation with the template {shown(before)} -> "
            f"{shown(after)} (minimum {min_correlation:.2f}; correctly registered FA maps reach 0.55-0.7); check the "
            f"image and its header orientation, or lower --min-correlation",
            path,
            result,
        )
    config = config or RegistrationConfig()
    angle = result.metrics.get("second_start_degrees")
    shift = result.metrics.get("second_start_rms_mm")
    if angle is not None and (angle > config.agreement_degrees or shift > config.agreement_mm):
        raise RegistrationQualityError(
            f"registration is ambiguous: two independent starts land {angle:.1f} deg / {shift:.1f} mm (RMS) apart "
            f"(allowed {config.agreement_degrees:g} deg / {config.agreement_mm:g} mm; brain correlation {shown(after)}); "
            f"use --method hybrid or aladin (pip install 'stylefa[niftyreg]') or check the QC picture",
            path,
            result,
        )


def _rotation_candidates(step_degrees: float, max_degrees: float) -> list[np.ndarray]:
    """Rotations on a grid of Euler angles (x, then y, then z) within +-max_degrees."""
    count = int(math.floor(max_degrees / step_degrees + 1e-9))
    angles = [k * step_degrees for k in range(-count, count + 1)]
    return [
        axis_rotation(2, az) @ axis_rotation(1, ay) @ axis_rotation(0, ax)
        for ax in angles
        for ay in angles
        for az in angles
    ]


def _search_rotations(start, static: Volume, moving: Volume, config: RegistrationConfig) -> np.ndarray:
    """Best starting matrix over a grid of rotations about the template brain's centre.

    Every candidate is scored by mutual information on coarse copies of both images
    (cheap: a few thousand voxels); the best ``SEARCH_KEEP`` are refined by a short rigid
    optimisation at that scale and the best refined one is returned.
    """
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric
    from dipy.align.transforms import RigidTransform3D

    coarse_mm = config.working_resolution_mm * SEARCH_SCALE
    coarse_static = downsample(static, coarse_mm)
    coarse_moving = downsample(moving, coarse_mm)
    static_data = coarse_static.data.astype(np.float64)
    moving_data = coarse_moving.data.astype(np.float64)
    weights = np.clip(static.data, 0, None)
    centre_vox = np.array([np.average(idx, weights=weights) for idx in np.indices(static.shape)])
    centre = static.affine[:3, :3] @ centre_vox + static.affine[:3, 3]

    scored = []
    for rotation in _rotation_candidates(config.rotation_search_step, config.rotation_search_degrees):
        about_centre = np.eye(4)
        about_centre[:3, :3] = rotation
        about_centre[:3, 3] = centre - rotation @ centre
        candidate = start @ about_centre
        metric = MutualInformationMetric(nbins=config.nbins, sampling_proportion=None)
        metric.setup(
            RigidTransform3D(),
            static_data,
            moving_data,
            static_grid2world=coarse_static.affine,
            moving_grid2world=coarse_moving.affine,
            starting_affine=candidate,
        )
        scored.append((metric.distance(np.zeros(6)), candidate))
    scored.sort(key=lambda item: item[0])

    refine = AffineRegistration(
        metric=MutualInformationMetric(nbins=config.nbins, sampling_proportion=None),
        level_iters=[SEARCH_REFINE_ITERS],
        sigmas=[0.0],
        factors=[1],
        verbosity=0,
    )
    best_value, best_matrix = np.inf, start
    for _, candidate in scored[:SEARCH_KEEP]:
        mapping, _, value = refine.optimize(
            static_data,
            moving_data,
            RigidTransform3D(),
            None,
            static_grid2world=coarse_static.affine,
            moving_grid2world=coarse_moving.affine,
            starting_affine=candidate,
            ret_metric=True,
        )
        if value < best_value:
            best_value, best_matrix = value, mapping.affine
    return best_matrix
