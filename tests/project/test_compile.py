"""A torch.compile'd projection step equals the eager one (aot_eager backend, see
tests/train/test_compile.py for why; the inductor path is checked on GPU by
benchmarks/gpu_check.py and for G/D in a slow CPU test)."""

import torch

from stylefa.project.config import ProjectConfig
from stylefa.project.perceptual.base import PixelMSE
from stylefa.project.projector import compute_w_stats, project_batch

from .helpers import tiny_generator


def test_compiled_projection_steps_equal_eager():
    G = tiny_generator(resolution=8, w_dim=16, noise_strength=0.1)
    stats = compute_w_stats(G, 200)
    targets = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    config = ProjectConfig(steps=3, w_avg_samples=200, mse_weight=0.5)
    eager = project_batch(G, targets, PixelMSE(), config, stats, ["a", "b"])
    fast = project_batch(G, targets, PixelMSE(), config, stats, ["a", "b"], compile_backend="aot_eager")
    assert (eager.ws - stats.w_avg).abs().max() > 1e-3  # the steps moved w: not a trivial comparison
    torch.testing.assert_close(fast.ws, eager.ws, rtol=1e-5, atol=1e-6)
    for name in eager.noise:
        torch.testing.assert_close(fast.noise[name], eager.noise[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.images, eager.images, rtol=1e-5, atol=1e-6)
    for column in ("loss", "distance", "noise_reg", "mse"):
        torch.testing.assert_close(torch.from_numpy(fast.curves[column]), torch.from_numpy(eager.curves[column]),
                                   rtol=1e-5, atol=1e-7)
