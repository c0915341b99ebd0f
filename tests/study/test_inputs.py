"""Study inputs: FA NIfTI files are cut exactly as `stylefa prepare` cut the training data."""

import csv

import numpy as np
import pytest

from stylefa.data.nifti import make_volume, save_volume
from stylefa.data.slices import SliceGrid, threshold_masks
from stylefa.errors import InputError
from stylefa.nets.checkpoint import Provenance
from stylefa.study.inputs import (
    DEFAULT_ORIGIN,
    TRAINING_ORIGIN,
    NiftiSource,
    training_slicing,
)

from .volumes import MNI_2MM, world

# A geometry unlike the default grid (levels, field of view, centre and threshold all differ).
GEOMETRY = {"resolution": 32, "fov_mm": 180.0, "center_mm": [4.0, -22.0], "levels_mm": [6.0, 13.0, 31.0],
            "pixel_size_mm": 180.0 / 32, "mask": {"method": "sibling brain mask if present, else FA threshold "
                                                   "with holes filled", "threshold": 0.2}}


@pytest.fixture(scope="module")
def fa_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("fa_inputs")
    x, y, z = world()
    brain = (x / 70) ** 2 + ((y + 18) / 90) ** 2 + ((z - 15) / 60) ** 2 < 1
    fa = np.where(brain, 0.3 + 0.25 * np.cos(x / 7.0) * np.cos(y / 9.0), 0.0)
    save_volume(make_volume(fa, MNI_2MM), root / "sub-01_FA.nii.gz")
    # A sibling brain mask (a box, unlike any FA threshold) must replace the threshold rule.
    box = (np.abs(x) < 40) & (np.abs(y + 10) < 50)
    save_volume(make_volume(box.astype(np.uint8), MNI_2MM), root / "sub-01_brainmask.nii.gz")
    save_volume(make_volume(np.roll(fa, 4, axis=1), MNI_2MM), root / "sub-02_ses-01_FA.nii.gz")
    return root


def test_training_slicing_from_the_snapshot_record():
    slicing = training_slicing(Provenance(extra={"dataset": GEOMETRY}), 32, "G.safetensors")
    assert slicing.origin == TRAINING_ORIGIN
    assert slicing.grid == SliceGrid(levels_mm=(6.0, 13.0, 31.0), resolution=32, fov_mm=180.0, center_mm=(4.0, -22.0))
    assert slicing.mask_threshold == 0.2
    # Older and imported networks record nothing: the default grid at the network's resolution.
    for provenance in (None, Provenance(), Provenance(extra={"kimg_from": "file name"})):
        default = training_slicing(provenance, 64, "G.safetensors")
        assert default.origin == DEFAULT_ORIGIN and default.grid == SliceGrid(resolution=64)
        assert default.mask_threshold == 0.05
    with pytest.raises(InputError, match="records training slices of 32x32 pixels but the generator makes 64x64"):
        training_slicing(Provenance(extra={"dataset": GEOMETRY}), 64, "G.safetensors")
    broken = {**GEOMETRY, "fov_mm": None}
    with pytest.raises(InputError, match="malformed"):
        training_slicing(Provenance(extra={"dataset": broken}), 32, "G.safetensors")


def test_nifti_slices_equal_prepare_output(fa_folder, tmp_path):
    from stylefa.data.prepare import PrepareConfig, prepare_dataset

    slicing = training_slicing(Provenance(extra={"dataset": GEOMETRY}), 32, "G")
    # The folder is expanded as prepare expands it (the sibling brain mask is not an FA map).
    source = NiftiSource([fa_folder], slicing)
    # Oracle: `stylefa prepare` with the geometry the training data were made with.
    out = tmp_path / "prepared"
    prepare_dataset([fa_folder], out, PrepareConfig(grid=slicing.grid, mask_threshold=0.2,
                                                    split_fractions=(1.0, 0.0, 0.0)))
    images = np.load(out / "images.npy")
    masks = np.load(out / "masks.npy")
    with open(out / "slices.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(source.items) == len(rows) == 6
    by_key = {(row["key"], int(row["level"])): i for i, row in enumerate(rows)}
    for item in source.items:
        data = source.load(item)
        index = by_key[(item.scan, item.level)]
        np.testing.assert_array_equal(data.fa, images[index, 0])
        np.testing.assert_array_equal(data.brain, masks[index])
        assert item.z_mm == float(rows[index]["z_mm"]) == GEOMETRY["levels_mm"][item.level]
        assert item.subject == rows[index]["subject"]
        assert item.plane.levels_mm == (item.z_mm,) and item.plane.fov_mm == 180.0
    # BIDS-aware ids, as prepare gives them; sessions keep their subject.
    assert {(i.subject, i.scan) for i in source.items} == {("sub-01", "sub-01"), ("sub-02", "sub-02_ses-01")}
    assert [i.key for i in source.items[:3]] == ["sub-01_L00", "sub-01_L01", "sub-01_L02"]
    # sub-01's brain is its sibling mask, not the FA threshold; sub-02's is the threshold rule at 0.2.
    sub1 = [source.load(i) for i in source.items if i.scan == "sub-01"]
    assert not np.array_equal(np.stack([s.brain for s in sub1]), threshold_masks(np.stack([s.fa for s in sub1]), 0.2))
    sub2 = [source.load(i) for i in source.items if i.scan == "sub-02_ses-01"]
    np.testing.assert_array_equal(np.stack([s.brain for s in sub2]), threshold_masks(np.stack([s.fa for s in sub2]), 0.2))
    files = source.fingerprint()["files"]
    assert files["sub-01"]["brain_mask_sha256"] is not None and files["sub-02_ses-01"]["brain_mask_sha256"] is None


def test_nifti_outside_the_recorded_levels_is_refused(fa_folder):
    geometry = {**GEOMETRY, "levels_mm": [6.0, 150.0]}
    slicing = training_slicing(Provenance(extra={"dataset": geometry}), 32, "G")
    with pytest.raises(InputError, match="outside the volume's field of view") as info:
        NiftiSource([fa_folder / "sub-01_FA.nii.gz"], slicing)
    assert info.value.path.endswith("sub-01_FA.nii.gz")
