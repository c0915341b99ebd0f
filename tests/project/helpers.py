"""A tiny real stylefa generator for fast projection tests."""

import torch

from stylefa.nets import Generator, GeneratorConfig, MappingConfig, SynthesisConfig


def tiny_generator(resolution=16, w_dim=16, seed=0, noise_strength=0.05, c_dim=0):
    torch.manual_seed(seed)
    config = GeneratorConfig(
        z_dim=w_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution, img_channels=1,
        mapping=MappingConfig(num_layers=2),
        synthesis=SynthesisConfig(channel_base=16 * resolution, channel_max=16),
    )
    G = Generator(config).eval().requires_grad_(False)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(noise_strength)  # reference initialises these to 0: noise would be inert
    return G
