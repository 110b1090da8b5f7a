"""Parity with transformers' VideoMAE and loading of original VideoMAE checkpoints."""

import argparse

import pytest
import torch

from hi2m.io.videomae import (
    CheckpointMismatch,
    config_from_hf,
    from_hf_videomae,
    hf_to_hi2m_state_dict,
    load_videomae_checkpoint,
)
from hi2m.model import HI2M, HI2MConfig
from hi2m.model.masking import Mask, tube_visible

transformers = pytest.importorskip("transformers", reason="parity tests need the 'parity' extra (transformers)")


def _hf_config(use_mean_pooling=False, **kw):
    values = dict(
        image_size=48, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=48, num_hidden_layers=2,
        num_attention_heads=3, intermediate_size=192, decoder_hidden_size=32, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=2, decoder_intermediate_size=128, norm_pix_loss=True,
        use_mean_pooling=use_mean_pooling,
    )
    values.update(kw)
    return transformers.VideoMAEConfig(**values)


def _randomise(model):
    """Non-trivial values everywhere (fresh LayerNorms and zero biases would hide mapping mistakes)."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2 if p.ndim > 1 else 0.5)
        for name, p in model.named_parameters():
            if name.endswith("attention.attention.key.bias"):
                p.zero_()
    return model


def _clip_and_mask(cfg, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(B, 3, cfg.num_frames, cfg.image_size, cfg.image_size, generator=g)  # (B, C, T, H, W)
    mask = Mask.from_visible(tube_visible(B, cfg.grid, 0.75, g), cfg.num_tokens)
    return video, mask


@pytest.mark.parametrize("use_mean_pooling", [False, True])
def test_encoder_matches_transformers_last_hidden_state(use_mean_pooling):
    torch.manual_seed(0)
    hf = _randomise(transformers.VideoMAEModel(_hf_config(use_mean_pooling))).eval()
    model = from_hf_videomae(hf).eval()
    assert model.cfg.norm_eps == hf.config.layer_norm_eps == 1e-12
    assert model.cfg.encoder_final_norm is (not use_mean_pooling)
    video, mask = _clip_and_mask(model.cfg)
    with torch.no_grad():
        theirs = hf(video.transpose(1, 2), bool_masked_pos=mask.bool_masked).last_hidden_state  # (B, T, C, H, W) input
        ours, _ = model.forward_encoder(video, mask)
        assert (ours - theirs).abs().max() < 1e-5
        full_theirs = hf(video.transpose(1, 2)).last_hidden_state
        assert (model.encoder(video) - full_theirs).abs().max() < 1e-5


def test_pixel_loss_matches_videomae_for_pretraining():
    torch.manual_seed(0)
    hf = _randomise(transformers.VideoMAEForPreTraining(_hf_config())).eval()
    model = from_hf_videomae(hf).eval()
    assert model.cfg.target == "pixel" and model.cfg.decoder_norm_eps == 1e-5
    video, mask = _clip_and_mask(model.cfg)
    with torch.no_grad():
        theirs = hf(video.transpose(1, 2), bool_masked_pos=mask.bool_masked)
        ours = model(video, mask=mask)
    assert (ours.pred - theirs.logits).abs().max() < 1e-5
    assert abs(float(ours.loss) - float(theirs.loss)) < 1e-5
    # the comparison can fail: a different mask changes the loss
    with torch.no_grad():
        other = model(video, mask=_clip_and_mask(model.cfg, seed=1)[1])
    assert abs(float(other.loss) - float(theirs.loss)) > 1e-4


def test_hf_state_dict_needs_config_and_reports_missing_keys():
    hf = transformers.VideoMAEForPreTraining(_hf_config())
    sd = hf.state_dict()
    with pytest.raises(ValueError, match="config"):
        from_hf_videomae(sd)
    cfg = config_from_hf(hf.config)
    assert isinstance(from_hf_videomae(sd, config=cfg), HI2M)
    broken = {k: v for k, v in sd.items() if "encoder.layer.1.intermediate" not in k}
    broken["videomae.pooler.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatch) as err:
        from_hf_videomae(broken, config=cfg)
    msg = str(err.value)
    assert "encoder.blocks.1.mlp.fc1.weight" in msg and "encoder.blocks.1.mlp.fc1.bias" in msg
    assert "videomae.pooler.weight" not in msg and "pooler.weight" in msg


def test_old_transformers_q_bias_layout_converts():
    sd = {
        "encoder.layer.0.attention.attention.query.weight": torch.ones(4, 4),
        "encoder.layer.0.attention.attention.key.weight": 2 * torch.ones(4, 4),
        "encoder.layer.0.attention.attention.value.weight": 3 * torch.ones(4, 4),
        "encoder.layer.0.attention.attention.q_bias": torch.full((4,), 5.0),
        "encoder.layer.0.attention.attention.v_bias": torch.full((4,), 6.0),
    }
    out = hf_to_hi2m_state_dict(sd)
    assert out["encoder.blocks.0.attn.qkv.weight"][:, 0].tolist() == [1] * 4 + [2] * 4 + [3] * 4
    assert out["encoder.blocks.0.attn.q_bias"].tolist() == [5.0] * 4
    assert out["encoder.blocks.0.attn.v_bias"].tolist() == [6.0] * 4


class Payload:
    """Stands for an arbitrary pickled object: it must be refused, never built."""


def _videomae_style_checkpoint(model):
    """An original-VideoMAE pretraining checkpoint: hi2m's names, wrapped with optimiser-era extras."""
    sd = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("masker.")}
    return {"model": sd, "epoch": torch.tensor(799), "args": argparse.Namespace(model="pretrain_videomae_base")}


