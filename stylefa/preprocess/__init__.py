"""``stylefa preprocess``: raw DWI -> preprocessed DWI -> FA, the way the study did it.

Steps in the field's order (MRtrix3 ``dwifslpreproc``, QSIPrep): MP-PCA denoising -> Gibbs-ringing
removal -> susceptibility-distortion correction from a reversed phase-encoding pair (``sdc``,
the topup model) -> head-motion and eddy-current correction with rotated b-vectors
(``motion``) -> one resampling -> brain mask -> the tensor fit of ``stylefa fa``.

Library entry points: ``stylefa.preprocess.pipeline.preprocess_subject`` (one subject) and
``stylefa.preprocess.cohort.preprocess_cohort`` (a BIDS dataset). This package sits at the level
of ``stylefa.data`` (it may import data, fileio, readers, errors; nothing below imports it).
Importing it stays light: torch and dipy are imported inside the functions that use them.
"""
