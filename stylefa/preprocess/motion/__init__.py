"""Head-motion and eddy-current correction of DWI volumes, b-vector rotation, and the one combined
resampling of each volume (motion/eddy affine + susceptibility displacement, interpolated once).

Public API: :class:`MotionConfig`, :func:`estimate_motion`, :class:`VolumeTransforms`,
:func:`rotate_bvecs`, :func:`resample_once`, :func:`framewise_displacement`,
:func:`motion_confounds`, :func:`save_transforms` / :func:`load_transforms`. Importing this package
loads numpy only; torch, scipy, dipy and nitransforms are imported by the functions that use them.
"""

from .estimate import MotionConfig, estimate_motion
from .resample import resample_once
from .transforms import (
    VolumeTransforms,
    framewise_displacement,
    load_transforms,
    motion_confounds,
    rotate_bvecs,
    save_transforms,
)

__all__ = ["MotionConfig", "VolumeTransforms", "estimate_motion", "framewise_displacement", "load_transforms",
           "motion_confounds", "resample_once", "rotate_bvecs", "save_transforms"]
