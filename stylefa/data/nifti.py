"""Load, validate, reorient and save NIfTI volumes.

Every check that a user's file can fail raises ``InputError(problem, path)`` so the CLI
prints one line. ``load_fa`` adds the checks specific to FA maps; its value policy is:

- FA is non-negative and, for a positive-definite tensor, at most 1. A tensor fit with a
  negative eigenvalue (noise, partial volume at the CSF border) pushes the FA formula
  above 1, but never above sqrt(3/2) ~= 1.2247 (the bound of the formula for any real
  eigenvalues). Values in (1, sqrt(3/2)] are therefore fit artefacts: they are clipped
  to 1 (``clip=True``) with a warning giving the count, as long as they are rare
  (at most ``max_artefact_fraction`` of the non-zero voxels).
- Small negative values (down to ``-NEGATIVE_TOLERANCE``) come from spline
  interpolation ringing; they are clipped to 0 likewise.
- Maps that are not FA at all (a diffusivity such as MD in mm^2/s, FA in percent or x 1000,
  the tensor mode, a mask) are refused first, in one line saying what they look like
  (``stylefa.data.fa_values``, thresholds measured on real maps).
- Anything further out (above sqrt(3/2), below the tolerance, or too many voxels) means
  the file is not an FA map in [0, 1] (e.g. a raw DWI), and
  is an error whatever ``clip`` says. With ``clip=False`` any value outside [0, 1] is
  an error.
"""

from __future__ import annotations

import gzip
import math
import os
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stylefa.errors import InputError

FA_FORMULA_MAX = math.sqrt(1.5)
NEGATIVE_TOLERANCE = 0.05
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class ClippedValuesWarning(UserWarning):
    """FA values just outside [0, 1] (tensor-fit or interpolation artefacts) were clipped."""


@dataclass(frozen=True)
class Volume:
    """A 3-D (or 4-D) image: float32 voxels, the voxel-to-world (RAS mm) affine, its header.

    ``header`` is the source ``nibabel.Nifti1Header`` (or None for volumes built in code);
    saving reuses it so descriptions, units and intent survive. ``path`` is where it was
    read from, for error messages.
    """

    data: np.ndarray
    affine: np.ndarray
    header: object | None = None
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def zooms(self) -> tuple[float, ...]:
        """Voxel size in mm along each array axis (from the affine's columns)."""
        return tuple(float(z) for z in np.linalg.norm(self.affine[:3, :3], axis=0))

    def with_data(self, data: np.ndarray) -> "Volume":
        """Same grid and header, new voxels (e.g. a mask or a clipped copy)."""
        return replace(self, data=np.asarray(data, dtype=np.float32))


def is_nifti_path(path: str | os.PathLike) -> bool:
    name = Path(path).name.lower()
    return name.endswith(NIFTI_SUFFIXES)


