"""The classifier on the encoder, and the model-directory format."""

import json

import pytest
import torch

from hi2m.model.state import CheckpointMismatch
from hi2m.model import HI2M, HI2MConfig
from hi2m.model.classifier import VideoClassifier
from hi2m.io.weights import load_pretrained, save_pretrained


def _cfg(**kw):
    return HI2MConfig.from_name("micro", **kw)


def test_classifier_shapes_and_pooling():
    clf = VideoClassifier(_cfg(), num_classes=7).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    tokens, pooled = clf.forward_features(video)
    assert tokens.shape == (2, 8, 48) and pooled.shape == (2, 48)
    want = torch.nn.functional.layer_norm(tokens.mean(1), (48,), clf.fc_norm.weight, clf.fc_norm.bias, 1e-6)
    torch.testing.assert_close(pooled, want)
    assert clf(video).shape == (2, 7)
    assert isinstance(clf.encoder.norm, torch.nn.Identity)  # fine-tuning: fc_norm instead of a final norm


def test_load_pretrained_encoder_into_classifier():
    pre = HI2M(_cfg())
    clf = VideoClassifier(_cfg())
    ignored = clf.load_encoder(pre.state_dict()).left_out
    assert "encoder.norm.weight" in ignored and "decoder.head.weight" in ignored
    torch.testing.assert_close(clf.encoder.blocks[1].attn.qkv.weight, pre.encoder.blocks[1].attn.qkv.weight)
    video = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():  # same tokens before the final norm
        pre.encoder.norm = torch.nn.Identity()
        torch.testing.assert_close(clf.encoder(video), pre.encoder(video))
    sd = pre.state_dict()
    del sd["encoder.blocks.0.mlp.fc1.weight"]
    with pytest.raises(CheckpointMismatch, match="blocks.0.mlp.fc1.weight"):
        clf.load_encoder(sd)


def test_linear_probe_freezes_encoder():
    clf = VideoClassifier(_cfg(), linear_probe=True)
    clf.load_encoder(HI2M(_cfg()).state_dict())
    trainable = [n for n, p in clf.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    clf.train()
    assert not clf.encoder.training and clf.bn.training
    clf(torch.randn(3, 3, 4, 32, 32)).sum().backward()
    assert clf.encoder.blocks[0].attn.qkv.weight.grad is None and clf.head.weight.grad is not None


@pytest.mark.parametrize("kind", ["pretraining", "classification"])
def test_save_and_load_model_directory(tmp_path, kind):
    model = HI2M(_cfg(target="motion")) if kind == "pretraining" else VideoClassifier(_cfg(), 3, ("a", "b", "c"))
    save_pretrained(model, tmp_path / "m", metadata={"epoch": 3})
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "model.safetensors"]  # no temporary files left behind
    loaded = load_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.metadata == {"epoch": 3}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    if kind == "classification":
        assert loaded.class_names == ("a", "b", "c")
        x = torch.randn(1, 3, 4, 32, 32)
        torch.testing.assert_close(loaded(x), model.eval()(x))
    else:
        assert loaded.cfg.target == "motion"


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)
    save_pretrained(VideoClassifier(_cfg()), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model"]["depth"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatch, match="missing"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_pretrained(tmp_path)
