"""Loading/validation of NIfTI volumes: every bad input is a one-line InputError."""

import gzip
import warnings

import nibabel as nib
import numpy as np
import pytest

from stylefa.data.nifti import (
    ClippedValuesWarning,
    canonical,
    load_fa,
    load_volume,
    make_volume,
    save_volume,
)
from stylefa.errors import InputError

LAS_2MM = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])


def fa_like(shape=(12, 14, 10), seed=0):
    rng = np.random.default_rng(seed)
    data = np.zeros(shape, np.float32)
    data[2:-2, 2:-2, 2:-2] = rng.uniform(0.05, 0.9, size=tuple(s - 4 for s in shape))
    return data


def write(path, data, affine=LAS_2MM, codes=(1, 1)):
    image = nib.Nifti1Image(np.asarray(data), affine)
    image.header.set_qform(affine, code=codes[0])
    image.header.set_sform(affine, code=codes[1])
    nib.save(image, path)
    return path


def problem(excinfo):
    return str(excinfo.value)


def test_roundtrip_keeps_data_affine_and_is_float32(tmp_path):
    data = fa_like()
    volume = load_fa(write(tmp_path / "fa.nii.gz", data))
    assert volume.data.dtype == np.float32 and volume.affine.dtype == np.float64
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, LAS_2MM)
    out = save_volume(volume, tmp_path / "out" / "copy.nii.gz")
    again = nib.load(out)
    np.testing.assert_array_equal(again.get_fdata(dtype=np.float32), data)
    np.testing.assert_allclose(again.affine, LAS_2MM, atol=1e-5)
    assert again.header["sform_code"] > 0 and again.header["qform_code"] > 0
    assert not list(out.parent.glob(".*tmp*")), "temporary file left behind"


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_fa(tmp_path / "nope.nii.gz")


def test_truncated_gzip(tmp_path):
    full = write(tmp_path / "fa.nii.gz", fa_like((30, 30, 30)))
    blob = full.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as excinfo:
        load_fa(cut)
    assert str(cut) in problem(excinfo)


def test_not_a_nifti(tmp_path):
    bad = tmp_path / "notes.nii"
    bad.write_text("this is not an image\n" * 50)
    with pytest.raises(InputError, match="not a NIfTI"):
        load_fa(bad)
    gz = tmp_path / "text.nii.gz"
    gz.write_bytes(gzip.compress(b"hello" * 100))
    with pytest.raises(InputError):
        load_fa(gz)


def test_4d_where_3d_expected_and_vice_versa(tmp_path):
    four = write(tmp_path / "dwi.nii.gz", np.ones((6, 6, 6, 5), np.float32))
    with pytest.raises(InputError, match="is 4-D .* expected a 3-D FA volume"):
        load_fa(four)
    three = write(tmp_path / "fa.nii.gz", fa_like())
    with pytest.raises(InputError, match="is 3-D .* expected a 4-D DWI"):
        load_volume(three, expect_ndim=4, name="DWI")


def test_trailing_singleton_axis_is_squeezed(tmp_path):
    data = fa_like()
    path = write(tmp_path / "fa1.nii.gz", data[..., None])
    assert load_fa(path).shape == data.shape


def test_nan_and_inf_are_counted(tmp_path):
    data = fa_like()
    data[3, 3, 3] = np.nan
    data[4, 4, 4] = np.inf
    data[5, 5, 5] = np.nan
    with pytest.raises(InputError, match=r"^.*: 3 voxel\(s\) are NaN or Inf"):
        load_fa(write(tmp_path / "nan.nii.gz", data))


def test_all_zero_is_empty(tmp_path):
    with pytest.raises(InputError, match="empty"):
        load_fa(write(tmp_path / "zero.nii.gz", np.zeros((8, 8, 8), np.float32)))


def test_no_positive_fa_is_empty_brain(tmp_path):
    data = np.zeros((8, 8, 8), np.float32)
    data[2, 2, 2] = -0.01
    with pytest.raises(InputError, match="brain is empty"):
        load_fa(write(tmp_path / "neg.nii.gz", data))


def test_missing_orientation(tmp_path):
    path = tmp_path / "noorient.nii.gz"
    image = nib.Nifti1Image(fa_like(), None)  # Analyze-style: voxel sizes only
    image.header.set_zooms((2.0, 2.0, 2.0))
    nib.save(image, path)
    assert nib.load(path).header["sform_code"] == 0 == nib.load(path).header["qform_code"]
    with pytest.raises(InputError, match="no spatial orientation"):
        load_fa(path)


def test_singular_affine(tmp_path):
    singular = LAS_2MM.copy()
    singular[:3, 2] = singular[:3, 0]  # two identical voxel axes
    path = tmp_path / "singular.nii.gz"
    image = nib.Nifti1Image(fa_like(), singular)
    image.header.set_sform(singular, code=1)
    image.header["qform_code"] = 0
    nib.save(image, path)
    with pytest.raises(InputError, match="singular affine"):
        load_fa(path)


def test_fit_artefacts_above_one_are_clipped_with_a_count(tmp_path):
    data = fa_like((20, 20, 20))
    data[5, 5, 5:9] = [1.05, 1.1, 1.2, 1.2247]
    data[6, 6, 6] = -0.01
    path = write(tmp_path / "fa.nii.gz", data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = load_fa(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, ClippedValuesWarning)]
    assert len(messages) == 1 and "clipped 5 FA voxel(s)" in messages[0] and str(path) in messages[0]
    assert volume.data.max() == 1.0 and volume.data.min() == 0.0
    assert volume.data[5, 5, 5] == 1.0 and volume.data[6, 6, 6] == 0.0
    with pytest.raises(InputError, match=r"5 voxel\(s\) outside \[0, 1\] \(range -0.01 to 1.225"):
        load_fa(path, clip=False)


def test_values_beyond_the_fa_formula_bound_are_not_fa(tmp_path):
    data = fa_like() * 1000.0  # FA stored per mille
    with pytest.raises(InputError, match="not an FA map"):
        load_fa(write(tmp_path / "permille.nii.gz", data))


def test_too_many_artefacts_is_an_error(tmp_path):
    data = fa_like()
    brain = data > 0
    data[brain] = np.where(np.arange(brain.sum()) % 5 == 0, 1.1, data[brain])  # 20% above 1
    with pytest.raises(InputError, match="more than the 5% expected"):
        load_fa(write(tmp_path / "many.nii.gz", data))


def test_canonical_matches_nibabel_and_keeps_values(tmp_path):
    data = fa_like()
    volume = load_fa(write(tmp_path / "las.nii.gz", data))
    ras = canonical(volume)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    # Independent check: x flipped (L -> R), world position of every voxel preserved.
    np.testing.assert_array_equal(ras.data, data[::-1])
    i, j, k = 3, 4, 5
    world_las = LAS_2MM @ [i, j, k, 1]
    world_ras = ras.affine @ [data.shape[0] - 1 - i, j, k, 1]
    np.testing.assert_allclose(world_las, world_ras)


def test_save_rejects_other_extensions(tmp_path):
    with pytest.raises(InputError, match=".nii or .nii.gz"):
        save_volume(make_volume(fa_like(), LAS_2MM), tmp_path / "fa.png")


def test_real_niivue_subject_is_clipped(shared_dir):
    path = shared_dir / "data" / "fa" / "subj-niivue_space-native_res-2p2mm_FA.nii.gz"
    with pytest.warns(ClippedValuesWarning, match="clipped 2154 FA voxel"):
        volume = load_fa(path)
    assert volume.shape == (84, 92, 56) and float(volume.data.max()) == 1.0
