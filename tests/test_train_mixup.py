"""Mixup / CutMix for clips, label smoothing and soft-target cross-entropy (hi2m.train.mixup)."""

import math

import pytest
import torch
import torch.nn.functional as F

from hi2m.train import mixup as X

K = 7


def _batch(B=4, C=3, T=4, H=12, W=10, seed=0):
    """Clips whose every pixel differs between samples (sample i lies in [i, i + 0.5))."""
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(B, C, T, H, W, generator=g) * 0.5 + torch.arange(B).view(B, 1, 1, 1, 1)
    targets = torch.randint(K, (B,), generator=g)
    return video, targets


def _smooth(y, k, eps):
    """One smoothed target entry, by hand."""
    return 1 - eps + eps / K if k == y else eps / K


def _expected_soft(targets, lam, eps):
    """lam * smooth(y_i) + (1 - lam) * smooth(y_{B-1-i}) as nested lists."""
    y = targets.tolist()
    B = len(y)
    rows = []
    for i in range(B):
        partner = y[B - 1 - i]
        rows.append([lam * _smooth(y[i], k, eps) + (1 - lam) * _smooth(partner, k, eps) for k in range(K)])
    return rows


def test_smooth_one_hot():
    targets = torch.tensor([0, 6, 3])
    got = X.smooth_one_hot(targets, K, 0.1)
    for i, y in enumerate(targets.tolist()):
        for k in range(K):
            assert float(got[i, k]) == pytest.approx(_smooth(y, k, 0.1))
    torch.testing.assert_close(got.sum(1), torch.ones(3))


