"""HTML building blocks of the report pages (escaping, number formatting, tables, inlined
figures), shared by ``page`` and the lesion section (``stylefa.study.lesions.report``)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path


def _e(text) -> str:
    return html.escape(str(text))


def fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.{max(1, digits - 1)}e}"
        return f"{value:.{digits}f}"
    return _e(value)


def img_tag(png_path: Path, alt: str) -> str:
    data = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def figure(png_path: Path, caption: str) -> str:
    return f"<figure>{img_tag(png_path, caption)}<figcaption>{_e(caption)}</figcaption></figure>"


def table(header: list[str], rows: list[list], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def mean_ci(entry: dict | None, digits: int = 4) -> str:
    if not entry:
        return "–"
    lo, hi = entry["ci95"]
    return f"{fmt(entry['mean'], digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"
