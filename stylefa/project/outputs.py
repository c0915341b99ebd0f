"""Per-target result folders, the run summary and the optional progress GIF.

``OUTDIR/<target_id>/`` is built in a temporary folder and renamed into place when
complete (``stylefa.fileio.atomic_dir``), so a folder that exists is a finished target and
a re-run skips it. ``result.json`` inside holds the numbers the summary is merged from.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylefa.fileio import atomic_dir, write_png_gray, write_text

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.csv"
W_FILE = "projected_w.npz"
SUMMARY_COLUMNS = (
    "target_id", "subject", "slice", "final_distance", "final_loss", "ssim", "mse",
    "pti_ssim", "pti_mse", "perceptual", "steps", "space", "init", "source",
)


@dataclass
class TargetResult:
    """Everything written for one target (arrays on the FA scale unless said otherwise)."""

    target_id: str
    subject: str
    slice_index: str
    source: str
    target_fa: np.ndarray  # [R, R]
    projected_fa: np.ndarray  # [R, R] unclipped (x + 1) / 2
    w: np.ndarray  # [num_ws, w_dim]
    noise: dict[str, np.ndarray]  # layer -> [H, W]
    curves: dict[str, np.ndarray]  # column -> [steps]
    final_distance: float
    mask: np.ndarray | None = None
    frames: list[np.ndarray] | None = None  # uint8 FA frames of the projection
    pti_fa: np.ndarray | None = None
    pti_curves: dict[str, np.ndarray] | None = None


def ssim_fa(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two FA images (clipped to [0, 1]) with the study's settings (one implementation:
    ``stylefa.image_metrics.ssim``, equal to skimage's to 1e-6)."""
    from stylefa.image_metrics import ssim

    return ssim(np.clip(a, 0, 1).astype(np.float64), np.clip(b, 0, 1).astype(np.float64))


def mse_fa(a: np.ndarray, b: np.ndarray) -> float:
    from stylefa.image_metrics import mse

    return mse(np.clip(a, 0, 1).astype(np.float64), np.clip(b, 0, 1).astype(np.float64))


def curves_csv(curves: dict[str, np.ndarray]) -> str:
    names = list(curves)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step"] + names)
    for step in range(len(next(iter(curves.values())))):
        writer.writerow([step] + [f"{float(curves[name][step]):.8g}" for name in names])
    return buffer.getvalue()


def save_gif(path: Path, target_fa: np.ndarray, frames: list[np.ndarray], duration_ms: int = 100) -> None:
    """Animated GIF of target | projection, one frame per kept step (PIL only, no ffmpeg)."""
    from PIL import Image

    from stylefa.fileio import fa_to_uint8

    left = fa_to_uint8(target_fa)
    images = [Image.fromarray(np.concatenate([left, frame], axis=1)) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def is_finished(outdir: Path, target_id: str) -> bool:
    return (outdir / target_id / RESULT_FILE).is_file()


def write_target(outdir: Path, result: TargetResult, run_record: dict) -> dict:
    """Write one target's folder atomically; returns its summary row.

    The projection is on disk before any summary metric is computed: the folder (with the
    metrics left empty) appears first and ``result.json`` is then rewritten with them, so a
    failing metric never loses the optimisation's result."""
    row = {
        "target_id": result.target_id,
        "subject": result.subject,
        "slice": result.slice_index,
        "final_distance": result.final_distance,
        "final_loss": float(result.curves["loss"][-1]),
        "ssim": "", "mse": "", "pti_ssim": "", "pti_mse": "",
        "perceptual": run_record["perceptual"]["name"],
        "steps": run_record["config"]["steps"],
        "space": run_record["config"]["space"],
        "init": run_record["config"]["init"],
        "source": result.source,
    }
    with atomic_dir(outdir / result.target_id) as folder:
        arrays = {"w": result.w.astype(np.float32)}
        arrays.update({f"noise.{name}": value.astype(np.float32) for name, value in result.noise.items()})
        np.savez(folder / W_FILE, **arrays)
        np.save(folder / "projected.npy", result.projected_fa.astype(np.float32))
        write_png_gray(folder / "projected.png", result.projected_fa)
        np.save(folder / "target.npy", result.target_fa.astype(np.float32))
        write_png_gray(folder / "target.png", result.target_fa)
        if result.mask is not None:
            np.save(folder / "mask.npy", result.mask.astype(bool))
        (folder / "loss.csv").write_text(curves_csv(result.curves))
        if result.pti_fa is not None:
            np.save(folder / "pti_projected.npy", result.pti_fa.astype(np.float32))
            write_png_gray(folder / "pti_projected.png", result.pti_fa)
            (folder / "pti_loss.csv").write_text(curves_csv(result.pti_curves))
        if result.frames:
            save_gif(folder / "progress.gif", result.target_fa, result.frames)
        record = dict(run_record, target={"id": result.target_id, "subject": result.subject,
                                          "slice": result.slice_index, "source": result.source}, summary=row)
        # Written last inside the folder; the folder itself appears atomically.
        (folder / RESULT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    row.update(ssim=ssim_fa(result.target_fa, result.projected_fa), mse=mse_fa(result.target_fa, result.projected_fa))
    if result.pti_fa is not None:
        row.update(pti_ssim=ssim_fa(result.target_fa, result.pti_fa), pti_mse=mse_fa(result.target_fa, result.pti_fa))
    write_text(outdir / result.target_id / RESULT_FILE, json.dumps(dict(record, summary=row), indent=2) + "\n")
    return row


def read_row(outdir: Path, target_id: str) -> dict | None:
    """A finished target's summary row; metrics that a killed or failed run left empty (the
    second step of ``write_target``) are computed from the folder's arrays and recorded now."""
    path = outdir / target_id / RESULT_FILE
    try:
        record = json.loads(path.read_text())
        row = record["summary"]
    except (OSError, ValueError, KeyError):
        return None
    if row.get("ssim") == "":
        folder = path.parent
        target, projected = np.load(folder / "target.npy"), np.load(folder / "projected.npy")
        row.update(ssim=ssim_fa(target, projected), mse=mse_fa(target, projected))
        if (folder / "pti_projected.npy").is_file():
            pti = np.load(folder / "pti_projected.npy")
            row.update(pti_ssim=ssim_fa(target, pti), pti_mse=mse_fa(target, pti))
        write_text(path, json.dumps(dict(record, summary=row), indent=2) + "\n")
    return row


def write_summary(outdir: Path, target_ids: list[str]) -> tuple[Path, int]:
    """Merge the finished targets' rows, in target order; returns (path, rows written)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    count = 0
    for target_id in target_ids:
        row = read_row(outdir, target_id)
        if row is not None:
            writer.writerow(row)
            count += 1
    path = outdir / SUMMARY_FILE
    write_text(path, buffer.getvalue())
    return path, count


def rank_and_world() -> tuple[int, int]:
    """Rank and world size from torchrun's environment (1 process without it)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
