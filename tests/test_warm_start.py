"""Warm starts from an hi2m model directory, a transformers VideoMAE folder or a .pth: every shared tensor equal
to the source, what is new and what is left out reported, a shape mismatch refused with the key named,
nothing unpickled."""

import json
import pickle

import pytest
import torch

from hi2m.io.videomae import hf_to_hi2m_state_dict
from hi2m.io.weights import read_weights, save_pretrained
from hi2m.model import HI2M, HI2MConfig
from hi2m.model.classifier import VideoClassifier
from hi2m.model.state import CheckpointMismatch, warm_start

transformers = pytest.importorskip("transformers", reason="warm starts from transformers need the 'parity' extra")

# hi2m's micro model at 8x32x32 (what tests/test_train_engine.py trains), as a transformers config
HF = dict(image_size=32, num_frames=8, patch_size=16, tubelet_size=2, hidden_size=48, num_hidden_layers=2,
          num_attention_heads=3, intermediate_size=192, decoder_hidden_size=32, decoder_num_hidden_layers=1,
          decoder_num_attention_heads=2, decoder_intermediate_size=128, use_mean_pooling=False, norm_pix_loss=True)


def _cfg(**kw):
    return HI2MConfig.from_name("micro", num_frames=8, image_size=32, **kw)


def _hf_folder(tmp_path, kind, name=None, safe=True, **changes):
    cls = {"model": transformers.VideoMAEModel, "pretraining": transformers.VideoMAEForPreTraining,
           "classification": transformers.VideoMAEForVideoClassification}[kind]
    extra = {"num_labels": 5} if kind == "classification" else {}
    torch.manual_seed(1)
    hf = cls(transformers.VideoMAEConfig(**{**HF, **extra, **changes}))
    with torch.no_grad():  # values unlike any fresh initialisation
        for p in hf.parameters():
            p.normal_(0, 0.3)
    folder = tmp_path / (name or kind)
    hf.save_pretrained(folder)
    if not safe:  # the older layout: a pickled state dict (recent transformers write safetensors only)
        (folder / "model.safetensors").unlink()
        torch.save(hf.state_dict(), folder / "pytorch_model.bin")
    return folder, hf_to_hi2m_state_dict(hf.state_dict())


@pytest.mark.parametrize("kind", ["model", "pretraining", "classification"])
def test_finetuning_starts_from_a_transformers_folder(tmp_path, kind):
    folder, source = _hf_folder(tmp_path, kind)
    clf = VideoClassifier(_cfg(), 2, ("calm", "smile"))
    report = clf.load_encoder(read_weights(folder), str(folder))
    enc = {k for k in clf.state_dict() if k.startswith("encoder.")}
    assert set(report.loaded) == enc
    for k in enc:
        assert torch.equal(clf.state_dict()[k], source[k]), k
    assert set(report.new) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert "encoder.norm.weight" in report.left_out  # the pretrained final norm: fine-tuning uses fc_norm
    if kind == "pretraining":
        assert any(k.startswith("decoder.") for k in report.left_out)
    if kind == "classification":
        assert "classifier.weight" in report.left_out
    assert f"{len(enc)} tensors loaded, 4 new" in report.summary()


def test_pretraining_starts_from_a_transformers_folder(tmp_path):
    folder, source = _hf_folder(tmp_path, "pretraining")
    model = HI2M(_cfg(mask_type="hrd"))
    report = warm_start(model, read_weights(folder), str(folder))
    shared = set(model.state_dict()) & set(source)
    assert {k.split(".")[0] for k in shared} >= {"encoder", "decoder", "encoder_to_decoder", "mask_token"}
    for k in shared:
        assert torch.equal(model.state_dict()[k], source[k]), k
    assert report.new and all(k.startswith("masker.") for k in report.new)  # the HRD policy is hi2m's own
    # an encoder-only folder: the decoder stays new
    enc_folder, _ = _hf_folder(tmp_path, "model")
    report = warm_start(HI2M(_cfg()), read_weights(enc_folder), str(enc_folder))
    assert any(k.startswith("decoder.") for k in report.new) and not any(k.startswith("encoder.") for k in report.new)


def test_a_mismatched_folder_is_refused_with_the_key_named(tmp_path):
    folder, _ = _hf_folder(tmp_path, "model", name="wide", hidden_size=60, intermediate_size=240)
    with pytest.raises(CheckpointMismatch, match=r"encoder\.blocks\.0\.attn\.qkv\.weight: \(180, 60\)"):
        VideoClassifier(_cfg(), 2, ("a", "b")).load_encoder(read_weights(folder), str(folder))
    with pytest.raises(CheckpointMismatch, match="wrong shape"):
        warm_start(HI2M(_cfg()), read_weights(folder), str(folder))
    # a model folder of another kind, and a folder that is neither
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert'"):
        read_weights(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_weights(tmp_path / "missing")


def test_hi2m_directory_and_bin_weights_are_read_without_unpickling(tmp_path):
    model = HI2M(_cfg())
    save_pretrained(model, tmp_path / "m")
    got = read_weights(tmp_path / "m")
    assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())
    folder, source = _hf_folder(tmp_path, "model", name="bin", safe=False)
    assert (folder / "pytorch_model.bin").is_file() and not (folder / "model.safetensors").exists()
    got = read_weights(folder)
    assert all(torch.equal(got[k], source[k]) for k in source)

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"model": {"w": torch.zeros(1)}, "evil": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="weights-only"):
        read_weights(folder)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="weights-only"):
        read_weights(folder)


def test_warm_starts_through_the_engine(tmp_path):
    """``model.init`` (pretraining) and ``finetune.pretrained`` (fine-tuning) from transformers folders,
    through the runner: the report is printed and written, and after one step at a negligible learning
    rate every encoder tensor still equals the source."""
    from hi2m.data.synthface import ensure_synthface
    from hi2m.io.weights import load_pretrained
    from hi2m.train.runner import finetune, pretrain
    from test_train_engine import SYNTH, tiny_cfg

    root = tmp_path / "synth"
    ensure_synthface(root, **SYNTH)
    pre_folder, pre_source = _hf_folder(tmp_path, "pretraining")
    cls_folder, cls_source = _hf_folder(tmp_path, "classification")
    tiny = {"optim": {"base_lr": 1e-12, "min_lr": 0.0, "weight_decay": 0.0, "epochs": 1}, "trainer": {"max_steps": 1}}
    run = pretrain(tiny_cfg(root, tmp_path, run={"name": "pre"}, model={"size": "micro", "init": str(pre_folder)},
                            **tiny))
    report = json.loads((run["run_dir"] / "warm_start.json").read_text())
    assert report["source"] == str(pre_folder) and all(k.startswith("masker.") for k in report["new"])
    model = load_pretrained(run["model_dir"])
    for k, v in model.state_dict().items():
        if k.startswith("encoder."):
            torch.testing.assert_close(v, pre_source[k], atol=1e-8, rtol=0)

    out = finetune(tiny_cfg(root, tmp_path, run={"name": "ft"}, finetune={"pretrained": str(cls_folder), "select": "last"}, **tiny),
                   verbose=False)
    assert "encoder initialised from" in (out["run_dir"] / "report.txt").read_text()
    report = json.loads((out["run_dir"] / "warm_start.json").read_text())
    assert "classifier.weight" in report["left_out"] and "head.weight" in report["new"]
    clf = load_pretrained(out["model_dir"])
    for k, v in clf.state_dict().items():
        if k.startswith("encoder."):
            torch.testing.assert_close(v, cls_source[k], atol=1e-8, rtol=0)
