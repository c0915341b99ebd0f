"""The BIDS-derivatives layout: names checked against the BIDS schema and pybids, contents against numpy."""

import json
import re

import nibabel as nib
import numpy as np
import pytest

from stylefa.data.volumes import SliceSpace
from stylefa.errors import InputError
from stylefa.data.derivatives import scan_labels
from stylefa.study.report.derivatives import collect_scans, condition_label, write_derivatives

from .stubs import GRID, StubSource, stub_cases

SIDECAR = {"Network": {"sha256": "ab" * 32}, "Projector": {"steps": 3}, "Perceptual": {"name": "mse"}, "Seed": 0,
           "SliceGeometry": {"grid": GRID.to_dict()}}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("deriv")
    source = StubSource()
    cases, projections = stub_cases(source)
    rows = [{"slice": c.slice_key, "z_mm": 0.0, "condition": c.condition, "comparison": "original", "region": "brain",
             "ssim": 0.5, "mse": float("nan")} for c in cases]
    scans = collect_scans(cases, projections, source, rows)
    result = write_derivatives(out, SliceSpace.of(GRID), scans, SIDECAR, source.description)
    return result, cases, projections, source


def test_names_follow_the_bids_schema_and_pybids_reads_them(written):
    schema = pytest.importorskip("bidsschematools.schema", reason="pybids (test extra) brings the BIDS schema")
    from bids.layout import BIDSLayout, parse_file_entities

    result = written[0]
    bids = schema.load_schema()
    order = [bids.objects.entities[name].name for name in bids.rules.entities]  # sub, tpl, ses, ..., desc
    label = re.compile(f"^{bids.objects.formats['label'].pattern}$")
    # per scan: input + brain mask; none: projection, difference, absdiff; other conditions also their
    # input (lesion: and its mask); group: mean, SD, count
    assert len(result.files) == (2 + 3 + 4 + 5) + (2 + 3) + 3
    for path in result.files:
        rel = path.relative_to(result.root)
        stem, _, suffix = path.name[: -len(".nii.gz")].rpartition("_")
        pairs = [part.split("-", 1) for part in stem.split("_")]
        keys = [k for k, _ in pairs]
        assert all(len(p) == 2 and label.match(p[1]) for p in pairs), path.name
        assert keys == sorted(keys, key=order.index), f"{path.name}: entities out of BIDS order"
        assert suffix in ("FA", "mask") and "space" in keys and "desc" in keys
        entities = parse_file_entities(str(path))
        assert entities["space"] == "MNI152" and entities["extension"] == ".nii.gz"
        if "sub" in keys:
            # sub-<label>/[ses-<label>/]dwi/ folders matching the name's entities
            assert rel.parts[0] == f"sub-{entities['subject']}" and rel.parts[-2] == "dwi"
        else:
            assert len(rel.parts) == 1  # group maps at the dataset root
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["Network"]["sha256"] == "ab" * 32 and sidecar["Projector"] == {"steps": 3}
        assert "Description" in sidecar and "SpatialReference" in sidecar
    description = json.loads((result.root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "stylefa"
    assert description["GeneratedBy"][0]["Version"]
    layout = BIDSLayout(result.root, validate=False, config=["bids", "derivatives"])
    found = layout.get(subject="01", desc="projection", extension=".nii.gz", return_type="filename")
    assert sorted(found) == sorted(str(p) for p in result.files if "sub-01_" in p.name and "desc-projection" in p.name)
    assert sorted(layout.get_acquisitions(subject="01")) == ["lesionp07", "noise0p1"]


def test_volumes_hold_the_study_arrays_and_the_group_maps_their_statistics(written):
    result, cases, projections, source = written
    space = SliceSpace.of(GRID)
    folder = result.root / "sub-01" / "dwi"

    def load(name):
        image = nib.load(folder / name)
        np.testing.assert_allclose(image.affine, space.affine)
        return image.get_fdata()

    noise = next(c for c in cases if c.condition == "noise:0.1")
    k = space.plane_of(source.data[noise.slice_key].info.z_mm)
    difference = load("sub-01_acq-noise0p1_space-MNI152_desc-difference_FA.nii.gz")
    expected = projections[noise.target_id].astype(np.float64) - noise.modified.astype(np.float64)
    np.testing.assert_allclose(space.slice_of(difference, 4.0), expected, atol=1e-6)
    assert np.isnan(np.delete(difference, k, axis=2)).all()  # levels not projected under noise
    cut = load("sub-01_space-MNI152_desc-input_FA.nii.gz")
    for z in GRID.levels_mm:  # the FA as cut: every level of the scan
        np.testing.assert_array_equal(space.slice_of(cut, z), source.data[f"sub-01_L{GRID.levels_mm.index(z):02d}"].fa)
    lesion = load("sub-01_acq-lesionp07_space-MNI152_desc-lesion_mask.nii.gz")
    case = next(c for c in cases if c.lesion is not None)
    np.testing.assert_array_equal(space.slice_of(lesion, 8.0), case.lesion)
    sidecar = json.loads((folder / "sub-01_acq-noise0p1_space-MNI152_desc-projection_FA.json").read_text())
    assert sidecar["Condition"] == "noise:0.1" and sidecar["ProjectedLevels_mm"] == [4.0]
    assert sidecar["Metrics"][0]["ssim"] == 0.5 and sidecar["Metrics"][0]["mse"] is None  # NaN -> null

    # Group maps: brute force over the unmodified cases, pixel by pixel.
    none = {}
    for c in cases:
        if c.condition == "none":
            none.setdefault(source.data[c.slice_key].info.z_mm, []).append(np.abs(projections[c.target_id] - c.modified))
    mean = nib.load(result.group_mean).get_fdata()
    sd = nib.load(result.group_sd).get_fdata()
    count = nib.load(result.group_count).get_fdata()
    for z, maps in none.items():
        stack = np.stack(maps).astype(np.float64)
        np.testing.assert_allclose(space.slice_of(mean, z), stack.mean(axis=0), atol=1e-6)
        np.testing.assert_array_equal(space.slice_of(count, z), len(maps))
        if len(maps) > 1:
            np.testing.assert_allclose(space.slice_of(sd, z), stack.std(axis=0, ddof=1), atol=1e-6)
        else:
            assert np.isnan(space.slice_of(sd, z)).all()
    assert result.group_scans == 2


def test_labels():
    assert condition_label("none") is None
    assert condition_label("noise:0.05") == "noise0p05"
    assert condition_label("inpaint:rect:zero:0.3") == "inpaintrectzero0p3"
    labels = scan_labels({"sub-01_ses-02": "sub-01", "sub-01": "sub-01", "subj-tractseg_space-MNI_FA": "subj-tractseg_space-MNI_FA"})
    assert (labels["sub-01_ses-02"].sub, labels["sub-01_ses-02"].ses) == ("01", "02")
    assert (labels["sub-01"].sub, labels["sub-01"].ses) == ("01", None)
    assert labels["subj-tractseg_space-MNI_FA"].sub == "subjtractseg"
    # First tokens shared: the whole stems tell them apart.
    labels = scan_labels({"case_a_FA": "case_a_FA", "case_b_FA": "case_b_FA"})
    assert {v.sub for v in labels.values()} == {"casea", "caseb"}
    with pytest.raises(InputError, match="same BIDS subject"):
        scan_labels({"a-1": "a-1", "a1": "a1"})


def test_group_figure_draws_the_maps(written, tmp_path):
    from PIL import Image

    from stylefa.study.report.groupmaps import group_figure

    result = written[0]
    png, pdf = group_figure(result.maps["mean"], result.maps["sd"], result.maps["count"], result.space,
                            tmp_path / "fig5", result.group_scans, result.maps["brain"])
    assert pdf.stat().st_size > 1000
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    # magma's purples/oranges (red > green, blue or red high) mark the overlay: it is drawn
    coloured = (np.abs(rgb[..., 0] - rgb[..., 1]) > 40).sum()
    assert coloured > 2000, coloured
    empty = np.full(result.maps["count"].shape, 0.0, np.float32)
    assert group_figure(result.maps["mean"], result.maps["sd"], empty, result.space, tmp_path / "none", 0) is None
