"""stylefa.study: conditions, lesions, image metrics, figures and the HTML report.

Pure-numpy building blocks (no torch needed):

- ``conditions``  corruptions of a slice (noise, salt & pepper, blur, inpainting) by spec
- ``lesions``     real lesion masks placed on FA in world space, FA reduction model
- ``metrics``     SSIM (skimage-exact, numpy and batched torch), MSE, PSNR, MAE
- ``detection``   AUROC, average precision, Otsu threshold, Dice of difference maps
- ``regions``     WM / GM / cortex / deep-GM masks from nilearn's MNI tissue priors
- ``stats``       bootstrap CIs, paired Wilcoxon tests
- ``figures``     Figs. 1-4 (PNG + PDF); ``groupmaps``: Fig. 5, group |difference| over the template
- ``derivatives`` the study's NIfTI volumes and group maps in a BIDS-derivatives layout
- ``viewer``      the report's interactive slice viewer (plain HTML/JS, offline)

Orchestration: ``study.run_study(StudyConfig(...))`` and ``demo.run_demo(DemoConfig(...))``.
"""
