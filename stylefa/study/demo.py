"""``stylefa demo``: the whole study on built-in data, on a laptop CPU.

- model: the demo generator shipped in the package (``stylefa/study/demo_model/``), or
  ``--network``;
- data: a small SIMULATED cohort made by ``stylefa.data.cohort`` with a seed other than the
  training cohort's, so the projected subjects were never seen in training;
- lesions: a synthetic lesion mask (``stylefa.study.lesions.masks.synthetic_lesion_volume``) unless
  real masks are given, each lesion slice also projected without its lesion (the control);
- lesion baselines: a normative |z| model fitted on ``normative_subjects`` simulated subjects of
  the training cohort's seed (the demo model's training distribution), and |FA - template FA|.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stylefa.errors import InputError
from stylefa.study.demo_model import DEMO_MODEL_DIR, DEMO_MODEL_FILE

DEMO_COHORT_SEED = 1001  # the demo model's training cohort uses another seed
TRAINING_COHORT_SEED = 0  # the demo model's training cohort (MODEL_CARD.md): the normative baseline's data


@dataclass
class DemoConfig:
    outdir: str = "stylefa-demo"
    lesions: list[str] = field(default_factory=list)
    flair: list[str] = field(default_factory=list)
    lesion_threshold: float | None = None  # lesion masks are probability maps cut at this value
    network: str | None = None
    subjects: int = 3
    normative_subjects: int = 12  # from the training cohort: the normative |z| lesion baseline
    max_slices: int = 12  # per condition: enough pairs for a Wilcoxon test to reach p < 0.05
    lesion_slices: int = 6
    steps: int = 100
    perceptual: str = "stlpips-vgg16"  # its weights ship in the stlpips-pytorch wheel: offline
    # Strengths from the study's default list, chosen for the demo's data: the simulated slices
    # already carry noise of SD 0.08 FA, so noise:0.05 would add little (total SD 0.094) while
    # noise:0.1 is clearly visible (0.128); at 64 px over 216 mm (3.4 mm pixels) blur:1 is an
    # 8 mm FWHM kernel, the usual smoothing in neuroimaging, and blur:2 a 16 mm one.
    conditions: str = "none,noise:0.1,saltpepper:0.05,inpaint:rect:zero,inpaint:rect:masked,blur:1"
    w_avg_samples: int = 2000
    cohort_voxel_mm: float = 2.5
    device: str = "auto"


def demo_model_path() -> Path:
    path = DEMO_MODEL_DIR / DEMO_MODEL_FILE
    if not path.is_file():
        raise InputError(
            "the demo model is not in this installation (it is trained separately and shipped with releases); "
            "pass --network CHECKPOINT to run the demo with your own generator",
            path,
        )
    return path


def run_demo(config: DemoConfig):
    from stylefa.data.cohort import CohortConfig, make_cohort
    from stylefa.runtime import resolve_device
    from stylefa.study.conditions import parse_conditions
    from stylefa.study.inputs import check_lesion_inputs, check_network
    from stylefa.study.study import StudyConfig, run_study

    network = config.network or str(demo_model_path())
    # Inputs are checked before the cohort is written (minutes of work, and files in outdir).
    check_network(network)
    parse_conditions(config.conditions)
    check_lesion_inputs(config.lesions, config.flair, config.lesion_threshold)
    outdir = Path(config.outdir)
    cohort = make_cohort(outdir / "cohort",
                         CohortConfig(num_subjects=config.subjects, seed=DEMO_COHORT_SEED,
                                      voxel_size_mm=config.cohort_voxel_mm))
    cohort_config = CohortConfig(num_subjects=config.normative_subjects, seed=TRAINING_COHORT_SEED,
                                 voxel_size_mm=config.cohort_voxel_mm)
    normative = make_cohort(outdir / "normative", cohort_config) if config.normative_subjects >= 2 else []
    study = StudyConfig(
        network=network, data=[str(p) for p in cohort], normative=[str(p) for p in normative],
        outdir=str(outdir / "study"), conditions=config.conditions,
        lesions=list(config.lesions), flair=list(config.flair), lesion_threshold=config.lesion_threshold,
        synthetic_lesions=not config.lesions,
        max_slices=config.max_slices, lesion_slices=config.lesion_slices, steps=config.steps, perceptual=config.perceptual,
        lpips_metric=True, batch_size=16, w_avg_samples=config.w_avg_samples, figure_slices=2,
        device=str(resolve_device(config.device)),
    )
    return run_study(study)
