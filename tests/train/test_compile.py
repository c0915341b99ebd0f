"""torch.compile'd G and D give the eager networks' losses and gradients.

The equality tests use the ``aot_eager`` backend: it runs the same Dynamo graph capture and
AOTAutograd forward/backward split as ``inductor`` (where graph breaks, guards, buffer
mutation and the custom autograd functions could go wrong) without generating C++ code,
which takes minutes per network on the 2-core CI machine. One slow test checks inductor.
"""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from stylefa.nets import Discriminator, Generator
from stylefa.nets.config import ArchitectureSpec, build_configs
from stylefa.runtime import compiled
from stylefa.train.loss import CompiledNetworks, StyleGAN2Loss
from stylefa.train.options import LossConfig

# aot_eager replays the same aten ops; only reduction order may differ.
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def _tiny(res: int = 8, seed: int = 0):
    g_cfg, d_cfg = build_configs(ArchitectureSpec(512, 32, mbstd_group_size=4), res)
    torch.manual_seed(seed)
    return Generator(g_cfg).train().requires_grad_(False), Discriminator(d_cfg).train().requires_grad_(False)


def _phase_grads(G, D, phase: str, backend: str | None):
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    nets = None
    if backend is not None:
        nets = CompiledNetworks(compiled(G.mapping, backend), compiled(G.synthesis, backend), compiled(D, backend))
    loss = StyleGAN2Loss(G, D, LossConfig(r1_gamma=1.0), rng=torch.Generator().manual_seed(5), compiled=nets)
    gen = torch.Generator().manual_seed(1)
    real = torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1
    z = torch.randn(4, 512, generator=gen)
    c = torch.zeros(4, 0)
    module = G if phase.startswith("G") else D
    module.requires_grad_(True)
    loss.accumulate_gradients(phase, real, c, z, c, gain=1.0)
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}, G.mapping.w_avg


@pytest.mark.slow  # ~30-60 s of graph capture on 2 cores
@pytest.mark.parametrize("phase", ["Gmain", "Greg", "Dmain", "Dreg"])
def test_compiled_loss_phases_equal_eager(phase):
    G, D = _tiny()
    eager, w_avg_eager = _phase_grads(G, D, phase, None)
    fast, w_avg_fast = _phase_grads(G, D, phase, "aot_eager")
    assert eager and set(fast) == set(eager)
    for name in eager:
        torch.testing.assert_close(fast[name], eager[name], **TOLERANCE, msg=name)
    torch.testing.assert_close(w_avg_fast, w_avg_eager, **TOLERANCE)  # the mapping's in-graph buffer update


def _assert_compiled_forwards_equal_eager(backend: str, tolerance: dict) -> None:
    """G and D forward through ``torch.compile(backend)`` equal their eager outputs."""
    G, D = _tiny()
    G.eval()
    z = torch.randn(3, 512, generator=torch.Generator().manual_seed(2))
    c = torch.zeros(3, 0)
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        assert img.abs().max() > 0.1  # not a degenerate comparison
        torch.testing.assert_close(compiled(G, backend)(z, c, noise_mode="const"), img, **tolerance)
        torch.testing.assert_close(compiled(D, backend)(img, c), D(img, c), **tolerance)


def test_compiled_generator_and_discriminator_forward_equal_eager():
    _assert_compiled_forwards_equal_eager("aot_eager", TOLERANCE)


# Inductor generates different (fused, reordered) float32 kernels: rounding-level differences.
INDUCTOR_TOLERANCE = dict(rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # inductor compiles C++ kernels: minutes on 2 cores
@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="inductor needs a C++ compiler (gcc)")
def test_inductor_generator_and_discriminator_equal_eager():
    _assert_compiled_forwards_equal_eager("inductor", INDUCTOR_TOLERANCE)
