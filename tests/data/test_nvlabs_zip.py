"""The reference (NVlabs StyleGAN2-ADA) dataset ZIP written by `stylefa prepare --format nvlabs-zip`."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
from PIL import Image

from stylefa.data.dataset import FADataset
from stylefa.data.nvlabs_zip import archive_name, export_nvlabs_zip
from stylefa.data.prepare import PrepareConfig, prepare_dataset
from stylefa.data.slices import SliceGrid
from tests.data.test_prepare import write_subject

GRID = SliceGrid(levels_mm=(0.0, 10.0, 20.0), resolution=32)


def _check_archive(path, expected_fa: np.ndarray, labels):
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        names = sorted(info.filename for info in infos if info.filename.endswith(".png"))
        assert len(names) == len(expected_fa)
        assert all(re.fullmatch(r"\d{5}/img\d{8}\.png", name) for name in names)
        for index, name in enumerate(names):
            assert name == f"{index // 1000:05d}/img{index:08d}.png"
            image = Image.open(io.BytesIO(archive.read(name)))
            assert image.mode == "L" and image.size == (32, 32)
            # 8-bit quantisation of the float FA: round(FA * 255), checked independently here.
            np.testing.assert_array_equal(np.asarray(image), np.floor(expected_fa[index] * 255 + 0.5).astype(np.uint8))
        meta = json.loads(archive.read("dataset.json"))
    assert meta == {"labels": labels(names)}


def test_zip_is_a_valid_reference_dataset(tmp_path):
    paths = [write_subject(tmp_path / "in", f"sub-{i}_FA.nii.gz", voxel=(6.0, 6.0, 6.0)) for i in range(2)]
    prepare_dataset(paths, tmp_path / "ds", PrepareConfig(grid=GRID, formats=("stylefa", "nvlabs-zip")))
    data = FADataset(tmp_path / "ds", split="train")
    expected = np.stack([data.fa(i)[0] for i in range(len(data))])
    _check_archive(tmp_path / "ds" / "nvlabs-train.zip", expected, labels=lambda names: None)
    assert not (tmp_path / "ds" / "nvlabs-val.zip").exists()  # empty splits get no archive


def test_labels_are_written_as_name_label_pairs(tmp_path):
    path = write_subject(tmp_path / "in", "sub-1_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    prepare_dataset([path], tmp_path / "ds", PrepareConfig(grid=GRID, labels="level"))
    out = export_nvlabs_zip(tmp_path / "ds", tmp_path / "c.zip", split="all")
    data = FADataset(tmp_path / "ds", split="all")
    expected = np.stack([data.fa(i)[0] for i in range(len(data))])
    _check_archive(out, expected, labels=lambda names: [[n, i % 3] for i, n in enumerate(names)])


def test_archive_names_roll_over_every_thousand():
    assert archive_name(0) == "00000/img00000000.png"
    assert archive_name(999) == "00000/img00000999.png"
    assert archive_name(1000) == "00001/img00001000.png"
    assert archive_name(8567) == "00008/img00008567.png"
