"""Quality-control pictures of registrations, the way neuroimagers check them (fMRIPrep /
nireports "reportlets"): the registered FA in grey with the template's edges drawn over it, in
three orthogonal views, and the HTML index of a whole run listing every subject with its QC
metrics, worst first (``write_index``: one page format for every QC of stylefa, also used by
``stylefa preprocess``).

Edges are the Canny edges (``skimage.feature.canny``) of the template's slices, smoothed by
~2.5 mm: where a registration is right, the red outline follows the subject's ventricles,
corpus callosum and brain boundary.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.data.nifti import Volume

VIEWS = ("sagittal", "coronal", "axial")
FRACTIONS = (0.3, 0.45, 0.6, 0.75)  # slice positions across the template brain's extent
EDGE_SMOOTHING_MM = 2.5
BRAIN_THRESHOLD = 0.05


def to_ras(volume: Volume, data: np.ndarray) -> np.ndarray:
    """``data`` (on ``volume``'s grid) with its axes reordered and flipped to RAS."""
    import nibabel as nib

    orientation = nib.orientations.io_orientation(volume.affine)
    return nib.orientations.apply_orientation(np.asarray(data, dtype=np.float32), orientation)


def _on_grid(template: Volume, like: Volume) -> np.ndarray:
    if template.shape[:3] == like.shape[:3] and np.allclose(template.affine, like.affine, atol=1e-4):
        return np.asarray(template.data, dtype=np.float32)
    from stylefa.data.register import resample

    return resample(template, like.shape[:3], like.affine)


def display_plane(data: np.ndarray, view: str, index: int) -> np.ndarray:
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

    reference = to_ras(moved, _on_grid(template, moved))
    fa = to_ras(moved, moved.data)
    voxel_mm = float(np.mean(np.linalg.norm(moved.affine[:3, :3], axis=0)))
    sigma = max(EDGE_SMOOTHING_MM / voxel_mm, 0.5)
    brain = np.argwhere(reference > BRAIN_THRESHOLD)
    low, high = (brain.min(axis=0), brain.max(axis=0)) if len(brain) else (np.zeros(3), np.array(reference.shape) - 1)
    planes = []
    for axis, view in enumerate(VIEWS):
        for fraction in FRACTIONS:
            index = int(round(low[axis] + fraction * (high[axis] - low[axis])))
            template_plane = display_plane(reference, view, index)
            edges = canny(template_plane, sigma=sigma) & (template_plane > 0.0)
            planes.append((view, index, display_plane(fa, view, index), edges))
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


@dataclass(frozen=True)
class IndexColumn:
    """One column of a QC index page: ``key`` in each entry, its header and number format."""

    key: str
    header: str
    format: str = "{:.3f}"
    bold: bool = False


REGISTRATION_COLUMNS = (
    IndexColumn("correlation_before", "corr. before"),
    IndexColumn("correlation_after", "corr. after", bold=True),
    IndexColumn("coverage_after", "coverage", "{:.0%}"),
    IndexColumn("rotation_degrees", "rotation (deg)", "{:.1f}"),
    IndexColumn("method", "method", "{}"),
)


def write_qc_index(path: str | os.PathLike, entries: list[dict], title: str = "Registration QC") -> Path:
    """The registration QC page (``stylefa prepare --register``): every subject, worst correlation first.

    ``entries``: dicts with ``key``, ``correlation_before``, ``correlation_after``,
    ``coverage_after``, ``rotation_degrees``, ``method`` (the registration method), ``status`` ("ok", "ok; <caveat>" or the problem) and ``picture``
    (a path relative to the page, or None).
    """

    def order(entry):
        value = entry.get("correlation_after")
        return (-np.inf if value is None else value, entry["key"])

    intro = ("Metric: Pearson correlation of the registered FA with the template inside the template brain "
             "(FA &gt; 0.05) covered by the subject's field of view, before and after registration; coverage is the "
             "fraction of the template brain the subject covers. Red outlines in the pictures are the template's "
             "edges.")
    return write_index(path, sorted(entries, key=order), REGISTRATION_COLUMNS, title, intro)


def write_index(path: str | os.PathLike, entries: list[dict], columns, title: str, intro: str) -> Path:
    """An HTML QC index, one row per subject in the order given (worst first), the one page format
    of every stylefa QC (registration in ``prepare``, ``stylefa preprocess``).

    ``entries``: dicts with ``key``, ``status`` ("ok", "ok; <caveat>" or the problem: row coloured
    green-less / amber / red), a value for each ``IndexColumn`` (None shows "n/a") and ``picture``
    (a path relative to the page, or None) or ``pictures`` (several). ``intro`` is HTML.
    """
    from stylefa.fileio import write_text

    def shown(entry, column):
        value = entry.get(column.key)
        text = "n/a" if value is None else html.escape(column.format.format(value))
        return f"<b>{text}</b>" if column.bold else text

    rows = []
    for entry in entries:
        status = entry.get("status", "ok")
        row_class = "ok" if status == "ok" else "warn" if status.startswith("ok") else "bad"
        pictures = entry.get("pictures") or ([entry["picture"]] if entry.get("picture") else [])
        images = "".join(f'<a href="{html.escape(p)}"><img src="{html.escape(p)}" width="480"></a>' for p in pictures)
        cells = "".join(f"<td>{shown(entry, c)}</td>" for c in columns)
        rows.append(f'<tr class="{row_class}"><td>{html.escape(entry["key"])}</td>{cells}'
                    f'<td>{html.escape(status)}</td><td>{images}</td></tr>')
    headers = "".join(f"<th>{html.escape(c.header)}</th>" for c in columns)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;background:#111;color:#eee}} table{{border-collapse:collapse}}
td,th{{border:1px solid #444;padding:4px 8px;vertical-align:middle}} tr.bad td{{background:#4a1414}} tr.warn td{{background:#4a3c14}}
a{{color:#9cf}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(entries)} subject(s), worst first. {intro}</p>
<table><tr><th>subject</th>{headers}<th>status</th><th>QC picture</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path = Path(path)
    write_text(path, page)
    return path
