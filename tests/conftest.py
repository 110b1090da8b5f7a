import os

import pytest

# Keep the suite light on the 2-core CI machine.
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
