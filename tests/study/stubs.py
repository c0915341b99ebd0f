"""A small study in memory (two scans, three levels, conditions and a lesion), without projecting."""

import numpy as np

from stylefa.data.slices import SliceGrid
from stylefa.study.inputs import SliceData, SliceInfo, Slicing, single_level
from stylefa.study.study import Case

R = 32
GRID = SliceGrid(levels_mm=(0.0, 4.0, 8.0), resolution=R, fov_mm=200.0, center_mm=(0.0, -16.0))


class StubSource:
    """What the viewer reads of a study source: items, slicing and load()."""

    def __init__(self):
        self.slicing = Slicing(GRID, 0.1, "test")
        self.description = "stub source"
        self.items = []
        self.data = {}
        rows, cols = np.mgrid[0:R, 0:R]
        for scan in ("sub-01", "sub-02"):
            for level, z in enumerate(GRID.levels_mm):
                key = f"{scan}_L{level:02d}"
                info = SliceInfo(key, scan, scan, level, z, single_level(GRID, z), len(self.items))
                self.items.append(info)
                brain = (rows - 15.5) ** 2 + (cols - 15.5) ** 2 < 13**2
                fa = np.where(brain, 0.2 + 0.6 * ((rows * (level + 1) + 3 * cols) % 17) / 17, 0).astype(np.float32)
                self.data[key] = SliceData(info, fa, brain, None)

    def load(self, item):
        return self.data[item.key]


def stub_cases(source):
    rng = np.random.default_rng(0)
    cases, projections = [], {}

    def add(key, condition, modified=None, lesion=None, flair=None):
        s = source.data[key]
        case = Case(f"{key}__{condition}", key, condition, s.fa, s.fa if modified is None else modified, None, None,
                    s.brain, lesion, flair)
        cases.append(case)
        projections[case.target_id] = np.clip(case.modified + rng.normal(0, 0.05, (R, R)), 0, 1).astype(np.float32)

    for level in range(3):
        add(f"sub-01_L{level:02d}", "none")
    add("sub-01_L01", "noise:0.1", np.clip(source.data["sub-01_L01"].fa + 0.1, 0, 1))
    lesion = np.zeros((R, R), bool)
    lesion[12:18, 8:14] = True
    add("sub-01_L02", "lesion:p07", source.data["sub-01_L02"].fa * np.where(lesion, 0.6, 1.0), lesion,
        flair=np.where(source.data["sub-01_L02"].brain, 100 + 50 * lesion, 0).astype(float))
    add("sub-02_L00", "none")
    add("sub-02_L02", "none")
    return cases, projections
