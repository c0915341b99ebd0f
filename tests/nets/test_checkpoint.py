"""Snapshots as .safetensors + JSON: format, round trips, reference weights, bad files."""

from __future__ import annotations

import dataclasses
import json
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file

import stylefa
from stylefa.errors import InputError, UnsafeFileError
from stylefa.nets.checkpoint import (
    Provenance,
    build_network,
    create_networks,
    import_pkl,
    load_networks,
    read_metadata,
    save_networks,
)
from stylefa.nets.config import small_configs
from stylefa.nets.pkl_import import discriminator_config_from_kwargs, generator_config_from_kwargs

from .reference_pickle import snapshot_bytes


@pytest.fixture(scope="module")
def tiny():
    g_config, d_config = small_configs(16, img_channels=1)
    g_config = dataclasses.replace(g_config, z_dim=64, w_dim=64)  # small tensors, readable shapes below
    return create_networks(g_config, d_config, seed=3)


@pytest.fixture(scope="module")
def tiny_file(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_networks(
        path,
        G=tiny["G"],
        G_ema=tiny["G_ema"],
        D=tiny["D"],
        provenance=Provenance(source="train", kimg=12.5, extra={"augment_p": 0.1, "options": {"gamma": 1.0}}),
        extra_tensors={"augment_pipe.p": torch.tensor([0.1])},
    )
    return path


def _header(path):
    """The safetensors header read by hand: 8-byte little-endian length, then JSON."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length])


def _reference(shared_dir, name):
    configs = json.loads((shared_dir / "reference" / "sg2ada_configs.json").read_text())[name]
    npz = np.load(shared_dir / "reference" / f"sg2ada_{name}.npz", allow_pickle=False)
    return configs, npz


def test_file_layout_is_plain_safetensors(tiny, tiny_file):
    header = _header(tiny_file)
    meta = json.loads(header["__metadata__"]["stylefa"])
    assert meta["format"] == 1
    as_json = lambda config: json.loads(json.dumps(config.to_dict()))  # tuples become lists
    assert meta["config"]["G"] == as_json(tiny["G"].config)
    assert meta["config"]["D"] == as_json(tiny["D"].config)
    prov = meta["provenance"]
    assert prov["source"] == "train" and prov["kimg"] == 12.5 and prov["extra"]["options"] == {"gamma": 1.0}
    assert prov["stylefa_version"] == stylefa.__version__ and prov["created"].endswith("+00:00")

    arrays = load_file(str(tiny_file))  # numpy reader: no stylefa code involved
    for kind in ("G", "G_ema", "D"):
        state = tiny[kind].state_dict()
        assert {k[len(kind) + 1 :] for k in arrays if k.startswith(kind + ".")} == set(state)
        for name, tensor in state.items():
            np.testing.assert_array_equal(arrays[f"{kind}.{name}"], tensor.numpy())
    assert "G.mapping.fc0.weight" in arrays and "G.synthesis.b8.conv0.noise_const" in arrays
    np.testing.assert_array_equal(arrays["extra.augment_pipe.p"], np.float32([0.1]))


def test_round_trip(tiny, tiny_file):
    nets = load_networks(tiny_file)
    assert {"G", "G_ema", "D", "config", "provenance", "extra"} <= set(nets)
    for kind in ("G", "G_ema", "D"):
        loaded = nets[kind].state_dict()
        for name, tensor in tiny[kind].state_dict().items():
            torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)
        assert not nets[kind].training
        assert not any(p.requires_grad for p in nets[kind].parameters())
    assert nets["config"]["G"] == tiny["G"].config and nets["config"]["D"] == tiny["D"].config
    assert nets["provenance"].kimg == 12.5 and nets["provenance"].extra["augment_p"] == 0.1
    torch.testing.assert_close(nets["extra"]["augment_pipe.p"], torch.tensor([0.1]))

    meta = read_metadata(tiny_file)
    assert meta["networks"] == ["G", "G_ema", "D"] and meta["config"]["G"] == tiny["G"].config


def test_load_generator_prefers_g_ema(tiny, tmp_path):
    g_ema = create_networks(tiny["G"].config, None, seed=99)["G"]  # different weights than G
    both = tmp_path / "both.safetensors"
    save_networks(both, G=tiny["G"], G_ema=g_ema)
    G = stylefa.load_generator(both)
    torch.testing.assert_close(G.mapping.fc0.weight, g_ema.mapping.fc0.weight, rtol=0, atol=0)
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels) == (64, 0, 64, 16, 1)
    assert G.num_ws == G.synthesis.num_ws and not G.training

    only_g = tmp_path / "g.safetensors"
    save_networks(only_g, G=tiny["G"])
    G = stylefa.load_generator(only_g)
    torch.testing.assert_close(G.mapping.fc0.weight, tiny["G"].mapping.fc0.weight, rtol=0, atol=0)
    assert set(load_networks(only_g)) == {"G", "config", "provenance", "extra"}

    only_d = tmp_path / "d.safetensors"
    save_networks(only_d, D=tiny["D"])
    with pytest.raises(InputError, match="no generator"):
        stylefa.load_generator(only_d)


def test_create_networks_is_seeded_and_leaves_global_rng(tiny):
    g_config, d_config = tiny["G"].config, tiny["D"].config
    state = torch.random.get_rng_state()
    again = create_networks(g_config, d_config, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    other = create_networks(g_config, d_config, seed=4)
    for kind in ("G", "D"):
        for name, tensor in tiny[kind].state_dict().items():
            torch.testing.assert_close(again[kind].state_dict()[name], tensor, rtol=0, atol=0)
    assert not torch.equal(other["G"].mapping.fc0.weight, tiny["G"].mapping.fc0.weight)
    for name, tensor in tiny["G"].state_dict().items():
        torch.testing.assert_close(tiny["G_ema"].state_dict()[name], tensor, rtol=0, atol=0)


def test_reference_weights_survive_save_and_load(shared_dir, tmp_path):
    configs, npz = _reference(shared_dir, "cond16")
    states = {kind: {k[2:]: torch.from_numpy(npz[k]) for k in npz.files if k.startswith(kind + ".")} for kind in "GD"}
    G = build_network("G", generator_config_from_kwargs(configs["G"]), states["G"])
    D = build_network("D", discriminator_config_from_kwargs(configs["D"]), states["D"])
    path = tmp_path / "cond16.safetensors"
    save_networks(path, G_ema=G, D=D)
    nets = load_networks(path)
    z, c = torch.from_numpy(npz["in.z"]), torch.from_numpy(npz["in.c"])
    with torch.no_grad():
        img = nets["G_ema"](z, c, truncation_psi=1.0, noise_mode="const")
        logits = nets["D"](torch.from_numpy(npz["out.img_const"]), c)
        ws = nets["G_ema"].mapping(z, c, truncation_psi=0.7)
    np.testing.assert_allclose(img.numpy(), npz["out.img_const"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ws.numpy(), npz["out.ws_psi0.7"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits.numpy(), npz["out.D_fake_logits"], atol=1e-4, rtol=0)


def test_reference_pickle_loads_and_imports_to_golden(shared_dir, tmp_path):
    configs, npz = _reference(shared_dir, "skip32")
    pkl = tmp_path / "network-snapshot-000120.safetensors"  # misleading suffix: content decides
    pkl.write_bytes(snapshot_bytes(shared_dir / "reference" / "sg2ada_skip32.npz", configs))
    z, c = torch.from_numpy(npz["in.z"]), torch.from_numpy(npz["in.c"])

    G = stylefa.load_generator(pkl)
    with torch.no_grad():
        np.testing.assert_allclose(G(z, c, noise_mode="const").numpy(), npz["out.img_const"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(G(z, c, noise_mode="none").numpy(), npz["out.img_none"], atol=1e-4, rtol=0)

    out = tmp_path / "imported.safetensors"
    import_pkl(pkl, out)
    meta = read_metadata(out)
    prov = meta["provenance"]
    assert prov.source.startswith("import-pkl ") and len(prov.source.split()[1]) == 64
    assert prov.kimg == 120.0 and prov.extra["augment_p"] == pytest.approx(0.25)
    assert prov.extra["training_set_kwargs"]["resolution"] == 32
    nets = load_networks(out)
    with torch.no_grad():
        img = nets["G_ema"](z, c, noise_mode="const")
        logits = nets["D"](torch.from_numpy(npz["in.real"]), c)
    np.testing.assert_allclose(img.numpy(), npz["out.img_const"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits.numpy(), npz["out.D_real_logits"], atol=1e-4, rtol=0)


# --------------------------------------------------------------------------------------------
# Bad files


def test_missing_empty_and_foreign_files(tmp_path):
    cases = {
        "absent.safetensors": (None, "file not found"),
        "empty.safetensors": (b"", "empty"),
        "image.safetensors": (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG"),
        "torch.pt": (b"PK\x03\x04" + bytes(64), "zip archive"),
        "text.pkl": (b"hello world, not a network", "unknown format"),
    }
    for name, (content, reason) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(InputError, match=reason) as info:
            stylefa.load_networks(path)
        assert info.value.path == str(path)
    with pytest.raises(InputError, match="folder"):
        stylefa.load_generator(tmp_path)


def test_truncated_and_corrupt_safetensors(tiny_file, tmp_path):
    raw = tiny_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated") as info:
        stylefa.load_generator(cut)
    assert info.value.path == str(cut)

    (length,) = struct.unpack("<Q", raw[:8])
    garbled = tmp_path / "garbled.safetensors"
    garbled.write_bytes(raw[:8] + b"{" + b"x" * (length - 1) + raw[8 + length :])
    with pytest.raises(InputError, match="corrupt"):
        stylefa.load_generator(garbled)


def test_safetensors_without_our_metadata(tiny, tmp_path):
    state = {f"G.{k}": v.contiguous() for k, v in tiny["G"].state_dict().items()}
    bare = tmp_path / "bare.safetensors"
    save_file(state, str(bare))
    with pytest.raises(InputError, match="no stylefa metadata"):
        stylefa.load_generator(bare)
    future = tmp_path / "future.safetensors"
    save_file(state, str(future), metadata={"stylefa": json.dumps({"format": 99})})
    with pytest.raises(InputError, match="format 99"):
        stylefa.load_generator(future)


def _rewrite(tiny_file, tmp_path, name, edit):
    from safetensors import safe_open

    with safe_open(str(tiny_file), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    edit(tensors, metadata)
    path = tmp_path / name
    save_file(tensors, str(path), metadata=metadata)
    return path


def test_config_and_tensors_must_agree(tiny_file, tmp_path):
    def shrink(tensors, metadata):
        tensors["G_ema.mapping.fc0.weight"] = tensors["G_ema.mapping.fc0.weight"][:, :10].contiguous()

    def drop(tensors, metadata):
        del tensors["G_ema.synthesis.b8.conv0.noise_const"]

    def stray(tensors, metadata):
        tensors["optimizer.state"] = torch.zeros(2)

    def bad_config(tensors, metadata):
        header = json.loads(metadata["stylefa"])
        header["config"]["G"]["w_dim"] = 32
        metadata["stylefa"] = json.dumps(header)

    def unknown_field(tensors, metadata):
        header = json.loads(metadata["stylefa"])
        header["config"]["G"]["colour"] = "red"
        metadata["stylefa"] = json.dumps(header)

    cases = {
        "shrink": (shrink, r"shapes do not match.*mapping.fc0.weight \(64, 10\) vs \(64, 64\)"),
        "drop": (drop, r"missing synthesis.b8.conv0.noise_const"),
        "stray": (stray, r"unexpected tensor 'optimizer.state'"),
        "bad_config": (bad_config, r"G tensor shapes do not match its config: .*affine.weight \(64, 64\) vs \(64, 32\)"),
        "unknown_field": (unknown_field, r"G config in metadata is invalid.*colour"),
    }
    for name, (edit, reason) in cases.items():
        path = _rewrite(tiny_file, tmp_path, f"{name}.safetensors", edit)
        with pytest.raises(InputError, match=reason) as info:
            stylefa.load_networks(path)
        assert info.value.path == str(path)


def test_forbidden_pickle_through_load_generator(tmp_path):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'marker'}",)

    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(pickle.dumps({"G": Evil()}))
    with pytest.raises(UnsafeFileError):
        stylefa.load_generator(path)
    assert not (tmp_path / "marker").exists()


def test_failed_save_leaves_nothing(tiny, tmp_path, monkeypatch):
    path = tmp_path / "out.safetensors"
    with pytest.raises(ValueError, match="JSON"):
        save_networks(path, G=tiny["G"], provenance=Provenance(extra={"bad": object()}))
    assert list(tmp_path.iterdir()) == []

    save_networks(path, G=tiny["G"])
    before = path.read_bytes()

    def dies_halfway(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_networks(path, G=tiny["G_ema"])
    assert path.read_bytes() == before  # the previous snapshot is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]  # no temp file left
