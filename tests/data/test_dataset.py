"""FADataset: values, shapes, splits, mirroring, labels, masks, DataLoader use."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from stylefa.data.dataset import FADataset
from stylefa.data.prepare import PrepareConfig, prepare_dataset
from stylefa.data.slices import SliceGrid
from stylefa.errors import InputError
from tests.data.test_prepare import write_subject

GRID = SliceGrid(levels_mm=(-8.0, 0.0, 8.0, 16.0), resolution=24, fov_mm=216.0, center_mm=(0.0, -18.0))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    paths = [write_subject(root / "in", f"sub-{i:02d}_FA.nii.gz", voxel=(6.0, 6.0, 6.0)) for i in range(5)]
    prepare_dataset(paths, root / "ds", PrepareConfig(grid=GRID, split_fractions=(0.6, 0.2, 0.2), labels="level"))
    return root / "ds"


def test_items_are_fa_scaled_to_minus_one_one(dataset_dir):
    data = FADataset(dataset_dir, split="train")
    raw = np.load(dataset_dir / "images.npy")  # the stored float32 FA, read independently
    assert len(data) == 3 * GRID.num_slices
    for idx in (0, 5, len(data) - 1):
        image, label = data[idx]
        assert image.dtype == torch.float32 and image.shape == (1, 24, 24)
        stored = raw[data.metadata[idx]["index"]]
        np.testing.assert_array_equal(image.numpy(), stored * 2 - 1)
        np.testing.assert_array_equal(data.fa(idx), stored)
        assert label.shape == (GRID.num_slices,) and label.sum() == 1
        assert int(label.argmax()) == data.metadata[idx]["level"]
    assert data.resolution == 24 and data.num_channels == 1 and data.label_dim == GRID.num_slices


def test_xflip_doubles_with_mirrored_copies(dataset_dir):
    plain = FADataset(dataset_dir, split="val")
    flipped = FADataset(dataset_dir, split="val", xflip=True)
    n = len(plain)
    assert len(flipped) == 2 * n
    for idx in range(n):
        np.testing.assert_array_equal(flipped.fa(idx), plain.fa(idx))
        np.testing.assert_array_equal(flipped.fa(idx + n), plain.fa(idx)[:, :, ::-1])
        np.testing.assert_array_equal(flipped.mask(idx + n), plain.mask(idx)[:, ::-1])
    assert flipped.metadata[n]["xflip"] and not flipped.metadata[0]["xflip"]


def test_masks_cover_the_brain(dataset_dir):
    data = FADataset(dataset_dir, split="all")
    for idx in range(len(data)):
        fa, mask = data.fa(idx)[0], data.mask(idx)
        assert mask.dtype == bool and mask.shape == (24, 24)
        assert np.all(mask[fa > 0.05]) and not mask[0, 0] and not mask[-1, -1]  # corners are background
        assert 0.1 < mask.mean() < 0.9


def test_splits_are_subject_disjoint_and_cover_everything(dataset_dir):
    subjects = {s: set(FADataset(dataset_dir, split=s).subjects()) for s in ("train", "val", "test")}
    assert [len(subjects[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    assert set.union(*subjects.values()) == {f"sub-{i:02d}" for i in range(5)}
    assert len(FADataset(dataset_dir, split="all")) == 5 * GRID.num_slices


def test_dataloader_and_pickling_do_not_copy_the_memory_map(dataset_dir):
    data = FADataset(dataset_dir, split="train", xflip=True)
    data.fa(0)  # opens the map
    clone = pickle.loads(pickle.dumps(data))
    assert clone._images is None
    np.testing.assert_array_equal(clone.fa(3), data.fa(3))
    images, labels = next(iter(torch.utils.data.DataLoader(data, batch_size=8, shuffle=False)))
    assert images.shape == (8, 1, 24, 24) and labels.shape == (8, GRID.num_slices)


def test_bad_paths_and_splits(dataset_dir, tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        FADataset(tmp_path / "missing")
    with pytest.raises(InputError, match="no dataset.json"):
        FADataset(tmp_path)
    with pytest.raises(InputError, match="split must be one of"):
        FADataset(dataset_dir, split="validation")
    with pytest.raises(IndexError):
        FADataset(dataset_dir, split="test")[10_000]


def test_a_one_subject_dataset_names_the_split_it_has(tmp_path):
    # prepare puts a lone subject in the train split; study/project default to --split test
    path = write_subject(tmp_path / "in", "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    prepare_dataset([path], tmp_path / "ds", PrepareConfig(grid=GRID))
    with pytest.raises(InputError, match=r"split 'test' is empty; this dataset has train \(4 slices\): "
                                         r"pass --split train"):
        FADataset(tmp_path / "ds", split="test")
    assert len(FADataset(tmp_path / "ds", split="train")) == GRID.num_slices


def test_a_nifti_file_given_as_dataset_says_so_and_names_prepare(tmp_path, capsys):
    from stylefa.cli import main

    path = write_subject(tmp_path / "in", "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    with pytest.raises(InputError, match="is a NIfTI file, not a prepared dataset folder; make one with `stylefa prepare"):
        FADataset(path)
    assert main(["train", "--data", str(path), "--outdir", str(tmp_path / "runs"), "--cfg", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "NIfTI file" in err and "stylefa prepare" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
