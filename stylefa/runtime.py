"""Process-level performance settings: the CPU allocator, device choice and the CUDA speed
defaults (precision, TF32, cuDNN autotuning, channels_last, torch.compile) in one place."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass

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


def machine_load() -> tuple[float, int] | None:
    """(1-minute load average, CPUs this process may run on), or None where the OS keeps no load
    average (``os.getloadavg``: Unix)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 1
    return load, cpus


def is_busy(load: float, cpus: int) -> bool:
    """More runnable tasks than CPUs over the last minute (this process's own threads included):
    then threads wait for a core and fewer of them can be faster (measured: BENCHMARKS.md)."""
    return load > cpus


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


# -- CUDA speed settings -------------------------------------------------------------------------

PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")
REDUCED_PRECISION_RESOLUTIONS = 4  # the reference's num_fp16_res for --cfg auto
CUDA_DEFAULT_PRECISION = "fp16"  # the reference's; bf16 is the alternative (wider range, fewer mantissa bits)
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")


@dataclass(frozen=True)
class CudaSettings:
    """How a run uses its device: the one place where the speed defaults are chosen.

    ``precision`` is the dtype of the ``num_fp16_res`` highest-resolution blocks of G and D
    (``fp32``: every block in float32; the networks' ``conv_clamp`` of 256 keeps fp16
    activations in range, as in the reference). ``tf32`` lets cuBLAS/cuDNN use TensorFloat-32
    for float32 matmuls and convolutions; ``cudnn_benchmark`` autotunes convolution
    algorithms; ``channels_last`` stores the reduced-precision blocks NHWC; ``compile`` runs
    G, D and the projector's step through ``torch.compile`` with ``compile_backend``.
    On the CPU all but ``compile`` are off (see ``resolve_cuda_settings``).
    """

    precision: str = "fp32"
    num_fp16_res: int = 0
    tf32: bool = False
    cudnn_benchmark: bool = False
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"

    def summary(self) -> str:
        return (f"precision {self.precision} (top {self.num_fp16_res} resolutions), tf32 {self.tf32}, "
                f"cudnn.benchmark {self.cudnn_benchmark}, channels_last {self.channels_last}, "
                f"compile {self.compile_backend if self.compile else False}")


def resolve_cuda_settings(
    device_type: str,
    precision: str = "auto",
    tf32: bool | None = None,
    channels_last: bool = False,
    compile: bool = False,
    compile_backend: str = "inductor",
    deterministic: bool = False,
) -> CudaSettings:
    """What a run on ``device_type`` ('cuda' or 'cpu') will use. Pure: imports no torch.

    CUDA defaults (``precision='auto'``, ``tf32=None``): fp16 in the 4 highest resolutions
    (the reference StyleGAN2-ADA's mixed precision), TF32 on, cuDNN autotuning on (off with
    ``deterministic``), channels_last off unless asked. ``precision='fp32'`` is exact float32
    everywhere: TF32 off too unless ``tf32=True`` asks for it.

    CPU: float32 everywhere, TF32/cuDNN flags untouched. An explicit fp16/bf16/TF32/
    channels_last request is dropped with a one-line ``UserWarning`` (CPU kernels for half
    types are slow or missing), so the recorded settings say what ran. ``compile`` applies on
    both devices. Raises ``ValueError`` for an unknown precision or backend.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    if compile_backend not in COMPILE_BACKENDS:
        raise ValueError(f"compile backend must be one of {', '.join(COMPILE_BACKENDS)}, got {compile_backend!r}")
    if device_type != "cuda":
        if precision in ("fp16", "bf16") or tf32 or channels_last:
            import warnings

            warnings.warn("--precision/--tf32/--channels-last only apply on CUDA; running fp32 on the CPU", stacklevel=2)
        return CudaSettings(compile=compile, compile_backend=compile_backend)
    chosen = CUDA_DEFAULT_PRECISION if precision == "auto" else precision
    return CudaSettings(
        precision=chosen,
        num_fp16_res=0 if chosen == "fp32" else REDUCED_PRECISION_RESOLUTIONS,
        tf32=(chosen != "fp32") if tf32 is None else tf32,
        cudnn_benchmark=not deterministic,
        channels_last=channels_last,
        compile=compile,
        compile_backend=compile_backend,
    )


def apply_backend_flags(settings: CudaSettings, device) -> None:
    """Set torch's process-wide TF32 and cuDNN flags for a CUDA ``device``; nothing on the CPU."""
    import torch

    if getattr(device, "type", device) != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = settings.tf32
    torch.backends.cudnn.allow_tf32 = settings.tf32
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark


def reduced_dtype(precision: str):
    """'fp16' -> torch.float16, 'bf16' -> torch.bfloat16, 'fp32' -> None (no reduced blocks)."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[precision]


def compiled(fn, backend: str = "inductor"):
    """``torch.compile(fn)`` with static shapes: a new batch size compiles once more rather than
    switching to symbolic shapes. The returned callable shares ``fn``'s parameters (nothing is
    copied); autograd through it supports first-order gradients only (torch.compile cannot
    double-backward, so R1 and path-length phases keep the eager modules)."""
    import torch

    return torch.compile(fn, backend=backend, dynamic=False)
