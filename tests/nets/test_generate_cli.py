"""``stylefa generate`` / ``init-network`` / ``import-pkl`` / ``network-info`` through the CLI."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import stylefa
from stylefa.cli import main
from stylefa.errors import InputError
from stylefa.nets.generate import parse_seeds

from .reference_pickle import snapshot_bytes


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def nets_dir(tmp_path_factory):
    """Tiny networks made through the CLI itself."""
    root = tmp_path_factory.mktemp("nets")
    for name, extra in {
        "mono": [],
        "cond": ["--c-dim", "3"],
        "dual": ["--channels", "2", "--resolution", "16"],
    }.items():
        argv = ["init-network", "-o", root / f"{name}.safetensors", "--cfg", "small", "--resolution", "16", *extra]
        assert main([str(a) for a in argv]) == 0
    return root


def _fa(G, seed, psi=1.0, c=None, noise_mode="const"):
    """Independent rendering: the reference's seed -> z recipe, FA = (x + 1) / 2."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    c = torch.zeros([1, G.c_dim]) if c is None else c
    with torch.no_grad():
        return ((G(z, c, truncation_psi=psi, noise_mode=noise_mode)[0].numpy() + 1) / 2).astype(np.float32)


def test_parse_seeds():
    assert parse_seeds("0-3,12") == [0, 1, 2, 3, 12]
    assert parse_seeds(" 5 , 2-3, 5") == [5, 2, 3]
    assert parse_seeds("7") == [7]
    for bad, reason in {
        "": "empty",
        "3-1": "ends before it starts",
        "a-b": "cannot read 'a-b'",
        "-1": "cannot read",
        "1,,2": "cannot read ''",
        "4294967296": "at most",
    }.items():
        with pytest.raises(InputError, match=reason):
            parse_seeds(bad)


def test_generate_seeds(nets_dir, tmp_path, capsys):
    net = nets_dir / "mono.safetensors"
    code, out, _ = _run(["generate", "--network", net, "--seeds", "0-2,9", "--outdir", tmp_path / "a", "--device", "cpu"], capsys)
    assert code == 0 and "wrote 8 files" in out
    G = stylefa.load_generator(net)
    for seed in (0, 1, 2, 9):
        fa = np.load(tmp_path / "a" / f"seed{seed:04d}.npy", allow_pickle=False)
        assert fa.dtype == np.float32 and fa.shape == (16, 16)
        np.testing.assert_allclose(fa, _fa(G, seed)[0], atol=1e-6, rtol=0)
        png = np.asarray(Image.open(tmp_path / "a" / f"seed{seed:04d}.png"))
        assert png.dtype == np.uint8 and png.shape == (16, 16)
        np.testing.assert_array_equal(png, np.rint(np.clip(fa, 0, 1) * 255).astype(np.uint8))
    # Same seed, same image, whatever else is generated alongside it.
    assert _run(["generate", "--network", net, "--seeds", "9", "--outdir", tmp_path / "b"], capsys)[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "seed0009.npy"), np.load(tmp_path / "a" / "seed0009.npy"))
    assert not np.allclose(np.load(tmp_path / "a" / "seed0000.npy"), np.load(tmp_path / "a" / "seed0001.npy"))


def test_truncation_zero_collapses_to_w_avg(nets_dir, tmp_path, capsys):
    net = nets_dir / "mono.safetensors"
    assert _run(["generate", "--network", net, "--seeds", "0-2", "--trunc", "0", "--outdir", tmp_path], capsys)[0] == 0
    images = [np.load(tmp_path / f"seed{s:04d}.npy") for s in range(3)]
    np.testing.assert_allclose(images[0], images[1], atol=1e-6)
    np.testing.assert_allclose(images[0], images[2], atol=1e-6)


def test_noise_modes_and_reproducible_random_noise(nets_dir, tmp_path, capsys):
    net = nets_dir / "mono.safetensors"
    for mode in ("none", "random"):
        for run in ("1", "2"):
            argv = ["generate", "--network", net, "--seeds", "4", "--noise-mode", mode, "--outdir", tmp_path / mode / run]
            assert _run(argv, capsys)[0] == 0
        first, second = (np.load(tmp_path / mode / r / "seed0004.npy") for r in ("1", "2"))
        np.testing.assert_array_equal(first, second)
    G = stylefa.load_generator(net)
    np.testing.assert_allclose(np.load(tmp_path / "none" / "1" / "seed0004.npy"), _fa(G, 4, noise_mode="none")[0], atol=1e-6)


