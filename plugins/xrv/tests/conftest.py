"""Test settings: one intra-op thread (on a shared 2-core machine OpenMP spinning makes small
models 10x slower with 2 threads than with 1)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
