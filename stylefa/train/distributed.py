"""Data-parallel training across processes, the reference's way (no DistributedDataParallel).

Every rank holds full copies of G, D and G_ema. After each phase's backward pass the
gradients are flattened into one tensor, all-reduced and divided by the number of ranks,
so every rank applies the same Adam step. DDP wrappers do not fit the phase structure
(Gmain/Greg/Dmain/Dreg touch different graphs), which is also why the reference avoids them.

Sharding is *rank-strided*: every rank draws the same global batch (data indices, latents,
labels) from identically seeded generators and keeps rows ``rank::world_size``. With the
per-rank ``mean`` losses averaged over ranks this reproduces the single-process gradient of the
global batch exactly, including minibatch-stddev groups (the discriminator groups samples
``n % (N / group)``, which strided sharding maps onto the same sets) and the path-length mean
(all-reduced with autograd). Per-layer noise maps are drawn by the loss for the same reason;
only the augmentation pipe's parameters come from each rank's own generator.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch

from stylefa.runtime import resolve_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor that holds the global batch."""
        return tensor[self.rank :: self.world_size] if self.enabled else tensor

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def all_reduce_mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
            tensor.div_(self.world_size)
        return tensor

    def mean_with_grad(self, local_mean: torch.Tensor) -> torch.Tensor:
        """Mean over ranks of equally sized per-rank means, differentiable: the backward pass
        all-reduces the incoming gradients, so a term coupling all samples (the path-length
        mean) gets the same gradient as in a single process."""
        if not self.enabled:
            return local_mean
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(local_mean, op=torch.distributed.ReduceOp.SUM) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_gather_objects(self, obj) -> list:
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def init_distributed(device_request: str) -> DistContext:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and join the process group:
    NCCL on GPUs, gloo on CPU. Without those variables this is a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_request, local_rank)
    if world_size > 1 and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def average_gradients_(params: list[torch.nn.Parameter], ctx: DistContext) -> None:
    """Average gradients over ranks in one flat all-reduce and replace NaN/Inf like the
    reference (NaN -> 0, +-Inf -> +-1e5), so one bad sample cannot poison the weights."""
    params = [p for p in params if p.grad is not None and p.numel() > 0]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    ctx.all_reduce_mean_(flat)
    torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p.grad))


def broadcast_module_(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not ctx.enabled:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        torch.distributed.broadcast(tensor.data, src=0)


def average_float_buffers_(module: torch.nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (w_avg) over ranks. Their updates are linear in the
    per-rank batch means, so averaging after every step gives the global-batch value."""
    if not ctx.enabled:
        return
    for buf in module.buffers():
        if buf.is_floating_point():
            ctx.all_reduce_mean_(buf.data)


def warn_main(ctx: DistContext, message: str) -> None:
    if ctx.is_main:
        warnings.warn(message, stacklevel=2)


class GlobalBatchSampler:
    """Deterministic, resumable order of training items.

    Minibatch ``b`` holds positions ``b*batch .. (b+1)*batch-1`` of an endless sequence of
    epochs, each a fresh permutation seeded by ``(seed, epoch)``; this rank keeps positions
    ``rank::world_size`` of it. The position is just the minibatch counter, so resuming needs
    no sampler state beyond ``batch_idx`` and the result does not depend on the number of
    ranks or DataLoader workers.
    """

    def __init__(self, num_items: int, batch: int, seed: int, ctx: DistContext, start_batch: int = 0):
        if num_items < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.num_items = num_items
        self.batch = batch
        self.seed = seed
        self.ctx = ctx
        self.start_batch = start_batch
        self._epoch = -1
        self._perm = None

    def _permutation(self, epoch: int):
        import numpy as np

        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            self._epoch = epoch
        return self._perm

    def global_indices(self, batch_idx: int) -> list[int]:
        out = []
        for pos in range(batch_idx * self.batch, (batch_idx + 1) * self.batch):
            out.append(int(self._permutation(pos // self.num_items)[pos % self.num_items]))
        return out

    def rank_indices(self, batch_idx: int) -> list[int]:
        return self.global_indices(batch_idx)[self.ctx.rank :: self.ctx.world_size]

    def __iter__(self):
        batch_idx = self.start_batch
        while True:
            yield self.rank_indices(batch_idx)
            batch_idx += 1
