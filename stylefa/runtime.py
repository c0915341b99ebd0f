"""Process-level performance settings that are safe to apply once at start-up."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_cpu_allocator() -> bool:
    """Keep large tensor buffers in glibc's heap instead of fresh mmap()s.

    By default glibc serves every allocation above 128 KiB-32 MiB with its own mmap()
    and returns it to the kernel on free, so each training step page-faults its
    activations in again. On the 2-core VMs we measured this made a 64x64 generator
    forward pass 3-4x slower (see BENCHMARKS.md). Raising the mmap and trim thresholds
    makes freed buffers reusable; peak memory is unchanged, memory is only returned to
    the OS later. Returns True when applied (glibc only; a no-op elsewhere or when the
    environment variable ``STYLEFA_DEFAULT_MALLOC=1`` asks to keep glibc's defaults).
    """
    if os.environ.get("STYLEFA_DEFAULT_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    ok_trim = mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
    return bool(ok_mmap and ok_trim)


def resolve_device(name: str, local_rank: int | None = None):
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` -> ``torch.device``, with one-line errors.

    Under torchrun each process takes GPU ``LOCAL_RANK`` (modulo the GPUs present) for
    ``auto`` and plain ``cuda``; an explicit ``cuda:N`` is taken as given.
    """
    import torch

    from stylefa.errors import InputError

    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name} requested but no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


# Commands that run numerical work in torch (``--threads`` is added to each by the CLI).
COMPUTE_COMMANDS = ("generate", "fa", "register", "prepare", "cohort", "train", "metrics", "project", "study", "demo")


def add_threads_argument(parser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="CPU threads for torch (torch.set_num_threads; default: torch's, usually one per core). "
             "On a busy machine 1 can be many times faster than the core count")


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` (and inter-op threads), with a one-line error for < 1."""
    if threads is None:
        return
    from stylefa.errors import InputError

    if threads < 1:
        raise InputError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or parallel work has started: intra-op is what matters
        pass
