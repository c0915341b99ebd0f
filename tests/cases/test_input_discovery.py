"""../shared/cases/input-discovery-drops-or-duplicates: every file or folder the input search meets is
used or reported, by one discovery function (``stylefa.discovery``) for ``fa``, ``prepare`` and
``study``: broken symlinks (git-annex content not fetched) are errors naming them with the
``datalad get`` hint (or listed under --skip-bad), symlinked folders are followed with a loop
guard, NIfTI-1 .hdr/.img pairs are read, hidden folders (.git, .datalad) are never searched,
and the same file reached twice is kept once."""

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from stylefa.cli import main
from stylefa.data.subjects import find_subjects
from stylefa.discovery import (
    BROKEN_SYMLINK,
    HIDDEN,
    SAME_FILE,
    SAME_FOLDER,
    UNPAIRED,
    DiscoveryRules,
    discover_files,
)
from stylefa.errors import InputError

FA = "data/fa/subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
PREPARE = ["--resolution", "64", "--split", "1,0,0", "--slices", "3"]
ANNEX_OBJECT = ".git/annex/objects/Xq/7b/MD5E-s400545--a1b2.nii.gz/MD5E-s400545--a1b2.nii.gz"


def _fa_variant(shared, path, factor):
    """The real FA map scaled by ``factor`` (distinct voxels per subject, so duplicates stay out of the way)."""
    image = nib.load(shared / FA)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj, np.float32) * factor, image.affine), path)


@pytest.fixture()
def case(shared_dir, tmp_path):
    """The case's folders (make_case.sh), each subject's FA scaled differently."""
    root = tmp_path
    (root / "annex/.git/annex/objects/Xq/7b/MD5E-s400545--a1b2.nii.gz").mkdir(parents=True)
    for s in ("01", "02", "03"):
        (root / f"annex/sub-{s}").mkdir()
    _fa_variant(shared_dir, root / "annex" / ANNEX_OBJECT, 1.0)
    os.symlink(f"../{ANNEX_OBJECT}", root / "annex/sub-01/sub-01_FA.nii.gz")
    os.symlink("../.git/annex/objects/Zz/00/MD5E-s400545--c3d4.nii.gz/MD5E-s400545--c3d4.nii.gz",
               root / "annex/sub-02/sub-02_FA.nii.gz")
    _fa_variant(shared_dir, root / "annex/sub-03/sub-03_FA.nii.gz", 0.95)
    (root / "linked/sub-04").mkdir(parents=True)
    (root / "store/sub-05").mkdir(parents=True)
    _fa_variant(shared_dir, root / "linked/sub-04/sub-04_FA.nii.gz", 0.9)
    _fa_variant(shared_dir, root / "store/sub-05/sub-05_FA.nii.gz", 0.85)
    os.symlink("../store/sub-05", root / "linked/sub-05")
    (root / "pair").mkdir()
    _fa_variant(shared_dir, root / "pair/sub-06_FA.nii.gz", 0.8)
    image = nib.load(shared_dir / FA)
    nib.save(nib.Nifti1Pair(np.asarray(image.dataobj, np.float32) * 0.75, image.affine), root / "pair/sub-07_FA.img")
    return root


