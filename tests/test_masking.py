"""Masking strategies and the HRD sampler (Eq. 5-6)."""

import itertools

import pytest
import torch

from hi2m.model.masking import Mask, MaskGenerator, random_visible, tube_visible
from hi2m.model.config import HI2MConfig, round_half_up
from hi2m.model.hrd import importance_distribution, sample_without_replacement


def test_num_visible_rounds_instead_of_truncating():
    cfg = HI2MConfig()  # 16x160x160 -> 800 tokens
    assert cfg.num_tokens == 800
    assert int(800 * (1 - 0.9)) == 79  # the floating-point trap the reference code fell into
    assert cfg.num_visible == 80
    assert HI2MConfig(mask_ratio=0.75).num_visible == 200
    assert round_half_up(2.5) == 3 and round(2.5) == 2


def test_importance_distribution_strictly_positive_for_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0, 3e4, -3e4, 5.0]])
    log_p = importance_distribution(logits, uniform_mix=1e-3)
    p = log_p.exp()
    assert torch.isfinite(log_p).all()
    assert (p > 0).all() and float(p.min()) >= 1e-3 / 6 * 0.999
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int(p.argmax()) == 3


def test_sampling_exact_count_no_duplicates_even_when_mass_is_concentrated():
    logits = torch.full((4, 200), -1e4)
    logits[:, :3] = 1e4  # essentially all mass on 3 tokens; 50 must still be drawn
    log_p = importance_distribution(logits, 1e-3)
    idx = sample_without_replacement(log_p, 50, torch.Generator().manual_seed(0))
    assert idx.shape == (4, 50)
    for row in idx:
        assert len(set(row.tolist())) == 50
        assert row.tolist() == sorted(row.tolist())
        assert {0, 1, 2} <= set(row.tolist())  # the favoured tokens are always taken


def test_sampling_deterministic_under_seed():
    log_p = torch.log_softmax(torch.randn(3, 64), -1)
    a = sample_without_replacement(log_p, 10, torch.Generator().manual_seed(5))
    b = sample_without_replacement(log_p, 10, torch.Generator().manual_seed(5))
    c = sample_without_replacement(log_p, 10, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _exact_inclusion(p, k):
    """P(token i among k sequential draws without replacement), by enumerating ordered draws in float64."""
    n, incl = len(p), [0.0] * len(p)
    for seq in itertools.permutations(range(n), k):
        prob, left = 1.0, 1.0
        for i in seq:
            prob *= p[i] / left
            left -= p[i]
        for i in seq:
            incl[i] += prob
    return incl


def test_gumbel_top_k_matches_sequential_draws_without_replacement():
    p = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03], dtype=torch.float64)
    draws = 40000
    log_p = p.log().float().expand(draws, -1)
    idx = sample_without_replacement(log_p, 2, torch.Generator().manual_seed(0))
    freq = torch.bincount(idx.flatten(), minlength=5).double() / draws
    exact = torch.tensor(_exact_inclusion(p.tolist(), 2), dtype=torch.float64)
    assert float(exact.sum()) == pytest.approx(2.0)
    # binomial std of a frequency is <= 0.0025 here; 4 sigma
    torch.testing.assert_close(freq, exact, atol=0.01, rtol=0)


def test_mask_from_visible_and_bool_roundtrip():
    vis = torch.tensor([[5, 1, 3], [0, 7, 2]])
    m = Mask.from_visible(vis, 8)
    assert m.visible.tolist() == [[1, 3, 5], [0, 2, 7]]
    assert m.masked.tolist() == [[0, 2, 4, 6, 7], [1, 3, 4, 5, 6]]
    assert m.bool_masked.sum(1).tolist() == [5, 5]
    back = Mask.from_bool(m.bool_masked)
    assert torch.equal(back.visible, m.visible) and torch.equal(back.masked, m.masked)
    with pytest.raises(ValueError):
        Mask.from_visible(torch.tensor([[1, 1, 2]]), 8)
    uneven = torch.zeros(2, 4, dtype=torch.bool)
    uneven[0, 0] = True
    with pytest.raises(ValueError):
        Mask.from_bool(uneven)


def test_random_and_tube_masks():
    g = torch.Generator().manual_seed(0)
    r = random_visible(3, 100, 10, g)
    assert r.shape == (3, 10) and all(len(set(row.tolist())) == 10 for row in r)
    t = tube_visible(3, (4, 5, 5), 0.8, g)  # 5 visible positions per slice, 4 slices
    assert t.shape == (3, 20)
    for row in t.view(3, 4, 5):
        spatial = row - torch.arange(4)[:, None] * 25
        assert (spatial == spatial[0]).all()  # the same spatial positions in every time slice


@pytest.mark.parametrize("kind", ["random", "tube", "hrd"])
def test_mask_generator_counts(kind):
    cfg = HI2MConfig.from_name("micro", num_frames=8, image_size=64, mask_ratio=0.75, mask_type=kind)
    gen = MaskGenerator(cfg)
    mask = gen(torch.randn(2, cfg.num_tokens, cfg.embed_dim), torch.Generator().manual_seed(0))
    assert mask.visible.shape == (2, cfg.num_visible) == (2, 16)
    assert mask.masked.shape == (2, cfg.num_tokens - 16)
    assert (mask.log_probs is not None) == (kind == "hrd")
    union = torch.cat([mask.visible, mask.masked], 1).sort(1).values
    assert torch.equal(union, torch.arange(cfg.num_tokens).expand(2, -1))


def test_hrd_policy_starts_uniform_and_visible_counts_vary_per_frame():
    cfg = HI2MConfig.from_name("micro", num_frames=8, image_size=64, mask_ratio=0.75)
    gen = MaskGenerator(cfg)
    mask = gen(torch.randn(64, cfg.num_tokens, cfg.embed_dim), torch.Generator().manual_seed(0))
    p = mask.log_probs.exp()
    torch.testing.assert_close(p, torch.full_like(p, 1 / cfg.num_tokens))
    per_slice = torch.stack([((mask.visible // 16) == t).sum(1) for t in range(4)], 1)  # (B, T')
    assert per_slice.sum(1).eq(16).all()
    assert per_slice.min() != per_slice.max()  # unlike tube masking, slices get different counts
