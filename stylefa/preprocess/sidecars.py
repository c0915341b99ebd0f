"""Phase encoding of an EPI series from its BIDS sidecar (or the user's options).

BIDS (MRI, "Sidecar JSON", in-plane spatial encoding): ``PhaseEncodingDirection`` is ``i``,
``j`` or ``k`` (voxel axis) with ``-`` for the reversed polarity; ``TotalReadoutTime`` (s) is the
time from the centre of the first to the centre of the last echo, and may be derived as
``EffectiveEchoSpacing * (ReconMatrixPE - 1)`` (the spec's formula; ``ReconMatrixPE`` defaults to
the image's size along the PE axis). A sidecar with only ``PhaseEncodingAxis`` (dcm2niix writes
this when the vendor does not store the polarity) gives the axis but not the sign: the sign is
never guessed, the user states it with ``--pe-dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stylefa.errors import InputError

PE_DIRECTIONS = ("i", "i-", "j", "j-", "k", "k-")


@dataclass(frozen=True)
class ResolvedPE:
    """``direction`` (BIDS code), ``readout_time`` (s), and where each came from (for the sidecar)."""

    direction: str
    readout_time: float
    direction_source: str
    readout_source: str

    @property
    def axis(self) -> int:
        return "ijk".index(self.direction[0])

    @property
    def sign(self) -> int:
        return -1 if self.direction.endswith("-") else 1

    def to_dict(self) -> dict:
        return {"PhaseEncodingDirection": self.direction, "TotalReadoutTime": self.readout_time,
                "direction_from": self.direction_source, "readout_time_from": self.readout_source}

    def phase_encoding(self):
        """The sdc package's ``PhaseEncoding`` (imports torch-free ``sdc.model``)."""
        from stylefa.preprocess.sdc import PhaseEncoding

        return PhaseEncoding.from_bids(self.direction, self.readout_time)


def read_sidecar(path: Path | None) -> dict:
    """The JSON object in ``path`` ({} when there is none); ``InputError`` when unreadable."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError("sidecar not found", path) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"sidecar is not valid JSON ({type(exc).__name__})", path) from None
    if not isinstance(data, dict):
        raise InputError("sidecar is not a JSON object", path)
    return data


def check_direction(value: str, where: str | Path) -> str:
    if value not in PE_DIRECTIONS:
        raise InputError(f"phase-encoding direction {value!r} is not one of {', '.join(PE_DIRECTIONS)}", where)
    return value


def resolve_pe(sidecar: dict, sidecar_path: Path | None, image_path: Path, shape: tuple[int, ...],
               direction_option: str | None, readout_option: float | None, option_name: str = "--pe-dir") -> ResolvedPE:
    """The series' phase encoding: the sidecar's, else the options'; ``InputError`` naming the
    sidecar (or the image when there is none) when it cannot be known without guessing."""
    where = sidecar_path or image_path
    given = sidecar.get("PhaseEncodingDirection")
    if given is not None:
        direction = check_direction(str(given), where)
        if direction_option is not None and direction_option != direction:
            raise InputError(f"PhaseEncodingDirection {direction!r} in the sidecar contradicts {option_name} "
                             f"{direction_option}", where)
        direction_source = "sidecar"
    elif direction_option is not None:
        direction, direction_source = check_direction(direction_option, option_name), option_name
        axis = sidecar.get("PhaseEncodingAxis")
        if axis is not None and str(axis) != direction[0]:
            raise InputError(f"PhaseEncodingAxis {axis!r} in the sidecar contradicts {option_name} {direction}", where)
    elif sidecar.get("PhaseEncodingAxis") is not None:
        raise InputError(f"has PhaseEncodingAxis {sidecar['PhaseEncodingAxis']!r} but no PhaseEncodingDirection: "
                         f"the polarity is unknown and is not guessed; pass {option_name} (e.g. "
                         f"{sidecar['PhaseEncodingAxis']} or {sidecar['PhaseEncodingAxis']}-)", where)
    else:
        raise InputError(f"no PhaseEncodingDirection (BIDS sidecar); pass {option_name} or a sidecar with --json",
                         where)
    readout, readout_source = _readout_time(sidecar, shape, "ijk".index(direction[0]))
    if readout_option is not None:
        if readout is not None and abs(readout - readout_option) > 1e-6 * max(readout, 1e-9) + 1e-9:
            raise InputError(f"TotalReadoutTime {readout:g} s in the sidecar contradicts --readout-time "
                             f"{readout_option:g}", where)
        readout, readout_source = float(readout_option), readout_source if readout is not None else "--readout-time"
    if readout is None:
        raise InputError("no TotalReadoutTime (nor EffectiveEchoSpacing) in the sidecar; pass --readout-time "
                         "(seconds)", where)
    if not 0.0 < readout < 1.0:
        raise InputError(f"total readout time {readout:g} s is outside (0, 1) s (BIDS: seconds)", where)
    return ResolvedPE(direction, float(readout), direction_source, readout_source)


def _readout_time(sidecar: dict, shape: tuple[int, ...], axis: int) -> tuple[float | None, str]:
    if sidecar.get("TotalReadoutTime") is not None:
        return float(sidecar["TotalReadoutTime"]), "sidecar TotalReadoutTime"
    spacing = sidecar.get("EffectiveEchoSpacing")
    if spacing is not None:
        matrix = int(sidecar.get("ReconMatrixPE") or shape[axis])
        return float(spacing) * (matrix - 1), "sidecar EffectiveEchoSpacing * (ReconMatrixPE - 1)"
    return None, ""


def slice_axis(sidecar: dict, pe_axis: int) -> int:
    """The acquisition's slice axis (``SliceEncodingDirection``), else the last axis that is not
    the PE axis (2-D EPI is acquired in slices across the third voxel axis)."""
    given = sidecar.get("SliceEncodingDirection")
    if given and str(given)[0] in "ijk":
        return "ijk".index(str(given)[0])
    return 2 if pe_axis != 2 else 0


def anatomical_label(direction: str, affine) -> str:
    """A BIDS ``dir-`` label from the PE direction and the image orientation, e.g. ``j`` with the
    voxel axis pointing anterior -> ``PA`` (from posterior to anterior)."""
    import nibabel as nib

    codes = nib.orientations.aff2axcodes(affine)  # letter each voxel axis points towards
    opposite = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}
    towards = codes["ijk".index(direction[0])]
    if direction.endswith("-"):
        towards = opposite[towards]
    return f"{opposite[towards]}{towards}"