def _read_image(path: Path):
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    from stylefa.discovery import PAIR_HEADER_SUFFIXES, PAIR_IMAGE_SUFFIXES, missing_file_problem

    if not path.exists():
        raise InputError(missing_file_problem(path), path)
    if path.is_dir():
        raise InputError("is a folder, expected a NIfTI file", path)
    try:
        image = nib.load(path)
    except (ImageFileError, FileNotFoundError):
        if path.name.lower().endswith(PAIR_IMAGE_SUFFIXES + PAIR_HEADER_SUFFIXES):
            half = "header (.hdr)" if path.name.lower().endswith(PAIR_IMAGE_SUFFIXES) else "image (.img)"
            raise InputError(f"NIfTI .hdr/.img pair without its {half} beside it", path) from None
        raise InputError("not a NIfTI file (nibabel cannot read its header)", path) from None
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"truncated or corrupt image file ({_reason(exc)})", path) from None
    # NIfTI-1/-2 single files and .hdr/.img pairs (read: they carry the NIfTI orientation).
    if isinstance(image, (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair, nib.Nifti2Pair)):
        return image
    if path.name.lower().endswith(PAIR_HEADER_SUFFIXES + PAIR_IMAGE_SUFFIXES):
        raise InputError(f"an Analyze 7.5 .hdr/.img pair (nibabel reads it as {type(image).__name__}), not NIfTI: it "
                         "has no reliable orientation; convert it with the tool that wrote it to .nii.gz", path)
    raise InputError(f"not a NIfTI file (nibabel reads it as {type(image).__name__})", path)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _check_affine(image, path: Path) -> np.ndarray:
    header = image.header
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        raise InputError(
            "no spatial orientation (qform_code and sform_code are both 0), so its voxels "
            "cannot be placed in world space; fix the header (e.g. fslorient) first",
            path,
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError("affine contains NaN or Inf", path)
    linear = affine[:3, :3]
    zooms = np.linalg.norm(linear, axis=0)
    if np.any(zooms < 1e-3) or abs(np.linalg.det(linear)) < 1e-9 * max(1.0, float(np.prod(zooms))):
        raise InputError(f"singular affine (voxel sizes {_fmt(zooms)} mm)", path)
    if np.any(zooms > 50.0):
        raise InputError(f"implausible voxel size {_fmt(zooms)} mm in the affine", path)
    return affine


def _fmt(values) -> str:
    return "x".join(f"{float(v):.3g}" for v in values)


def load_volume(
    path: str | os.PathLike,
    *,
    expect_ndim: int | None = 3,
    name: str = "FA",
    allow_empty: bool = False,
) -> Volume:
    """Read a NIfTI file as float32 with a validated affine.

    ``expect_ndim=3`` accepts a 4-D file whose trailing axes have length 1 (some tools
    write FA as X x Y x Z x 1) and squeezes them; ``expect_ndim=4`` is for DWI series;
    ``None`` accepts either. Non-finite voxels and all-zero images are errors (unless
    ``allow_empty``, for masks that may legitimately be empty).
    """
    path = Path(path)
    image = _read_image(path)
    affine = _check_affine(image, path)
    shape = tuple(int(s) for s in image.shape)
    if expect_ndim == 3:
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
    if expect_ndim is not None and len(shape) != expect_ndim:
        what = {3: "a 3-D", 4: "a 4-D"}.get(expect_ndim, f"a {expect_ndim}-D")
        raise InputError(f"is {len(shape)}-D (shape {_fmt(shape)}), expected {what} {name} volume", path)
    if len(shape) < 3 or any(s < 1 for s in shape):
        raise InputError(f"shape {_fmt(shape)} is not a 3-D/4-D image", path)
    try:
        data = np.asarray(image.dataobj, dtype=np.float32).reshape(shape)
    except FileNotFoundError as exc:  # the .img of a .hdr/.img pair (nibabel reads it lazily)
        raise InputError(f"NIfTI .hdr/.img pair without its image: {Path(exc.filename or '?').name} is missing",
                         path) from None
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"truncated or corrupt image data ({_reason(exc)})", path) from None
    nonfinite = int(np.count_nonzero(~np.isfinite(data)))
    if nonfinite:
        raise InputError(
            f"{nonfinite} voxel(s) are NaN or Inf; replace them (e.g. with 0) before using this {name} image",
            path,
        )
    if not allow_empty and not np.any(data):
        raise InputError(f"all voxels are zero: the {name} image is empty", path)
    return Volume(data=data, affine=affine, header=image.header.copy(), path=path)