def test_videomae_pth_loads_with_weights_only(tmp_path):
    cfg = HI2MConfig.from_name("micro", mask_type="tube")
    src = HI2M(cfg)
    path = tmp_path / "checkpoint-799.pth"
    ckpt = _videomae_style_checkpoint(src)
    torch.save({"model": ckpt["model"], "args": ckpt["args"]}, path)
    loaded = load_videomae_checkpoint(path, cfg)
    for k, v in src.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    # fine-tuned encoder naming (no "encoder." prefix) loads the encoder alone
    enc = {k[len("encoder."):]: v for k, v in ckpt["model"].items() if k.startswith("encoder.")}
    torch.save(enc, tmp_path / "enc.pth")
    enc_model = load_videomae_checkpoint(tmp_path / "enc.pth", cfg)
    assert torch.equal(enc_model.encoder.blocks[0].attn.qkv.weight, src.encoder.blocks[0].attn.qkv.weight)


def test_videomae_pth_errors(tmp_path):
    cfg = HI2MConfig.from_name("micro", mask_type="tube")
    sd = _videomae_style_checkpoint(HI2M(cfg))["model"]
    sd["encoder.blocks.0.local_attn.weight"] = torch.zeros(2)  # e.g. an MAE-DFER LGI-Former extra
    del sd["decoder.head.bias"]
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(CheckpointMismatch) as err:
        load_videomae_checkpoint(tmp_path / "extra.pth", cfg)
    assert "encoder.blocks.0.local_attn.weight" in str(err.value) and "decoder.head.bias" in str(err.value)

    torch.save({"model": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights-only"):
        load_videomae_checkpoint(tmp_path / "evil.pth", cfg)
    with pytest.raises(FileNotFoundError):
        load_videomae_checkpoint(tmp_path / "absent.pth", cfg)
    small = HI2MConfig.from_name("micro", mask_type="tube", embed_dim=24, num_heads=2)
    torch.save(_videomae_style_checkpoint(HI2M(cfg))["model"], tmp_path / "ok.pth")
    with pytest.raises(CheckpointMismatch, match="wrong shape"):
        load_videomae_checkpoint(tmp_path / "ok.pth", small)