def test_resume_and_settings_guard(nets_dir, tmp_path, capsys):
    net = nets_dir / "mono.safetensors"
    base = ["generate", "--network", net, "--seeds", "0-1", "--outdir", tmp_path]
    assert _run(base, capsys)[0] == 0
    stamp = os.stat(tmp_path / "seed0000.png").st_mtime_ns
    code, out, _ = _run(base + ["--seeds", "0-2"], capsys)
    assert code == 0 and "wrote 2 files" in out  # only seed 2 was missing
    assert os.stat(tmp_path / "seed0000.png").st_mtime_ns == stamp
    code, _, err = _run(base + ["--trunc", "0.5"], capsys)
    assert code == 2 and "other settings" in err and str(tmp_path) in err
    code, out, _ = _run(base + ["--trunc", "0.5", "--overwrite"], capsys)
    assert code == 0 and "wrote 4 files" in out


def test_conditional_network_needs_class(nets_dir, tmp_path, capsys):
    net = nets_dir / "cond.safetensors"
    code, _, err = _run(["generate", "--network", net, "--seeds", "0", "--outdir", tmp_path], capsys)
    assert code == 2 and "give --class" in err
    code, _, err = _run(["generate", "--network", net, "--seeds", "0", "--class", "3", "--outdir", tmp_path], capsys)
    assert code == 2 and "out of range" in err
    assert _run(["generate", "--network", net, "--seeds", "0", "--class", "2", "--outdir", tmp_path], capsys)[0] == 0
    G = stylefa.load_generator(net)
    expected = _fa(G, 0, c=torch.tensor([[0.0, 0.0, 1.0]]))[0]
    np.testing.assert_allclose(np.load(tmp_path / "seed0000.npy"), expected, atol=1e-6)
    code, _, err = _run(
        ["generate", "--network", nets_dir / "mono.safetensors", "--seeds", "0", "--class", "1", "--outdir", tmp_path / "u"],
        capsys,
    )
    assert code == 2 and "unconditional" in err


def test_multichannel_outputs(nets_dir, tmp_path, capsys):
    net = nets_dir / "dual.safetensors"
    assert _run(["generate", "--network", net, "--seeds", "3", "--outdir", tmp_path], capsys)[0] == 0
    fa = np.load(tmp_path / "seed0003.npy")
    assert fa.shape == (2, 16, 16)
    np.testing.assert_allclose(fa, _fa(stylefa.load_generator(net), 3), atol=1e-6)
    for channel, name in ((0, "seed0003.png"), (1, "seed0003_c1.png")):
        png = np.asarray(Image.open(tmp_path / name))
        np.testing.assert_array_equal(png, np.rint(np.clip(fa[channel], 0, 1) * 255).astype(np.uint8))


def test_projected_w_rerenders_exactly(nets_dir, tmp_path, capsys):
    net = nets_dir / "mono.safetensors"
    G = stylefa.load_generator(net)
    zs = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for s in (5, 6)])).float()
    with torch.no_grad():
        ws = G.mapping(zs, torch.zeros([2, 0])).numpy()
    # One w [num_ws, w_dim], no noise maps: the stored noise, i.e. the seed's own image.
    np.savez(tmp_path / "one.npz", w=ws[0])
    assert _run(["generate", "--network", net, "--projected-w", tmp_path / "one.npz", "--outdir", tmp_path / "one"], capsys)[0] == 0
    np.testing.assert_allclose(np.load(tmp_path / "one" / "proj0000.npy"), _fa(G, 5)[0], atol=1e-5)

    # Two ws with all-zero noise maps must equal rendering without noise.
    zeros = {f"noise.{name}": np.zeros((2, 1, *shape), np.float32) for name, shape in G.synthesis.noise_shapes().items()}
    np.savez(tmp_path / "two.npz", w=ws, **zeros)
    assert _run(["generate", "--network", net, "--projected-w", tmp_path / "two.npz", "--outdir", tmp_path / "two"], capsys)[0] == 0
    for index, seed in enumerate((5, 6)):
        np.testing.assert_allclose(
            np.load(tmp_path / "two" / f"proj{index:04d}.npy"), _fa(G, seed, noise_mode="none")[0], atol=1e-5
        )

    code, _, err = _run(["generate", "--network", net, "--projected-w", tmp_path / "two.npz", "--noise-mode", "random",
                         "--outdir", tmp_path / "rnd"], capsys)
    assert code == 2 and "--noise-mode const only" in err and "two.npz" in err

    np.savez(tmp_path / "bad.npz", w=ws[:, :2])
    code, _, err = _run(["generate", "--network", net, "--projected-w", tmp_path / "bad.npz", "--outdir", tmp_path / "x"], capsys)
    assert code == 2 and "'w' has shape" in err and "bad.npz" in err
    np.savez(tmp_path / "badnoise.npz", w=ws[0], **{"noise.b99.conv0": np.zeros((4, 4))})
    code, _, err = _run(
        ["generate", "--network", net, "--projected-w", tmp_path / "badnoise.npz", "--outdir", tmp_path / "x"], capsys
    )
    assert code == 2 and "no noise layer 'b99.conv0'" in err
    code, _, err = _run(
        ["generate", "--network", net, "--projected-w", tmp_path / "one.npz", "--seeds", "1", "--outdir", tmp_path / "x"],
        capsys,
    )
    assert code == 2 and "exactly one" in err