def test_annex_dataset(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The dangling (not fetched) file is an error naming it, with the git-annex/DataLad hint.
    assert main(["prepare", "annex", "-o", "DS1", *PREPARE]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stylefa prepare: error: annex/sub-02/sub-02_FA.nii.gz: not available: broken symlink into "
                          "a git-annex store (content not fetched? run `datalad get annex/sub-02/sub-02_FA.nii.gz`")
    assert "pass --skip-bad" in err and "\n" not in err
    assert not (tmp_path / "DS1").exists()
    # The same through a glob; with --skip-bad it is listed as skipped, and .git/ never becomes a subject.
    assert main(["prepare", "annex/sub-*/*_FA.nii.gz", "-o", "DS2", *PREPARE]) == 2
    assert "annex/sub-02/sub-02_FA.nii.gz: not available" in capsys.readouterr().err
    assert main(["prepare", "annex", "-o", "DS1", *PREPARE, "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "wrote DS1: 6 slices of 2 subject(s), skipped 1 bad input(s)" in captured.out
    assert "stylefa prepare: hidden, never searched (1): annex/.git: hidden folder" in captured.err
    meta = json.loads((tmp_path / "DS1/dataset.json").read_text())
    assert [s["subject"] for s in meta["subjects"]] == ["sub-01", "sub-03"]
    assert [s["source"] for s in meta["skipped"]] == ["annex/sub-02/sub-02_FA.nii.gz"]
    assert "datalad get" in meta["skipped"][0]["problem"]


def test_symlinked_folders_pairs_and_overlaps(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "linked", "-o", "DS3", *PREPARE]) == 0
    meta = json.loads((tmp_path / "DS3/dataset.json").read_text())
    assert [s["source"] for s in meta["subjects"]] == ["linked/sub-04/sub-04_FA.nii.gz",
                                                       "linked/sub-05/sub-05_FA.nii.gz"]
    assert main(["prepare", "pair", "-o", "DS4", *PREPARE]) == 0
    meta = json.loads((tmp_path / "DS4/dataset.json").read_text())
    assert [s["source"] for s in meta["subjects"]] == ["pair/sub-06_FA.nii.gz", "pair/sub-07_FA.hdr"]
    images = np.load(tmp_path / "DS4/images.npy")
    np.testing.assert_allclose(images[3:6], images[0:3] * 0.75 / 0.8, atol=1e-5)  # the pair's own voxels
    # Overlapping folder, glob and file: each file once; the second link to store/sub-05 is searched once.
    os.symlink("../store/sub-05", tmp_path / "linked/sub-05-again")
    os.symlink("..", tmp_path / "linked/sub-04/loop")  # a symlink loop
    capsys.readouterr()
    assert main(["prepare", "linked", "linked/sub-04/sub-04_FA.nii.gz", "linked/*/*_FA.nii.gz", "store/sub-05",
                 "-o", "DS5", *PREPARE]) == 0
    captured = capsys.readouterr()
    assert "2 subject(s)" in captured.out
    assert "folders reached twice, searched once (2)" in captured.err
    assert "files reached twice, kept once" in captured.err


def test_discovery_report(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink("..", "linked/sub-04/loop")
    shutil.copy("pair/sub-07_FA.hdr", "pair/sub-08_FA.hdr")  # a header without its image
    shutil.copy("pair/sub-06_FA.nii.gz", "pair/._sub-06_FA.nii.gz")  # a macOS resource-fork file
    found = discover_files(["annex", "linked", "pair", "pair/sub-07_FA.img"])
    assert [str(p) for p in found.paths] == [
        "annex/sub-01/sub-01_FA.nii.gz", "annex/sub-03/sub-03_FA.nii.gz", "linked/sub-04/sub-04_FA.nii.gz",
        "linked/sub-05/sub-05_FA.nii.gz", "pair/sub-06_FA.nii.gz", "pair/sub-07_FA.hdr"]
    kinds = {(str(s.path), s.kind) for s in found.skipped}
    assert kinds == {("annex/.git", HIDDEN), ("annex/sub-02/sub-02_FA.nii.gz", BROKEN_SYMLINK),
                     ("linked/sub-04/loop", SAME_FOLDER), ("pair/._sub-06_FA.nii.gz", HIDDEN),
                     ("pair/sub-08_FA.hdr", UNPAIRED), ("pair/sub-07_FA.img", SAME_FILE)}
    with pytest.raises(InputError, match="1 unavailable input"):
        found.check_available()
    subjects, _ = find_subjects(["annex"], skip_bad=True)
    assert [s.key for s in subjects] == ["sub-01", "sub-03"]
    # An explicitly named hidden path is taken as given.
    assert discover_files(["annex/.git"]).paths == [tmp_path.joinpath("annex", ANNEX_OBJECT).relative_to(tmp_path)]
    os.makedirs("only_hidden/.datalad")
    shutil.copy("pair/sub-06_FA.nii.gz", "only_hidden/.datalad/sub-09_FA.nii.gz")
    with pytest.raises(InputError, match=r"folder contains no NIfTI files .*; hidden, never searched \(1\): "
                                         r"only_hidden/.datalad: hidden folder"):
        discover_files(["only_hidden"])
    with pytest.raises(InputError, match="folder contains no DWI"):  # rules name what a command looks for
        discover_files(["pair"], DiscoveryRules(suffixes=("_dwi.nii.gz",), what="DWI series"))


def test_analyze_pair_and_half_pairs_refused_by_name(shared_dir, tmp_path):
    from stylefa.data.nifti import load_fa

    image = nib.load(shared_dir / FA)
    data = np.asarray(image.dataobj, np.float32)
    nib.save(nib.AnalyzeImage(data, image.affine), tmp_path / "old.img")
    with pytest.raises(InputError, match="an Analyze 7.5 .hdr/.img pair .* not NIfTI"):
        load_fa(tmp_path / "old.hdr")
    nib.save(nib.Nifti1Pair(data, image.affine), tmp_path / "p.img")
    np.testing.assert_array_equal(load_fa(tmp_path / "p.img").data, load_fa(tmp_path / "p.hdr").data)
    os.remove(tmp_path / "p.img")
    with pytest.raises(InputError, match="pair without its image: p.img is missing"):
        load_fa(tmp_path / "p.hdr")


def test_fa_on_a_bids_folder(tmp_path, capsys, monkeypatch):
    """`stylefa fa BIDS`: a not-fetched series is named; a symlinked subject folder is fitted; .git skipped."""
    from dipy.data import get_fnames

    nii, bval, bvec = (str(p) for p in get_fnames(name="small_64D"))
    monkeypatch.chdir(tmp_path)
    objects = "bids/.git/annex/objects/aa/bb/MD5E-s1--x.nii"
    os.makedirs(objects)
    shutil.copy(nii, f"{objects}/MD5E-s1--x.nii")
    for s in ("01", "02"):
        os.makedirs(f"bids/sub-{s}/dwi")
        shutil.copy(bval, f"bids/sub-{s}/dwi/sub-{s}_dwi.bval")
        shutil.copy(bvec, f"bids/sub-{s}/dwi/sub-{s}_dwi.bvec")
    os.symlink("../../.git/annex/objects/aa/bb/MD5E-s1--x.nii/MD5E-s1--x.nii", "bids/sub-01/dwi/sub-01_dwi.nii")
    os.symlink("../../.git/annex/objects/cc/dd/MD5E-s2--y.nii/MD5E-s2--y.nii", "bids/sub-02/dwi/sub-02_dwi.nii")
    os.makedirs("bids_store/sub-03/dwi")
    shutil.copy(nii, "bids_store/sub-03/dwi/sub-03_dwi.nii")
    shutil.copy(bval, "bids_store/sub-03/dwi/sub-03_dwi.bval")
    shutil.copy(bvec, "bids_store/sub-03/dwi/sub-03_dwi.bvec")
    os.symlink("../bids_store/sub-03", "bids/sub-03")
    assert main(["fa", "bids", "-o", "OUT"]) == 2
    err = capsys.readouterr().err
    assert "error: bids/sub-02/dwi/sub-02_dwi.nii: not available: broken symlink into a git-annex store" in err
    assert not os.path.exists("OUT")
    # Named alone, as one series: the same hint (not "file not found").
    assert main(["fa", "bids/sub-02/dwi/sub-02_dwi.nii", "-o", "one_FA.nii.gz"]) == 2
    assert "sub-02_dwi.nii: not available: broken symlink into a git-annex store" in capsys.readouterr().err
    assert main(["fa", "bids", "-o", "OUT", "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "wrote FA maps of 2 series to OUT, skipped 1 bad series" in captured.out
    assert "bids/.git: hidden folder" in captured.err
    assert sorted(str(p.relative_to(tmp_path / "OUT")) for p in (tmp_path / "OUT").rglob("*_FA.nii.gz")) == [
        "sub-01/dwi/sub-01_desc-DTI_FA.nii.gz", "sub-03/dwi/sub-03_desc-DTI_FA.nii.gz"]


def test_study_and_lesion_globs_use_the_same_discovery(case, tmp_path, capsys, monkeypatch):
    from stylefa.study.demo import demo_model_path
    from stylefa.study.lesions import expand_paths

    monkeypatch.chdir(tmp_path)
    code = main(["study", "--network", str(demo_model_path()), "--data", "annex", "--outdir", "S", "--steps", "2",
                 "--device", "cpu", "--perceptual", "mse", "--no-lpips-metric"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("stylefa study: error: annex/sub-02/sub-02_FA.nii.gz: not available: broken symlink")
    with pytest.raises(InputError, match="datalad get"):
        expand_paths(["annex/sub-*/*.nii.gz"], "lesion mask")
    code = main(["project", "--network", str(demo_model_path()), "--nifti", "annex/sub-02/sub-02_FA.nii.gz",
                 "--outdir", "P", "--steps", "2", "--device", "cpu", "--perceptual", "mse"])
    assert code == 2 and "annex/sub-02/sub-02_FA.nii.gz: not available: broken symlink" in capsys.readouterr().err
    assert expand_paths(["linked"], "lesion mask") == ["linked/sub-04/sub-04_FA.nii.gz", "linked/sub-05/sub-05_FA.nii.gz"]
