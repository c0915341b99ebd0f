"""Our perceptual networks against the reference packages' own outputs (test-only imports)."""

import sys
import types

import pytest
import torch

from stylefa.errors import InputError
from stylefa.project.perceptual import PerceptualSpec, load_perceptual
from stylefa.project.perceptual.base import NetworkRecord, PixelMSE
from stylefa.project.perceptual.lpips import LPIPS, load_lpips_heads
from stylefa.fileio import file_digest
from stylefa.project.perceptual.loader import packaged_file
from stylefa.project.perceptual.vgg16 import TORCHVISION_CONV_INDEX, VGG16Trunk


def image_pairs(size=64, n=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 1, size, size, generator=gen) * 2 - 1
    b = (a + 0.3 * torch.randn(n, 1, size, size, generator=gen)).clamp(-1, 1)
    return a, b


def test_lpips_vgg16_matches_lpips_package():
    lpips = pytest.importorskip("lpips")
    torch.manual_seed(1)
    # pnet_rand: a randomly initialised torchvision VGG16 (the ImageNet file needs the internet);
    # the v0.1 heads are the real ones shipped in the wheel.
    reference = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()
    features = {}
    for name, tensor in reference.net.state_dict().items():
        slice_name, index, kind = name.split(".")
        features[f"features.{index}.{kind}"] = tensor
    assert sorted({int(k.split(".")[1]) for k in features}) == list(TORCHVISION_CONV_INDEX)
    trunk = VGG16Trunk()
    trunk.load_torchvision(features)
    heads_path = packaged_file("lpips", "weights/v0.1/vgg.pth")
    heads = load_lpips_heads(torch.load(heads_path, weights_only=True, map_location="cpu"))
    ours = LPIPS(trunk, heads, NetworkRecord("test"))

    a, b = image_pairs()
    a3, b3 = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(a3, b3).flatten()
        got = ours(a, b)
    assert expected.abs().min() > 1e-3  # a real, non-trivial distance
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def _import_stlpips_reference(monkeypatch):
    # stlpips_pytorch imports IPython and torchsummary at module level but never uses them
    # on the path we compare; stand in empty modules rather than install two more packages.
    for missing, attr in (("IPython", "embed"), ("torchsummary", "summary")):
        if missing not in sys.modules:
            try:
                __import__(missing)
            except ImportError:
                stub = types.ModuleType(missing)
                setattr(stub, attr, None)
                # Only for the import: a stub left behind breaks later IPython probes (matplotlib).
                monkeypatch.setitem(sys.modules, missing, stub)
    pytest.importorskip("torchvision")
    return pytest.importorskip("stlpips_pytorch.stlpips")


def test_stlpips_vgg16_matches_stlpips_package(monkeypatch):
    stlpips = _import_stlpips_reference(monkeypatch)
    reference = stlpips.LPIPS(net="vgg", variant="shift_tolerant", verbose=False).eval()
    ours = load_perceptual(PerceptualSpec("stlpips-vgg16"))
    assert ours.record.name == "stlpips-vgg16"
    (path, digest), = ours.record.weight_files.items()
    assert digest == file_digest(path) and len(digest) == 64

    a, b = image_pairs(size=48)
    with torch.no_grad():
        expected = reference(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)).flatten()
        got = ours(a, b)
        same = ours(a, a)
    assert expected.abs().min() > 1e-3
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(same, torch.zeros_like(same), atol=1e-6, rtol=0)


def test_large_images_are_area_downsampled_to_256():
    ours = load_perceptual(PerceptualSpec("stlpips-vgg16"))
    a, b = image_pairs(size=64, n=1)
    big_a = a.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)[:, :, :512, :512]
    big_b = b.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)[:, :, :512, :512]
    small_a = torch.nn.functional.avg_pool2d(big_a, 2)
    small_b = torch.nn.functional.avg_pool2d(big_b, 2)
    with torch.no_grad():
        torch.testing.assert_close(ours(big_a, big_b), ours(small_a, small_b), atol=1e-5, rtol=1e-5)


def test_pixel_mse_is_mean_square():
    a, b = image_pairs(size=16)
    expected = torch.tensor([((x - y) ** 2).mean() for x, y in zip(a, b)])
    torch.testing.assert_close(PixelMSE()(a, b), expected)


def test_torchscript_vgg16_path_is_loaded_with_jit(tmp_path):
    # NVIDIA's vgg16.pt cannot be fetched offline; a TorchScript module with its calling
    # convention (images in [0,255], returns per-image LPIPS feature vectors) stands in.
    class FakeNvidiaVGG(torch.nn.Module):
        def forward(self, x: torch.Tensor, resize_images: bool = True, return_lpips: bool = False):
            return (x / 255.0).flatten(1)

    path = tmp_path / "vgg16.pt"
    torch.jit.script(FakeNvidiaVGG()).save(str(path))
    ours = load_perceptual(PerceptualSpec("lpips-vgg16", vgg16=str(path)))
    assert "TorchScript" in ours.record.name
    a, b = image_pairs(size=8)
    # features are (x+1)/2 per channel (3 repeated channels) -> sum of squared differences
    expected = 3 * (((a + 1) / 2 - (b + 1) / 2) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(ours(a, b), expected)


def test_missing_vgg16_weights_fail_with_offline_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(InputError, match="stlpips-vgg16"):
        load_perceptual(PerceptualSpec("lpips-vgg16"))
    with pytest.raises(InputError, match="not found"):
        load_perceptual(PerceptualSpec("lpips-vgg16", vgg16=str(tmp_path / "nope.pth")))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read weights"):
        load_perceptual(PerceptualSpec("stlpips-vgg16", stlpips_weights=str(bad)))


def test_torchvision_state_dict_path_builds_classic_lpips(tmp_path):
    trunk = VGG16Trunk()
    state = {f"features.{i}.{k}": getattr(conv, k).detach() for i, conv in zip(TORCHVISION_CONV_INDEX, trunk.convs) for k in ("weight", "bias")}
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    ours = load_perceptual(PerceptualSpec("lpips-vgg16", vgg16=str(path)))
    assert ours.record.name == "lpips-vgg16" and len(ours.record.weight_files) == 2
    a, b = image_pairs(size=32, n=2)
    assert torch.all(ours(a, b) > 0)
