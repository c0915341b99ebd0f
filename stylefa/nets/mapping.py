"""Mapping network: z (and optional class label c) -> intermediate latent w."""

from __future__ import annotations

import torch

from stylefa.nets import ops
from stylefa.nets.config import MappingConfig
from stylefa.nets.layers import FullyConnectedLayer


class MappingNetwork(torch.nn.Module):
    """z normalised by its second moment, label embedded and normalised, then an MLP.

    ``num_ws=None`` returns [N, w_dim] (the discriminator's label mapping); otherwise w is
    broadcast to [N, num_ws, w_dim]. ``w_avg`` (only when num_ws is set and w_avg_beta is
    not None) is the running mean used for truncation.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, config: MappingConfig):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = config.num_layers
        self.w_avg_beta = config.w_avg_beta

        embed_features = config.embed_features if config.embed_features is not None else w_dim
        if c_dim == 0:
            embed_features = 0
        layer_features = config.layer_features if config.layer_features is not None else w_dim
        features = [z_dim + embed_features] + [layer_features] * (config.num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(config.num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=config.activation, lr_multiplier=config.lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and self.w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None, update_emas: bool = False,
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = ops.normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must have shape [N, {self.c_dim}], got {None if c is None else tuple(c.shape)}")
            y = ops.normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.num_ws is not None and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.num_ws is None or self.w_avg_beta is None:
                raise ValueError("truncation needs a tracked w_avg (w_avg_beta is None or ws are not broadcast)")
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                # Only the coarse layers are pulled toward the mean (style-mixing style cutoff).
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x