@pytest.mark.parametrize("B", [4, 5])
def test_mixup_is_the_convex_combination(B):
    video, targets = _batch(B=B)
    mixer = X.Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=K)
    r = mixer.mix(video, targets, generator=torch.Generator().manual_seed(3))
    assert r.mode == "mixup" and 0.0 < r.lam < 1.0 and r.box is None
    for i in range(B):
        torch.testing.assert_close(r.video[i], r.lam * video[i] + (1 - r.lam) * video[B - 1 - i])
    torch.testing.assert_close(r.soft_targets, torch.tensor(_expected_soft(targets, r.lam, 0.1)))
    torch.testing.assert_close(r.soft_targets.sum(1), torch.ones(B))
    if B % 2:  # the middle clip is paired with itself
        torch.testing.assert_close(r.video[B // 2], video[B // 2])


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_box_same_on_all_frames_and_lam_is_area(seed):
    B, H, W = 5, 12, 10
    video, targets = _batch(B=B, H=H, W=W, seed=seed)
    original = video.clone()
    mixer = X.Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.2, num_classes=K)
    r = mixer.mix(video, targets, generator=torch.Generator().manual_seed(seed))
    assert r.mode == "cutmix"
    y1, y2, x1, x2 = r.box
    assert 0 <= y1 <= y2 <= H and 0 <= x1 <= x2 <= W
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[y1:y2, x1:x2] = True
    assert inside.any()  # these seeds give non-empty boxes, some clipped at the border
    for i in range(B):
        partner = B - 1 - i
        from_partner = r.video[i] == video[partner]  # (C, T, H, W)
        from_self = r.video[i] == video[i]
        if partner == i:
            assert from_self.all()
            continue
        # every pixel comes from exactly one source: the box (all channels, all frames) from the partner
        assert torch.equal(from_partner, inside.expand_as(from_partner))
        assert torch.equal(from_self, ~inside.expand_as(from_self))
    assert r.lam == pytest.approx(1 - int(inside.sum()) / (H * W))
    torch.testing.assert_close(r.soft_targets, torch.tensor(_expected_soft(targets, r.lam, 0.2)))
    assert torch.equal(video, original)  # the input is not modified in place


def test_cutmix_box_area_follows_lam():
    g = torch.Generator().manual_seed(0)
    for lam in (0.0, 0.3, 0.75, 1.0):
        y1, y2, x1, x2 = X.cutmix_box(100, 80, lam, g)
        want_h, want_w = int(100 * math.sqrt(1 - lam)), int(80 * math.sqrt(1 - lam))
        assert y2 - y1 <= want_h and x2 - x1 <= want_w  # never larger than asked (clipped at the border)
        assert 0 <= y1 <= y2 <= 100 and 0 <= x1 <= x2 <= 80


def test_switch_prob_and_prob():
    video, targets = _batch()
    g = torch.Generator().manual_seed(0)
    assert X.Mixup(switch_prob=1.0).mix(video, targets, g).mode == "cutmix"
    assert X.Mixup(switch_prob=0.0).mix(video, targets, g).mode == "mixup"
    modes = [X.Mixup(switch_prob=0.5).mix(video, targets, g).mode for _ in range(40)]
    assert {"mixup", "cutmix"} == set(modes)
    off = X.Mixup(prob=0.0, label_smoothing=0.1, num_classes=K)
    out, soft = off(video, targets, g)
    assert out is video
    torch.testing.assert_close(soft, torch.tensor(_expected_soft(targets, 1.0, 0.1)))
    half = [X.Mixup(prob=0.5).mix(video, targets, g).mode for _ in range(40)]
    assert "none" in half and len(set(half)) > 1


def test_determinism_with_a_seeded_generator():
    video, targets = _batch()
    a = X.Mixup(generator=torch.Generator().manual_seed(11))
    b = X.Mixup(generator=torch.Generator().manual_seed(11))
    c = X.Mixup(generator=torch.Generator().manual_seed(12))
    runs_a = [a(video, targets) for _ in range(5)]
    runs_b = [b(video, targets) for _ in range(5)]
    runs_c = [c(video, targets) for _ in range(5)]
    for (va, sa), (vb, sb) in zip(runs_a, runs_b):
        assert torch.equal(va, vb) and torch.equal(sa, sb)
    assert any(not torch.equal(va, vc) for (va, _), (vc, _) in zip(runs_a, runs_c))
    # the global RNG is not touched when a generator is given
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    a(video, targets)
    assert torch.equal(torch.rand(3), before)


@pytest.mark.parametrize("a,b", [(0.8, 0.8), (1.0, 1.0), (2.0, 5.0), (0.3, 0.3)])
def test_beta_sampler_moments(a, b):
    g = torch.Generator().manual_seed(0)
    draws = torch.tensor([X.sample_beta(a, b, g) for _ in range(3000)], dtype=torch.float64)
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    assert ((draws >= 0) & (draws <= 1)).all()
    assert float(draws.mean()) == pytest.approx(mean, abs=4 * math.sqrt(var / 3000))
    assert float(draws.var()) == pytest.approx(var, rel=0.1)


def test_soft_cross_entropy_against_float64():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, K, generator=g) * 4
    soft = torch.rand(6, K, generator=g)
    soft = soft / soft.sum(1, keepdim=True)
    want = 0.0
    for i in range(6):
        row = [float(x) for x in logits[i].double()]
        log_z = math.log(sum(math.exp(x) for x in row))
        want += -sum(float(soft[i, k]) * (row[k] - log_z) for k in range(K))
    got = X.soft_target_cross_entropy(logits, soft)
    assert got.dtype == torch.float32 and float(got) == pytest.approx(want / 6, rel=1e-5)
    half = X.soft_target_cross_entropy(logits.to(torch.bfloat16), soft)
    assert half.dtype == torch.float32


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_torch(eps):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(9, K, generator=g, requires_grad=True)
    targets = torch.randint(K, (9,), generator=g)
    ours = X.label_smoothing_cross_entropy(logits, targets, eps)
    theirs = F.cross_entropy(logits, targets, label_smoothing=eps)
    torch.testing.assert_close(ours, theirs)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_theirs,) = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(g_ours, g_theirs)
    soft = X.soft_target_cross_entropy(logits, X.smooth_one_hot(targets, K, eps))
    torch.testing.assert_close(soft, theirs)


def test_invalid_inputs():
    video, targets = _batch()
    with pytest.raises(ValueError):
        X.Mixup()(video.to(torch.uint8), targets)
    with pytest.raises(ValueError):
        X.Mixup()(video, targets[:-1])
    with pytest.raises(ValueError):
        X.Mixup(mixup_alpha=-1.0)
    with pytest.raises(ValueError):
        X.sample_gamma(0.0)
