import os

import pytest

# Keep the suite light on the 2-core CI machine: at most 2 threads per test, and under pytest-xdist no more
# threads in all than cores (OpenMP threads that outnumber the cores spin against each other: a test that
# starts processes of its own ran 4x slower with 2 workers of 2 threads each on 2 cores).
# A worker sets its share even over an inherited value: the controller process ran this file first.
if "PYTEST_XDIST_WORKER" in os.environ:
    _share = (os.cpu_count() or 2) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, min(2, _share)))
else:
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)


@pytest.fixture(scope="session")
def micro_classifier(tmp_path_factory):
    """A saved micro classifier (8 frames of 32 px, the seven DFER classes) whose head is far from uniform, so
    its probabilities differ from window to window."""
    import torch

    from hi2m.io.weights import save_pretrained
    from hi2m.model import HI2MConfig
    from hi2m.model.classifier import VideoClassifier

    torch.manual_seed(0)
    model = VideoClassifier(HI2MConfig.from_name("micro", num_frames=8, image_size=32))
    with torch.no_grad():
        model.head.weight.normal_(0.0, 1.0)
    return save_pretrained(model, tmp_path_factory.mktemp("model") / "micro")
