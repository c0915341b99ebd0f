"""Real multi-vendor chain: every DWI series in ../shared/data/dwi goes DWI -> FA -> rigid
registration to the MNI FA template and lands there; the three tilted acquisitions of one person
(sub-toshiba01) agree with each other afterwards.

Measured (2.5 mm, template FA > 0.05, over the part of the template brain each series covers):
correlation with the template before -> after: Philips 0.20 -> 0.65, Siemens 0.20 -> 0.55,
Toshiba ortho 0.14 -> 0.68, oblique-axial 0.15 -> 0.69, oblique-coronal 0.14 -> 0.68,
United Imaging (20 slices, 75 % of the template brain covered) 0.24 -> 0.51.
The tilted Toshiba series agree pairwise at 0.82-0.89 (different people: 0.45-0.70) and their
registrations place the same head within 1.8 deg and 5 mm of each other.
"""

import itertools

import numpy as np
import pytest

from stylefa.data.fa import fa_from_files
from stylefa.data.nifti import load_fa
from stylefa.data.register import RegistrationConfig, downsample, register_rigid, rotation_angle_degrees

pytestmark = pytest.mark.slow  # ~10 s CPU per series (tensor fit with automatic mask + registration)

TILTS = ("sub-toshiba01_acq-ortho", "sub-toshiba01_acq-obliqueax", "sub-toshiba01_acq-obliquecor")
# Correctly registered real subjects with whole-brain coverage reach 0.53-0.70; the partial-coverage
# United Imaging slab (20 slices, ~75 % of the template brain) 0.44-0.51 depending on the output grid;
# failed registrations 0.25-0.35.
LANDED_MIN, LANDED_MAX = 0.50, 0.80
PARTIAL_COVERAGE, LANDED_MIN_PARTIAL = 0.9, 0.42
# Same person, different slice tilts: 0.82-0.89; different people: 0.45-0.70.
SAME_HEAD_MIN = 0.78


def series_in(folder):
    """Every *_dwi.nii.gz with its BIDS-named .bval/.bvec (so added vendors are run too)."""
    found = []
    for dwi in sorted(folder.glob("*_dwi.nii.gz")):
        stem = dwi.name[: -len("_dwi.nii.gz")]
        found.append((stem, dwi, folder / f"{stem}_dwi.bval", folder / f"{stem}_dwi.bvec"))
    return found


@pytest.fixture(scope="module")
def template_2p5(shared_dir):
    return downsample(load_fa(shared_dir / "data" / "fa" / "mni_fa_template_1p25mm.nii.gz"), 2.5)


@pytest.fixture(scope="module")
def chain(shared_dir, template_2p5):
    results = {}
    for stem, dwi, bval, bvec in series_in(shared_dir / "data" / "dwi"):
        fa = fa_from_files(dwi, bval, bvec)
        registered = register_rigid(fa.fa, template_2p5, RegistrationConfig(output_resolution_mm=2.5))
        results[stem] = (fa, registered)
    if not results:
        pytest.skip("no DWI series in ../shared/data/dwi")
    return results


def test_every_series_lands_in_mni_space(chain):
    report, wrong = [], []
    for stem, (fa, registered) in chain.items():
        m = registered.metrics
        before = m["correlation_before"] if m["correlation_before"] is not None else 0.0  # None: no overlap
        report.append(f"{stem}: {before:.3f} -> {m['correlation_after']:.3f} "
                      f"(coverage {m['coverage_after']:.0%}, rotation {m['rotation_degrees']:.1f} deg)")
        assert 0.0 <= fa.fa.data.min() and fa.fa.data.max() <= 1.0
        low = LANDED_MIN if m["coverage_after"] >= PARTIAL_COVERAGE else LANDED_MIN_PARTIAL
        if not (low <= m["correlation_after"] <= LANDED_MAX
                and m["correlation_after"] - before >= 0.2):
            wrong.append(stem)
    print("\n".join(report))
    assert not wrong, "\n".join(report)


