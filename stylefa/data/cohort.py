"""A reproducible SIMULATED cohort of FA maps derived from a real FA template.

No subject here is a real person: each "subject" is the population FA template
(FSL MNI152 space, shipped as real data) transformed by random but plausible variation:

1. anatomy: a smooth diffeomorphic deformation (a smooth stationary velocity field
   integrated by scaling and squaring) combined with a global head-size scaling;
2. FA level: a global multiplicative factor and a smooth regional multiplicative field;
3. noise: Rician-like noise, ``sqrt((FA + s*n1)^2 + (s*n2)^2)`` with two independent,
   slightly smoothed Gaussian fields, i.e. the magnitude of a noisy complex signal. Like
   noise in FA from real DWI it is signal dependent: it biases low FA upwards (the noise
   floor) and is nearly Gaussian where FA is high. The amplitude was calibrated on the
   real subject FA map in ../shared/data/fa (see docs/data.md).

Subject ``i`` depends only on (seed, i), so a cohort of 10 is the first 10 of a cohort of
100, and the same seed always writes byte-identical files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stylefa.errors import InputError
from stylefa.fileio import ensure_writable_folder

COHORT_FORMAT = "stylefa-simulated-cohort"


@dataclass(frozen=True)
class CohortConfig:
    num_subjects: int = 20
    seed: int = 0
    template: str | None = None  # None: stylefa.data.template.find_template() (never downloads)
    voxel_size_mm: float | None = None  # resample the template (e.g. 2.5 for speed); None: its own grid
    warp_max_mm: float = 4.0  # peak displacement of the smooth deformation
    warp_smoothness_mm: float = 16.0  # Gaussian sigma of the velocity field
    head_scale: float = 0.05  # global scaling drawn uniformly in [1 - h, 1 + h]
    global_fa: float = 0.05  # global FA factor drawn uniformly in [1 - g, 1 + g]
    regional_fa: float = 0.10  # peak of the smooth regional multiplicative FA field
    regional_smoothness_mm: float = 20.0
    noise_sigma: float = 0.08  # FA units, per voxel; calibrated on the real 2.5 mm subject (docs/data.md)
    noise_fwhm_mm: float = 2.5  # spatial correlation of the noise (acquisition-like texture)

    def __post_init__(self):
        if self.num_subjects < 1:
            raise InputError(f"--subjects must be >= 1, got {self.num_subjects}")
        if self.voxel_size_mm is not None and not self.voxel_size_mm > 0:
            raise InputError(f"voxel size must be positive, got {self.voxel_size_mm}")
        for name in ("head_scale", "global_fa", "regional_fa"):
            if not 0 <= getattr(self, name) < 0.5:
                raise InputError(f"{name} must lie in [0, 0.5), got {getattr(self, name)}")
        if self.warp_max_mm < 0 or self.noise_sigma < 0:
            raise InputError("warp amplitude and noise sigma must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CohortConfig":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def subject_name(index: int) -> str:
    return f"sub-sim{index + 1:03d}"


def subject_filename(index: int) -> str:
    return f"{subject_name(index)}_space-MNI_FA.nii.gz"


def resample_to_voxel_size(data: np.ndarray, affine: np.ndarray, voxel_size_mm: float):
    """Downsample/upsample a volume to isotropic ``voxel_size_mm`` over the same extent.

    Keeps the axis directions of ``affine``; anti-aliases with a Gaussian before sampling.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    factors = voxel_size_mm / zooms
    # New voxel i sits at old index f*i: voxel 0 keeps its world position, as FSL's
    # standard grids of different resolutions do (the 2.5 mm real subject's grid, e.g.).
    shape = tuple(int(np.floor((n - 1) / f + 1e-6)) + 1 for n, f in zip(data.shape, factors))
    coords = np.meshgrid(*[f * np.arange(n) for n, f in zip(shape, factors)], indexing="ij")
    sigma = [0.4 * f if f > 1 else 0.0 for f in factors]
    smoothed = gaussian_filter(data.astype(np.float32), sigma) if any(sigma) else data
    out = map_coordinates(smoothed, coords, order=1, mode="nearest")
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] * factors
    return out.astype(np.float32), new_affine


