"""Each objective against a straightforward float64 loop written here."""

import math

import pytest
import torch

from hi2m.model import objectives as obj


def _video(B=2, C=3, T=4, H=8, W=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, C, T, H, W, generator=g, dtype=torch.float64)


def _loop_tokens(video, p, ts):
    """Yield (b, token index, pixels[c][frame][row][col]) in time-major token order."""
    B, C, T, H, W = video.shape
    for b in range(B):
        n = 0
        for t0 in range(0, T, ts):
            for r0 in range(0, H, p):
                for c0 in range(0, W, p):
                    px = [[[[float(video[b, c, t0 + f, r0 + i, c0 + j]) for j in range(p)] for i in range(p)]
                           for f in range(ts)] for c in range(C)]
                    yield b, n, px
                    n += 1


def _loop_normalise(px, ts, p):
    """Per channel over all ts*p*p values: (x - mean) / (unbiased std + 1e-6)."""
    out = []
    for ch in px:
        vals = [ch[f][i][j] for f in range(ts) for i in range(p) for j in range(p)]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        out.append([[[(ch[f][i][j] - mean) / (std + 1e-6) for j in range(p)] for i in range(p)] for f in range(ts)])
    return out


@pytest.mark.parametrize("ts", [2, 4])
def test_dual_targets_match_loop(ts):
    p, video = 4, _video(T=8)
    got = obj.dual_targets(video, patch_size=p, tubelet_size=ts)
    C = video.shape[1]
    assert got.shape == (2, (8 // ts) * 2 * 3, ts * p * p * C)
    for b, n, px in _loop_tokens(video, p, ts):
        norm = _loop_normalise(px, ts, p)
        app = [norm[c][0][i][j] for i in range(p) for j in range(p) for c in range(C)]
        mot = [norm[c][f][i][j] - norm[c][f - 1][i][j] for f in range(1, ts) for i in range(p) for j in range(p)
               for c in range(C)]
        want = torch.tensor(app + mot, dtype=torch.float64)
        torch.testing.assert_close(got[b, n].double(), want, atol=2e-5, rtol=1e-5)


def test_pixel_target_is_frame_major_normalised_tubelet():
    p, ts, video = 4, 2, _video()
    got = obj.reconstruction_targets(video, "pixel", p, ts)
    C = video.shape[1]
    for b, n, px in _loop_tokens(video, p, ts):
        norm = _loop_normalise(px, ts, p)
        want = [norm[c][f][i][j] for f in range(ts) for i in range(p) for j in range(p) for c in range(C)]
        torch.testing.assert_close(got[b, n].double(), torch.tensor(want, dtype=torch.float64), atol=2e-5, rtol=1e-5)


def test_target_modes_are_the_halves_of_dual():
    video = _video()
    dual = obj.reconstruction_targets(video, "dual", 4, 2)
    half = 4 * 4 * 3
    assert torch.equal(obj.reconstruction_targets(video, "appearance", 4, 2), dual[..., :half])
    assert torch.equal(obj.reconstruction_targets(video, "motion", 4, 2), dual[..., half:])
    pixel = obj.reconstruction_targets(video, "pixel", 4, 2)
    # dual's appearance half is the pixel target's first frame; motion = second frame - first frame
    torch.testing.assert_close(dual[..., :half], pixel[..., :half])
    torch.testing.assert_close(dual[..., half:], pixel[..., half:] - pixel[..., :half])
    with pytest.raises(ValueError):
        obj.reconstruction_targets(video, "depth", 4, 2)


def test_static_video_has_zero_motion_target():
    frame = torch.rand(1, 3, 1, 8, 8, dtype=torch.float64)
    video = frame.repeat(1, 1, 4, 1, 1)
    motion = obj.reconstruction_targets(video, "motion", 4, 2)
    assert motion.abs().max() < 1e-12
    assert obj.reconstruction_targets(video, "appearance", 4, 2).abs().max() > 0.5


def test_token_and_sample_losses_match_loop():
    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(3, 5, 7, generator=g), torch.randn(3, 5, 7, generator=g)
    tok = obj.token_losses(pred, target)
    rec = obj.sample_losses(tok)
    for b in range(3):
        per = [sum((float(pred[b, n, d]) - float(target[b, n, d])) ** 2 for d in range(7)) / 7 for n in range(5)]
        assert tok[b].tolist() == pytest.approx(per, rel=1e-5)
        assert float(rec[b]) == pytest.approx(sum(per) / 5, rel=1e-5)


def _loop_weights(losses, act):
    mu = sum(losses) / len(losses)
    sigma = math.sqrt(sum((x - mu) ** 2 for x in losses) / len(losses))  # population std, Eq. 2
    f = {
        "softplus": lambda z: math.log1p(math.exp(z)),
        "relu": lambda z: max(z, 0.0),
        "elu": lambda z: z if z > 0 else math.exp(z) - 1.0,
        "swish": lambda z: z / (1.0 + math.exp(-z)),
    }[act]
    return [f((x - mu) / (sigma + obj.HSM_STD_EPS)) for x in losses]


@pytest.mark.parametrize("act", ["softplus", "relu", "elu", "swish"])
def test_hsm_weights_match_loop(act):
    losses = torch.tensor([0.3, 1.7, 0.9, 0.05, 2.4, 0.9], dtype=torch.float64)
    got = obj.hsm_weights(losses, act)
    assert got.tolist() == pytest.approx(_loop_weights(losses.tolist(), act), rel=1e-5, abs=1e-6)


def test_hsm_weights_grow_with_difficulty_and_stay_finite():
    w = obj.hsm_weights(torch.tensor([0.1, 0.5, 2.0]))
    assert w[0] < w[1] < w[2]
    one = obj.hsm_weights(torch.tensor([0.7]))
    same = obj.hsm_weights(torch.full((4,), 0.7))
    assert torch.isfinite(one).all() and torch.isfinite(same).all()
    assert float(one) == pytest.approx(math.log(2.0))  # z = 0 -> softplus(0)
    assert same.tolist() == pytest.approx([math.log(2.0)] * 4)
    with pytest.raises(ValueError):
        obj.hsm_weights(torch.ones(2), "tanh")


def test_hsm_weights_detached_by_default():
    losses = torch.tensor([0.2, 0.8, 1.5], requires_grad=True)
    assert not obj.hsm_weights(losses).requires_grad
    w = obj.hsm_weights(losses, detach=False)
    assert w.requires_grad
    w.sum().backward()
    assert losses.grad is not None and losses.grad.abs().sum() > 0


def test_hsm_loss_mean_and_sum():
    losses, w = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([0.2, 0.7, 1.9])
    s = 0.5 * 0.2 + 1.0 * 0.7 + 2.0 * 1.9
    assert float(obj.hsm_loss(losses, w, "sum")) == pytest.approx(s)
    assert float(obj.hsm_loss(losses, w, "mean")) == pytest.approx(s / 3)


def _hrd_inputs(seed=0, B=3, N=10):
    g = torch.Generator().manual_seed(seed)
    log_p = torch.log_softmax(torch.randn(B, N, generator=g, dtype=torch.float64), -1).requires_grad_()
    tok = torch.rand(B, N, generator=g, dtype=torch.float64).requires_grad_()
    masked = torch.rand(B, N, generator=g) < 0.6
    masked[:, 0] = True
    return log_p, tok, masked


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hrd_loss_matches_loop(reduction):
    log_p, tok, masked = _hrd_inputs()
    got = obj.hrd_loss(log_p, tok, masked, reduction)
    per_clip = []
    for j in range(3):
        terms = [float(log_p.detach()[j, i]) * float(tok.detach()[j, i]) for i in range(10) if masked[j, i]]
        per_clip.append(-sum(terms) / (len(terms) if reduction == "mean" else 1))
    want = sum(per_clip) / 3 if reduction == "mean" else sum(per_clip)
    assert float(got) == pytest.approx(want, rel=1e-9)


def test_hrd_loss_gradient_reaches_policy_only_at_masked_tokens():
    log_p, tok, masked = _hrd_inputs()
    obj.hrd_loss(log_p, tok, masked).backward()
    assert tok.grad is None  # the reward is detached: nothing flows into the autoencoder through L_R
    counts = masked.sum(1, keepdim=True).double()
    want = torch.where(masked, -tok.detach() / counts / 3, torch.zeros(()).double())
    torch.testing.assert_close(log_p.grad, want)


def test_hrd_loss_ignores_unmasked_losses():
    log_p, tok, masked = _hrd_inputs()
    poisoned = tok.detach().clone()
    poisoned[~masked] = float("nan")
    assert torch.isfinite(obj.hrd_loss(log_p, poisoned, masked))
    assert float(obj.hrd_loss(log_p, poisoned, masked)) == pytest.approx(float(obj.hrd_loss(log_p, tok, masked)))


def test_joint_loss():
    assert float(obj.joint_loss(torch.tensor(2.0), torch.tensor(30.0), 1e-2)) == pytest.approx(2.3)
    assert float(obj.joint_loss(torch.tensor(2.0), None, 1e-2)) == 2.0


# ---- Eq. 7 with a per-clip baseline, and the entropy bonus ---------------------------------------


def _loop_advantages(tok, masked, mode, eps=obj.HRD_STD_EPS):
    B, N = tok.shape
    out = [[0.0] * N for _ in range(B)]
    for j in range(B):
        vals = [float(tok[j, i]) for i in range(N) if masked[j, i]]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        for i in range(N):
            if masked[j, i]:
                a = float(tok[j, i])
                out[j][i] = a if mode == "none" else (a - mean if mode == "mean" else (a - mean) / (std + eps))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("mode", ["none", "mean", "zscore"])
def test_hrd_advantages_match_loop(mode):
    _, tok, masked = _hrd_inputs(seed=3)
    got = obj.hrd_advantages(tok, masked, mode)
    torch.testing.assert_close(got, _loop_advantages(tok.detach(), masked, mode), rtol=1e-12, atol=1e-12)
    if mode != "none":  # a baseline: the masked rewards of every clip sum to zero
        torch.testing.assert_close(got.sum(1), torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
    if mode == "zscore":
        m = masked.double()
        var = (got.pow(2) * m).sum(1) / m.sum(1)
        torch.testing.assert_close(var, torch.ones(3, dtype=torch.float64), rtol=1e-4, atol=0)  # eps: 1 - 2 eps / std


@pytest.mark.parametrize("mode", ["mean", "zscore"])
def test_hrd_loss_with_baseline_matches_loop_and_its_gradient(mode):
    log_p, tok, masked = _hrd_inputs(seed=4)
    adv = _loop_advantages(tok.detach(), masked, mode)
    got = obj.hrd_loss(log_p, tok, masked, "mean", advantage=mode)
    want = sum(-sum(float(log_p.detach()[j, i]) * float(adv[j, i]) for i in range(10) if masked[j, i])
               / int(masked[j].sum()) for j in range(3)) / 3
    assert float(got) == pytest.approx(want, rel=1e-9)
    got.backward()
    counts = masked.sum(1, keepdim=True).double()
    torch.testing.assert_close(log_p.grad, -adv / counts / 3)
    poisoned = tok.detach().clone()
    poisoned[~masked] = float("nan")  # visible tokens' losses are never read, baseline included
    assert float(obj.hrd_loss(log_p, poisoned, masked, advantage=mode)) == pytest.approx(float(got))


def test_mean_baseline_removes_the_pull_to_uniform():
    """Through a softmax, Eq. 7's gradient on logit j is -(1/N_m)[L_j 1{j masked} - P_j sum_masked L]: the second
    part pulls P to uniform. With the mean baseline the masked advantages sum to zero, so only the first remains."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 12, generator=g, dtype=torch.float64, requires_grad=True)
    tok = torch.rand(2, 12, generator=g, dtype=torch.float64) + 0.5
    masked = torch.rand(2, 12, generator=g) < 0.7
    n_m = masked.sum(1, keepdim=True).double()
    p = torch.softmax(logits.detach(), -1)
    for mode in ("none", "mean"):
        logits.grad = None
        obj.hrd_loss(torch.log_softmax(logits, -1), tok, masked, advantage=mode).backward()
        a = _loop_advantages(tok, masked, mode)
        want = -(a - p * a.sum(1, keepdim=True)) / n_m / 2  # batch mean over 2 clips
        torch.testing.assert_close(logits.grad, want)
        if mode == "mean":
            torch.testing.assert_close(logits.grad, -a / n_m / 2)


def test_policy_entropy_and_entropy_bonus():
    log_p, tok, masked = _hrd_inputs(seed=6)
    p = log_p.detach().exp()
    h = [-sum(float(p[j, i]) * math.log(float(p[j, i])) for i in range(10)) for j in range(3)]
    torch.testing.assert_close(obj.policy_entropy(log_p.detach()), torch.tensor(h, dtype=torch.float64))
    uniform = torch.full((1, 10), -math.log(10), dtype=torch.float64)
    assert float(obj.policy_entropy(uniform)) == pytest.approx(math.log(10))
    base = obj.hrd_objective(log_p, tok, masked, advantage="mean", entropy_weight=0.0)
    assert float(base) == pytest.approx(float(obj.hrd_loss(log_p, tok, masked, advantage="mean")))
    bonus = obj.hrd_objective(log_p, tok, masked, advantage="mean", entropy_weight=0.25)
    assert float(base - bonus) == pytest.approx(0.25 * sum(h) / 3, rel=1e-9)
    with pytest.raises(ValueError, match="advantage"):
        obj.hrd_advantages(tok, masked, "ranked")