def test_default_registration_agrees_with_reg_aladin_on_whole_brain_series(chain, template_2p5):
    """With NiftyReg installed the default (hybrid) must agree with reg_aladin alone, the study's
    registration, within 1.5 deg / 1.5 mm RMS over the template brain on every whole-brain series
    (issue 22). Measured (bench_registration_methods.py): 0.08-0.94 deg / 0.1-1.0 mm RMS; the -noSym
    result without the symmetric polish was up to 1.5 deg / 1.9 mm RMS off."""
    from stylefa.data import niftyreg
    from stylefa.data.register import pose_difference

    if not niftyreg.available():
        pytest.skip("NiftyReg (reg_aladin) is not installed: pip install 'stylefa[niftyreg]'")
    report = []
    for stem, (fa, registered) in chain.items():
        if registered.metrics["coverage_after"] < PARTIAL_COVERAGE:
            continue
        assert registered.metrics["method"] == "hybrid"
        alone = register_rigid(fa.fa, template_2p5, RegistrationConfig(output_resolution_mm=2.5, method="aladin"))
        angle, largest, rms = pose_difference(registered.matrix, alone.matrix, template_2p5)
        report.append((stem, round(angle, 2), round(rms, 2)))
    print(report)
    assert report and all(angle < 1.5 and rms < 1.5 for _, angle, rms in report), report


def test_tilted_acquisitions_of_one_person_agree(chain, template_2p5):
    missing = [t for t in TILTS if t not in chain]
    if missing:
        pytest.skip(f"tilted series absent: {missing}")
    brain = template_2p5.data > 0.05
    points = np.c_[np.argwhere(brain), np.ones(int(brain.sum()))].T
    points = template_2p5.affine @ points
    for a, b in itertools.combinations(TILTS, 2):
        fa_a, fa_b = chain[a][1].volume.data, chain[b][1].volume.data
        r = np.corrcoef(fa_a[brain], fa_b[brain])[0, 1]
        assert r >= SAME_HEAD_MIN, f"{a} vs {b}: correlation {r:.3f}"
        # Same session, same scanner coordinates: both registrations must put the head at the
        # same place (template world -> scanner world), whatever the slice tilt.
        ma, mb = chain[a][1].matrix, chain[b][1].matrix
        assert rotation_angle_degrees(np.linalg.inv(ma) @ mb) < 3.0
        displacement = np.linalg.norm((ma @ points - mb @ points)[:3], axis=0)
        # 8 mm: with NiftyReg installed the default (hybrid) ends in reg_aladin against the 2.5 mm template,
        # which puts the tilts 2.8-4.5 mm apart at most (1.6-3.5 mm RMS); our own method 2.9-4.4 mm (2.3-3.3 mm
        # RMS), aladin alone 4.7-5.3 mm: the spread is in the data (benchmarks/bench_registration_methods.py).
        assert displacement.max() < 8.0, f"{a} vs {b}: up to {displacement.max():.1f} mm apart"


def test_different_people_agree_less_than_the_tilts(chain, template_2p5):
    # The oracle above must be able to fail: other people's FA agrees less.
    if "sub-toshiba01_acq-ortho" not in chain:
        pytest.skip("sub-toshiba01_acq-ortho absent")
    brain = template_2p5.data > 0.05
    ortho = chain["sub-toshiba01_acq-ortho"][1].volume.data
    others = [s for s in chain if not s.startswith("sub-toshiba01")]
    for stem in others:
        r = np.corrcoef(ortho[brain], chain[stem][1].volume.data[brain])[0, 1]
        assert r < SAME_HEAD_MIN, f"{stem}: {r:.3f}"


@pytest.mark.parametrize("stem, axis, degrees", [("sub-uih01", 1, 180), ("sub-siemens01", 0, 90)])
def test_grossly_misoriented_real_series_land(chain, template_2p5, stem, axis, degrees):
    # A partial-coverage slab turned upside down (its failed registration reaches 0.43, close to the
    # correct 0.44-0.51, so the gate alone could not catch it: the search must find it) and a
    # whole-brain series lying on its side.
    from stylefa.data.nifti import make_volume
    from stylefa.data.register import axis_rotation

    if stem not in chain:
        pytest.skip(f"{stem} absent")
    fa, reference = chain[stem]
    tilt = np.eye(4)
    tilt[:3, :3] = axis_rotation(axis, degrees)
    moving = make_volume(fa.fa.data, tilt @ fa.fa.affine)
    result = register_rigid(moving, template_2p5, RegistrationConfig(output_resolution_mm=2.5))
    assert rotation_angle_degrees(np.linalg.inv(tilt @ reference.matrix) @ result.matrix) < 3.0
    assert result.metrics["correlation_after"] >= reference.metrics["correlation_after"] - 0.03
