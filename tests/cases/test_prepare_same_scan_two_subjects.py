"""../shared/cases/prepare-same-scan-two-subjects: one scan under two subject ids is refused by
``prepare`` naming both files (``--drop-duplicates`` keeps the first and reports the other), for
every way a copy can be stored: the same bytes, another format (.nii, .hdr/.img), another
header (another origin, a mislabelled orientation), another storage orientation, another precision
(8-bit, x1000 integers)."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from stylefa.cli import main

FA = "data/fa/subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
DATMAN = "COGBDY_CMH_27B0{}_01_01_DTI60-1000_08_eddy_correct_dtifit_FA.nii.gz"
PREPARE = ["--resolution", "64", "--slices", "3", "--split", "0.5,0,0.5"]


def _build_case(shared, folder):
    """As the case's make_case.sh: 27B016 and 27B029 byte-identical, 27B030 the template, 27B031 mirrored."""
    folder.mkdir()
    shutil.copy(shared / FA, folder / DATMAN.format("16"))
    shutil.copy(shared / FA, folder / DATMAN.format("29"))
    shutil.copy(shared / "data/fa/mni_fa_template_1p25mm.nii.gz", folder / DATMAN.format("30"))
    image = nib.load(shared / FA)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[::-1].copy(), image.affine), folder / DATMAN.format("31"))


def test_case_refused_naming_both_files_then_dropped_on_request(shared_dir, tmp_path, capsys):
    dup = tmp_path / "dup"
    _build_case(shared_dir, dup)
    out = tmp_path / "DS"
    assert main(["prepare", str(dup), "-o", str(out), *PREPARE]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"stylefa prepare: error: {dup / DATMAN.format('29')}: has the same voxels (sha256 ")
    assert f"as {dup / DATMAN.format('16')}: one scan under two subject ids" in err
    assert "would leak between splits" in err and "--drop-duplicates" in err
    assert not out.exists()  # nothing written (the shards stay in .DS.partial for the rerun)

    assert main(["prepare", str(dup), "-o", str(out), *PREPARE, "--drop-duplicates"]) == 0
    captured = capsys.readouterr()
    assert "dropped 1 duplicate(s)" in captured.out and DATMAN.format("29") in captured.err
    meta = json.loads((out / "dataset.json").read_text())
    sources = [s["source"] for s in meta["subjects"]]
    assert len(sources) == 3 and not any("27B029" in s for s in sources)
    (skipped,) = meta["skipped"]
    assert "27B029" in skipped["source"] and skipped["problem"].startswith("dropped (--drop-duplicates): has the same")
    images = np.load(out / "images.npy")
    rows = [images[i:i + 3] for i in range(0, len(images), 3)]
    assert all(not np.array_equal(rows[i], rows[j]) for i in range(3) for j in range(i + 1, 3))


def _copy_as(kind, source, folder):
    """``source`` (an FA file) stored again as ``kind``; returns the copy's path."""
    image = nib.load(source)
    data = np.asarray(image.dataobj, dtype=np.float32)
    if kind == "nii":
        path = folder / "sub-02_FA.nii"
        nib.save(nib.Nifti1Image(data, image.affine, image.header), path)
    elif kind == "pair":
        path = folder / "sub-02_FA.hdr"
        nib.save(nib.Nifti1Pair(data, image.affine), folder / "sub-02_FA.img")
    elif kind == "header":  # mangled header: another origin, description and intent
        affine = image.affine.copy()
        affine[:3, 3] += (4.0, -6.0, 2.0)
        copy = nib.Nifti1Image(data, affine)
        copy.header["descrip"] = b"another scanner export"
        path = folder / "sub-02_FA.nii.gz"
        nib.save(copy, path)
    elif kind == "mislabelled":  # mangled orientation: the header says RAS where the voxels are LAS
        path = folder / "sub-02_FA.nii.gz"
        nib.save(nib.Nifti1Image(data, np.diag([-1.0, 1.0, 1.0, 1.0]) @ image.affine), path)
    elif kind == "reoriented":  # RAS on disk instead of LAS: same voxels, other storage order
        path = folder / "sub-02_FA.nii.gz"
        nib.save(nib.as_closest_canonical(nib.Nifti1Image(data, image.affine)), path)
    elif kind in ("uint8", "int16x1000"):  # stored at another precision with a scale factor
        dtype, scale = (np.uint8, 255.0) if kind == "uint8" else (np.int16, 1000.0)
        copy = nib.Nifti1Image(np.round(np.clip(data, 0, 1) * scale).astype(dtype), image.affine)
        copy.header.set_slope_inter(1.0 / scale, 0.0)
        path = folder / "sub-02_FA.nii.gz"
        nib.save(copy, path)
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind", ["nii", "pair", "header", "mislabelled", "reoriented", "uint8", "int16x1000"])
def test_every_kind_of_copy_is_one_scan(shared_dir, tmp_path, capsys, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    original = folder / "sub-01_FA.nii.gz"
    shutil.copy(shared_dir / FA, original)
    copy = _copy_as(kind, original, folder)
    mirrored = nib.load(original)  # a third, different subject
    nib.save(nib.Nifti1Image(np.asarray(mirrored.dataobj)[::-1].copy(), mirrored.affine), folder / "sub-03_FA.nii.gz")
    out = tmp_path / "DS"
    assert main(["prepare", str(folder), "-o", str(out), *PREPARE]) == 2
    err = capsys.readouterr().err
    assert f"error: {copy}: has the same " in err and f"as {original}: one scan under two subject ids" in err
    exact = kind in ("nii", "pair", "reoriented", "header", "mislabelled")
    assert ("the same voxels (sha256" in err) == exact  # else: the same slices within a quantisation step
    assert not out.exists()


def test_distinct_scans_and_sessions(shared_dir, tmp_path, capsys):
    """Different scans pass; the same scan as two sessions of one subject is refused as counted twice."""
    from stylefa.data.duplicates import DUPLICATE_FA_TOLERANCE

    folder = tmp_path / "in"
    folder.mkdir()
    image = nib.load(shared_dir / FA)
    data = np.asarray(image.dataobj, dtype=np.float32)
    # A scan differing by 2 quantisation steps of 8 bits at every voxel is not a copy.
    other = np.where(data > 0, np.clip(data + 2 * DUPLICATE_FA_TOLERANCE, 0, 1), 0).astype(np.float32)
    nib.save(nib.Nifti1Image(data, image.affine), folder / "sub-01_FA.nii.gz")
    nib.save(nib.Nifti1Image(other, image.affine), folder / "sub-02_FA.nii.gz")
    assert main(["prepare", str(folder), "-o", str(tmp_path / "A"), *PREPARE]) == 0
    capsys.readouterr()
    nib.save(nib.Nifti1Image(data, image.affine), folder / "sub-01_ses-2_FA.nii.gz")
    assert main(["prepare", str(folder), "-o", str(tmp_path / "B"), *PREPARE]) == 2
    err = capsys.readouterr().err
    assert "the same scan twice for subject sub-01 (counted twice)" in err
