"""Export to transformers (VideoMAEForVideoClassification / VideoMAEForPreTraining), import back, model cards."""

from __future__ import annotations

import json

import pytest
import torch

from hi2m.model import HI2M, HI2MConfig
from hi2m.model.classifier import VideoClassifier

transformers = pytest.importorskip("transformers", reason="export to transformers needs the 'parity' extra")

CFG = HI2MConfig.from_name("micro", num_frames=4, image_size=32)
NAMES = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")


def randomised(model):
    """Non-trivial values everywhere, so that a mapping mistake cannot hide behind fresh LayerNorms."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2 if p.ndim > 1 else 0.5)
    return model.eval()


def clips(cfg, n=3, seed=1):
    return torch.randn(n, 3, cfg.num_frames, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(seed))


def test_classifier_logits_match_transformers_and_come_back_identical(tmp_path):
    from hi2m.io.hf import export_transformers, load_transformers

    model = randomised(VideoClassifier(CFG, 7, NAMES))
    report = export_transformers(model, tmp_path / "hf")
    assert report.architecture == "VideoMAEForVideoClassification" and report.dropped == []
    hf = transformers.VideoMAEForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    assert [hf.config.id2label[i] for i in range(7)] == list(NAMES)
    video = clips(CFG)
    with torch.no_grad():
        diff = (hf(pixel_values=video.transpose(1, 2)).logits - model(video)).abs().max()  # (B, T, C, H, W) input
    assert diff < 1e-5 and report.max_abs_diff < 1e-5
    proc = json.loads((tmp_path / "hf" / "preprocessor_config.json").read_text())
    assert proc["image_mean"] == list(CFG.pixel_mean) and proc["crop_size"] == {"height": 32, "width": 32}
    back = load_transformers(tmp_path / "hf")
    a, b = model.state_dict(), back.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert back.class_names == NAMES and back.cfg.pixel_std == CFG.pixel_std
    # the check can fail: a perturbed weight shows up
    with torch.no_grad():
        back.head.bias[0] += 1e-3
    assert (back(video) - model(video)).abs().max() > 1e-4


def test_pretrained_hi2m_decoder_matches_and_reports_what_is_not_carried(tmp_path):
    from hi2m.io.hf import compare, export_transformers, load_transformers

    model = randomised(HI2M(CFG.replace(mask_type="hrd", target="dual")))
    report = export_transformers(model, tmp_path / "pre")
    assert report.architecture == "VideoMAEForPreTraining" and report.max_abs_diff < 1e-5
    assert any("HRD policy" in d for d in report.dropped) and any("dual target" in d for d in report.dropped)
    tube = randomised(HI2M(CFG.replace(mask_type="tube", target="dual")))
    export_transformers(tube, tmp_path / "tube")
    back = load_transformers(tmp_path / "tube")
    assert back.cfg.target == "dual"
    a, b = tube.state_dict(), back.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert compare(back, tmp_path / "tube") < 1e-5


def test_what_transformers_cannot_hold_is_refused(tmp_path):
    from hi2m.io.hf import export_transformers

    with pytest.raises(ValueError, match="linear-probe"):
        export_transformers(VideoClassifier(CFG, 7, linear_probe=True), tmp_path / "a")
    with pytest.raises(ValueError, match="appearance-target"):
        export_transformers(HI2M(CFG.replace(target="appearance")), tmp_path / "b")


def test_transformers_pipeline_runs_on_a_real_face_video(tmp_path):
    from _media import media

    from hi2m.io.hf import export_transformers

    video = media("single_face.mp4")
    export_transformers(randomised(VideoClassifier(CFG, 7, NAMES)), tmp_path / "hf", check=False)
    pipe = transformers.pipeline("video-classification", model=str(tmp_path / "hf"))
    out = pipe(str(video), top_k=7)
    assert sorted(o["label"] for o in out) == sorted(NAMES)
    assert sum(o["score"] for o in out) == pytest.approx(1.0, abs=1e-4)


def test_model_card_is_filled_from_the_run(tmp_path):
    import yaml

    from hi2m.io.card import write_model_card

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "dfew", "root": "/data/DFEW", "train_split": "train", "test_split": "test",
                 "num_frames": 16, "stride": 4, "image_size": 160, "batch_size": 24, "temporal_views": 2,
                 "spatial_views": 2},
        "optim": {"base_lr": 1e-3, "lr_scaling": "linear", "weight_decay": 0.05, "epochs": 100},
        "finetune": {"pretrained": "runs/pretrain-vox/model"}}))
    recall = [0.9, 0.8, 0.7, 0.6, 0.5, None, 0.1]
    (run / "metrics.json").write_text(json.dumps({"uar": 0.6021, "war": 0.7133, "per_class_recall": recall,
                                                  "total": 2341}))
    text = write_model_card(run / "model", VideoClassifier(CFG, 7, NAMES), run,
                            selected="best validation UAR").read_text()
    assert text.startswith("---\nlibrary_name: hi2m") and "pipeline_tag: video-classification" in text
    assert "| 60.21 | 71.33 |" in text and "| 90.0 | 80.0 | 70.0 | 60.0 | 50.0 | - | 10.0 |" in text
    assert "2341 clips" in text and "best validation UAR" in text and "runs/pretrain-vox/model" in text
    assert "`dfew` from `DFEW`" in text and "Appendix J" in text and "not emotions" in text.lower()
    bare = write_model_card(tmp_path / "bare", HI2M(CFG)).read_text()
    assert "not recorded" in bare and "## Evaluation" not in bare
