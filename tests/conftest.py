import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLEFA_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (real data and reference tensors)."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: real-data and golden tests need ../shared beside the checkout")
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    # CI has 2 cores; more intra-op threads than that only adds contention.
    import torch

    from stylefa.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def one_torch_thread():
    """Tiny networks trained in-process: a second intra-op thread only spins on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def without_symmetric_polish(monkeypatch):
    """``hybrid`` registration without its two symmetric reg_aladin passes (then it is the -noSym
    result, within ~1.5 deg / 1.9 mm RMS of reg_aladin). For tests of the orientation search, the
    quality gate and the writers, which do not depend on the last degree and would otherwise pay two
    reg_aladin runs per registration (~200 s of the suite). The polish itself is tested in
    tests/data/test_niftyreg.py and tests/data/test_dwi_chain.py."""
    from stylefa.data import niftyreg

    monkeypatch.setattr(niftyreg, "polish_symmetric", lambda moving, template, matrix, **_: matrix)
