"""Masks and companions are what they claim: lesion masks (binary or thresholded probability maps,
plausible size), FLAIR pairing, project --mask and prepare's brain masks."""

import numpy as np
import pytest

from stylefa.data.nifti import make_volume, save_volume
from stylefa.errors import InputError
from stylefa.study.lesions import masks as lesions

AFFINE_2MM = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])


def _save(path, data, affine=AFFINE_2MM):
    save_volume(make_volume(np.asarray(data, np.float32), affine), path)
    return path


def test_lesion_mask_must_be_binary_or_thresholded(tmp_path):
    rng = np.random.default_rng(0)
    flair_like = _save(tmp_path / "p01_FLAIR.nii.gz", rng.uniform(0, 500, (20, 20, 20)))
    with pytest.raises(InputError, match="lesion mask is not binary.*--lesion-threshold"):
        lesions.load_lesion_volume(flair_like)
    prob = np.zeros((20, 20, 20))
    prob[5:9, 5:9, 5:9] = 0.8
    prob[9, 5:9, 5:9] = 0.3
    path = _save(tmp_path / "p02_prob.nii.gz", prob)
    with pytest.raises(InputError, match="not binary"):
        lesions.load_lesion_volume(path)
    vol = lesions.load_lesion_volume(path, threshold=0.5)
    assert vol.voxel_count == 64 and vol.threshold == 0.5
    assert lesions.load_lesion_volume(path, threshold=0.2).voxel_count == 80
    with pytest.raises(InputError, match=r"values in \[0, 1\]"):
        lesions.load_lesion_volume(flair_like, threshold=0.5)


def test_lesion_mask_covering_the_brain_is_refused(tmp_path):
    brain = np.zeros((91, 109, 91))
    brain[15:75, 15:95, 15:75] = 1  # 288 000 voxels of 8 mm^3: 2304 mL
    path = _save(tmp_path / "brain_mask.nii.gz", brain)
    with pytest.raises(InputError, match="covers 2304 mL.*brain or tissue mask"):
        lesions.load_lesion_volume(path)


def test_flair_pairs_one_to_one():
    assert lesions.pair_flairs(["a", "b"], []) == [None, None]
    assert lesions.pair_flairs(["a", "b"], ["fa", "fb"]) == ["fa", "fb"]
    for masks, flairs in ((["a", "b"], ["f"]), ([], ["f"]), (["a"], ["f", "g"])):
        with pytest.raises(InputError, match="give no FLAIR, exactly one per mask"):
            lesions.pair_flairs(masks, flairs)


def test_mask_given_as_flair_is_refused(tmp_path):
    mask = np.zeros((20, 20, 20))
    mask[5:9, 5:9, 5:9] = 1
    path = _save(tmp_path / "p01_mask.nii.gz", mask)
    with pytest.raises(InputError, match="is it a mask"):
        lesions.load_lesion_volume(path, path)


def test_prepare_brain_mask_must_be_binary(shared_dir, tmp_path, capsys):
    import nibabel as nib

    from stylefa.cli import main

    real = shared_dir / "data/fa/subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    if not real.is_file():
        pytest.skip(f"{real} is absent")
    image = nib.load(real)
    folder = tmp_path / "in"
    folder.mkdir()
    fa = _save(folder / "sub-01_FA.nii.gz", np.asarray(image.dataobj), image.affine)
    sibling = _save(folder / "sub-01_brainmask.nii.gz", np.asarray(image.dataobj) * 7.0, image.affine)  # not a mask
    out = tmp_path / "DS"
    code = main(["prepare", str(fa), "-o", str(out), "--resolution", "16", "--split", "1,0,0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "brain mask is not binary" in err and str(sibling) in err and "\n" not in err
