"""The report's interactive slice viewer: plain HTML/JS over the study's own arrays, offline.

Per scan, one binary block holds every projected level of every condition: the input and
the projection as uint16 (FA x 65535, so the value under the cursor is exact to 8e-6), the
lesion label and the display-scaled FLAIR as uint8. The block is zlib-compressed, base64
encoded and embedded in ``report.html`` as a non-executed ``<script type="application/
octet-stream">``; the page decodes a scan's block only when it is first shown (the browser's
own ``DecompressionStream``), so a study of hundreds of slices still opens at once. The
signed difference (projection - input) is computed in the page. Colour maps are
matplotlib's (``gray``, ``RdBu_r``) as 256-entry tables. Nothing is fetched: the JavaScript
and CSS are inlined from ``stylefa/study/report/viewer_assets``.
"""

from __future__ import annotations

import base64
import html
import json
import zlib
from dataclasses import dataclass
from importlib import resources

import numpy as np

DIFF_FLOOR = 0.05  # as the figures' symmetric_limit
ASSETS = "viewer_assets"


@dataclass(frozen=True)
class ViewerBlock:
    scan: str
    subject: str
    manifest: dict
    payload: bytes  # zlib-compressed arrays

    @property
    def embedded_bytes(self) -> int:
        """Size of this scan's data in the page (base64 text of the compressed arrays)."""
        return 4 * ((len(self.payload) + 2) // 3)


class _Packer:
    """Concatenate arrays into one buffer; uint16 ones first so they stay 2-byte aligned."""

    def __init__(self):
        self.parts16: list[bytes] = []
        self.parts8: list[bytes] = []
        self.entries: list[tuple[dict, str, int]] = []

    def add(self, target: dict, key: str, array: np.ndarray, dtype) -> None:
        data = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
        parts = self.parts16 if np.dtype(dtype).itemsize == 2 else self.parts8
        offset = sum(len(p) for p in parts)
        parts.append(data)
        self.entries.append((target, key, offset if parts is self.parts16 else -1 - offset))
        target[key] = None

    def finish(self) -> bytes:
        base16 = sum(len(p) for p in self.parts16)
        for target, key, offset in self.entries:
            target[key] = offset if offset >= 0 else base16 + (-1 - offset)
        return b"".join(self.parts16 + self.parts8)


def fa_to_uint16(fa: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(np.asarray(fa, dtype=np.float64), 0.0, 1.0) * 65535.0).astype(np.uint16)


def build_blocks(cases, projections: dict[str, np.ndarray], source) -> list[ViewerBlock]:
    """One block per scan, its conditions in the cases' order and its levels by z."""
    from stylefa.study.report.figures import _flair_display

    planes = {item.key: item for item in source.items}
    grid = source.slicing.grid
    by_scan: dict[str, list] = {}
    for case in cases:
        by_scan.setdefault(planes[case.slice_key].scan, []).append(case)
    blocks = []
    for scan, scan_cases in by_scan.items():
        packer = _Packer()
        conditions: dict[str, list[dict]] = {}
        diffs = []
        for case in scan_cases:
            info = planes[case.slice_key]
            projection = projections[case.target_id]
            level = {"z": info.z_mm, "slice": case.slice_key}
            packer.add(level, "input", fa_to_uint16(case.modified), np.uint16)
            packer.add(level, "projection", fa_to_uint16(projection), np.uint16)
            if case.lesion is not None:
                packer.add(level, "lesion", np.asarray(case.lesion, dtype=np.uint8), np.uint8)
            if case.flair is not None:
                flair = np.rint(_flair_display(case.flair, case.brain) * 255)
                packer.add(level, "flair", flair, np.uint8)
            conditions.setdefault(case.condition, []).append(level)
            diff = np.abs(np.clip(projection, 0, 1) - np.clip(case.modified, 0, 1))
            diffs.append(diff[case.brain] if case.brain.any() else diff.ravel())
        limit = max(float(np.percentile(np.concatenate(diffs), 99.5)), DIFF_FLOOR)
        manifest = {
            "scan": scan,
            "subject": planes[scan_cases[0].slice_key].subject,
            "resolution": grid.resolution,
            "x_mm": [float(grid.column_x_mm()[0]), grid.pixel_size_mm],
            "y_mm": [float(grid.row_y_mm()[0]), -grid.pixel_size_mm],
            "diff_limit": limit,
            "conditions": [{"name": name, "levels": sorted(levels, key=lambda lv: lv["z"])}
                           for name, levels in conditions.items()],
        }
        payload = zlib.compress(packer.finish(), 6)
        blocks.append(ViewerBlock(scan, manifest["subject"], manifest, payload))
    return blocks


def _lut(name: str) -> list[list[int]]:
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0, 1, 256))
    return np.rint(rgba[:, :3] * 255).astype(int).tolist()


def _asset(name: str) -> str:
    return resources.files("stylefa.study.report").joinpath(ASSETS, name).read_text(encoding="utf-8")


def _json_for_script(obj) -> str:
    # "</" would end the <script> element early.
    return json.dumps(obj, separators=(",", ":")).replace("</", "<\\/")


def viewer_section(blocks: list[ViewerBlock]) -> str:
    """The viewer's HTML (heading, controls, data blocks, inlined CSS and JS); '' without blocks."""
    if not blocks:
        return ""
    index = {
        "scans": [{"scan": b.scan, "subject": b.subject, "bytes": b.embedded_bytes, "manifest": b.manifest}
                  for b in blocks],
        "luts": {"gray": _lut("gray"), "diff": _lut("RdBu_r")},
    }
    total_kib = sum(b.embedded_bytes for b in blocks) / 1024
    parts = [
        "<h2 id='viewer-title'>Interactive viewer</h2>",
        f"<p class='note'>Scroll through the projected levels of each scan (slider, arrow keys or the mouse "
        f"wheel over an image; click an image first for the keys); the value under the cursor is shown for "
        f"every panel. Difference = projection − input; cyan: lesion outline; FLAIR display-scaled (1st–99.5th percentile inside the brain). "
        f"{len(blocks)} scan(s), {total_kib:.0f} KiB of embedded data, decoded per scan when first shown.</p>",
        f"<style>{_asset('viewer.css')}</style>",
        "<div id='sfv' class='sfv'><div class='sfv-controls'>"
        "<label>scan <select id='sfv-scan'></select></label> "
        "<label>condition <select id='sfv-condition'></select></label> "
        "<label>level <input id='sfv-level' type='range' min='0' max='0' step='1' value='0'></label> "
        "<span id='sfv-z'></span> <span id='sfv-status' class='note'></span></div>"
        "<div id='sfv-panels' class='sfv-panels'></div>"
        "<div class='sfv-bars'><span class='sfv-bar'>FA 0 <canvas id='sfv-bar-fa' width='256' height='12'></canvas> 1"
        "</span><span class='sfv-bar'><span id='sfv-bar-diff-lo'></span> <canvas id='sfv-bar-diff' width='256' "
        "height='12'></canvas> <span id='sfv-bar-diff-hi'></span></span></div>"
        "<div id='sfv-readout' class='sfv-readout'>move the cursor over an image</div></div>",
        f"<script type='application/json' id='sfv-index'>{_json_for_script(index)}</script>",
    ]
    for i, block in enumerate(blocks):
        data = base64.b64encode(block.payload).decode("ascii")
        parts.append(f"<script type='application/octet-stream' id='sfv-data-{i}' "
                     f"data-scan='{html.escape(block.scan, quote=True)}'>{data}</script>")
    parts.append(f"<script>{_asset('viewer.js')}</script>")
    return "".join(parts)
