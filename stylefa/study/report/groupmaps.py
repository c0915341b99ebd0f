"""The group figure: mean and SD of |projection - input| over the template, per projected level.

The background is the MNI FA template (``stylefa.data.template.find_template``: ``--template``
is not a study option, so ``$STYLEFA_TEMPLATE``, an installed ``tractseg`` or the user cache),
else nilearn's MNI152 T1 template (shipped with nilearn, offline), sampled on the very grid
the slices were cut from (``stylefa.data.slices.sample_axial_slices``), so the maps sit on it
voxel for voxel.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from stylefa.data.volumes import SliceSpace, plane_to_image

MAX_PANELS = 8


def template_slices(space: SliceSpace, levels_mm: tuple[float, ...]) -> tuple[np.ndarray | None, str]:
    """Background images ``[n, R, R]`` scaled to [0, 1] on ``levels_mm``, and what they are."""
    from stylefa.data.nifti import canonical, load_volume
    from stylefa.data.slices import sample_axial_slices, volume_z_extent
    from stylefa.data.template import find_template
    from stylefa.errors import InputError

    grid = dataclasses.replace(space.grid, levels_mm=tuple(levels_mm))
    try:
        volume = canonical(load_volume(find_template()))
        data, affine, name = volume.data, volume.affine, "MNI FA template"
    except InputError:
        try:
            from nilearn.datasets import load_mni152_template

            image = load_mni152_template(resolution=2)
            data, affine, name = np.asarray(image.get_fdata(), np.float32), image.affine, "nilearn MNI152 T1 template"
        except Exception:  # nilearn data missing: the maps are drawn on black
            return None, "no template available"
    z_lo, z_hi = volume_z_extent(data.shape, affine)
    if min(levels_mm) < z_lo or max(levels_mm) > z_hi:
        return None, "no template available"
    images = sample_axial_slices(data, affine, grid)
    top = float(np.percentile(images[images > 0], 99.5)) if np.any(images > 0) else 1.0
    return np.clip(images / max(top, 1e-9), 0, 1), name


def group_figure(mean: np.ndarray, sd: np.ndarray, count: np.ndarray, space: SliceSpace, stem: Path,
                 n_scans: int, brain: np.ndarray | None = None) -> tuple[Path, Path] | None:
    """Fig. 5: rows mean and SD of |difference| (magma) over the template, inside ``brain`` (any
    contributing scan's brain mask; everywhere if None); None if nothing projected."""
    from stylefa.study.report.figures import ABS_DIFF_CMAP, _clean, _figure, save_figure

    planes = [k for k in range(space.num_planes) if np.any(count[:, :, k] > 0)]
    if not planes:
        return None
    if len(planes) > MAX_PANELS:
        planes = [planes[int(round(i))] for i in np.linspace(0, len(planes) - 1, MAX_PANELS)]
    z = space.plane_z_mm()
    background, name = template_slices(space, tuple(float(z[k]) for k in planes))
    n = len(planes)
    fig = _figure(1.55 * n + 1.0, 3.6)
    axes = np.asarray(fig.subplots(2, n)).reshape(2, n)
    inside = np.ones(mean.shape, bool) if brain is None else np.asarray(brain, bool)
    for row, (label, volume) in enumerate((("mean |Δ|", mean), ("SD |Δ|", sd))):
        volume = np.where(inside, volume, np.nan)
        values = np.concatenate([volume[:, :, k][np.isfinite(volume[:, :, k])] for k in planes])
        limit = max(float(np.percentile(values, 99.5)) if values.size else 0.0, 1e-3)
        im = None
        for j, k in enumerate(planes):
            ax = axes[row, j]
            if background is not None:
                ax.imshow(background[j], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.set_facecolor("black")
            image = plane_to_image(volume[:, :, k])
            im = ax.imshow(np.ma.masked_invalid(image), cmap=ABS_DIFF_CMAP, vmin=0, vmax=limit, alpha=0.8,
                           interpolation="nearest")
            _clean(ax, f"z = {z[k]:g} mm" if row == 0 else None)
        if not values.size:
            axes[row, 0].text(0.03, 0.5, "needs ≥ 2 scans per level", transform=axes[row, 0].transAxes,
                              color="white", fontsize=7, va="center")
        axes[row, 0].set_ylabel(label, fontsize=9)
        cbar = fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.9, pad=0.01)
        cbar.set_label("FA", fontsize=8)
        cbar.ax.tick_params(labelsize=7)
    fig.suptitle(f"|projection − input|, {n_scans} scan(s), unmodified slices\non the {name}", fontsize=8)
    return save_figure(fig, stem)
