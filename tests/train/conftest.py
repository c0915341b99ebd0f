import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny networks gain nothing from a second intra-op thread and lose a lot when the
    # cores are shared (OpenMP spin-waits).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
