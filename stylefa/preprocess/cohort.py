"""``stylefa preprocess`` over a BIDS dataset: every subject in parallel workers, resumable.

Subjects are found by ``stylefa.preprocess.bids``; each runs in a worker process
(``stylefa.data.workers``, one progress bar); a finished subject (its ``desc-preproc_dwi.json``
records the same sources and settings) is skipped; a bad subject does not stop the others and
all bad ones are reported together at the end (``BadSubjectsError`` unless ``skip_bad``). The
cohort QC page ``OUT/qc/index.html`` lists every subject, worst first.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from stylefa.data.bad import BadSubject, BadSubjectsError
from stylefa.errors import InputError
from stylefa.fileio import ensure_writable_folder
from stylefa.preprocess.config import PreprocessConfig, SubjectInputs


@dataclass(frozen=True)
class SubjectTask:
    subject: SubjectInputs
    output: Path
    config: PreprocessConfig


@dataclass
class CohortResult:
    output: Path
    written: list  # results.SubjectResult
    reused: list
    skipped: list[BadSubject]
    warnings: list[str]
    index: Path | None


def run_subject(task: SubjectTask) -> dict:
    """One subject in a worker: its result, or its problem as data (one bad subject must not
    stop the others)."""
    from stylefa.preprocess.pipeline import preprocess_subject

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = preprocess_subject(task.subject, task.output, task.config)
        except InputError as exc:
            return {"ok": False, "name": task.subject.name, "path": str(exc.path or task.subject.dwi.image),
                    "problem": exc.problem}
    notes = [str(w.message) for w in caught if w.category.__name__ == "SDCSkippedWarning"]
    return {"ok": True, "result": result, "warnings": notes}


def preprocess_cohort(root: str | os.PathLike, output: str | os.PathLike, config: PreprocessConfig | None = None,
                      workers: int = 1, skip_bad: bool = False) -> CohortResult:
    """Preprocess every subject of the BIDS folder ``root`` into ``output`` (BIDS derivatives)."""
    from stylefa.data.workers import run_in_workers
    from stylefa.preprocess.bids import discover_subjects
    from stylefa.preprocess.outputs import write_description

    if workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    config = config or PreprocessConfig()
    root, output = Path(root), Path(output)
    if not root.is_dir():
        raise InputError("BIDS folder not found", root)
    subjects, bad = discover_subjects(root)
    if not subjects and not bad:
        raise InputError("folder contains no DWI series (sub-*/[ses-*/]dwi/*_dwi.nii.gz)", root)
    if output.resolve() == root.resolve() or root.resolve() in output.resolve().parents and \
            "derivatives" not in output.resolve().relative_to(root.resolve()).parts:
        raise InputError("output folder must not be inside the raw BIDS folder (except under derivatives/)", output)
    ensure_writable_folder(output)
    write_description(output)
    tasks = [SubjectTask(s, output, config) for s in subjects]
    outcomes = run_in_workers(run_subject, tasks, workers, desc="preprocess", unit="subject")
    bad += [BadSubject(Path(o["path"]), o["problem"], o["name"]) for o in outcomes if not o["ok"]]
    good = [o["result"] for o in outcomes if o["ok"]]
    index = None
    if config.qc:
        from stylefa.preprocess.qc import write_cohort_index

        index = write_cohort_index(output, bad)
    if bad and not skip_bad:
        raise BadSubjectsError(bad, len(good))
    return CohortResult(output, [r for r in good if not r.reused], [r for r in good if r.reused], bad,
                        [n for o in outcomes if o["ok"] for n in o["warnings"]], index)
