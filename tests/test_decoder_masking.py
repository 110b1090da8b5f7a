"""Decoder masking (model.decoder_mask_ratio, VideoMAE V2): the decoder reconstructs a random subset of the
masked tokens in training; HRD's reward and HSM's losses come from that subset only."""

from __future__ import annotations

import pytest
import torch

from hi2m.model import objectives as obj
from hi2m.model import HI2M, HI2MConfig
from hi2m.model.masking import DecodedMask, Mask, decoder_subset, random_visible

CFG = HI2MConfig.from_name("micro", num_frames=4, image_size=32, patch_size=8, mask_ratio=0.75,
                           decoder_mask_ratio=0.5)  # 32 tokens, 8 visible, 24 masked -> 12 decoded


def video(n=3, seed=0):
    return torch.randn(n, 3, CFG.num_frames, CFG.image_size, CFG.image_size, generator=torch.Generator().manual_seed(seed))


def test_sizes_and_validation():
    assert (CFG.num_tokens, CFG.num_visible, CFG.num_decoded) == (32, 8, 12)
    assert CFG.replace(decoder_mask_ratio=0.0).num_decoded == 24
    assert CFG.replace(decoder_mask_ratio=0.99).num_decoded == 1  # never 0
    with pytest.raises(ValueError, match="decoder_mask_ratio"):
        CFG.replace(decoder_mask_ratio=1.0)


def test_subset_is_a_uniform_sample_of_the_masked_tokens():
    g = torch.Generator().manual_seed(0)
    mask = Mask.from_visible(random_visible(1, 32, 8, g), 32)
    counts = torch.zeros(32)
    draws = 4000
    for _ in range(draws):
        d = decoder_subset(mask, 12, g)
        assert set(d.masked[0].tolist()) <= set(mask.masked[0].tolist()) and d.masked.shape == (1, 12)
        assert torch.equal(d.masked, d.masked.sort(1).values)
        counts[d.masked[0]] += 1
    assert counts[mask.visible[0]].sum() == 0
    freq = counts[mask.masked[0]] / draws  # each masked token: 12 / 24 = 0.5, binomial std 0.008
    assert (freq - 0.5).abs().max() < 0.04
    assert torch.equal(d.bool_masked[0].nonzero().flatten(), d.masked[0])


def test_training_forward_reconstructs_the_subset_eval_all():
    model = HI2M(CFG.replace(mask_type="hrd", hrd_advantage="mean")).train()
    out = model(video(), generator=torch.Generator().manual_seed(1))
    assert isinstance(out.mask, DecodedMask) and out.pred.shape == (3, 12, CFG.target_dim)
    assert out.token_loss.shape == (3, 12)
    # the loss of the subset, computed independently: the decoder on [visible, subset] and Eq. 1 by hand
    full = model.forward_encoder(video(), Mask(out.mask.visible, out.mask.masked, out.mask.log_probs))
    assert full[0].shape == (3, 8, CFG.embed_dim)
    ref = model.forward_loss(video(), model.forward_decoder(full[0], out.mask), out.mask)
    torch.testing.assert_close(out.sample_loss, ref.sample_loss)
    # HRD reward lives on the decoded tokens only
    tok_full = torch.zeros(3, 32).scatter(1, out.mask.masked, out.token_loss)
    adv = obj.hrd_advantages(tok_full, out.mask.bool_masked, "mean")
    assert (adv.abs() > 0).sum(1).max() <= 12 and torch.all(adv[~out.mask.bool_masked] == 0)
    model.eval()
    with torch.no_grad():
        ev = model(video(), generator=torch.Generator().manual_seed(1))
    assert not isinstance(ev.mask, DecodedMask) and ev.pred.shape[1] == 24


def test_sum_reduction_is_rescaled_to_estimate_the_full_sum():
    """With reduction 'sum' the subset's Eq. 7 is scaled by N_m / K: its mean over many subsets matches the
    full sum (float64 check on fixed losses and P)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(1, 32, dtype=torch.float64), -1)
    mask = Mask.from_visible(random_visible(1, 32, 8, g), 32, logp)
    losses = torch.rand(1, 32, dtype=torch.float64)
    exact = obj.hrd_objective(logp, losses, mask.bool_masked, "sum", "none")
    est = []
    for _ in range(3000):
        d = decoder_subset(mask, 6, g)
        est.append(obj.hrd_objective(logp, losses, d.bool_masked, "sum", "none", loss_scale=24 / 6))
    est = torch.stack(est)
    assert abs(float(est.mean() - exact)) < 4 * float(est.std()) / 3000**0.5
    assert abs(float(est.mean() - exact)) < 0.02 * abs(float(exact))


def test_zero_ratio_is_todays_model():
    a = HI2M(CFG.replace(decoder_mask_ratio=0.0)).train()
    b = HI2M(CFG.replace(decoder_mask_ratio=0.0)).train()
    b.load_state_dict(a.state_dict())
    oa = a(video(), generator=torch.Generator().manual_seed(3))
    ob = b(video(), generator=torch.Generator().manual_seed(3))
    assert oa.pred.shape[1] == 24 and torch.equal(oa.loss, ob.loss) and not isinstance(oa.mask, DecodedMask)
