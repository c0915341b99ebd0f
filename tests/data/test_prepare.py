"""stylefa prepare: world-coordinate slicing, splits, bad input, resume, real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from stylefa.cli import main as cli_main
from stylefa.data import prepare as prep
from stylefa.data.dataset import FADataset
from stylefa.data.prepare import PrepareConfig, assign_splits, prepare_dataset, split_counts
from stylefa.data.slices import SliceGrid, levels_from_indices, levels_from_range, sample_axial_slices
from stylefa.data.subjects import discover_inputs, subject_from_path
from stylefa.errors import InputError

# The symmetric reg_aladin polish is tested in test_niftyreg/test_dwi_chain; here it only costs time.
pytestmark = pytest.mark.usefixtures("without_symmetric_polish")

SMALL = SliceGrid(levels_mm=levels_from_range(-10.0, 10.0, 3), resolution=32, fov_mm=200.0, center_mm=(0.0, 0.0))


def _affine(voxel, axcodes_flip=(True, False, False), origin=(-90.0, -100.0, -60.0)):
    """A diagonal affine; flipped axes make LAS-like (non-canonical) grids."""
    affine = np.diag([*voxel, 1.0]).astype(float)
    affine[:3, 3] = origin
    for axis, flip in enumerate(axcodes_flip):
        if flip:
            affine[axis, axis] *= -1
    return affine


def _world_grid(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _brain_like(shape, affine):
    """An ellipsoidal 'brain' in world space (centred at 0, -18, 10 mm), FA 0.8 at the centre.

    Continuous (FA falls to 0 at the edge) so that interpolation error stays small.
    """
    xyz = _world_grid(shape, affine)
    r = ((xyz[..., 0] / 70) ** 2 + ((xyz[..., 1] + 18) / 90) ** 2 + ((xyz[..., 2] - 10) / 60) ** 2)
    fa = 0.8 * np.clip(1 - r, 0.0, None)
    return fa.astype(np.float32)


def write_fa(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    image = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def write_subject(folder: Path, name: str, voxel=(4.0, 4.0, 4.0), flips=(True, False, False)) -> Path:
    # Grids cover x -90..90, y -126..90, z -60..84 mm whatever the voxel size and flips.
    shape = tuple(int(round(extent / v)) + 1 for extent, v in zip((180.0, 216.0, 144.0), voxel))
    starts = [-90.0, -126.0, -60.0]
    origin = [starts[a] + (extent if flips[a] else 0.0) for a, extent in enumerate((180.0, 216.0, 144.0))]
    affine = _affine(voxel, flips, origin)
    return write_fa(folder / name, _brain_like(shape, affine) + _name_mark(name, shape, affine), affine)


def _name_mark(name: str, shape, affine) -> np.ndarray:
    """A faint FA bump (0.015, sigma 10 mm) placed by the digits of ``name``: subjects differ on every
    slice by more than prepare's duplicate tolerance (one scan under two names is refused)."""
    k = int("".join(ch for ch in name if ch.isdigit()) or "0") % 64
    x0, y0 = -49.0 + 14.0 * (k % 8), -67.0 + 14.0 * (k // 8)
    xyz = _world_grid(shape, affine)
    bump = 0.015 * np.exp(-((xyz[..., 0] - x0) ** 2 + (xyz[..., 1] - y0) ** 2) / (2 * 10.0 ** 2))
    return np.where(_brain_like(shape, affine) > 0, bump, 0.0).astype(np.float32)


# ----------------------------------------------------------------------------- slicing


def test_linear_field_is_sampled_exactly_in_world_coordinates():
    """Trilinear interpolation reproduces a linear function of world position exactly."""
    coeffs = np.array([0.003, -0.002, 0.004])
    for voxel, flips in [((2.0, 2.0, 2.0), (True, False, False)), ((1.5, 2.5, 3.0), (False, True, True))]:
        shape = (121, 121, 61)
        affine = _affine(voxel, flips, origin=(60.0 if flips[0] else -60.0, 70.0 if flips[1] else -70.0,
                                               50.0 if flips[2] else -40.0))
        data = 0.5 + _world_grid(shape, affine) @ coeffs
        grid = SliceGrid(levels_mm=(-10.0, 0.0, 7.3), resolution=16, fov_mm=80.0, center_mm=(3.0, -5.0))
        sampled = sample_axial_slices(data.astype(np.float32), affine, grid)
        yy, xx = np.meshgrid(grid.row_y_mm(), grid.column_x_mm(), indexing="ij")
        for k, z in enumerate(grid.levels_mm):
            expected = 0.5 + coeffs[0] * xx + coeffs[1] * yy + coeffs[2] * z
            np.testing.assert_allclose(sampled[k], expected, atol=2e-5)


def test_orientation_anterior_top_subject_right_on_image_right():
    affine = _affine((2.0, 2.0, 2.0), (True, False, False), origin=(90.0, -126.0, -72.0))
    shape = (91, 109, 91)
    xyz = _world_grid(shape, affine)
    data = np.zeros(shape, dtype=np.float32)
    data[(xyz[..., 0] > 30) & (np.abs(xyz[..., 1]) < 10)] = 1.0  # subject's right (+x in RAS)
    data[(xyz[..., 1] > 50) & (np.abs(xyz[..., 0]) < 10)] = 0.5  # anterior (+y)
    grid = SliceGrid(levels_mm=(0.0,), resolution=64, fov_mm=216.0, center_mm=(0.0, -18.0))
    plane = sample_axial_slices(data, affine, grid)[0]
    rows, cols = np.nonzero(plane > 0.9)
    assert cols.min() > 32  # right half of the image
    rows, cols = np.nonzero(np.isclose(plane, 0.5, atol=0.05))
    assert rows.max() < 32  # top half of the image


def test_subjects_on_different_grids_give_the_same_levels(tmp_path):
    a = write_subject(tmp_path / "in", "sub-01_FA.nii.gz", voxel=(2.0, 2.0, 2.0), flips=(True, False, False))
    b = write_subject(tmp_path / "in", "sub-02_FA.nii.gz", voxel=(3.0, 1.5, 2.5), flips=(False, True, True))
    prepare_dataset([a, b], tmp_path / "ds", PrepareConfig(grid=SMALL))
    data = FADataset(tmp_path / "ds", split="all")
    first, second = data.fa(0), data.fa(SMALL.num_slices)
    # Same analytic brain sampled from differently sized/oriented grids: equal up to interpolation.
    assert first.max() > 0.6
    assert np.abs(first - second).max() < 0.02
    assert np.abs(first - second).mean() < 0.002


def test_levels_from_indices_follow_the_affine():
    affine = _affine((1.25, 1.25, 1.25), (True, False, False), origin=(90.0, -126.0, -72.0))
    assert levels_from_indices(57.6, 89.6, 3, affine) == pytest.approx((0.0, 20.0, 40.0))


# ----------------------------------------------------------------------------- subjects and splits


def test_bids_subject_ids():
    s = subject_from_path("/d/sub-012_ses-02_space-MNI_desc-dti_FA.nii.gz")
    assert (s.subject, s.session, s.key) == ("sub-012", "ses-02", "sub-012_ses-02")
    s = subject_from_path("/d/patient7_FA.nii")
    assert (s.subject, s.session) == ("patient7_FA", None)


def test_duplicate_subject_ids_are_an_error(tmp_path):
    a = write_subject(tmp_path / "x", "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    b = write_subject(tmp_path / "y", "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    with pytest.raises(InputError, match="same subject id"):
        discover_inputs([a, b])


def test_split_counts_and_assignment():
    assert split_counts(10, (0.8, 0.1, 0.1)) == (8, 1, 1)
    assert split_counts(408, (0.8, 0.1, 0.1)) == (326, 41, 41)
    assert split_counts(2, (0.8, 0.1, 0.1)) == (2, 0, 0)
    ids = [f"sub-{i:03d}" for i in range(50)]
    first = assign_splits(ids, (0.6, 0.2, 0.2), seed=3)
    assert first == assign_splits(list(reversed(ids)), (0.6, 0.2, 0.2), seed=3)  # order-free, deterministic
    assert first != assign_splits(ids, (0.6, 0.2, 0.2), seed=4)
    assert sorted(first.values()).count("val") == 10


def test_sessions_stay_in_one_split_and_splits_are_disjoint(tmp_path):
    folder = tmp_path / "in"
    for i in range(6):
        for ses in ("01", "02"):
            write_subject(folder, f"sub-{i:02d}_ses-{ses}_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    prepare_dataset([folder], tmp_path / "ds", PrepareConfig(grid=SMALL, split_fractions=(0.5, 0.25, 0.25), seed=1))
    subjects = {split: set(FADataset(tmp_path / "ds", split=split).subjects()) for split in ("train", "val", "test")}
    assert [len(subjects[s]) for s in ("train", "val", "test")] == [3, 2, 1]
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])
    rows = FADataset(tmp_path / "ds", split="all").metadata
    by_subject = {}
    for row in rows:
        by_subject.setdefault(row["subject"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in by_subject.values())
    assert len(rows) == 12 * SMALL.num_slices


# ----------------------------------------------------------------------------- bad input


def test_levels_outside_the_field_of_view_name_the_file(tmp_path):
    path = write_subject(tmp_path, "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    grid = SliceGrid(levels_mm=(50.0, 100.0), resolution=16)  # the grid stops at z = 84 mm
    with pytest.raises(InputError) as info:
        prepare_dataset([path], tmp_path / "ds", PrepareConfig(grid=grid))
    assert str(path) in str(info.value) and "outside the volume's field of view" in str(info.value)
    assert not (tmp_path / "ds").exists()


def _folder_with_bad_subjects(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    write_subject(folder, "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    write_subject(folder, "sub-02_FA.nii.gz", voxel=(5.0, 5.0, 5.0))
    (folder / "sub-03_FA.nii.gz").write_bytes(b"not a nifti at all")
    shifted = _affine((6.0, 6.0, 6.0), (False, False, False), origin=(-90.0, -126.0, -300.0))
    write_fa(folder / "sub-04_FA.nii.gz", np.full((31, 37, 20), 0.3), shifted)  # z -300..-186 mm
    return folder


def test_bad_subjects_fail_listing_all_and_leave_no_dataset(tmp_path):
    folder = _folder_with_bad_subjects(tmp_path)
    out = tmp_path / "ds"
    with pytest.raises(prep.BadSubjectsError) as info:
        prepare_dataset([folder], out, PrepareConfig(grid=SMALL))
    lines = str(info.value).splitlines()
    assert len(lines) == 2  # the first bad input on the error line, the other one on its own line
    assert "sub-03_FA.nii.gz" in lines[0] and "not a NIfTI" in lines[0] and "--skip-bad" in lines[0]
    assert "sub-04_FA.nii.gz" in lines[1] and "outside the volume's field of view" in lines[1]
    assert not out.exists()


def _cli_has(command: str) -> bool:
    from stylefa.cli import build_parser

    parser = build_parser()
    return any(command in getattr(action, "choices", None) or () for action in parser._subparsers._group_actions)


def test_cli_bad_subjects_exit_2_without_traceback(tmp_path, capsys):
    if not _cli_has("prepare"):
        pytest.skip("stylefa.data.commands does not register `prepare` yet")
    folder = _folder_with_bad_subjects(tmp_path)
    out = tmp_path / "ds"
    code = cli_main(["prepare", str(folder), "-o", str(out), "--resolution", "16", "--z-range=-10,10",
                     "--slices", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("stylefa prepare: error: ") and "sub-03_FA.nii.gz" in lines[0]
    assert "sub-04_FA.nii.gz" in lines[1]
    assert not out.exists()
    code = cli_main(["prepare", str(folder), "-o", str(out), "--resolution", "16", "--z-range=-10,10",
                     "--slices", "3", "--skip-bad"])
    assert code == 0 and FADataset(out, split="all").resolution == 16


def test_skip_bad_continues_with_good_subjects_and_reuses_shards(tmp_path, monkeypatch):
    folder = _folder_with_bad_subjects(tmp_path)
    out = tmp_path / "ds"
    config = PrepareConfig(grid=SMALL)
    with pytest.raises(prep.BadSubjectsError):
        prepare_dataset([folder], out, config)
    # The good subjects' shards survive the failure; the rerun must not slice them again.
    calls = []
    original = prep.slice_subject
    monkeypatch.setattr(prep, "slice_subject", lambda task: calls.append(task.subject.key) or original(task))
    result = prepare_dataset([folder], out, PrepareConfig(grid=SMALL, skip_bad=True))
    assert sorted(calls) == ["sub-03", "sub-04"]  # only the bad ones are retried
    assert result.num_subjects == 2 and len(result.skipped) == 2
    meta = json.loads((out / "dataset.json").read_text())
    assert {Path(s["source"]).name for s in meta["skipped"]} == {"sub-03_FA.nii.gz", "sub-04_FA.nii.gz"}
    assert [s["key"] for s in meta["subjects"]] == ["sub-01", "sub-02"]
    assert not prep._work_dir(out).exists()


def test_a_brain_mask_added_beside_a_subject_makes_its_shard_stale(tmp_path, monkeypatch):
    folder = _folder_with_bad_subjects(tmp_path)
    out = tmp_path / "ds"
    with pytest.raises(prep.BadSubjectsError):
        prepare_dataset([folder], out, PrepareConfig(grid=SMALL))
    fa_img = nib.load(folder / "sub-01_FA.nii.gz")
    mask = (np.asarray(fa_img.dataobj) > 0.6).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, fa_img.affine), folder / "sub-01_brainmask.nii.gz")
    calls = []
    original = prep.slice_subject
    monkeypatch.setattr(prep, "slice_subject", lambda task: calls.append(task.subject.key) or original(task))
    prepare_dataset([folder], out, PrepareConfig(grid=SMALL, skip_bad=True))
    assert "sub-01" in calls and "sub-02" not in calls
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["subjects"][0]["mask"].endswith("sub-01_brainmask.nii.gz")


def test_unwritable_output_is_reported_before_any_work(tmp_path):
    path = write_subject(tmp_path, "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create output folder"):
        prepare_dataset([path], blocker / "ds", PrepareConfig(grid=SMALL))
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(InputError, match="not writable"):
            prepare_dataset([path], locked / "ds", PrepareConfig(grid=SMALL))


def test_existing_folder_that_is_not_a_dataset_is_never_replaced(tmp_path):
    path = write_subject(tmp_path, "sub-01_FA.nii.gz", voxel=(6.0, 6.0, 6.0))
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("important")
    with pytest.raises(InputError, match="not a stylefa dataset"):
        prepare_dataset([path], precious, PrepareConfig(grid=SMALL))
    assert (precious / "thesis.tex").read_text() == "important"


def test_worker_pool_gives_the_same_dataset(tmp_path):
    paths = [write_subject(tmp_path / "in", f"sub-{i}_FA.nii.gz", voxel=(5.0 + i, 5.0, 5.0)) for i in range(3)]
    prepare_dataset(paths, tmp_path / "one", PrepareConfig(grid=SMALL, workers=1))
    prepare_dataset(paths, tmp_path / "two", PrepareConfig(grid=SMALL, workers=2))
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "images.npy"), np.load(tmp_path / "two" / "images.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "masks.npy"), np.load(tmp_path / "two" / "masks.npy"))


# ----------------------------------------------------------------------------- real data (done-when)


def test_real_mni_subject_and_native_subject_with_registration(shared_dir, tmp_path):
    fa_dir = shared_dir / "data" / "fa"
    mni = fa_dir / "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    native = fa_dir / "subj-niivue_space-native_res-2p2mm_FA.nii.gz"
    template = fa_dir / "mni_fa_template_1p25mm.nii.gz"
    grid = SliceGrid(resolution=64)  # default 21 levels, 0..40 mm

    # The native map does not reach z = 40 mm in its own world space: it needs --register.
    with pytest.raises(InputError, match="--register"):
        prepare_dataset([native], tmp_path / "native_unregistered", PrepareConfig(grid=grid))

    prepare_dataset([mni], tmp_path / "mni", PrepareConfig(grid=grid, formats=("stylefa", "nvlabs-zip")))
    prepare_dataset([native], tmp_path / "reg", PrepareConfig(grid=grid, register=True, template=str(template)))
    for name in ("mni", "reg"):
        data = FADataset(tmp_path / name, split="train")
        assert len(data) == 21 and data.resolution == 64 and data.num_channels == 1 and data.label_dim == 0
        image, label = data[5]
        assert image.shape == (1, 64, 64) and label.shape == (0,)
        assert -1.0 <= float(image.min()) and float(image.max()) <= 1.0
        fa = np.stack([data.fa(i) for i in range(len(data))])
        assert fa.min() == 0.0 and 0.6 < fa.max() <= 1.0
        assert [m["z_mm"] for m in data.metadata] == pytest.approx(list(np.linspace(0, 40, 21)))
        # Brain covers a plausible part of the square field of view at the ventricle level.
        assert 0.25 < data.mask(5).mean() < 0.75
    # The brain mask beside the MNI subject is used instead of an FA threshold.
    meta = json.loads((tmp_path / "mni" / "dataset.json").read_text())
    assert meta["subjects"][0]["mask"].endswith("_brainmask.nii.gz")
    reg = json.loads((tmp_path / "reg" / "dataset.json").read_text())
    assert reg["registration"]["enabled"] and reg["subjects"][0]["registration"]["correlation_after"] > 0.3
    # After registration the native subject's slices resemble the MNI subject's at the same levels.
    a = np.stack([FADataset(tmp_path / "mni").fa(i) for i in range(21)])
    b = np.stack([FADataset(tmp_path / "reg").fa(i) for i in range(21)])
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.5
    assert (tmp_path / "mni" / "nvlabs-train.zip").is_file()