def test_import_pkl_and_generate_from_pickle(shared_dir, tmp_path, capsys):
    configs = json.loads((shared_dir / "reference" / "sg2ada_configs.json").read_text())["skip32"]
    pkl = tmp_path / "network-snapshot-000040.pkl"
    pkl.write_bytes(snapshot_bytes(shared_dir / "reference" / "sg2ada_skip32.npz", configs, with_d=False))
    out = tmp_path / "net.safetensors"
    code, stdout, _ = _run(["import-pkl", pkl, "-o", out], capsys)
    assert code == 0 and str(out) in stdout
    code, _, err = _run(["import-pkl", pkl, "-o", out], capsys)
    assert code == 2 and "already exists" in err

    code, stdout, _ = _run(["network-info", out], capsys)
    info = json.loads(stdout)
    assert code == 0 and info["networks"] == ["G", "G_ema"] and info["config"]["D"] is None
    assert info["config"]["G"]["synthesis"]["channel_base"] == 1024 and info["provenance"]["kimg"] == 40.0

    for name, network in (("pkl", pkl), ("st", out)):
        assert _run(["generate", "--network", network, "--seeds", "1", "--outdir", tmp_path / name], capsys)[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "pkl" / "seed0001.npy"), np.load(tmp_path / "st" / "seed0001.npy"))

    code, _, err = _run(["import-pkl", out, "-o", tmp_path / "again.safetensors"], capsys)
    assert code == 2 and "not a pickle" in err


def test_init_network_options(tmp_path, capsys):
    out = tmp_path / "n.safetensors"
    argv = ["init-network", "-o", out, "--cfg", "small", "--resolution", "16", "--z-dim", "16", "--w-dim", "24",
            "--channel-max", "16", "--map-layers", "3", "--seed", "5"]
    assert _run(argv, capsys)[0] == 0
    nets = stylefa.load_networks(out)
    g = nets["config"]["G"]
    assert (g.z_dim, g.w_dim, g.mapping.num_layers, g.synthesis.channel_max) == (16, 24, 3, 16)
    assert nets["config"]["D"].channel_max == 16 and nets["provenance"].source == "init-network"
    assert nets["G"].mapping.fc2.weight.shape == (24, 24)
    code, _, err = _run(argv, capsys)
    assert code == 2 and "already exists" in err
    assert _run(argv + ["--overwrite"], capsys)[0] == 0  # same seed: same weights
    torch.testing.assert_close(stylefa.load_networks(out)["G"].mapping.fc0.weight, nets["G"].mapping.fc0.weight)
    code, _, err = _run(["init-network", "-o", tmp_path / "m.safetensors", "--resolution", "48"], capsys)
    assert code == 2 and "power of two" in err


def test_bad_network_files_give_one_line_errors(nets_dir, tmp_path, capsys):
    good = (nets_dir / "mono.safetensors").read_bytes()
    png = tmp_path / "image.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good[: len(good) // 3])
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"G.x": torch.zeros(2)}, str(bare))
    evil = tmp_path / "evil.pkl"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'marker'}",)

    evil.write_bytes(pickle.dumps({"G": Evil()}))
    cases = {
        tmp_path / "absent.safetensors": "file not found",
        png: "PNG",
        cut: "truncated",
        bare: "no stylefa metadata",
        evil: "refused to load reference pickle",
    }
    for path, reason in cases.items():
        code, _, err = _run(["generate", "--network", path, "--seeds", "0", "--outdir", tmp_path / "out"], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"stylefa generate: error: {path}: ") and reason in lines[0]
    assert not (tmp_path / "marker").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("seed*"))


def test_real_process_exit_code(tmp_path):
    png = tmp_path / "net.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png)
    proc = subprocess.run(
        [sys.executable, "-m", "stylefa", "generate", "--network", str(png), "--seeds", "0", "--outdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and str(png) in proc.stderr
