"""Quality-control pictures of registrations, the way neuroimagers check them (fMRIPrep /
nireports "reportlets"): the registered FA in grey with the template's edges drawn over it, in
three orthogonal views, and an HTML index of a whole run listing every subject with its QC
metric, worst first.

Edges are the Canny edges (``skimage.feature.canny``) of the template's slices, smoothed by
~2.5 mm: where a registration is right, the red outline follows the subject's ventricles,
corpus callosum and brain boundary.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from stylefa.data.nifti import Volume

VIEWS = ("sagittal", "coronal", "axial")
FRACTIONS = (0.3, 0.45, 0.6, 0.75)  # slice positions across the template brain's extent
EDGE_SMOOTHING_MM = 2.5
BRAIN_THRESHOLD = 0.05


def _ras(volume: Volume, data: np.ndarray) -> np.ndarray:
    """``data`` (on ``volume``'s grid) with its axes reordered and flipped to RAS."""
    import nibabel as nib

    orientation = nib.orientations.io_orientation(volume.affine)
    return nib.orientations.apply_orientation(np.asarray(data, dtype=np.float32), orientation)


def _on_grid(template: Volume, like: Volume) -> np.ndarray:
    if template.shape[:3] == like.shape[:3] and np.allclose(template.affine, like.affine, atol=1e-4):
        return np.asarray(template.data, dtype=np.float32)
    from stylefa.data.register import resample

    return resample(template, like.shape[:3], like.affine)


def _plane(data: np.ndarray, view: str, index: int) -> np.ndarray:
    """A 2-D slice of an RAS array, oriented for display (superior/anterior up; for axial and
    coronal the subject's right on the image's right: neurological)."""
    if view == "sagittal":
        plane = data[index, :, :]  # (y, z)
    elif view == "coronal":
        plane = data[:, index, :]  # (x, z)
    else:
        plane = data[:, :, index]  # (x, y)
    return plane.T  # rows: z (or y), columns: y (or x); drawn with origin="lower"


def qc_planes(moved: Volume, template: Volume) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(view, index, FA plane, template-edge plane) for each view and slice position."""
    from skimage.feature import canny

    reference = _ras(moved, _on_grid(template, moved))
    fa = _ras(moved, moved.data)
    voxel_mm = float(np.mean(np.linalg.norm(moved.affine[:3, :3], axis=0)))
    sigma = max(EDGE_SMOOTHING_MM / voxel_mm, 0.5)
    brain = np.argwhere(reference > BRAIN_THRESHOLD)
    low, high = (brain.min(axis=0), brain.max(axis=0)) if len(brain) else (np.zeros(3), np.array(reference.shape) - 1)
    planes = []
    for axis, view in enumerate(VIEWS):
        for fraction in FRACTIONS:
            index = int(round(low[axis] + fraction * (high[axis] - low[axis])))
            template_plane = _plane(reference, view, index)
            edges = canny(template_plane, sigma=sigma) & (template_plane > 0.0)
            planes.append((view, index, _plane(fa, view, index), edges))
    return planes


def registration_qc_png(moved: Volume, template: Volume, path: str | os.PathLike, title: str = "",
                        metrics: dict | None = None) -> Path:
    """Write the QC picture of ``moved`` (a registered FA map, 3-D) against ``template`` (any grid;
    resampled onto ``moved``'s) to ``path`` (PNG, written atomically). Returns the path."""
    # A bare Figure renders with Agg without touching pyplot's global backend.
    from matplotlib.figure import Figure

    from stylefa.fileio import atomic_path

    planes = qc_planes(moved, template)
    rows, cols = len(VIEWS), len(FRACTIONS)
    figure = Figure(figsize=(2.4 * cols, 2.4 * rows + 0.6), facecolor="black")
    for number, (view, index, fa, edges) in enumerate(planes):
        axes = figure.add_subplot(rows, cols, number + 1)
        axes.imshow(fa, cmap="gray", vmin=0.0, vmax=0.8, origin="lower", interpolation="nearest")
        overlay = np.zeros(edges.shape + (4,), np.float32)
        overlay[edges] = (1.0, 0.2, 0.2, 0.9)
        axes.imshow(overlay, origin="lower", interpolation="nearest")
        axes.set_axis_off()
        axes.set_title(f"{view} {index}", color="white", fontsize=7)
    figure.suptitle(qc_caption(title, metrics), color="white", fontsize=9)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86 if metrics else 0.9, wspace=0.03, hspace=0.15)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=100, facecolor="black")
    return path


def qc_caption(title: str, metrics: dict | None) -> str:
    if not metrics:
        return title
    shown = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    gate = metrics.get("gate", metrics.get("min_correlation"))
    after = metrics.get("correlation_after")
    verdict = "" if gate is None else ("  PASS" if after is not None and after >= gate else "  FAIL")
    return (f"{title}\nbrain correlation with the template {shown(metrics.get('correlation_before'))} -> "
            f"{shown(after)} (gate {shown(gate) if gate is not None else 'off'}){verdict}; "
            f"rotation {metrics.get('rotation_degrees', float('nan')):.1f} deg; red: template edges")


def write_qc_index(path: str | os.PathLike, entries: list[dict], title: str = "Registration QC") -> Path:
    """An HTML page listing every subject, worst correlation first.

    ``entries``: dicts with ``key``, ``correlation_before``, ``correlation_after``,
    ``coverage_after``, ``rotation_degrees``, ``method`` (the registration method), ``status`` ("ok", "ok; <caveat>" or the problem) and ``picture``
    (a path relative to the page, or None).
    """
    from stylefa.fileio import write_text

    def order(entry):
        value = entry.get("correlation_after")
        return (-np.inf if value is None else value, entry["key"])

    shown = lambda v, f="{:.3f}": "n/a" if v is None else f.format(v)  # noqa: E731
    rows = []
    for entry in sorted(entries, key=order):
        status = entry.get("status", "ok")
        row_class = "ok" if status == "ok" else "warn" if status.startswith("ok") else "bad"
        picture = entry.get("picture")
        image = (f'<a href="{html.escape(picture)}"><img src="{html.escape(picture)}" width="480"></a>'
                 if picture else "")
        rows.append(
            f'<tr class="{row_class}"><td>{html.escape(entry["key"])}</td>'
            f'<td>{shown(entry.get("correlation_before"))}</td><td><b>{shown(entry.get("correlation_after"))}</b></td>'
            f'<td>{shown(entry.get("coverage_after"), "{:.0%}")}</td><td>{shown(entry.get("rotation_degrees"), "{:.1f}")}</td>'
            f'<td>{html.escape(str(entry.get("method") or "n/a"))}</td>'
            f'<td>{html.escape(entry.get("status", "ok"))}</td><td>{image}</td></tr>'
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;background:#111;color:#eee}} table{{border-collapse:collapse}}
td,th{{border:1px solid #444;padding:4px 8px;vertical-align:middle}} tr.bad td{{background:#4a1414}} tr.warn td{{background:#4a3c14}}
a{{color:#9cf}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(entries)} subject(s), worst first. Metric: Pearson correlation of the registered FA with the template inside
the template brain (FA &gt; 0.05) covered by the subject's field of view, before and after registration; coverage is the
fraction of the template brain the subject covers. Red outlines in the pictures are the template's edges.</p>
<table><tr><th>subject</th><th>corr. before</th><th>corr. after</th><th>coverage</th><th>rotation (deg)</th>
<th>method</th><th>status</th><th>QC picture</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path = Path(path)
    write_text(path, page)
    return path
