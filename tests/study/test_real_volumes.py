"""`stylefa study` on the shared real FA: volumes in the derivatives layout, on the template, and the viewer.

The study runs on the real subject's FA and, as a second "subject", the MNI FA template
itself. Oracles: nilearn's resampling of each input file (the written input volume must be
it, sampled on the written grid, so it overlays the file and everything registered to it),
the template (its written volume correlates with the template best at zero shift), pybids
for the names and headless Chromium for the viewer.
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import resample_img

from stylefa.cli import main
from stylefa.data.slices import SliceGrid
from stylefa.data.volumes import SliceSpace

from .browser import Browser

DEMO = "stylefa/study/demo_model/demo_generator.safetensors"


@pytest.fixture(scope="module")
def study(shared_dir, tmp_path_factory):
    fa = shared_dir / "data" / "fa" / "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    template = shared_dir / "data" / "fa" / "mni_fa_template_1p25mm.nii.gz"
    lesion = shared_dir / "data" / "ms" / "patient07_space-MNI_lesionmask.nii.gz"
    flair = shared_dir / "data" / "ms" / "patient07_space-MNI_FLAIR.nii.gz"
    for path in (fa, template, lesion, flair):
        if not path.is_file():
            pytest.skip(f"{path} is absent")
    out = tmp_path_factory.mktemp("real_study") / "out"
    mp = pytest.MonkeyPatch()
    mp.setenv("STYLEFA_TEMPLATE", str(template))
    try:
        network = Path(__file__).resolve().parents[2] / DEMO
        assert main(["study", "--network", str(network), "--data", str(fa), str(template), "--outdir", str(out),
                     "--conditions", "none,noise:0.05", "--max-slices", "4", "--steps", "3", "--w-avg-samples", "128",
                     "--perceptual", "mse", "--no-lpips-metric", "--figure-slices", "1", "--lesions", str(lesion),
                     "--flair", str(flair), "--lesion-slices", "1", "--device", "cpu"]) == 0
    finally:
        mp.undo()
    return out, fa, template


def _resample(image, target):
    return resample_img(image, target_affine=target.affine, target_shape=target.shape, interpolation="linear",
                        force_resample=True, copy_header=True).get_fdata()


@pytest.mark.slow
def test_real_study_volumes_overlay_the_subject_and_the_template(study):
    from bids.layout import BIDSLayout, Query

    out, fa, template = study
    root = out / "derivatives" / "stylefa"
    layout = BIDSLayout(root, validate=False, config=["bids", "derivatives"])
    assert layout.get_subjects() == ["mni", "subjtractseg"]
    descs = set(layout.get(return_type="id", target="desc"))
    assert {"input", "projection", "difference", "absdiff", "brain", "lesion", "absdiffmean", "absdiffsd",
            "absdiffcount"} <= descs
    assert set(layout.get_acquisitions()) == {"noise0p05", "lesionpatient07"}

    def unmodified(subject, desc, suffix="FA"):
        return layout.get(subject=subject, desc=desc, suffix=suffix, acquisition=Query.NONE, extension=".nii.gz",
                          return_type="filename")[0]

    for subject, source in (("subjtractseg", fa), ("mni", template)):
        written = nib.load(unmodified(subject, "input"))
        data = written.get_fdata()
        cut = np.isfinite(data)
        assert cut.sum() == np.prod(data.shape)  # the FA as cut: every level
        # The FA as cut is the file itself sampled on the written grid (nilearn, from the affines alone).
        np.testing.assert_allclose(data, _resample(nib.load(source), written), atol=1e-6)

    # The template's own volume lies on the template: correlation within the brain peaks at zero shift.
    written = nib.load(unmodified("mni", "input"))
    data = written.get_fdata()
    brain = nib.load(unmodified("mni", "brain", "mask")).get_fdata() > 0
    tpl = nib.load(template)

    def correlation(shift):
        moved = nib.Nifti1Image(data.astype(np.float32), written.affine.copy())
        moved.affine[:3, 3] += shift
        return np.corrcoef(data[brain], _resample(tpl, moved)[brain])[0, 1]

    at_zero = correlation(np.zeros(3))
    assert at_zero > 0.999
    for axis in range(3):
        for step in (-2.0, 2.0):
            shift = np.zeros(3)
            shift[axis] = step
            assert correlation(shift) < at_zero - 0.01, (axis, step)

    # Projections: on the projected levels the difference is projection - input, the rest is NaN.
    data = nib.load(unmodified("subjtractseg", "input")).get_fdata()
    projection = unmodified("subjtractseg", "projection")
    with open(projection[: -len(".nii.gz")] + ".json") as handle:
        sidecar = json.load(handle)
    assert sidecar["Network"]["sha256"] and sidecar["Projector"]["steps"] == 3 and sidecar["Metrics"]
    space = SliceSpace.of(SliceGrid.from_dict(sidecar["SliceGeometry"]["grid"]))
    projected = nib.load(projection).get_fdata()
    difference = nib.load(projection.replace("desc-projection", "desc-difference")).get_fdata()
    levels = sidecar["ProjectedLevels_mm"]
    planes = [space.plane_of(z) for z in levels]
    np.testing.assert_allclose(difference[:, :, planes], projected[:, :, planes] - data[:, :, planes], atol=1e-6)
    assert np.isnan(np.delete(projected, planes, axis=2)).all()
    for name in ("absdiffmean", "absdiffsd", "absdiffcount"):
        assert (root / f"space-MNI152_desc-{name}_FA.nii.gz").is_file()
    assert (out / "figures" / "fig5_group_absdiff.png").is_file() and (out / "figures" / "fig5_group_absdiff.pdf").is_file()


@pytest.mark.slow
def test_real_study_viewer_works_offline_in_chromium(study, tmp_path):
    out = study[0]
    browser = Browser(tmp_path / "profile")
    try:
        browser.open((out / "report.html").as_uri())
        assert browser.evaluate("window.stylefaViewer.ready.then(() => true)") is True
        conditions = browser.evaluate("window.stylefaViewer.index.scans.map(s => s.manifest.conditions.map(c => c.name))")
        with_lesion = [i for i, names in enumerate(conditions) if "lesion:patient07" in names]
        assert len(conditions) == 2 and len(with_lesion) == 1
        scan = browser.evaluate(f"window.stylefaViewer.index.scans[{with_lesion[0]}].scan")
        browser.open((out / "report.html").as_uri() + f"#scan={scan}&condition=lesion%3Apatient07")
        # a fragment change: the viewer's hashchange handler switches scan and condition
        browser.wait_for(f"window.stylefaViewer.state.scan === {with_lesion[0]} && "
                         f"window.stylefaViewer.state.condition === {conditions[with_lesion[0]].index('lesion:patient07')}")
        state = browser.evaluate("window.stylefaViewer.ready.then(() => window.stylefaViewer.state)")
        assert state["scan"] == with_lesion[0]
        assert conditions[with_lesion[0]][state["condition"]] == "lesion:patient07"
        visible = browser.evaluate("[...document.querySelectorAll('#sfv-panels canvas')]"
                                   ".map(c => c.parentElement.style.display !== 'none')")
        assert visible == [True, True, True, True]  # FLAIR shown for the lesion
        problems = browser.problems()
        assert problems == [], problems
    finally:
        browser.close()
