"""Noise-map regularisation and renormalisation, per target.

The projector lets the per-layer noise maps vary, which could smuggle image content into
them; the regulariser penalises spatial autocorrelation at every scale (Karras et al. 2020):
for each map, the squared mean of its product with itself rolled by one pixel in x and in
y, repeated after 2x2 average pooling until the map is 8x8. Every reduction here is over
one target's own map, so a batch of targets stays independent (a batch-wide mean would
couple their trajectories).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

SMALLEST_SCALE = 8


def noise_regularization(noise_maps: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum over maps and scales of autocorrelation^2; maps are [B, 1, H, W] -> tensor [B]."""
    total = None
    for noise in noise_maps:
        x = noise
        while True:
            for dim in (3, 2):
                term = (x * torch.roll(x, shifts=1, dims=dim)).mean(dim=(1, 2, 3)).square()
                total = term if total is None else total + term
            if x.shape[2] <= SMALLEST_SCALE:
                break
            x = F.avg_pool2d(x, kernel_size=2)
    if total is None:
        raise ValueError("no noise maps to regularise")
    return total


@torch.no_grad()
def renormalize_noise_(noise_maps: Iterable[torch.Tensor]) -> None:
    """In place: each target's map to zero mean and unit mean square."""
    for noise in noise_maps:
        noise -= noise.mean(dim=(1, 2, 3), keepdim=True)
        noise *= noise.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
