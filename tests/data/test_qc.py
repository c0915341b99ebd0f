"""QC pictures and the QC index page."""

import numpy as np
import pytest
from PIL import Image

from stylefa.data.nifti import make_volume
from stylefa.data.qc import qc_planes, registration_qc_png, write_qc_index


def ellipsoid(shape=(40, 48, 36), scale=(15, 19, 13), affine=None):
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    inside = sum(((grid[i] - centre[i]) / scale[i]) ** 2 for i in range(3)) <= 1
    return make_volume(np.where(inside, 0.5, 0.0).astype(np.float32), np.diag([2.5, 2.5, 2.5, 1.0]) if affine is None
                       else affine)


def test_template_edges_outline_the_template():
    template = ellipsoid()
    planes = qc_planes(template, template)
    assert [p[0] for p in planes].count("axial") == 4
    for _, _, fa, edges in planes:
        assert edges.any()
        # Canny edges of a filled ellipse lie on its boundary: every edge pixel touches both
        # inside and outside within 2 pixels.
        from scipy.ndimage import binary_dilation, binary_erosion

        inside = fa > 0.25
        band = binary_dilation(inside, iterations=2) & ~binary_erosion(inside, iterations=2)
        assert np.all(band[edges])


def test_picture_is_written_atomically_with_the_overlay(tmp_path):
    template = ellipsoid()
    moved = make_volume(np.roll(template.data, 4, axis=0), template.affine)
    path = registration_qc_png(moved, template, tmp_path / "qc.png", title="sub-01",
                               metrics={"correlation_before": 0.1, "correlation_after": 0.6, "min_correlation": 0.45,
                                        "rotation_degrees": 3.0})
    assert [p.name for p in tmp_path.iterdir()] == ["qc.png"]
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert pixels.shape[1] > 600 and pixels.shape[0] > 500
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
    assert red.sum() > 200  # the template's edges are drawn


def test_picture_resamples_a_template_on_another_grid(tmp_path):
    template = ellipsoid(shape=(80, 96, 72), scale=(30, 38, 26), affine=np.diag([1.25, 1.25, 1.25, 1.0]))
    moved = ellipsoid()
    moved.affine[:3, 3] = -0.625 * 1  # grids differ; the picture must still be drawn
    assert registration_qc_png(moved, template, tmp_path / "qc.png").is_file()


def test_index_lists_worst_first_and_escapes(tmp_path):
    entries = [
        {"key": "sub-good", "correlation_before": 0.2, "correlation_after": 0.68, "coverage_after": 0.98,
         "rotation_degrees": 4.0, "status": "ok", "picture": "sub-good.png"},
        {"key": "sub-<bad>", "correlation_before": 0.2, "correlation_after": 0.31, "coverage_after": 0.9,
         "rotation_degrees": 40.0, "status": "registration failed the quality gate", "picture": None},
        {"key": "sub-none", "correlation_before": None, "correlation_after": None, "coverage_after": 0.0,
         "rotation_degrees": 0.0, "status": "no overlap", "picture": None},
        {"key": "sub-mid", "correlation_before": 0.1, "correlation_after": 0.55, "coverage_after": 0.75,
         "rotation_degrees": 12.0, "status": "ok", "picture": "sub-mid.png"},
    ]
    page = write_qc_index(tmp_path / "index.html", entries).read_text()
    order = [page.index(k) for k in ("sub-none", "sub-&lt;bad&gt;", "sub-mid", "sub-good")]
    assert order == sorted(order)
    assert "sub-<bad>" not in page and '<img src="sub-good.png"' in page
    assert page.count('class="bad"') == 2
    with pytest.raises(KeyError):
        write_qc_index(tmp_path / "x.html", [{"correlation_after": 0.5}])
