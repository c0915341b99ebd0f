"""Size and opening time of the report's interactive viewer for a large study.

Cuts the shared real FA (../shared/data/fa, MNI space) at RESOLUTION on the default 21
levels, repeats it as SCANS scans x CONDITIONS conditions (projection stand-in: the FA
blurred by a 1-pixel Gaussian, so the data compress like smooth generator output), builds
report.html with ``stylefa.study.report.viewer`` and opens it RUNS times in headless Chromium
(DevTools protocol, as tests/study/browser.py): time from navigation to the load event and
to the first scan drawn, then to another scan decoded and drawn (its lazy load).

    python benchmarks/bench_viewer.py --resolution 256 --scans 10 --conditions 2 --runs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLEFA_SHARED", ROOT.parent / "shared"))


def build(resolution: int, scans: int, conditions: int, folder: Path) -> tuple[Path, int, list[int]]:
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from stylefa.data.slices import SliceGrid
    from stylefa.study.inputs import NiftiSource, SliceInfo, Slicing
    from stylefa.study.report.page import build_report
    from stylefa.study.study import Case
    from stylefa.study.report.viewer import build_blocks, viewer_section

    fa = SHARED / "data" / "fa" / "subj-tractseg_space-MNI_res-2p5mm_FA.nii.gz"
    one = NiftiSource([fa], Slicing(SliceGrid(resolution=resolution), 0.05, "bench"))

    class Repeated:  # the one real scan, SCANS times under other names
        slicing = one.slicing
        items = [SliceInfo(f"s{s:03d}_{i.key}", f"sub-{s:03d}", f"sub-{s:03d}", i.level, i.z_mm, i.plane, i.index)
                 for s in range(scans) for i in one.items]

        @staticmethod
        def load(item):
            return one.load(one.items[item.level])

    cases, projections = [], {}
    for item in Repeated.items:
        data = Repeated.load(item)
        for c in range(conditions):
            case = Case(f"{item.key}__c{c}", item.key, "none" if c == 0 else f"noise:{c}", data.fa, data.fa, None,
                        None, data.brain)
            cases.append(case)
            projections[case.target_id] = gaussian_filter(data.fa, 1.0).astype(np.float32)
    blocks = build_blocks(cases, projections, Repeated)
    page = folder / "report.html"
    page.write_text(build_report(title="bench", settings={}, summary={}, figures={}, model_card=None, perceptual={},
                                 notes=[], viewer=viewer_section(blocks)))
    return page, len(cases), [b.embedded_bytes for b in blocks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--scans", type=int, default=10)
    parser.add_argument("--conditions", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.study.browser import Browser

    with tempfile.TemporaryDirectory() as tmp:
        page, n_slices, sizes = build(args.resolution, args.scans, args.conditions, Path(tmp))
        print(f"{n_slices} projected slices at {args.resolution}x{args.resolution} in {args.scans} scans; "
              f"report.html {page.stat().st_size / 2**20:.1f} MiB; per scan {statistics.median(sizes) / 1024:.0f} KiB "
              f"({statistics.median(sizes) / 1024 / (n_slices / args.scans):.0f} KiB per slice)")
        loads, firsts, seconds = [], [], []
        for run in range(args.runs):
            browser = Browser(Path(tmp) / f"profile{run}", timeout=300)
            try:
                start = time.perf_counter()
                browser.open(page.as_uri())
                loads.append(time.perf_counter() - start)
                browser.evaluate("window.stylefaViewer.ready")
                firsts.append(time.perf_counter() - start)
                start = time.perf_counter()
                browser.evaluate(f"window.stylefaViewer.show({args.scans - 1}, 0, 0)")
                seconds.append(time.perf_counter() - start)
                assert browser.problems() == [], browser.problems()
            finally:
                browser.close()
        print(f"load event {statistics.median(loads):.2f} s, first scan drawn {statistics.median(firsts):.2f} s, "
              f"another scan decoded and drawn {statistics.median(seconds):.3f} s (medians of {args.runs})")


if __name__ == "__main__":
    main()