def sanitize_fa(
    data: np.ndarray,
    path: str | os.PathLike | None,
    *,
    clip: bool = True,
    max_artefact_fraction: float = 0.05,
) -> tuple[np.ndarray, int]:
    """Apply the FA value policy of this module; return (FA in [0, 1], voxels clipped)."""
    from stylefa.data.fa_values import not_fa_problem

    data = np.asarray(data, dtype=np.float32)
    brain = int(np.count_nonzero(data))
    if brain == 0 or not np.any(data > 0):
        raise InputError("no positive FA voxels: the brain is empty", path)
    problem = not_fa_problem(data)  # a diffusivity, a percentage, FA x 1000, the mode, a mask
    if problem:
        raise InputError(problem, path)
    low = data < 0
    high = data > 1
    n_out = int(np.count_nonzero(low) + np.count_nonzero(high))
    if n_out == 0:
        return data, 0
    lo, hi = float(data.min()), float(data.max())
    summary = f"{n_out} voxel(s) outside [0, 1] (range {lo:.4g} to {hi:.4g})"
    if not clip:
        raise InputError(f"{summary}; FA must lie in [0, 1]", path)
    if hi > FA_FORMULA_MAX + 1e-4 or lo < -NEGATIVE_TOLERANCE:
        raise InputError(
            f"{summary}: not an FA map (FA from a tensor cannot exceed sqrt(3/2) = 1.2247 or be "
            f"below 0; is it scaled, e.g. by 1000, or another map?)",
            path,
        )
    if n_out > max_artefact_fraction * brain:
        raise InputError(
            f"{summary} = {100.0 * n_out / brain:.1f}% of non-zero voxels, more than the "
            f"{100.0 * max_artefact_fraction:.0f}% expected from fit artefacts; check the FA map",
            path,
        )
    return np.clip(data, 0.0, 1.0), n_out


def load_fa(
    path: str | os.PathLike,
    *,
    clip: bool = True,
    max_artefact_fraction: float = 0.05,
) -> Volume:
    """Load a 3-D FA map and apply the module's value policy (see the module docstring).

    Clipping emits a ``ClippedValuesWarning`` that names the file and the voxel count.
    """
    volume = load_volume(path, expect_ndim=3, name="FA")
    fa, clipped = sanitize_fa(volume.data, volume.path, clip=clip, max_artefact_fraction=max_artefact_fraction)
    if clipped:
        warnings.warn(
            f"{volume.path}: clipped {clipped} FA voxel(s) outside [0, 1] "
            f"(range {float(volume.data.min()):.4g} to {float(volume.data.max()):.4g}; tensor-fit artefacts)",
            ClippedValuesWarning,
            stacklevel=2,
        )
    return volume.with_data(fa)


def to_nifti_image(volume: Volume, dtype=np.float32):
    """A ``nibabel.Nifti1Image`` for ``volume``, reusing its header where there is one."""
    import nibabel as nib

    header = volume.header.copy() if isinstance(volume.header, nib.Nifti1Header) else None
    image = nib.Nifti1Image(np.asarray(volume.data, dtype=dtype), volume.affine, header=header)
    image.set_data_dtype(dtype)
    # Data are stored as real values: drop any scaling the source (e.g. int16 DWI) had.
    image.header.set_slope_inter(None, None)
    sform_code = int(header["sform_code"]) if header is not None else 0
    qform_code = int(header["qform_code"]) if header is not None else 0
    image.set_sform(volume.affine, code=sform_code or 2)
    image.set_qform(volume.affine, code=qform_code or sform_code or 2)
    return image


def canonical(volume: Volume) -> Volume:
    """Reorient to RAS+ by flipping/permuting axes only (``nibabel.as_closest_canonical``).

    No resampling happens: voxel values are unchanged, only their order and the affine.
    """
    import nibabel as nib

    image = nib.as_closest_canonical(to_nifti_image(volume))
    data = np.asarray(image.dataobj, dtype=np.float32)
    return Volume(data=data, affine=np.asarray(image.affine, dtype=np.float64), header=image.header, path=volume.path)


def save_volume(
    volume: Volume,
    path: str | os.PathLike,
    *,
    dtype=np.float32,
) -> Path:
    """Write ``volume`` to ``path`` (.nii or .nii.gz) atomically; return the path."""
    import nibabel as nib

    from stylefa.fileio import atomic_path

    path = Path(path)
    if not is_nifti_path(path):
        raise InputError("output must end in .nii or .nii.gz", path)
    image = to_nifti_image(volume, dtype=dtype)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)
    return path


def make_volume(data: np.ndarray, affine: np.ndarray, header=None) -> Volume:
    """A ``Volume`` built in code (float32 data, float64 affine)."""
    return Volume(
        data=np.asarray(data, dtype=np.float32),
        affine=np.asarray(affine, dtype=np.float64),
        header=header,
        path=None,
    )
