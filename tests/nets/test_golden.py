"""Golden test: our networks loaded with reference weights reproduce the reference outputs.

The tensors in ../shared/reference were produced by the original StyleGAN2-ADA PyTorch
code on the CPU in float32; this is the definition of "equal to the reference".
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from stylefa.nets import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

TOLERANCE = 1e-4
CASES = ["skip32", "cond16"]


def _configs(raw: dict) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """The reference's constructor kwargs -> our typed configs."""
    g = dict(raw["G"])
    mapping, synthesis = g.pop("mapping_kwargs", {}), g.pop("synthesis_kwargs", {})
    g_cfg = GeneratorConfig.from_dict({**g, "mapping": mapping, "synthesis": synthesis})
    d = dict(raw["D"])
    epilogue, d_mapping = d.pop("epilogue_kwargs", {}), d.pop("mapping_kwargs", {})
    d_dict = {**d, "epilogue": epilogue}
    if d_mapping:
        d_dict["mapping"] = {**dataclasses.asdict(DiscriminatorConfig().mapping), **d_mapping}
    return g_cfg, DiscriminatorConfig.from_dict(d_dict)


@pytest.fixture(scope="module", params=CASES)
def reference(request, shared_dir):
    ref_dir = shared_dir / "reference"
    raw = json.loads((ref_dir / "sg2ada_configs.json").read_text())[request.param]
    with np.load(ref_dir / f"sg2ada_{request.param}.npz", allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    g_cfg, d_cfg = _configs(raw)
    G = Generator(g_cfg).eval()
    D = Discriminator(d_cfg).eval()
    g_state = {k[2:]: torch.from_numpy(v) for k, v in data.items() if k.startswith("G.")}
    d_state = {k[2:]: torch.from_numpy(v) for k, v in data.items() if k.startswith("D.")}
    assert len(g_state) == raw["num_G_tensors"] and len(d_state) == raw["num_D_tensors"]
    G.load_state_dict(g_state, strict=True)
    D.load_state_dict(d_state, strict=True)
    return request.param, G, D, data


def _t(data, key):
    return torch.from_numpy(data[key])


def _check(name, got: torch.Tensor, want: np.ndarray, errors: dict):
    assert tuple(got.shape) == want.shape, name
    err = float(np.abs(got.detach().numpy().astype(np.float64) - want).max())
    errors[name] = err
    assert err < TOLERANCE, f"{name}: max abs error {err:.3g}"


def test_state_dict_names_and_shapes_match_reference(reference):
    _, G, D, data = reference
    ours = {f"G.{k}": tuple(v.shape) for k, v in G.state_dict().items()}
    ours.update({f"D.{k}": tuple(v.shape) for k, v in D.state_dict().items()})
    theirs = {k: v.shape for k, v in data.items() if k[:2] in ("G.", "D.")}
    assert ours == theirs


@pytest.mark.parametrize("fused_modconv", [None, True, False])
def test_generator_matches_reference(reference, fused_modconv):
    case, G, _, data = reference
    z, c = _t(data, "in.z"), _t(data, "in.c")
    errors: dict[str, float] = {}
    with torch.no_grad():
        ws = G.mapping(z, c)
        ws_trunc = G.mapping(z, c, truncation_psi=0.7)
        _check("ws_psi1", ws, data["out.ws_psi1"], errors)
        _check("ws_psi0.7", ws_trunc, data["out.ws_psi0.7"], errors)
        synth = dict(fused_modconv=fused_modconv)
        _check("img_const", G.synthesis(ws, noise_mode="const", **synth), data["out.img_const"], errors)
        _check("img_none", G.synthesis(ws, noise_mode="none", **synth), data["out.img_none"], errors)
        _check("img_psi0.7_const", G.synthesis(ws_trunc, noise_mode="const", **synth), data["out.img_psi0.7_const"], errors)
        # The end-to-end call must agree with mapping + synthesis.
        _check("G(z,c)", G(z, c, noise_mode="const", fused_modconv=fused_modconv), data["out.img_const"], errors)
    print(case, fused_modconv, {k: f"{v:.2e}" for k, v in errors.items()})


def test_generator_matches_reference_in_training_mode(reference):
    """Training mode takes the non-fused modulation path; it must give the same images."""
    _, G, _, data = reference
    G.train()
    try:
        with torch.no_grad():
            img = G(_t(data, "in.z"), _t(data, "in.c"), noise_mode="const")
    finally:
        G.eval()
    _check("img_const(train)", img, data["out.img_const"], {})


def test_discriminator_matches_reference(reference):
    case, _, D, data = reference
    c = _t(data, "in.c")
    errors: dict[str, float] = {}
    with torch.no_grad():
        _check("D_fake_logits", D(_t(data, "out.img_const"), c), data["out.D_fake_logits"], errors)
        _check("D_real_logits", D(_t(data, "in.real"), c), data["out.D_real_logits"], errors)
    print(case, {k: f"{v:.2e}" for k, v in errors.items()})


def test_w_avg_update_is_an_exponential_moving_average(reference):
    _, G, _, data = reference
    z, c = _t(data, "in.z"), _t(data, "in.c")
    before = G.mapping.w_avg.clone()
    try:
        with torch.no_grad():
            G.mapping(z, c)  # update_emas=False: untouched
            assert torch.equal(G.mapping.w_avg, before)
            ws = G.mapping(z, c, update_emas=True)
        beta = G.config.mapping.w_avg_beta
        expected = beta * before.double() + (1 - beta) * ws[:, 0].double().mean(0)
        assert torch.allclose(G.mapping.w_avg.double(), expected, atol=1e-6)
    finally:
        G.mapping.w_avg.copy_(before)
