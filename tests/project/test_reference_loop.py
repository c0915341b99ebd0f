"""Batch-1 projection against a transcription of the reference projector's loop.

The oracle below follows NVlabs stylegan2-ada-pytorch ``projector.project`` statement by
statement (its own w statistics, schedule arithmetic, [1,1,H,W] regulariser loop, global
noise renormalisation, Adam over [w] + noise maps), with pixel MSE standing in for the
VGG16 features and the target's RNG in place of the global one.
"""

import numpy as np
import torch
import torch.nn.functional as F

from stylefa.project.config import ProjectConfig
from stylefa.project.perceptual.base import PixelMSE
from stylefa.project.projector import WStats, project_batch, target_seed

from .helpers import tiny_generator


def reference_project(G, target, num_steps, generator, w_avg_samples=1000):
    z_samples = np.random.RandomState(123).randn(w_avg_samples, G.z_dim)
    w_samples = G.mapping(torch.from_numpy(z_samples).float(), None)[:, :1, :].numpy().astype(np.float32)
    w_avg = np.mean(w_samples, axis=0, keepdims=True)
    w_std = (np.sum((w_samples - w_avg) ** 2) / w_avg_samples) ** 0.5

    names = list(G.synthesis.noise_shapes())
    noise_bufs = {name: torch.zeros(G.synthesis.noise_shapes()[name]) for name in names}
    w_opt = torch.tensor(w_avg, dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([w_opt] + list(noise_bufs.values()), betas=(0.9, 0.999), lr=0.1)
    for buf in noise_bufs.values():
        buf[:] = torch.randn(buf.shape, generator=generator)
        buf.requires_grad = True

    for step in range(num_steps):
        t = step / num_steps
        w_noise_scale = w_std * 0.05 * max(0.0, 1.0 - t / 0.75) ** 2
        lr_ramp = min(1.0, (1.0 - t) / 0.25)
        lr_ramp = 0.5 - 0.5 * np.cos(lr_ramp * np.pi)
        lr_ramp = lr_ramp * min(1.0, t / 0.05)
        for group in optimizer.param_groups:
            group["lr"] = 0.1 * lr_ramp
        w_noise = torch.randn(w_opt.shape[1:], generator=generator)[None] * w_noise_scale if w_noise_scale > 0 else 0
        ws = (w_opt + w_noise).repeat([1, G.num_ws, 1])
        synth = G.synthesis(ws, noise_mode="const", noise_override={k: v[None, None] for k, v in noise_bufs.items()})
        dist = (synth - target).square().mean()
        reg_loss = 0.0
        for v in noise_bufs.values():
            noise = v[None, None, :, :]
            while True:
                reg_loss += (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
                reg_loss += (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
                if noise.shape[2] <= 8:
                    break
                noise = F.avg_pool2d(noise, kernel_size=2)
        loss = dist + reg_loss * 1e5
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for buf in noise_bufs.values():
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
    return w_opt.detach()[0, 0], {k: v.detach() for k, v in noise_bufs.items()}, float(w_std)


def test_batch_one_matches_reference_loop():
    G = tiny_generator(resolution=16, w_dim=16, noise_strength=0.1)
    target = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(9)) * 2 - 1
    steps, seed = 40, 303
    generator = torch.Generator().manual_seed(target_seed(seed, "t0"))
    ref_w, ref_noise, ref_std = reference_project(G, target, steps, generator)

    z = np.random.RandomState(123).randn(1000, G.z_dim)
    w = G.mapping(torch.from_numpy(z).float(), None)[:, 0].double()
    stats = WStats(w.mean(0).float(), ref_std)
    result = project_batch(G, target, PixelMSE(), ProjectConfig(steps=steps, seed=seed), stats, ["t0"])
    # same arithmetic up to float rounding (measured: w 7e-7, noise maps identical)
    for name, ref in ref_noise.items():
        torch.testing.assert_close(result.noise[name][0, 0], ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.ws[0, 0], ref_w, atol=1e-4, rtol=0)
    assert (result.ws[0, 0] - stats.w_avg).abs().max() > 0.05  # it did move
