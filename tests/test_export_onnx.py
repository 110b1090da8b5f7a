"""ONNX export: the graph computes what the PyTorch classifier computes (onnxruntime), any batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="onnx is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from hi2m.io.onnx import export_onnx, run_onnx  # noqa: E402
from hi2m.model import HI2M, HI2MConfig  # noqa: E402
from hi2m.model.classifier import VideoClassifier  # noqa: E402
from hi2m.io.weights import save_pretrained  # noqa: E402


@pytest.fixture(scope="module")
def classifier() -> VideoClassifier:
    torch.manual_seed(0)
    model = VideoClassifier(HI2MConfig.from_name("micro", num_frames=8, image_size=32)).eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 1.0)  # logits of order 1, not the 1e-3-scaled initial head
    return model


def test_onnx_matches_pytorch_on_a_new_batch_size(classifier, tmp_path):
    report = export_onnx(classifier, tmp_path / "m.onnx", check=True, check_batch=2)
    assert report.max_abs_diff < 1e-4
    video = torch.randn(3, 3, 8, 32, 32)  # batch 3: not the traced batch of 1
    logits, feats = run_onnx(report.path, video.numpy())
    with torch.no_grad():
        ref_tokens, ref_pooled = classifier.forward_features(video)
        ref_logits = classifier(video)
    assert logits.shape == (3, classifier.num_classes) and float(np.abs(ref_logits.numpy()).max()) > 0.1
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(feats, ref_pooled.numpy(), atol=1e-4)


def test_attention_is_exported_as_plain_ops(classifier, tmp_path):
    import onnx

    report = export_onnx(classifier, tmp_path / "m.onnx", check=False)
    graph = onnx.load(str(report.path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"MatMul", "Softmax"} <= ops  # scaled_dot_product_attention lowered to MatMul/Softmax
    assert [o.name for o in graph.output] == ["logits", "features"]
    assert onnx.load(str(report.path)).opset_import[0].version >= 17


def test_cli_export_and_exit_codes(classifier, tmp_path, capsys):
    from hi2m.cli import main

    model_dir = save_pretrained(classifier, tmp_path / "clf")
    assert main(["export", "--onnx", str(model_dir), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    diff = float(out.split("logits ")[1].split(",")[0])
    assert diff < 1e-4 and (tmp_path / "m.onnx").stat().st_size > 10_000
    pre_dir = save_pretrained(HI2M(HI2MConfig.from_name("micro")), tmp_path / "pre")
    assert main(["export", "--onnx", str(pre_dir), "--out", str(tmp_path / "p.onnx")]) == 2
    assert "VideoClassifier" in capsys.readouterr().err
    assert main(["export", "--onnx", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")]) == 2


def test_class_names_and_input_spec_travel_in_the_file(tmp_path):
    import json

    import onnx

    model = VideoClassifier(HI2MConfig.from_name("micro", num_frames=8, image_size=32), 2, ("calm", "smile"))
    export_onnx(model, tmp_path / "c.onnx", check=False)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "c.onnx")).metadata_props}
    assert json.loads(props["id2label"]) == {"0": "calm", "1": "smile"}
    assert props["num_frames"] == "8" and props["image_size"] == "32"
    assert json.loads(props["pixel_mean"]) == pytest.approx(list(model.cfg.pixel_mean))
