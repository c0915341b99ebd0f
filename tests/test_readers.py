"""The shared input readers (stylefa.readers): image rules, arrays, masks, the resolution rule.

Oracle: the pixel values written with PIL/numpy here, divided by the documented scale.
"""

import numpy as np
import pytest
from PIL import Image

from stylefa.errors import InputError
from stylefa.readers import (
    ImageOptions,
    binary_mask,
    check_resolution,
    read_image_gray,
    read_mask_image,
    read_npz,
)


def _save(path, array, mode=None):
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(path)
    return path


@pytest.fixture()
def fa():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 0.9, (8, 8))


def test_8bit_grey_is_divided_by_255(tmp_path, fa):
    levels = np.round(fa * 255).astype(np.uint8)
    np.testing.assert_allclose(read_image_gray(_save(tmp_path / "g.png", levels)), levels / 255.0, atol=1e-7)


def test_16bit_full_range_and_explicit_scale(tmp_path, fa):
    levels = np.round(fa * 65535).astype(np.uint16)
    np.testing.assert_allclose(read_image_gray(_save(tmp_path / "g16.png", levels)), levels / 65535.0, atol=1e-7)
    per_mille = np.round(fa * 1000).astype(np.uint16)
    path = _save(tmp_path / "fa1000.png", per_mille)
    with pytest.raises(InputError, match=r"16-bit PNG uses only 0\.\.\d+ of 0\.\.65535.*--png-scale"):
        read_image_gray(path)
    np.testing.assert_allclose(read_image_gray(path, ImageOptions(scale=1000)), per_mille / 1000.0, atol=1e-7)
    with pytest.raises(InputError, match="exceeds --png-scale 500"):
        read_image_gray(path, ImageOptions(scale=500))


def test_grey_stored_as_rgb_or_palette_reads_as_grey(tmp_path, fa):
    levels = np.round(fa * 255).astype(np.uint8)
    rgb = _save(tmp_path / "rgb.png", np.repeat(levels[..., None], 3, axis=2))
    np.testing.assert_allclose(read_image_gray(rgb), levels / 255.0, atol=1e-7)
    palette = tmp_path / "p.png"
    Image.fromarray(levels).convert("P").save(palette)  # a grey palette: equal channels per entry
    np.testing.assert_allclose(read_image_gray(palette), levels / 255.0, atol=1e-7)


def test_colour_images_are_refused(tmp_path, fa):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = np.round(fa * 255)
    with pytest.raises(InputError, match="colour PNG: channels differ"):
        read_image_gray(_save(tmp_path / "c.png", rgb))
    coloured_palette = tmp_path / "cp.png"
    Image.fromarray(rgb).convert("P").save(coloured_palette)
    with pytest.raises(InputError, match="colour PNG"):
        read_image_gray(coloured_palette)


def test_alpha_refused_unless_opaque_or_flattened(tmp_path, fa):
    levels = np.round(fa * 255).astype(np.uint8)
    opaque = np.stack([levels, np.full_like(levels, 255)], axis=2)
    np.testing.assert_allclose(read_image_gray(_save(tmp_path / "la.png", opaque, "LA")), levels / 255.0, atol=1e-7)
    alpha = np.where(np.arange(8)[None] < 4, 255, 0).astype(np.uint8).repeat(8, 0)
    transparent = np.stack([levels, alpha], axis=2)
    path = _save(tmp_path / "la_t.png", transparent, "LA")
    with pytest.raises(InputError, match="alpha channel with 32 transparent"):
        read_image_gray(path)
    flat = read_image_gray(path, ImageOptions(alpha_background=0.0))
    np.testing.assert_allclose(flat, np.where(alpha == 255, levels / 255.0, 0.0), atol=1e-7)
    rgba = np.concatenate([np.repeat(levels[..., None], 3, axis=2), alpha[..., None]], axis=2)
    with pytest.raises(InputError, match="alpha channel"):
        read_image_gray(_save(tmp_path / "rgba.png", rgba, "RGBA"))


def test_truncated_and_non_image_files(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match="cannot read PNG"):
        read_image_gray(bad)
    with pytest.raises(InputError, match="file not found"):
        read_image_gray(tmp_path / "missing.png")


def test_masks_must_be_binary(tmp_path, fa):
    np.testing.assert_array_equal(binary_mask(np.array([0, 3, 3]), "m"), [False, True, True])
    with pytest.raises(InputError, match="not binary: 3 distinct values"):
        binary_mask(np.array([0, 1, 2]), "m")
    grey = _save(tmp_path / "grey.png", np.round(fa * 255).astype(np.uint8))
    with pytest.raises(InputError, match="not binary"):
        read_mask_image(grey)
    ok = _save(tmp_path / "ok.png", np.where(fa > 0.4, 255, 0).astype(np.uint8))
    np.testing.assert_array_equal(read_mask_image(ok), fa > 0.4)
    ones16 = _save(tmp_path / "ones16.png", (fa > 0.4).astype(np.uint16))  # 0/1 in 16 bits: still a mask
    np.testing.assert_array_equal(read_mask_image(ones16), fa > 0.4)
    np.save(tmp_path / "m.npy", np.where(fa > 0.4, 1.0, np.nan))
    with pytest.raises(InputError, match="NaN/Inf"):
        read_mask_image(tmp_path / "m.npy")


def test_npz_values_checked(tmp_path):
    np.savez(tmp_path / "w.npz", w=np.full((2, 3), np.nan, np.float32))
    with pytest.raises(InputError, match="'w' has 6 NaN/Inf values"):
        read_npz(tmp_path / "w.npz")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(InputError, match="not an .npz file"):
        read_npz(tmp_path / "a.npy")


def test_resolution_rule():
    assert check_resolution(16) == 16
    with pytest.raises(InputError, match="resolution 8 is too small: images need at least 16x16"):
        check_resolution(8)


def test_png_conversion_case(shared_dir, tmp_path, capsys):
    """../shared/cases/project-png-conversion: each file read correctly or refused in one line, exit 2."""
    from stylefa.cli import main
    from stylefa.study.demo import demo_model_path

    case = shared_dir / "cases" / "project-png-conversion"
    if not case.is_dir():
        pytest.skip(f"{case} is absent")
    truth = np.load(case / "fa_true.npy")
    for name, message in (("rgba.png", "PNG has an alpha channel"), ("decfa.png", "colour PNG: channels differ")):
        out = tmp_path / name
        code = main(["project", "--network", str(demo_model_path()), "--targets", str(case / name),
                     "--perceptual", "mse", "--steps", "2", "--w-avg-samples", "200", "--outdir", str(out),
                     "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and str(case / name) in err and "\n" not in err
        assert not out.exists()
    # flattened onto FA 0 (explicitly), the RGBA file is the true FA up to 8-bit rounding
    out = tmp_path / "flat"
    code = main(["project", "--network", str(demo_model_path()), "--targets", str(case / "rgba.png"),
                 "--png-alpha-background", "0", "--perceptual", "mse", "--steps", "1", "--w-avg-samples", "200",
                 "--outdir", str(out), "--device", "cpu"])
    assert code == 0
    assert np.abs(np.load(out / "rgba" / "target.npy") - truth).max() <= 0.5 / 255 + 1e-6
