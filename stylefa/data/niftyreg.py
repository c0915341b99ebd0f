"""NiftyReg's ``reg_aladin`` (block-matching rigid registration; Modat et al. 2014, J. Med. Imag.
1(2) 024003) run from stylefa, the registration the study used.

The binaries come from the optional PyPI package ``niftyreg`` (``pip install 'stylefa[niftyreg]'``;
it builds from source: ``CMAKE_POLICY_VERSION_MINIMUM=3.5`` is needed with current cmake).
``reg_aladin`` on ``PATH`` is used when the package is absent.

Conventions (NiftyReg's ``-aff``/``-inaff`` text files, 4x4, "Affine * Reference = Floating"):
the matrix maps **reference world (mm, the NIfTI sform/qform) to floating world**. With the
template as reference and the subject as floating image that is exactly
``RegistrationResult.matrix`` (template world -> moving world, "pull"), so no conversion is
needed; tests/data/test_niftyreg.py checks it by recovering a known rigid motion of a real FA map.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from stylefa.data.nifti import Volume
from stylefa.errors import InputError

INSTALL_HINT = ("NiftyReg is not installed: pip install 'stylefa[niftyreg]' (builds from source, ~7 min; set "
                "CMAKE_POLICY_VERSION_MINIMUM=3.5), or put reg_aladin on PATH")


def aladin_path() -> Path | None:
    """The ``reg_aladin`` executable: the ``niftyreg`` package's, else one on ``PATH``, else None."""
    try:
        import niftyreg
    except ImportError:
        niftyreg = None
    if niftyreg is not None:
        candidate = Path(niftyreg.bin_path) / "reg_aladin"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("reg_aladin")
    return Path(found) if found else None


def available() -> bool:
    return aladin_path() is not None


def _save(volume: Volume, path: Path) -> None:
    import nibabel as nib

    image = nib.Nifti1Image(np.asarray(volume.data, dtype=np.float32), volume.affine)
    # Both sform and qform carry the affine: NiftyReg reads the sform when its code is set.
    image.set_sform(volume.affine, code=1)
    image.set_qform(volume.affine, code=1)
    nib.save(image, path)


def run_aladin(moving: Volume, template: Volume, start: np.ndarray | None = None, symmetric: bool = True,
               threads: int | None = None) -> np.ndarray:
    """Rigid ``reg_aladin`` of ``moving`` (floating) to ``template`` (reference): the 4x4 matrix
    template world (mm) -> moving world (mm).

    ``start``: an initial matrix in the same convention (``-inaff``); None lets reg_aladin start
    from the image centres (its default). ``symmetric=False`` adds ``-noSym`` (the symmetric mode
    jumps back near the identity from a far start, e.g. a 180 deg mislabel). ``threads``: OpenMP
    threads (default: ``OMP_NUM_THREADS`` if set, else NiftyReg's default).
    Raises ``InputError`` when NiftyReg is absent or reg_aladin fails (naming the moving image).
    """
    binary = aladin_path()
    if binary is None:
        raise InputError(INSTALL_HINT, moving.path)
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = int(os.environ["OMP_NUM_THREADS"])
    with tempfile.TemporaryDirectory(prefix="stylefa-aladin-") as tmp:
        folder = Path(tmp)
        _save(template, folder / "ref.nii.gz")
        _save(moving.with_data(np.clip(moving.data, 0.0, 1.0)), folder / "flo.nii.gz")
        command = [str(binary), "-ref", str(folder / "ref.nii.gz"), "-flo", str(folder / "flo.nii.gz"),
                   "-rigOnly", "-aff", str(folder / "out.txt"), "-res", str(folder / "res.nii.gz"), "-voff"]
        if not symmetric:
            command.append("-noSym")
        if start is not None:
            np.savetxt(folder / "in.txt", np.asarray(start, dtype=np.float64), fmt="%.10g")
            command += ["-inaff", str(folder / "in.txt")]
        if threads:
            command += ["-omp", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not (folder / "out.txt").is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise InputError(f"reg_aladin failed: {last[0]}", moving.path)
        matrix = np.loadtxt(folder / "out.txt")
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise InputError("reg_aladin wrote no valid 4x4 matrix", moving.path)
    return matrix


def polish_symmetric(moving: Volume, template: Volume, matrix: np.ndarray, passes: int = 2,
                     threads: int | None = None) -> np.ndarray:
    """``matrix`` (template world -> moving world) refined by symmetric ``reg_aladin``, the mode
    ``aladin`` alone uses, started where ``matrix`` already puts the head; ``passes`` times, each
    from the previous result.

    The pose is folded into the moving image's header (its affine becomes ``matrix^-1 @ affine``,
    no resampling), so that reg_aladin starts from the identity: its symmetric mode, which jumps
    back near the identity from a far ``-inaff`` start (a 180 deg mislabel), has nothing far to jump
    from. Returns ``matrix @ correction``. Why two passes: reg_aladin restarted from its own result
    moves again by up to ~0.7 deg (its coarse-to-fine levels start over), so one pass stops short of
    where it settles. Measured on the shared series (BENCHMARKS.md, "Registration methods side by
    side"): the -noSym result lands up to 1.5 deg / 1.9 mm RMS from ``aladin`` alone, one pass up to
    1.5 deg / 1.3 mm, two passes (below).
    """
    for _ in range(passes):
        folded = dataclasses.replace(moving, affine=np.linalg.inv(matrix) @ moving.affine, header=None)
        matrix = np.asarray(matrix) @ run_aladin(folded, template, start=np.eye(4), symmetric=True, threads=threads)
    return matrix
