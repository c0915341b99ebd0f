"""Typed settings and inputs of ``stylefa preprocess`` (one subject).

``PreprocessConfig`` holds every step's switch and setting; ``SubjectInputs`` names the files of
one subject (the DWI series and, optionally, the reversed phase-encoding series) and where its
outputs go (BIDS derivatives, NiPreps naming: ``OUT/sub-X/[ses-Y/]dwi/sub-X[_ses-Y]_...``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from stylefa.data.fa import FAConfig


@dataclass(frozen=True)
class SeriesFiles:
    """One EPI series: a 4-D DWI (with ``bval``/``bvec``) or a b=0-only EPI (``bval`` None:
    every volume is a b=0, as BIDS ``fmap/*_epi.nii.gz``). ``sidecar`` is its BIDS JSON."""

    image: Path
    bval: Path | None = None
    bvec: Path | None = None
    sidecar: Path | None = None
    label: str | None = None  # BIDS dir- entity when the file name has one

    @property
    def is_dwi(self) -> bool:
        return self.bval is not None

    def paths(self) -> list[Path]:
        return [p for p in (self.image, self.bval, self.bvec, self.sidecar) if p is not None]


@dataclass(frozen=True)
class SubjectInputs:
    """The series of one subject (session, acquisition, run) and its output stem ``name``
    (BIDS entities without ``dir-``: both polarities go into one output)."""

    name: str  # e.g. "sub-01_ses-1"
    subject: str  # "sub-01"
    session: str | None
    dwi: SeriesFiles
    reverse: SeriesFiles | None = None

    def folder(self, output: Path) -> Path:
        """``OUT/sub-X/[ses-Y/]dwi`` (``OUT`` itself for a non-BIDS name)."""
        if not self.subject.startswith("sub-"):
            return Path(output)
        base = Path(output) / self.subject
        return (base / self.session if self.session else base) / "dwi"

    def figures(self, output: Path) -> Path:
        """``OUT/sub-X/figures`` (fMRIPrep's place for reportlets)."""
        return Path(output) / self.subject / "figures" if self.subject.startswith("sub-") else Path(output) / "figures"


@dataclass
class PreprocessConfig:
    """Settings of every step. Switches: ``denoise`` (dipy MP-PCA), ``degibbs`` (dipy
    ``gibbs_removal``), ``sdc`` (topup model from a reversed-PE pair), ``motion`` (head motion +
    eddy currents, b-vectors rotated). ``pe_dir``/``reverse_pe_dir`` (BIDS ``i``, ``j-``, ...) and
    ``readout_time`` (s) fill in sidecars that lack ``PhaseEncodingDirection`` /
    ``TotalReadoutTime``. ``sdc_settings``/``motion_settings``: fields of the sdc
    ``TopupConfig`` / motion ``MotionConfig`` to override (JSON-able)."""

    denoise: bool = True
    degibbs: bool = True
    sdc: bool = True
    motion: bool = True
    pe_dir: str | None = None
    reverse_pe_dir: str | None = None
    readout_time: float | None = None
    mppca_patch_radius: int = 2
    gibbs_points: int = 3
    same_head_min_correlation: float = 0.3
    sdc_settings: dict = field(default_factory=dict)
    motion_settings: dict = field(default_factory=dict)
    fa: FAConfig = field(default_factory=FAConfig)
    qc: bool = True

    @property
    def b0_threshold(self) -> float:
        return self.fa.b0_threshold

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("fa"), dict):
            known["fa"] = FAConfig.from_dict(known["fa"])
        return cls(**known)
