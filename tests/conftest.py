import os

import pytest

# Keep the suite light on the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
