"""Behaviour of the generator and discriminator on tiny networks: truncation, noise modes,
noise overrides, architectures, minibatch std, reduced-precision fall-back, gradients."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stylefa.nets import (
    Discriminator,
    DiscriminatorConfig,
    EpilogueConfig,
    Generator,
    GeneratorConfig,
    MappingConfig,
    SynthesisConfig,
)
from stylefa.nets.discriminator import MinibatchStdLayer


def tiny_g(**synthesis) -> Generator:
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        z_dim=8, w_dim=8, img_resolution=16, img_channels=1, mapping=MappingConfig(num_layers=2),
        synthesis=SynthesisConfig(channel_base=64, channel_max=16, **synthesis),
    )
    G = Generator(cfg).eval()
    with torch.no_grad():  # non-zero noise strengths and w_avg so the tests can see them
        for name in G.synthesis.noise_layer_names():
            G.synthesis.get_submodule(name).noise_strength.fill_(0.5)
        G.mapping.w_avg.normal_()
    return G


def tiny_d(**kwargs) -> Discriminator:
    torch.manual_seed(1)
    cfg = DiscriminatorConfig(img_resolution=16, img_channels=1, channel_base=64, channel_max=16, **kwargs)
    return Discriminator(cfg).eval()


def test_shapes_and_attributes():
    G = tiny_g()
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (8, 0, 8, 6, 16, 1)
    assert G.synthesis.num_ws == 6 and G.mapping.w_avg.shape == (8,)
    z = torch.randn(3, 8)
    ws = G.mapping(z, None)
    assert ws.shape == (3, 6, 8)
    assert torch.equal(ws[:, 0], ws[:, 5])  # broadcast
    img = G(z, None)
    assert img.shape == (3, 1, 16, 16) and img.dtype == torch.float32
    assert tiny_d()(img, None).shape == (3, 1)


def test_truncation_formula_and_cutoff():
    G = tiny_g()
    z = torch.randn(4, 8)
    with torch.no_grad():
        ws = G.mapping(z, None)
        trunc = G.mapping(z, None, truncation_psi=0.6)
        cut = G.mapping(z, None, truncation_psi=0.6, truncation_cutoff=2)
    w_avg = G.mapping.w_avg
    torch.testing.assert_close(trunc, w_avg + 0.6 * (ws - w_avg))
    torch.testing.assert_close(cut[:, :2], trunc[:, :2])
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=0.0), w_avg.expand(4, 6, 8))


def test_noise_layer_names_and_shapes():
    G = tiny_g()
    names = ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"]
    assert G.synthesis.noise_layer_names() == names
    assert G.synthesis.noise_shapes() == {n: (int(n[1:].split(".")[0]),) * 2 for n in names}
    for name, buf in G.synthesis.noise_buffers().items():
        assert tuple(buf.shape) == G.synthesis.noise_shapes()[name]
        assert f"synthesis.{name}.noise_const" in G.state_dict()


def test_noise_modes():
    G = tiny_g()
    ws = G.mapping(torch.randn(2, 8), None).detach()
    with torch.no_grad():
        const_a, const_b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
        rand_a, rand_b = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
        none = G.synthesis(ws, noise_mode="none")
        zeros = {n: torch.zeros(1, 1, *s) for n, s in G.synthesis.noise_shapes().items()}
        zero_override = G.synthesis(ws, noise_mode="random", noise_override=zeros)
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(rand_a, rand_b)
    assert not torch.allclose(const_a, none)
    torch.testing.assert_close(zero_override, none)


def test_noise_override_with_stored_buffers_equals_const_mode():
    G = tiny_g()
    ws = G.mapping(torch.randn(3, 8), None).detach()
    with torch.no_grad():
        const = G.synthesis(ws, noise_mode="const")
        batched = {n: b.expand(3, 1, *b.shape) for n, b in G.synthesis.noise_buffers().items()}
        via_override = G.synthesis(ws, noise_mode="none", noise_override=batched)
        # A per-sample override changes only the sample it was changed for.
        changed = dict(batched)
        changed["b8.conv0"] = batched["b8.conv0"].clone()
        changed["b8.conv0"][1] += 1.0
        partial = G.synthesis(ws, noise_mode="const", noise_override=changed)
    torch.testing.assert_close(via_override, const)
    torch.testing.assert_close(partial[[0, 2]], const[[0, 2]])
    assert not torch.allclose(partial[1], const[1])


def test_noise_is_scaled_by_strength():
    G = tiny_g()
    ws = G.mapping(torch.randn(2, 8), None).detach()
    with torch.no_grad():
        for name in G.synthesis.noise_layer_names():
            G.synthesis.get_submodule(name).noise_strength.zero_()
        for mode in ("const", "random"):
            torch.testing.assert_close(G.synthesis(ws, noise_mode=mode), G.synthesis(ws, noise_mode="none"))


def test_noise_override_gradients_reach_the_noise_maps():
    G = tiny_g()
    ws = G.mapping(torch.randn(2, 8), None).detach()
    noise = {n: torch.randn(2, 1, *s, requires_grad=True) for n, s in G.synthesis.noise_shapes().items()}
    G.synthesis(ws, noise_override=noise).square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in noise.values())


def test_bad_inputs_raise_clear_errors():
    G = tiny_g()
    ws = torch.zeros(1, 6, 8)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")
    with pytest.raises(ValueError, match="unknown layer"):
        G.synthesis(ws, noise_override={"b4.conv0": torch.zeros(1, 1, 4, 4)})
    with pytest.raises(ValueError, match="shape"):
        G.synthesis(ws, noise_override={"b8.conv0": torch.zeros(1, 1, 4, 4)})
    with pytest.raises(ValueError, match="z must have shape"):
        G.mapping(torch.zeros(1, 7), None)
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match="img must have shape"):
        tiny_d()(torch.zeros(1, 1, 8, 8), None)


def test_w_avg_tracked_only_when_asked():
    G = tiny_g()
    before = G.mapping.w_avg.clone()
    G(torch.randn(2, 8), None)
    assert torch.equal(G.mapping.w_avg, before)
    G(torch.randn(2, 8), None, update_emas=True)
    assert not torch.equal(G.mapping.w_avg, before)


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_generator_architectures(architecture):
    G = tiny_g(architecture=architecture)
    keys = G.state_dict().keys()
    assert ("synthesis.b8.torgb.weight" in keys) == (architecture == "skip")
    assert "synthesis.b16.torgb.weight" in keys
    assert ("synthesis.b8.skip.weight" in keys) == (architecture == "resnet")
    img = G(torch.randn(2, 8), None)
    assert img.shape == (2, 1, 16, 16) and torch.isfinite(img).all()


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_discriminator_architectures(architecture):
    D = tiny_d(architecture=architecture)
    keys = D.state_dict().keys()
    assert ("b8.fromrgb.weight" in keys) == (architecture == "skip")
    assert ("b8.skip.weight" in keys) == (architecture == "resnet")
    assert D(torch.randn(4, 1, 16, 16), None).shape == (4, 1)


def test_conditional_networks():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, synthesis=SynthesisConfig(64, 16)))
    D = Discriminator(DiscriminatorConfig(c_dim=3, img_resolution=8, channel_base=64, channel_max=16))
    c = torch.eye(3)[[0, 1, 2, 0]]
    img = G(torch.randn(4, 8), c)
    assert D(img, c).shape == (4, 1)
    assert "mapping.embed.weight" in D.state_dict() and D.b4.out.weight.shape == (D.cmap_dim, 16)
    # The label changes the output for the same z.
    z = torch.randn(1, 8).repeat(2, 1)
    out = G(z, torch.eye(3)[:2])
    assert not torch.allclose(out[0], out[1])


def test_minibatch_std_matches_numpy():
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    y = MinibatchStdLayer(group_size=3, num_channels=2)(x).numpy()
    xn = x.numpy()
    assert y.shape == (6, 6, 3, 3)
    np.testing.assert_array_equal(y[:, :4], xn)
    for sample in range(6):
        group = xn[sample % 2 :: 2]  # reference grouping: samples i, i+n, i+2n (n = N / G)
        for f in range(2):
            chans = group[:, 2 * f : 2 * f + 2]
            want = np.sqrt(chans.var(axis=0) + 1e-8).mean()
            np.testing.assert_allclose(y[sample, 4 + f], want, rtol=1e-12)


def test_freeze_layers_turns_first_layers_into_buffers():
    D = tiny_d(freeze_layers=2)
    params = dict(D.named_parameters())
    assert "b16.fromrgb.weight" not in params and "b16.conv0.weight" not in params
    assert "b16.conv1.weight" in params
    assert "b16.fromrgb.weight" in D.state_dict()


def test_reduced_precision_falls_back_to_fp32_on_cpu():
    G_ref = tiny_g()
    G16 = Generator(dataclasses.replace(G_ref.config, synthesis=dataclasses.replace(G_ref.config.synthesis, num_fp16_res=2)))
    G16.load_state_dict(G_ref.state_dict())
    G16.eval()
    assert [b.use_fp16 for b in G16.synthesis.blocks()] == [False, True, True]
    G16.synthesis.set_reduced_precision(torch.bfloat16)
    z = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(G16(z, None), G_ref(z, None), rtol=0, atol=0)
    D16 = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=64, channel_max=16, num_fp16_res=2))
    D32 = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=64, channel_max=16))
    D16.load_state_dict(D32.state_dict())
    img = torch.randn(4, 1, 16, 16)
    torch.testing.assert_close(D16(img, None), D32(img, None), rtol=0, atol=0)


def test_training_step_gradients_flow_through_g_and_d():
    G, D = tiny_g(conv_clamp=256), tiny_d(conv_clamp=256, epilogue=EpilogueConfig(mbstd_group_size=2))
    G.train()
    D.train()
    img = G(torch.randn(4, 8), None, noise_mode="random")
    loss = torch.nn.functional.softplus(-D(img, None)).mean()
    loss.backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    moving = [n for n, p in G.named_parameters() if p.grad.abs().sum() > 0]
    assert len(moving) == len(list(G.parameters()))


def test_config_round_trip():
    G = tiny_g(architecture="resnet")
    assert GeneratorConfig.from_dict(G.config.to_dict()) == G.config
    assert Generator(GeneratorConfig.from_dict(G.config.to_dict())).state_dict().keys() == G.state_dict().keys()
