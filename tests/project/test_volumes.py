"""`stylefa project --nifti` writes its slices back as volumes on the grid they were cut from."""

import json

import nibabel as nib
import numpy as np
from nilearn.image import resample_img

from stylefa.cli import main
from stylefa.nets.checkpoint import save_networks

from .helpers import tiny_generator

MNI_2MM = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])


def test_project_nifti_writes_volumes_that_overlay_the_input(tmp_path):
    network = tmp_path / "G.safetensors"
    save_networks(network, G_ema=tiny_generator(resolution=16, w_dim=16))
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in (91, 109, 91)), indexing="ij")
    x, y, z = -2.0 * ii + 90, 2.0 * jj - 126, 2.0 * kk - 72
    fa = np.where((x / 70) ** 2 + ((y + 18) / 90) ** 2 + ((z - 15) / 60) ** 2 < 1,
                  0.4 + 0.3 * np.cos(x / 12) * np.sin(y / 15), 0.0).astype(np.float32)
    source = tmp_path / "sub-07_ses-2_FA.nii.gz"
    nib.save(nib.Nifti1Image(fa, MNI_2MM), source)
    out = tmp_path / "out"
    assert main(["project", "--network", str(network), "--nifti", str(source), "--slices", "40,42,46",
                 "--outdir", str(out), "--steps", "2", "--perceptual", "mse", "--w-avg-samples", "64",
                 "--device", "cpu"]) == 0
    folder = out / "derivatives" / "stylefa" / "sub-07" / "ses-2" / "dwi"
    names = sorted(p.name for p in folder.glob("*.nii.gz"))
    assert names == [f"sub-07_ses-2_space-MNI152_desc-{d}_FA.nii.gz" for d in ("absdiff", "difference", "input",
                                                                                "projection")]
    assert json.loads((out / "derivatives" / "stylefa" / "dataset_description.json").read_text())["DatasetType"] == \
        "derivative"
    written = nib.load(folder / "sub-07_ses-2_space-MNI152_desc-input_FA.nii.gz")
    data = written.get_fdata()
    planes_z = nib.affines.apply_affine(written.affine, np.c_[np.zeros(written.shape[2]), np.zeros(written.shape[2]),
                                                              np.arange(written.shape[2])])[:, 2]
    np.testing.assert_allclose(planes_z, [8, 12, 16, 20])  # voxel planes 40, 42, 46 of the source, and 44 empty
    assert np.isnan(data[:, :, 2]).all()
    oracle = resample_img(nib.load(source), target_affine=written.affine, target_shape=written.shape,
                          interpolation="linear", force_resample=True, copy_header=True).get_fdata()
    for k in (0, 1, 3):
        np.testing.assert_allclose(data[:, :, k], oracle[:, :, k], atol=1e-6)
    projection = nib.load(folder / "sub-07_ses-2_space-MNI152_desc-projection_FA.nii.gz").get_fdata()
    saved = np.clip(np.load(out / "sub-07_ses-2_FA_k042" / "projected.npy"), 0, 1)
    np.testing.assert_allclose(np.flipud(projection[:, :, 1].T), saved, atol=1e-6)
    sidecar = json.loads((folder / "sub-07_ses-2_space-MNI152_desc-difference_FA.json").read_text())
    assert sidecar["ProjectedLevels_mm"] == [8.0, 12.0, 20.0] and len(sidecar["Metrics"]) == 3
    assert sidecar["Network"]["sha256"] and sidecar["Projector"]["steps"] == 2
