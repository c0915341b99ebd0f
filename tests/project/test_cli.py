"""`stylefa project` end to end on a tiny saved generator (mse loss, a few steps)."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from stylefa.cli import main
from stylefa.nets.checkpoint import save_networks

from .helpers import tiny_generator

STEPS = 4


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    G = tiny_generator(resolution=16, w_dim=16, noise_strength=0.2)
    path = tmp_path_factory.mktemp("net") / "G.safetensors"
    save_networks(path, G_ema=G)
    return path


@pytest.fixture()
def target_files(tmp_path):
    rng = np.random.default_rng(0)
    npy = tmp_path / "sliceA.npy"
    np.save(npy, rng.uniform(0, 1, (16, 16)).astype(np.float32))
    png = tmp_path / "sliceB.png"
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(png)  # resized to 16
    return [npy, png]


def run(*args):
    return main(["project", *map(str, args)])


def test_project_writes_resumable_outputs_that_generate_re_renders(network, target_files, tmp_path):
    outdir = tmp_path / "out"
    code = run("--network", network, "--targets", *target_files, "--outdir", outdir, "--steps", STEPS,
               "--batch", 2, "--perceptual", "mse", "--w-avg-samples", 200, "--device", "cpu",
               "--save-video", "--video-every", 2)
    assert code == 0
    with open(outdir / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["target_id"] for row in rows] == ["sliceA", "sliceB"]
    assert all(row["perceptual"] == "mse" and -1 <= float(row["ssim"]) <= 1 for row in rows)

    folder = outdir / "sliceA"
    record = json.loads((folder / "result.json").read_text())
    assert record["perceptual"]["name"] == "mse" and record["config"]["steps"] == STEPS
    with np.load(folder / "projected_w.npz", allow_pickle=False) as data:
        assert data["w"].shape == (6, 16)  # tiny G: num_ws 6 (blocks 4, 8, 16), w_dim 16
        assert {key for key in data.files if key.startswith("noise.")} == {
            "noise.b4.conv1", "noise.b8.conv0", "noise.b8.conv1", "noise.b16.conv0", "noise.b16.conv1"}
    target = np.load(folder / "target.npy")
    projected = np.load(folder / "projected.npy")
    assert target.shape == projected.shape == (16, 16)
    np.testing.assert_allclose(target, np.load(target_files[0]))
    # summary numbers are the skimage SSIM / MSE of the saved arrays
    from skimage.metrics import structural_similarity

    expected_ssim = structural_similarity(np.clip(target, 0, 1).astype(np.float64), np.clip(projected, 0, 1).astype(np.float64),
                                          gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
    assert float(rows[0]["ssim"]) == pytest.approx(expected_ssim, abs=1e-6)
    assert float(rows[0]["mse"]) == pytest.approx(np.mean((np.clip(projected, 0, 1) - target) ** 2), rel=1e-5)
    with open(folder / "loss.csv") as handle:
        curve = list(csv.DictReader(handle))
    assert len(curve) == STEPS and {"loss", "distance", "noise_reg", "lr"} <= set(curve[0])
    with Image.open(folder / "progress.gif") as gif:
        assert gif.size == (32, 16) and gif.n_frames == STEPS // 2 + 1

    # re-render with `stylefa generate --projected-w`: same pixels
    gen_dir = tmp_path / "gen"
    assert main(["generate", "--network", str(network), "--projected-w", str(folder / "projected_w.npz"),
                 "--outdir", str(gen_dir), "--device", "cpu"]) == 0
    np.testing.assert_allclose(np.squeeze(np.load(gen_dir / "proj0000.npy")), projected, atol=1e-5)

    # resumable: a second run skips finished targets (folders untouched)
    stamp = (folder / "result.json").stat().st_mtime_ns
    assert run("--network", network, "--targets", *target_files, "--outdir", outdir, "--steps", STEPS,
               "--perceptual", "mse", "--w-avg-samples", 200, "--device", "cpu") == 0
    assert (folder / "result.json").stat().st_mtime_ns == stamp


def test_pti_and_mask_options(network, target_files, tmp_path):
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[2:14, 2:14] = 1
    mask_path = tmp_path / "mask.npy"
    np.save(mask_path, mask)
    outdir = tmp_path / "out"
    assert run("--network", network, "--targets", target_files[0], "--outdir", outdir, "--steps", STEPS,
               "--perceptual", "mse", "--w-avg-samples", 200, "--device", "cpu", "--mask", mask_path,
               "--pti-steps", 3, "--space", "w+", "--init", "random-z") == 0
    folder = outdir / "sliceA"
    np.testing.assert_array_equal(np.load(folder / "mask.npy"), mask.astype(bool))
    assert np.load(folder / "pti_projected.npy").shape == (16, 16)
    with open(folder / "pti_loss.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    with np.load(folder / "projected_w.npz") as data:
        assert not np.allclose(data["w"][0], data["w"][-1])  # w+: layers differ


def test_sharding_by_rank_and_merge(network, target_files, tmp_path, monkeypatch):
    outdir = tmp_path / "out"
    common = ["--network", network, "--targets", *target_files, "--outdir", outdir, "--steps", 2,
              "--perceptual", "mse", "--w-avg-samples", 100, "--device", "cpu"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert run(*common) == 0
    assert (outdir / "sliceB").is_dir() and not (outdir / "sliceA").exists()
    assert not (outdir / "summary.csv").exists()
    monkeypatch.setenv("RANK", "0")
    assert run(*common) == 0
    with open(outdir / "summary.csv") as handle:
        assert [row["target_id"] for row in csv.DictReader(handle)] == ["sliceA", "sliceB"]


@pytest.mark.parametrize("args, message", [
    (["--targets", "missing.npy"], "target file not found"),
    ([], "exactly one target source"),
    (["--targets", "BAD", "--perceptual", "lpips-vgg16", "--vgg16", "nope.pth"], "VGG16 weights not found"),
])
def test_bad_input_is_one_line_exit_2(network, tmp_path, capsys, args, message):
    args = [a if a != "BAD" else str(_bad_range_file(tmp_path, ok=True)) for a in args]
    code = run("--network", network, "--outdir", tmp_path / "o", "--device", "cpu", *args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err
    assert not list((tmp_path / "o").glob("*/result.json")) if (tmp_path / "o").exists() else True


def test_out_of_range_fa_file_is_rejected(network, tmp_path, capsys):
    code = run("--network", network, "--outdir", tmp_path / "o", "--device", "cpu", "--perceptual", "mse",
               "--targets", _bad_range_file(tmp_path, ok=False))
    assert code == 2 and "FA values must lie in [0, 1]" in capsys.readouterr().err


def _bad_range_file(tmp_path, ok):
    path = tmp_path / ("ok.npy" if ok else "fa1000.npy")
    np.save(path, np.full((16, 16), 0.5 if ok else 500.0, dtype=np.float32))
    return path


def test_nifti_slices_as_targets(shared_dir):
    from stylefa.data.slices import SliceGrid
    from stylefa.data.training_slicing import Slicing
    from stylefa.project.targets import nifti_targets

    path = shared_dir / "data/fa/subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    specs = nifti_targets(path, [30, 40], Slicing(SliceGrid(resolution=32), 0.05, "test"))
    assert [s.target_id for s in specs] == ["subj-tractseg_space-MNI_res-2p5mm_FA_k030", "subj-tractseg_space-MNI_res-2p5mm_FA_k040"]
    image = specs[1].load()
    assert image.shape == (32, 32) and 0 <= image.min() and image.max() <= 1 and image.mean() > 0.02


def _tiny_dataset(root, resolution=16):
    """A dataset folder in the `stylefa prepare` layout: 2 subjects x 3 levels."""
    import csv as csv_module

    from stylefa.data.prepare import DATASET_FORMAT, DATASET_FORMAT_VERSION

    root.mkdir()
    rng = np.random.default_rng(1)
    rows, subjects = [], [("sub-01", "test"), ("sub-02", "test"), ("sub-03", "train")]
    for s, (subject, split) in enumerate(subjects):
        for level in range(3):
            rows.append({"index": len(rows), "key": subject, "subject": subject, "session": "", "split": split,
                         "level": level, "z_mm": f"{2.0 * level:.4f}", "label": "", "source": "synthetic"})
    np.save(root / "images.npy", rng.uniform(0, 1, (len(rows), 1, resolution, resolution)).astype(np.float32))
    np.save(root / "masks.npy", np.ones((len(rows), resolution, resolution), dtype=bool))
    with open(root / "slices.csv", "w", newline="") as handle:
        writer = csv_module.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (root / "dataset.json").write_text(json.dumps({
        "format": DATASET_FORMAT, "format_version": DATASET_FORMAT_VERSION, "num_images": len(rows),
        "num_channels": 1, "resolution": resolution, "labels": {"kind": "none", "label_dim": 0},
        "files": {"images": "images.npy", "masks": "masks.npy", "metadata": "slices.csv"}}))
    return root


def test_dataset_targets_by_split_and_subject(tmp_path):
    from stylefa.data.dataset import FADataset
    from stylefa.errors import InputError
    from stylefa.project.targets import dataset_targets

    root = _tiny_dataset(tmp_path / "ds")
    specs = dataset_targets(root, "test", resolution=16)
    assert [s.target_id for s in specs] == [f"sub-0{i}_level0{k}" for i in (1, 2) for k in range(3)]
    only = dataset_targets(root, "test", subjects=["sub-02"], max_targets=2, resolution=16)
    assert [s.target_id for s in only] == ["sub-02_level00", "sub-02_level01"]
    np.testing.assert_array_equal(only[1].load(), FADataset(root, "test").fa(4)[0])
    with pytest.raises(InputError, match="sub-03"):
        dataset_targets(root, "test", subjects=["sub-03"], resolution=16)
    with pytest.raises(InputError, match="resolution"):
        dataset_targets(root, "test", resolution=32)


def test_rerun_with_other_settings_is_refused(network, target_files, tmp_path, capsys):
    outdir = tmp_path / "out"
    common = ["--network", network, "--targets", target_files[0], "--outdir", outdir,
              "--perceptual", "mse", "--w-avg-samples", 100, "--device", "cpu"]
    assert run(*common, "--steps", 2) == 0
    capsys.readouterr()
    assert run(*common, "--steps", 3) == 2
    err = capsys.readouterr().err.strip()
    assert "other settings" in err and "project.steps" in err and "\n" not in err
    assert run(*common, "--steps", 2, "--batch", 7) == 0  # batch size does not change results


def test_sixteen_bit_png_target_keeps_its_depth(tmp_path):
    from stylefa.project.targets import read_image_file

    levels = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    np.testing.assert_allclose(read_image_file(path), levels / 65535.0, atol=1e-7)


def test_corrupt_png_mask_is_one_line_error(network, target_files, tmp_path, capsys):
    bad = tmp_path / "mask.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    code = run("--network", network, "--targets", target_files[0], "--outdir", tmp_path / "o", "--steps", 2,
               "--perceptual", "mse", "--device", "cpu", "--mask", bad)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot read PNG" in err and "\n" not in err
