"""The projector on a tiny real generator: recovery, batching invariance, masking."""

import numpy as np
import pytest
import torch

from stylefa.project.config import ProjectConfig
from stylefa.project.outputs import ssim_fa
from stylefa.project.perceptual.base import PixelMSE
from stylefa.project.projector import apply_mask, compute_w_stats, project_batch
from stylefa.project.schedules import learning_rate

from .helpers import tiny_generator


@pytest.fixture(scope="module")
def G():
    return tiny_generator(resolution=16, w_dim=16, noise_strength=0.0)


@pytest.fixture(scope="module")
def stats(G):
    return compute_w_stats(G, 1000)


def test_w_stats_match_direct_numpy_estimate(G):
    stats = compute_w_stats(G, 500, seed=7)
    z = np.random.RandomState(7).randn(500, G.z_dim).astype(np.float32)
    w = G.mapping(torch.from_numpy(z), None)[:, 0].numpy().astype(np.float64)
    np.testing.assert_allclose(stats.w_avg.numpy(), w.mean(0), rtol=1e-5, atol=1e-6)
    assert stats.w_std == pytest.approx(np.sqrt(((w - w.mean(0)) ** 2).sum() / 500), rel=1e-6)


def test_projecting_a_generated_image_recovers_its_w(G, stats):
    torch.manual_seed(5)
    # half way between w_avg and a random w: inside the basin a 100-step run can reach
    w_true = stats.w_avg.lerp(G.mapping(torch.randn(1, G.z_dim), None), 0.5)
    target = G.synthesis(w_true)
    config = ProjectConfig(steps=100, w_avg_samples=1000)
    result = project_batch(G, target, PixelMSE(), config, stats, ["t0"])
    w_error = float((result.ws[0, 0] - w_true[0, 0]).norm()) / stats.w_std
    start_error = float((stats.w_avg - w_true[0, 0]).norm()) / stats.w_std
    fa = lambda x: ((x[0, 0] + 1) / 2).numpy()
    assert w_error < 0.05 < start_error
    assert ssim_fa(fa(target), fa(result.images)) > 0.99
    # the loss curve records the schedule the optimiser actually used
    np.testing.assert_allclose(result.curves["lr"], [learning_rate(s, 100, 0.1, 0.25, 0.05) for s in range(100)])
    assert result.ws.shape == (1, G.num_ws, G.w_dim)
    assert torch.all(result.ws[0] == result.ws[0, :1])  # one w broadcast to all layers


@pytest.mark.parametrize("space,init", [("w", "w-avg"), ("w+", "random-z")])
def test_batch_of_four_equals_four_single_runs(space, init, stats):
    G = tiny_generator(resolution=16, w_dim=16, noise_strength=0.1)
    gen = torch.Generator().manual_seed(3)
    targets = (torch.rand(4, 1, 16, 16, generator=gen) * 2 - 1)
    ids = [f"t{i}" for i in range(4)]
    config = ProjectConfig(steps=15, w_avg_samples=1000, space=space, init=init, mse_weight=0.5)
    batched = project_batch(G, targets, PixelMSE(), config, stats, ids)
    # Batched and single convolutions round differently (~1e-7); Adam turns an element whose
    # gradient is near zero into a +-lr step, so allow a few thousandths (w elements are ~1).
    for i in range(4):
        single = project_batch(G, targets[i : i + 1], PixelMSE(), config, stats, ids[i : i + 1])
        torch.testing.assert_close(batched.ws[i], single.ws[0], atol=1e-2, rtol=0)
        assert (batched.ws[i] - single.ws[0]).abs().mean() < 1e-3
        for name in single.noise:
            torch.testing.assert_close(batched.noise[name][i], single.noise[name][0], atol=1e-3, rtol=0)
        np.testing.assert_allclose(batched.curves["loss"][:, i], single.curves["loss"][:, 0], rtol=1e-3)
    # targets differ, so their latents must too (guards against a shared latent)
    assert (batched.ws[0] - batched.ws[1]).abs().max() > 0.1


def test_masked_loss_ignores_unknown_pixels():
    gen = torch.Generator().manual_seed(0)
    synth = torch.rand(2, 1, 8, 8, generator=gen, requires_grad=True)
    target = torch.rand(2, 1, 8, 8, generator=gen)
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, 2:6, 1:7] = True
    distance = PixelMSE()
    dist = distance.distance(apply_mask(synth, mask), distance.target_features(apply_mask(target, mask)))
    dist.sum().backward()
    assert torch.all(synth.grad[~mask] == 0) and torch.all(synth.grad[mask] != 0)


def test_masked_projection_fits_known_pixels_only(G, stats):
    torch.manual_seed(5)
    w_true = stats.w_avg.lerp(G.mapping(torch.randn(1, G.z_dim), None), 0.5)
    target = G.synthesis(w_true)
    corrupted = target.clone()
    mask = torch.ones_like(target, dtype=torch.bool)
    mask[:, :, 4:10, 4:10] = False
    corrupted[~mask] = 1.0  # a bright "lesion" the projection must not reproduce
    config = ProjectConfig(steps=100, w_avg_samples=1000)
    result = project_batch(G, corrupted, PixelMSE(), config, stats, ["t0"], masks=mask)
    hole_error = (result.images - target)[~mask].abs().mean()
    lesion_error = (result.images - corrupted)[~mask].abs().mean()
    assert hole_error < 0.1 * lesion_error


def test_render_at_keeps_part_way_images_and_the_last_equals_the_result(G, stats):
    target = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    config = ProjectConfig(steps=12, w_avg_samples=1000)
    result = project_batch(G, target, PixelMSE(), config, stats, ["a", "b"], render_at=(3, 12))
    assert sorted(result.renders) == [3, 12]
    torch.testing.assert_close(result.renders[12], result.images)
    # part way through, the image is farther from the target than at the end (it is an optimisation)
    err = lambda x: float(((x - target) ** 2).mean())
    assert err(result.renders[3]) > err(result.images)
    # what the part-way render shows is the projection after 3 steps of this same schedule
    plain = project_batch(G, target, PixelMSE(), config, stats, ["a", "b"])
    torch.testing.assert_close(plain.images, result.images)
