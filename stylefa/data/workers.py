"""One worker pool for per-subject jobs (``stylefa fa``, ``stylefa prepare``)."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")


def run_in_workers(job: Callable[[Task], Result], tasks: Sequence[Task], workers: int, desc: str,
                   unit: str) -> list[Result]:
    """``[job(t) for t in tasks]`` in order, in ``workers`` processes (1: in this process), with
    progress (``stylefa.progress``: a bar on a terminal, periodic lines in a log). ``job`` must be picklable (a
    module-level function); an exception in a job propagates to the caller."""
    from stylefa.progress import progress as progress_bar

    results = []
    with progress_bar(total=len(tasks), desc=desc, unit=unit) as progress:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(job(task))
                progress.update(1)
            return results
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a forked child of a process that already runs torch/OpenMP threads can hang.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for result in pool.map(job, tasks, chunksize=1):
                results.append(result)
                progress.update(1)
    return results
