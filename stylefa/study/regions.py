"""Tissue regions on a slice, from MNI tissue priors shipped inside nilearn (offline).

Priors: ``nilearn.datasets.load_mni152_gm_template`` / ``load_mni152_wm_template`` (MNI152
2009 grey/white-matter probability maps, 1 mm; they ship inside the nilearn package, no
download). The 2009 template differs from FSL's MNI152 (6th generation) by a few mm at the
cortex, which is within the smoothness of the priors; regions are therefore coarse tissue
classes, not a segmentation of each subject.

Regions (each intersected with the slice's own brain mask):

- ``wm``     white matter: P(WM) >= 0.5
- ``gm``     grey matter: P(GM) >= 0.5
- ``deep``   deep grey matter: GM inside the central box |x| <= 35, -40 <= y <= 30,
             -20 <= z <= 25 mm (caudate, putamen, pallidum, thalamus; our own simple
             definition, no subcortical atlas ships offline)
- ``cortex`` GM outside that box
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stylefa.data.slices import SliceGrid, sample_axial_slices

REGION_NAMES = ("wm", "gm", "cortex", "deep")
PRIOR_THRESHOLD = 0.5
DEEP_BOX_MM = {"x": (-35.0, 35.0), "y": (-40.0, 30.0), "z": (-20.0, 25.0)}


@dataclass(frozen=True)
class TissuePriors:
    gm: np.ndarray
    wm: np.ndarray
    affine: np.ndarray
    source: str

    @classmethod
    def from_nilearn(cls) -> "TissuePriors":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nilearn import datasets

            gm = datasets.load_mni152_gm_template(resolution=1)
            wm = datasets.load_mni152_wm_template(resolution=1)
        if not np.allclose(gm.affine, wm.affine):
            raise RuntimeError("nilearn's GM and WM templates are on different grids")
        return cls(
            gm=np.asarray(gm.dataobj, dtype=np.float32),
            wm=np.asarray(wm.dataobj, dtype=np.float32),
            affine=np.asarray(gm.affine, dtype=np.float64),
            source="nilearn MNI152 2009 GM/WM templates (1 mm)",
        )

    def regions_on(self, plane: SliceGrid, brain: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean region masks [R, R] for the one-level grid ``plane``, inside ``brain``."""
        brain = np.asarray(brain, dtype=bool)
        gm_prob = sample_axial_slices(self.gm, self.affine, plane)[0]
        wm_prob = sample_axial_slices(self.wm, self.affine, plane)[0]
        return regions_from_priors(gm_prob, wm_prob, brain, plane)


def regions_from_priors(gm_prob, wm_prob, brain, plane: SliceGrid) -> dict[str, np.ndarray]:
    if plane.num_slices != 1:
        raise ValueError(f"regions are drawn on one slice, got a grid of {plane.num_slices} levels")
    gm = (gm_prob >= PRIOR_THRESHOLD) & brain
    wm = (wm_prob >= PRIOR_THRESHOLD) & brain
    yy, xx = np.meshgrid(plane.row_y_mm(), plane.column_x_mm(), indexing="ij")
    z_mm = plane.levels_mm[0]
    in_box = (
        (DEEP_BOX_MM["x"][0] <= xx)
        & (xx <= DEEP_BOX_MM["x"][1])
        & (DEEP_BOX_MM["y"][0] <= yy)
        & (yy <= DEEP_BOX_MM["y"][1])
        & (DEEP_BOX_MM["z"][0] <= z_mm <= DEEP_BOX_MM["z"][1])
    )
    return {"wm": wm, "gm": gm, "cortex": gm & ~in_box, "deep": gm & in_box}
