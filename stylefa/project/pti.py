"""Pivotal tuning (Roich et al. 2021, "Pivotal Tuning for Latent-based Editing of Real
Images"): after projection, fine-tune a copy of the generator so that the found latent
(the pivot, with its noise maps held fixed) renders the target more exactly.

Loss = perceptual distance + ``l2_weight`` x pixel MSE, Adam with lr 3e-4, as in the
paper; each target gets its own copy of G, so targets are tuned one at a time.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from stylefa.project.projector import apply_mask, masked_mse


def pivotal_tuning(G, ws: torch.Tensor, noise: dict[str, torch.Tensor], target: torch.Tensor, distance,
                   steps: int, lr: float = 3e-4, l2_weight: float = 1.0,
                   mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """One target: ws [1, num_ws, w_dim], noise {layer: [1,1,H,W]}, target [1, C, R, R].

    Returns the tuned generator's rendering [1, C, R, R] and the loss curves.
    """
    tuned = copy.deepcopy(G).train(False)
    tuned.requires_grad_(False)
    params = [p for p in tuned.synthesis.parameters() if p.is_floating_point()]
    for param in params:
        param.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    target_features = distance.target_features(apply_mask(target, mask))
    curves = {name: np.zeros(steps) for name in ("loss", "distance", "mse")}
    ws = ws.detach()
    noise = {name: value.detach() for name, value in noise.items()}
    for step in range(steps):
        synth = tuned.synthesis(ws, noise_mode="const", noise_override=noise, fused_modconv=False)
        dist = distance.distance(apply_mask(synth, mask), target_features)
        mse = masked_mse(synth, target, mask)
        loss = (dist + l2_weight * mse).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        curves["loss"][step] = float(loss.detach())
        curves["distance"][step], curves["mse"][step] = float(dist.detach().sum()), float(mse.detach().sum())
    with torch.no_grad():
        image = tuned.synthesis(ws, noise_mode="const", noise_override=noise)
    return image, curves
