"""QC reportlets of ``stylefa preprocess`` (as fMRIPrep / QSIPrep show them) and the cohort index.

Per subject (``OUT/sub-X/figures/``): the mean b=0 of each polarity before and after SDC with the
brain outline (red: the mask of the corrected series; where SDC worked, both polarities fill the
same outline), the field map (Hz), motion traces and framewise displacement over volumes, the
corrected FA. The cohort page ``OUT/qc/index.html`` is written by ``stylefa.data.qc.write_index``,
the same page format as the registration QC of ``stylefa prepare --register``; subjects are
ordered worst first by the worse of two ranks: up/down b=0 agreement after SDC (low first) and
maximum framewise displacement (high first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stylefa.data.nifti import make_volume
from stylefa.data.qc import IndexColumn, display_plane, to_ras, write_index

VIEWS = ("sagittal", "coronal", "axial")
INDEX_COLUMNS = (
    IndexColumn("b0_corr_before", "b0 up/down corr. before"),
    IndexColumn("b0_corr_after", "after SDC", bold=True),
    IndexColumn("fd_max_mm", "max FD (mm)", "{:.2f}", bold=True),
    IndexColumn("fd_mean_mm", "mean FD (mm)", "{:.2f}"),
    IndexColumn("fa_mean", "mean FA", "{:.3f}"),
)


def _planes(affine: np.ndarray, data: np.ndarray) -> list[np.ndarray]:
    ras = to_ras(make_volume(np.zeros((1, 1, 1)), affine), data)
    return [display_plane(ras, view, ras.shape[axis] // 2) for axis, view in enumerate(VIEWS)]


def _figure(rows: int, cols: int, height: float = 2.4):
    from matplotlib.figure import Figure

    return Figure(figsize=(2.6 * cols, height * rows + 0.5), facecolor="black")


def _save(figure, path: Path, title: str) -> Path:
    from stylefa.fileio import atomic_path

    figure.suptitle(title, color="white", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=90, facecolor=figure.get_facecolor())
    return path


def _aspect(affine: np.ndarray, view: str) -> float:
    zooms = sorted(np.linalg.norm(affine[:3, :3], axis=0))
    return 1.0 if view == "axial" else float(zooms[-1] / zooms[0])


def sdc_picture(path: Path, affine: np.ndarray, dwirefs: dict, mask: np.ndarray, title: str) -> Path:
    """Rows: each polarity before (and after) SDC; columns: the three mid-planes; red: brain outline."""
    outline = _planes(affine, mask.astype(np.float32))
    rows = [(f"{label} {stage}", image) for label, images in dwirefs.items()
            for stage, image in (("before", images["orig"]), ("after SDC", images["sdc"])) if image is not None]
    vmax = float(np.percentile(np.concatenate([i.ravel() for _, i in rows]), 99.5)) or 1.0
    figure = _figure(len(rows), 3)
    for r, (name, image) in enumerate(rows):
        for c, (plane, edge) in enumerate(zip(_planes(affine, image), outline)):
            axes = figure.add_subplot(len(rows), 3, r * 3 + c + 1)
            axes.imshow(plane, cmap="gray", vmin=0, vmax=vmax, origin="lower", aspect=_aspect(affine, VIEWS[c]))
            axes.contour(edge, levels=[0.5], colors="red", linewidths=0.6)
            axes.set_axis_off()
            axes.set_title(f"{name}, {VIEWS[c]}", color="white", fontsize=7)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.03, hspace=0.2)
    return _save(figure, path, title)


def field_picture(path: Path, affine: np.ndarray, field_hz: np.ndarray, mask: np.ndarray, title: str) -> Path:
    limit = float(np.percentile(np.abs(field_hz[mask]), 99)) if mask.any() else float(np.abs(field_hz).max())
    figure = _figure(1, 3, 2.8)
    for c, (plane, edge) in enumerate(zip(_planes(affine, field_hz), _planes(affine, mask.astype(np.float32)))):
        axes = figure.add_subplot(1, 3, c + 1)
        shown = axes.imshow(plane, cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower",
                            aspect=_aspect(affine, VIEWS[c]))
        axes.contour(edge, levels=[0.5], colors="black", linewidths=0.5)
        axes.set_axis_off()
        axes.set_title(VIEWS[c], color="white", fontsize=7)
    bar = figure.colorbar(shown, ax=figure.axes, shrink=0.7)
    bar.set_label("Hz", color="white")
    bar.ax.tick_params(colors="white")
    return _save(figure, path, title)


def motion_picture(path: Path, rigid: np.ndarray, fd: np.ndarray, labels: list[str], title: str) -> Path:
    """Translations (mm), rotations (deg) and framewise displacement (mm) over volumes."""
    figure = _figure(3, 2, 1.6)
    volumes = np.arange(len(fd))
    series = [("translation (mm)", rigid[:, 3:], ("x", "y", "z")),
              ("rotation (deg)", np.degrees(rigid[:, :3]), ("x", "y", "z")),
              ("framewise displacement (mm)", fd[:, None], ("FD",))]
    for r, (name, values, legend) in enumerate(series):
        axes = figure.add_subplot(3, 1, r + 1)
        for column, label in zip(values.T, legend):
            axes.plot(volumes, column, label=label, linewidth=1)
        for boundary in [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]:
            axes.axvline(boundary - 0.5, color="grey", linestyle=":")
        axes.set_ylabel(name, color="white", fontsize=7)
        axes.tick_params(colors="white", labelsize=7)
        axes.set_facecolor("#222")
        axes.legend(fontsize=6, loc="upper right")
    figure.axes[-1].set_xlabel("volume", color="white", fontsize=7)
    figure.subplots_adjust(left=0.1, right=0.98, bottom=0.08, top=0.9, hspace=0.35)
    return _save(figure, path, title)


def fa_picture(path: Path, affine: np.ndarray, fa: np.ndarray, title: str) -> Path:
    figure = _figure(1, 3, 2.8)
    for c, plane in enumerate(_planes(affine, fa)):
        axes = figure.add_subplot(1, 3, c + 1)
        axes.imshow(plane, cmap="gray", vmin=0, vmax=0.8, origin="lower", aspect=_aspect(affine, VIEWS[c]))
        axes.set_axis_off()
        axes.set_title(VIEWS[c], color="white", fontsize=7)
    return _save(figure, path, title)


def subject_reportlets(names, corrected, qc: dict) -> list[Path]:
    """Every picture of one subject (``names``: ``outputs.OutputNames``); returns their paths."""
    import nibabel as nib

    affine, name = corrected.affine, names.name
    fmt = lambda key: "n/a" if qc.get(key) is None else f"{qc[key]:.3f}"  # noqa: E731
    written = [sdc_picture(names.figure("sdc"), affine, corrected.dwirefs, corrected.mask,
                           f"{name}: mean b=0 per polarity, red: brain mask; up/down correlation "
                           f"{fmt('b0_corr_before')} -> {fmt('b0_corr_after')}")]
    if corrected.field_hz is not None:
        written.append(field_picture(names.figure("fieldmap"), affine, corrected.field_hz, corrected.mask,
                                     f"{name}: B0 field (Hz) from the reversed phase-encoding pair"))
    if corrected.transforms is not None:
        from stylefa.preprocess.motion import framewise_displacement

        rigid = corrected.transforms.rigid
        written.append(motion_picture(names.figure("motion"), rigid, framewise_displacement(rigid),
                                      corrected.volume_labels, f"{name}: head motion, max FD {fmt('fd_max_mm')} mm"))
    fa = np.asarray(nib.load(str(names.fa)).dataobj, dtype=np.float32)
    written.append(fa_picture(names.figure("FA"), affine, fa, f"{name}: FA of the corrected series"))
    return written


def _worst_first(entries: list[dict]) -> list[dict]:
    def ranks(key, reverse):
        values = sorted(entries, key=lambda e: (e.get(key) is not None, (-1 if reverse else 1) * (e.get(key) or 0)))
        return {id(e): i for i, e in enumerate(values)}

    by_sdc, by_fd = ranks("b0_corr_after", False), ranks("fd_max_mm", True)
    bad_first = lambda e: (e.get("status", "ok") == "ok", min(by_sdc[id(e)], by_fd[id(e)]), e["key"])  # noqa: E731
    return sorted(entries, key=bad_first)


def finished_subjects(output: Path) -> list[dict]:
    """The ``stylefa`` record of every finished subject in ``output`` (its ``desc-preproc_dwi.json``),
    so that the page covers subjects of earlier runs too."""
    import json

    records = []
    for sidecar in sorted(Path(output).glob("sub-*/**/*_desc-preproc_dwi.json")):
        try:
            record = json.loads(sidecar.read_text())["stylefa"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        records.append({"name": sidecar.name.removesuffix("_desc-preproc_dwi.json"), **record})
    return records


def write_cohort_index(output: Path, bad: list = ()) -> Path:
    """``OUT/qc/index.html``: every finished subject in ``output`` and every bad one of this run
    (with its problem), worst first."""
    entries = []
    for record in finished_subjects(output):
        qc, skipped = record.get("qc", {}), record.get("skipped", {})
        pictures = [f"../{p}" for p in record.get("outputs", []) if p.endswith(".png")]
        entries.append({"key": record["name"], "status": "ok" if "sdc" not in skipped else f"ok; no SDC: {skipped['sdc']}",
                        "pictures": pictures,
                        **{k: qc.get(k) for k in ("b0_corr_before", "b0_corr_after", "fd_max_mm", "fd_mean_mm")},
                        "fa_mean": (qc.get("fa") or {}).get("fa_mean")})
    entries += [{"key": item.key or item.path.name, "status": item.problem} for item in bad]
    intro = ("Worst first: the worse of two ranks, the agreement of the two phase-encoding polarities after SDC "
             "(Pearson r of the mean b=0 images inside the brain; near 0.99 for a good correction) and the largest "
             "framewise displacement (Power et al. 2012). Pictures: b=0 of each polarity before/after SDC with the "
             "brain outline, field map, motion traces, FA.")
    return write_index(Path(output) / "qc" / "index.html", _worst_first(entries), INDEX_COLUMNS,
                       "stylefa preprocess: QC", intro)