def smooth_random_field(shape, sigma_vox, rng: np.random.Generator, components: int = 1) -> np.ndarray:
    """Gaussian white noise smoothed with ``sigma_vox``, scaled to unit peak magnitude.

    Built on a grid 4x coarser (then upsampled cubically) because the field is smooth on
    that scale anyway and full-size Gaussian filters with large sigma are slow.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    step = max(1, int(min(sigma_vox) // 4))
    coarse_shape = tuple(int(np.ceil(n / step)) + 1 for n in shape)
    noise = rng.standard_normal((components, *coarse_shape)).astype(np.float32)
    fields = np.stack([gaussian_filter(c, [s / step for s in sigma_vox], mode="wrap") for c in noise])
    grid = np.meshgrid(*[np.arange(n) / step for n in shape], indexing="ij")
    full = np.stack([map_coordinates(f, grid, order=3, mode="nearest") for f in fields])
    peak = float(np.sqrt((full**2).sum(axis=0)).max())
    return full / peak if peak > 0 else full


def integrate_velocity(velocity: np.ndarray, steps: int = 7) -> np.ndarray:
    """Displacement of exp(v) by scaling and squaring: u <- u + u o (id + u), ``steps`` times."""
    from scipy.ndimage import map_coordinates

    displacement = velocity / (2**steps)
    identity = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in velocity.shape[1:]], indexing="ij"))
    for _ in range(steps):
        where = identity + displacement
        displacement = displacement + np.stack(
            [map_coordinates(d, where, order=1, mode="nearest") for d in displacement]
        )
    return displacement


def jacobian_determinant(displacement: np.ndarray) -> np.ndarray:
    """det(I + grad u) of a displacement field ``[3, X, Y, Z]`` (in voxels), central differences."""
    grads = [np.gradient(displacement[i]) for i in range(3)]  # grads[i][j] = d u_i / d x_j
    jac = np.empty(displacement.shape[1:] + (3, 3), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            jac[..., i, j] = grads[i][j] + (1.0 if i == j else 0.0)
    return np.linalg.det(jac)


@dataclass(frozen=True)
class SimulatedSubject:
    fa: np.ndarray
    sampling_map: np.ndarray  # [3, X, Y, Z] voxel coordinates into the template, per output voxel
    head_scale: float
    global_fa: float


def simulate_subject(template: np.ndarray, zooms, config: CohortConfig, index: int) -> SimulatedSubject:
    """Subject ``index`` of the cohort (depends only on config.seed and index)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    rng = np.random.default_rng([config.seed, index])
    zooms = np.asarray(zooms, dtype=float)
    shape = template.shape
    warp_sigma = config.warp_smoothness_mm / zooms
    velocity = smooth_random_field(shape, warp_sigma, rng, components=3) * (config.warp_max_mm / zooms)[:, None, None, None]
    displacement = integrate_velocity(velocity.astype(np.float32))
    scale = float(rng.uniform(1 - config.head_scale, 1 + config.head_scale))
    brain = template > 0
    centre = np.array([c.mean() for c in np.nonzero(brain)])
    identity = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    # Output voxel x shows template point c + (x + u(x) - c) / s: a head s times larger.
    sampling = centre[:, None, None, None] + (identity + displacement - centre[:, None, None, None]) / scale
    warped = map_coordinates(template, sampling, order=1, mode="constant", cval=0.0)
    inside = map_coordinates(brain.astype(np.float32), sampling, order=1, mode="constant", cval=0.0) >= 0.5

    global_factor = float(rng.uniform(1 - config.global_fa, 1 + config.global_fa))
    regional = smooth_random_field(shape, config.regional_smoothness_mm / zooms, rng)[0] * config.regional_fa
    fa = warped * global_factor * (1.0 + regional)

    if config.noise_sigma > 0:
        sigma_vox = config.noise_fwhm_mm / 2.3548 / zooms
        real, imag = (gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox) for _ in range(2))
        # Unit standard deviation after smoothing, so noise_sigma is the per-voxel sigma.
        real /= real.std()
        imag /= imag.std()
        # The template averages real FA maps that each carried a noise floor, so it already
        # holds that bias: take the noise-free signal A with E[|A + noise|^2] = FA^2.
        signal = np.sqrt(np.maximum(fa**2 - 2.0 * config.noise_sigma**2, 0.0))
        fa = np.sqrt((signal + config.noise_sigma * real) ** 2 + (config.noise_sigma * imag) ** 2)
    fa = np.where(inside, np.clip(fa, 0.0, 1.0), 0.0).astype(np.float32)
    return SimulatedSubject(fa=fa, sampling_map=sampling, head_scale=scale, global_fa=global_factor)


def load_template_for_cohort(config: CohortConfig):
    """(FA array, affine, template path) on the cohort's grid."""
    from stylefa.data.nifti import load_fa

    from stylefa.data.template import find_template

    path = Path(find_template(config.template))
    volume = load_fa(path)
    data, affine = volume.data, volume.affine
    if config.voxel_size_mm is not None:
        data, affine = resample_to_voxel_size(data, affine, config.voxel_size_mm)
    return data, affine, path


def make_cohort(output: str | os.PathLike, config: CohortConfig) -> list[Path]:
    """Write the cohort's NIfTI files and cohort.json into ``output``; return the file paths.

    Resumable: files already written by a run with the same settings are kept.
    """
    import nibabel as nib

    from stylefa._version import __version__
    from stylefa.progress import progress
    from stylefa.fileio import atomic_path, write_json

    output = Path(output)
    data, affine, template_path = load_template_for_cohort(config)
    description = {
        "format": COHORT_FORMAT,
        "simulated": True,
        "statement": (
            "SIMULATED data: every subject is the population FA template warped by a random smooth "
            "diffeomorphism and head scaling, with random global/regional FA factors and Rician-like "
            "noise. No subject is a real person; use it for testing and demonstrations, never as "
            "evidence about real brains."
        ),
        "stylefa_version": __version__,
        "template": str(template_path.resolve()),
        "affine": np.asarray(affine).tolist(),
        "shape": list(data.shape),
        "config": {**config.to_dict(), "template": config.template},
    }
    marker = output / "cohort.json"
    if marker.is_file():
        try:
            previous = json.loads(marker.read_text())
        except ValueError:
            previous = None
        if previous is None or previous.get("config") != description["config"]:
            raise InputError("folder holds a cohort made with other settings; choose a new folder", output)
    if output.exists() and not output.is_dir():
        raise InputError("output exists and is not a folder", output)
    ensure_writable_folder(output)

    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    paths, subjects = [], []
    for index in progress(range(config.num_subjects), desc="cohort", unit="subject"):
        path = output / subject_filename(index)
        if not path.is_file():
            subject = simulate_subject(data, zooms, config, index)
            image = nib.Nifti1Image(subject.fa, affine)
            image.set_qform(affine, code=4)  # 4 = MNI152
            image.set_sform(affine, code=4)
            image.header["descrip"] = b"stylefa SIMULATED FA"
            with atomic_path(path) as tmp:
                nib.save(image, tmp)
        paths.append(path)
        subjects.append({"subject": subject_name(index), "file": path.name})
    write_json(marker, {**description, "subjects": subjects})
    return paths
