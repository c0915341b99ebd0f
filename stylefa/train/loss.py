"""StyleGAN2 loss (Karras et al. 2020) with lazy regularisation, as in StyleGAN2-ADA.

- G: non-saturating logistic loss ``softplus(-D(G(z)))``.
- D: logistic loss ``softplus(D(G(z))) + softplus(-D(x))``.
- R1 on reals: ``gamma / 2 * ||grad_x D(x)||^2`` (gradient w.r.t. the image *before*
  augmentation, the augmentation being part of D as in ADA).
- Path-length regularisation on ``pl_batch = batch // pl_batch_shrink`` samples:
  ``a = sqrt(mean_layers(sum_w (J^T y)^2))`` with ``y ~ N(0, I) / sqrt(H * W)``;
  penalty ``(a - pl_mean)^2`` where ``pl_mean`` is an EMA (decay 0.01) of mean(a),
  taken *with* gradient through the current batch's contribution, like the reference.
- Style mixing: with probability p, layers from a random cutoff in [1, num_ws) on take
  the w of a second latent.

Phases follow the reference: 'Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth'. The loop
multiplies each phase's loss by ``gain`` (the phase's interval) so that a penalty applied
every k-th minibatch has the same expected strength as one applied every minibatch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from stylefa.train.distributed import DistContext
from stylefa.train.options import LossConfig

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


@dataclass
class PhaseFlags:
    g_main: bool
    g_pl: bool
    d_main: bool
    d_r1: bool


def phase_flags(phase: str, config: LossConfig) -> PhaseFlags:
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}")
    return PhaseFlags(
        g_main=phase in ("Gmain", "Gboth"),
        g_pl=phase in ("Greg", "Gboth") and config.pl_weight != 0,
        d_main=phase in ("Dmain", "Dboth"),
        d_r1=phase in ("Dreg", "Dboth") and config.r1_gamma != 0,
    )


@dataclass(frozen=True)
class CompiledNetworks:
    """torch.compile'd callables sharing G's and D's parameters. torch.compile cannot
    double-backward, so only the first-order phases (Gmain, Dmain) use them; the R1 and
    path-length phases run the eager modules (same parameters, same maths)."""

    mapping: Callable
    synthesis: Callable
    D: Callable


class StyleGAN2Loss:
    """Accumulates the gradients of one phase for one (per-rank) minibatch.

    ``rng`` drives style mixing and the path-length noise; it must be seeded identically on
    every rank, because random tensors are drawn for the *global* batch and sharded (see
    ``stylefa.train.distributed``). ``stats`` receives ``(name, tensor)`` pairs.
    """

    def __init__(
        self,
        G: torch.nn.Module,
        D: torch.nn.Module,
        config: LossConfig,
        augment_pipe: Callable[[torch.Tensor], torch.Tensor] | None = None,
        rng: torch.Generator | None = None,
        dist: DistContext | None = None,
        noise_mode: str = "random",
        compiled: CompiledNetworks | None = None,
    ):
        self.G = G
        self.D = D
        self.config = config
        self.augment_pipe = augment_pipe
        self.dist = dist or DistContext()
        device = next(G.parameters()).device
        self.rng = rng if rng is not None else torch.Generator(device=device).manual_seed(0)
        self.pl_mean = torch.zeros([], device=device)
        self.noise_mode = noise_mode
        self.compiled = compiled

    # -- random draws for the global batch, sharded to this rank --------------------------
    def _global_normal(self, local_shape, device, dtype=torch.float32) -> torch.Tensor:
        """N(0, 1) of this rank's ``local_shape``, cut from a draw for the global batch."""
        shape = (local_shape[0] * self.dist.world_size, *local_shape[1:])
        draw = torch.randn(shape, generator=self.rng, device=self.rng.device)
        return self.dist.shard(draw).to(device=device, dtype=dtype)

    def _global_normal_like(self, like: torch.Tensor) -> torch.Tensor:
        return self._global_normal(tuple(like.shape), like.device, like.dtype)

    def _layer_noise(self, batch: int, device) -> dict[str, torch.Tensor] | None:
        """Per-layer noise maps drawn here rather than inside the synthesis network, so that
        they too are sharded from global-batch draws (identical maths across rank counts)."""
        synthesis = self.G.synthesis
        if self.noise_mode != "random" or not hasattr(synthesis, "noise_shapes"):
            return None
        return {
            name: self._global_normal((batch, 1, h, w), device)
            for name, (h, w) in synthesis.noise_shapes().items()
        }

    # -- network runs -----------------------------------------------------------------------
    def run_G(self, z: torch.Tensor, c: torch.Tensor, fast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """fast: use the compiled networks if there are any (first-order phases only)."""
        use = self.compiled if fast and self.compiled is not None else None
        mapping = use.mapping if use else self.G.mapping
        synthesis = use.synthesis if use else self.G.synthesis
        ws = mapping(z, c, update_emas=True)
        if self.config.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            # Same draw order as the reference: cutoff first, then the coin.
            cutoff = int(torch.randint(1, num_ws, (), generator=self.rng, device=self.rng.device))
            coin = float(torch.rand((), generator=self.rng, device=self.rng.device))
            if coin >= self.config.style_mixing_prob:
                cutoff = num_ws
            mix_z = self._global_normal_like(z)
            if cutoff < num_ws:
                ws_mix = mapping(mix_z, c, update_emas=False)
                ws = torch.cat([ws[:, :cutoff], ws_mix[:, cutoff:]], dim=1)
        noise = self._layer_noise(ws.shape[0], ws.device)
        if noise is None:
            img = synthesis(ws, noise_mode=self.noise_mode)
        else:
            img = synthesis(ws, noise_mode=self.noise_mode, noise_override=noise)
        return img, ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, fast: bool = False) -> torch.Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        D = self.compiled.D if fast and self.compiled is not None else self.D
        return D(img, c)

    # -- the phases -------------------------------------------------------------------------
    def accumulate_gradients(
        self,
        phase: str,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        gen_z: torch.Tensor,
        gen_c: torch.Tensor,
        gain: float,
        stats: Callable[[str, torch.Tensor], None] | None = None,
    ) -> None:
        report = stats or (lambda name, value: None)
        flags = phase_flags(phase, self.config)

        if flags.g_main:
            gen_img, _ = self.run_G(gen_z, gen_c, fast=True)
            gen_logits = self.run_D(gen_img, gen_c, fast=True)
            report("Loss/scores/fake", gen_logits)
            report("Loss/signs/fake", gen_logits.sign())
            loss_g = F.softplus(-gen_logits)
            report("Loss/G/loss", loss_g)
            loss_g.mean().mul(gain).backward()

        if flags.g_pl:
            pl_batch = max(gen_z.shape[0] // self.config.pl_batch_shrink, 1)
            gen_img, gen_ws = self.run_G(gen_z[:pl_batch], gen_c[:pl_batch])
            pl_noise = self._global_normal_like(gen_img)
            pl_noise = pl_noise / math.sqrt(gen_img.shape[2] * gen_img.shape[3])
            (pl_grads,) = torch.autograd.grad(
                outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True
            )
            pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
            batch_mean = self.dist.mean_with_grad(pl_lengths.mean())
            pl_mean = self.pl_mean.to(batch_mean.dtype).lerp(batch_mean, self.config.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            pl_penalty = (pl_lengths - pl_mean).square()
            report("Loss/pl_penalty", pl_penalty)
            loss_pl = pl_penalty * self.config.pl_weight
            report("Loss/G/reg", loss_pl)
            loss_pl.mean().mul(gain).backward()

        loss_d_gen = None
        if flags.d_main:
            with torch.no_grad():
                gen_img, _ = self.run_G(gen_z, gen_c, fast=True)
            gen_logits = self.run_D(gen_img, gen_c, fast=True)
            report("Loss/scores/fake", gen_logits)
            report("Loss/signs/fake", gen_logits.sign())
            loss_d_gen = F.softplus(gen_logits)
            loss_d_gen.mean().mul(gain).backward()

        if flags.d_main or flags.d_r1:
            real = real_img.detach().requires_grad_(flags.d_r1)
            real_logits = self.run_D(real, real_c, fast=not flags.d_r1)
            report("Loss/scores/real", real_logits)
            report("Loss/signs/real", real_logits.sign())
            total = real_logits.new_zeros(real_logits.shape)
            if flags.d_main:
                loss_d_real = F.softplus(-real_logits)
                report("Loss/D/loss", loss_d_gen.detach() + loss_d_real.detach())
                total = total + loss_d_real
            if flags.d_r1:
                (r1_grads,) = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real], create_graph=True)
                r1_penalty = r1_grads.square().sum(dim=[1, 2, 3])
                loss_r1 = r1_penalty * (self.config.r1_gamma / 2)
                report("Loss/r1_penalty", r1_penalty)
                report("Loss/D/reg", loss_r1)
                total = total + loss_r1.view(-1, 1)
            total.mean().mul(gain).backward()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.pl_mean.copy_(state["pl_mean"].to(self.pl_mean.device))
