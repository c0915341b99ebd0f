"""Shift-tolerant LPIPS (Ghildyal & Liu 2022, "vST0.0" VGG16): the LPIPS formula on the
anti-aliased VGG16 trunk, with backbone and heads from one weight file."""

from __future__ import annotations

import torch

from stylefa.project.perceptual.base import NetworkRecord
from stylefa.project.perceptual.lpips import LPIPS_SCALE, LPIPS_SHIFT, LPIPS, load_lpips_heads
from stylefa.project.perceptual.vgg16 import VGG16Trunk


def shift_tolerant_lpips(state: dict[str, torch.Tensor], record: NetworkRecord) -> LPIPS:
    """Build ST-LPIPS-VGG16 from a ``vgg_shift_tolerant.pth`` state dict (raises KeyError)."""
    for key, expected in (("scaling_layer.shift", LPIPS_SHIFT), ("scaling_layer.scale", LPIPS_SCALE)):
        if key in state and not torch.allclose(state[key].flatten().float(), torch.tensor(expected), atol=1e-6):
            raise KeyError(f"{key} differs from the LPIPS constants")
    blur = torch.tensor([1.0, 2.0, 1.0])
    blur = blur[:, None] * blur[None, :] / 16.0
    for key, value in state.items():
        # The file stores the fixed blur kernels too; they must be the ones we hard-code.
        if key.endswith(".filt") and not torch.allclose(value.float(), blur.expand_as(value), atol=1e-7):
            raise KeyError(f"{key} is not the [1,2,1] blur kernel")
    trunk = VGG16Trunk(shift_tolerant=True)
    trunk.load_stlpips(state)
    return LPIPS(trunk, load_lpips_heads(state), record)
