"""Atomic file output: a reader never sees a half-written file.

Everything is written to a temporary sibling and moved into place with ``os.replace``,
which is atomic on POSIX file systems, so a job killed mid-write leaves the previous
version (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from stylefa.errors import InputError


def ensure_writable_folder(folder: str | os.PathLike, *, create: bool = True) -> Path:
    """Create ``folder`` (and its parents) if needed; ``InputError`` naming it when that fails
    or when files cannot be created in it. With ``create=False`` a missing folder is not made:
    its nearest existing parent must accept a new folder (commands check their outputs this
    way before any work, so a refused input leaves nothing behind).

    Writability is probed by creating and deleting an entry: permission bits alone say nothing
    for root, on read-only mounts seen from a container, or on shares that squash root."""
    folder = Path(folder)
    if not create and not folder.exists():
        parent = next((p for p in folder.absolute().parents if p.exists()), None)
        try:
            if parent is None or not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            os.rmdir(tempfile.mkdtemp(prefix=".stylefa-write-probe.", dir=parent))
        except OSError as exc:
            raise InputError(f"cannot create output folder ({exc.strerror or exc})", folder) from None
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder ({exc.strerror or exc})", folder) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError("output folder is not writable", folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".stylefa-write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"output folder is not writable ({exc.strerror or exc})", folder) from None
    return folder


# Errors that mean "the output cannot be written" (full disk or quota, read-only file system, no
# permission); ``stylefa.cli`` reports them in one line, exit 2, instead of a traceback.
WRITE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted"}
# Test hook: "ENOSPC:3" (or EROFS, EACCES, ...) makes the 3rd atomic write of this process fail
# with that error after its temp file was written, as a disk that fills up mid-job does; "KILL:3"
# ends the process there with os._exit(137), as kill -9 would.
FAIL_WRITE_ENV = "STYLEFA_TEST_FAIL_WRITE"
_atomic_writes = 0


def _injected_write_failure(path: Path) -> None:
    global _atomic_writes
    _atomic_writes += 1
    spec = os.environ.get(FAIL_WRITE_ENV)
    if spec:
        name, nth = spec.split(":")
        if int(nth) == _atomic_writes:
            if name == "KILL":
                os._exit(137)
            code = getattr(errno, name)
            raise OSError(code, os.strerror(code), str(path))


def as_write_error(exc: BaseException, path: str | os.PathLike) -> OSError | None:
    """``exc`` raised while writing ``path`` as an ``OSError`` with a ``WRITE_ERRNOS`` errno and
    ``path`` as its file name, or None when it is not a write failure. Libraries report a full disk
    in their own words: numpy's short write ("1376256 requested and 785376 written"), safetensors'
    "I/O error: No space left on device (os error 28)"."""
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if code is None:
        text = str(exc)
        found = re.search(r"os error (\d+)", text)
        if found:
            code = int(found.group(1))
        elif isinstance(exc, OSError) and re.search(r"\d+ requested and \d+ written", text):
            code = errno.ENOSPC
    if code not in WRITE_ERRNOS:
        return None
    return OSError(code, os.strerror(code), os.fspath(path))


def _check_parent_writable(path: Path) -> None:
    # Commands check their output folders up front (stylefa.cli); a folder that fails later (a
    # disk remounted read-only mid-job) is a write error like a full disk.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (as_write_error(exc, path.parent) or exc) from None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    ``suffix`` defaults to the target's own suffix so libraries that infer the
    format from the extension (nibabel, PIL, numpy) still do the right thing.
    """
    path = Path(path)
    _check_parent_writable(path)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as exc:
        raise (as_write_error(exc, path) or exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _injected_write_failure(path)
        # mkstemp creates 0600 files; outputs should get the usual umask-derived mode.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        failure = as_write_error(exc, path)
        if failure is not None and failure is not exc:
            raise failure from exc
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path``."""
    path = Path(path)
    _check_parent_writable(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise (as_write_error(exc, path) or exc) from None
    try:
        yield tmp
        _injected_write_failure(path)
        os.chmod(tmp, 0o777 & ~_current_umask())
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        failure = as_write_error(exc, path)
        if failure is not None and failure is not exc:
            raise failure from exc
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_csv(path: str | os.PathLike, columns, rows) -> None:
    """Atomically write ``rows`` (dicts) as CSV with header ``columns``; keys outside ``columns``
    are ignored and floats are written with 6 significant digits."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, buffer.getvalue())


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def fa_to_uint8(fa: np.ndarray) -> np.ndarray:
    """FA in [0, 1] to 8-bit grey levels: pixel = round(clip(FA, 0, 1) * 255)."""
    return np.rint(np.clip(fa, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_png_gray(path: str | os.PathLike, fa: np.ndarray) -> None:
    """Write a 2-D FA array as an 8-bit grayscale PNG."""
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(fa_to_uint8(np.asarray(fa))).save(tmp, format="PNG")


def safe_name(text: str, fallback: str = "item") -> str:
    """``text`` as one file-name component: runs of anything but letters, digits, ``.``,
    ``_`` and ``-`` become ``_``; leading/trailing dots are dropped (no hidden files, no ``..``)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or fallback


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


RUN_SETTINGS_FILE = "settings.json"


def check_run_settings(
    folder: str | os.PathLike, settings: dict, what: str = "results", *, file_name: str = RUN_SETTINGS_FILE,
    remedy: str = "use a new output folder or delete this one", replace: bool = False,
) -> None:
    """A resumable job's outputs in ``folder`` must all come from the same settings.

    The first run records ``settings`` (JSON-able: network and data hashes, options) in
    ``folder/<file_name>``; a later run with different settings is refused rather than
    mixing results of two configurations in one folder, unless ``replace`` (the job
    overwrites its outputs) records the new settings instead.
    """
    folder = Path(folder)
    path = folder / file_name
    wanted = json.loads(json.dumps(settings))
    if path.is_file() and not replace:
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != wanted:
            changed = sorted(_changed_keys(previous, wanted)) if isinstance(previous, dict) else ["(unreadable)"]
            raise InputError(
                f"holds {what} made with other settings (changed: {', '.join(changed) or '?'}); {remedy}", folder)
    else:
        ensure_writable_folder(folder)
        write_json(path, wanted)


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(_changed_keys(a, b, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def read_png_gray(path: str | os.PathLike, options=None) -> np.ndarray:
    """A PNG as FA, float32 [H, W]: ``stylefa.readers.read_image_gray`` (alpha, colour and
    integer-scale rules in docs/inputs.md); ``options`` is a ``stylefa.readers.ImageOptions``."""
    from stylefa.readers import ImageOptions, read_image_gray

    return read_image_gray(path, options or ImageOptions())
