"""The HI2M model: layout, shapes, what reaches the encoder, and where gradients flow."""

import math

import pytest
import torch

from hi2m.model import HI2M, HI2MConfig
from hi2m.model.masking import Mask
from hi2m.model.vit import Block, DropPath, TubeletEmbed, VideoEncoder, sinusoid_table


def _cfg(**kw):
    base = dict(num_frames=4, image_size=32, mask_ratio=0.5)
    base.update(kw)
    return HI2MConfig.from_name("micro", **base)


def _video(cfg, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, cfg.num_frames, cfg.image_size, cfg.image_size, generator=g)


def test_sinusoid_table_matches_loop():
    n, d = 11, 6
    table = sinusoid_table(n, d)
    for pos in range(n):
        for j in range(d):
            angle = pos / 10000 ** (2 * (j // 2) / d)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert float(table[pos, j]) == pytest.approx(want, abs=1e-6)


def test_tubelet_tokens_are_time_major():
    cfg = HI2MConfig.from_name("micro", num_frames=4, image_size=48)  # grid (2, 3, 3)
    emb = TubeletEmbed(cfg, 5)
    video = torch.randn(1, 3, 4, 48, 48, dtype=torch.float64)
    emb = emb.double()
    tokens = emb(video)  # (1, 18, 5)
    w, b = emb.proj.weight, emb.proj.bias  # (5, 3, 2, 16, 16)
    for t in range(2):
        for r in range(3):
            for c in range(3):
                cube = video[0, :, 2 * t:2 * t + 2, 16 * r:16 * r + 16, 16 * c:16 * c + 16]
                want = (w * cube).sum(dim=(1, 2, 3, 4)) + b
                torch.testing.assert_close(tokens[0, t * 9 + r * 3 + c], want)
    with pytest.raises(ValueError):
        emb(torch.randn(1, 3, 4, 32, 32).double())


def test_named_sizes():
    for name, (d, depth, heads) in {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12)}.items():
        cfg = HI2MConfig.from_name(name)
        assert (cfg.embed_dim, cfg.depth, cfg.num_heads) == (d, depth, heads)
        assert (cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads) == (384, 4, 6)
    with pytest.raises(ValueError):
        HI2MConfig.from_name("huge")


def test_config_json_roundtrip_and_validation():
    cfg = _cfg(target="motion", hsm_activation="elu")
    assert HI2MConfig.from_dict(__import__("json").loads(cfg.to_json())) == cfg
    for bad in [dict(mask_type="block"), dict(target="rgb"), dict(mask_ratio=1.0), dict(num_frames=5),
                dict(hsm_reduction="max"), dict(target="dual", tubelet_size=1, num_frames=4)]:
        with pytest.raises(ValueError):
            _cfg(**bad)
    with pytest.raises(ValueError):
        HI2MConfig.from_dict({"nonsense": 1})


@pytest.mark.parametrize("mask_type", ["random", "tube", "hrd"])
@pytest.mark.parametrize("target", ["dual", "appearance", "motion", "pixel"])
def test_forward_shapes(mask_type, target):
    cfg = _cfg(mask_type=mask_type, target=target)
    model = HI2M(cfg)
    out = model(_video(cfg), generator=torch.Generator().manual_seed(0))
    B, Nv, Nm = 3, cfg.num_visible, cfg.num_tokens - cfg.num_visible
    assert out.pred.shape == (B, Nm, cfg.target_dim)
    assert out.visible.shape == (B, Nv) and out.token_loss.shape == (B, Nm)
    assert out.sample_loss.shape == out.weights.shape == (B,)
    assert (out.loss_hrd is not None) == (mask_type == "hrd") == (out.probs is not None)
    assert (out.sample_loss_appearance is not None) == (target == "dual")
    if target == "dual":  # L_R is the mean of its appearance and motion halves (Table 10)
        torch.testing.assert_close(out.sample_loss, (out.sample_loss_appearance + out.sample_loss_motion) / 2)
    assert torch.isfinite(out.loss)


def test_encoder_sees_only_visible_tokens():
    cfg = _cfg()
    model = HI2M(cfg).eval()
    video = _video(cfg, B=1)
    mask = Mask.from_visible(torch.tensor([[0, 3, 5, 6]]), cfg.num_tokens)
    latent, _ = model.forward_encoder(video, mask)
    # scramble the pixels of a masked token (token 1 = time slice 0, row 0, column 1)
    changed = video.clone()
    changed[:, :, 0:2, 0:16, 16:32] = torch.randn(1, 3, 2, 16, 16)
    latent2, _ = model.forward_encoder(changed, mask)
    torch.testing.assert_close(latent, latent2)
    # ... while a visible token's pixels do matter (token 3 = slice 0, row 1, column 1)
    changed[:, :, 0:2, 16:32, 16:32] += 1.0
    assert not torch.allclose(latent, model.forward_encoder(changed, mask)[0])


def test_hsm_off_is_plain_mean_and_weights_follow_difficulty():
    cfg = _cfg(mask_type="tube", hsm=False)
    out = HI2M(cfg)(_video(cfg), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.weights, torch.ones(3))
    torch.testing.assert_close(out.loss, out.sample_loss.mean())
    cfg = _cfg(mask_type="tube", hsm=True)
    out = HI2M(cfg)(_video(cfg), generator=torch.Generator().manual_seed(0))
    order = out.sample_loss.argsort()
    assert (out.weights[order].diff() > 0).all()
    torch.testing.assert_close(out.loss, (out.weights * out.sample_loss).mean())


def _grads(model, out):
    model.zero_grad(set_to_none=True)
    out.loss.backward()
    return {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}


def _run(cfg, state, video):
    model = HI2M(cfg)
    model.load_state_dict(state)
    return model, model(video, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("detach_input", [False, True])
def test_gradients_policy_only_from_hrd_and_autoencoder_independent_of_lambda(detach_input):
    cfg0 = _cfg(hrd_lambda=0.0, hrd_detach_input=detach_input)
    state = HI2M(cfg0).state_dict()
    with torch.no_grad():  # a non-uniform policy so that L_HRD has real gradients
        state["masker.policy.head.weight"].normal_(0, 0.5)
    video = _video(cfg0)
    m0, out0 = _run(cfg0, state, video)
    m1, out1 = _run(cfg0.replace(hrd_lambda=1.0), state, video)
    assert torch.equal(out0.visible, out1.visible)  # same draw: sampling does not depend on lambda
    g0, g1 = _grads(m0, out0), _grads(m1, out1)
    policy = {n for n, _ in m0.named_parameters() if n.startswith("masker.policy.")}
    for n in policy:  # lambda = 0: L_HSM alone gives the policy no gradient at all
        assert g0[n] is None or g0[n].abs().max() == 0
    # lambda = 1: the policy's gradient is exactly that of L_HRD alone
    m1.zero_grad(set_to_none=True)
    m1(video, generator=torch.Generator().manual_seed(7)).loss_hrd.backward()
    for n in policy:
        torch.testing.assert_close(g1[n], dict(m1.named_parameters())[n].grad)
        assert g1[n].abs().max() > 0 or n.endswith("head.bias")  # softmax ignores a shared bias
    shared = {"encoder.patch_embed.proj.weight", "encoder.patch_embed.proj.bias"}
    for n in g0.keys() - policy:
        if n in shared and not detach_input:
            assert not torch.allclose(g0[n], g1[n])  # the sampler reads the patch embedding
        else:
            torch.testing.assert_close(g0[n], g1[n], rtol=0, atol=0)


def test_drop_path():
    x = torch.ones(64, 3, 4)
    dp = DropPath(0.5)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    y = dp(x)
    per_sample = y[:, 0, 0]
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0} and 0 < int((per_sample == 0).sum()) < 64
    enc = VideoEncoder(_cfg(drop_path=0.2))
    rates = [blk.drop_path.p for blk in enc.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)


def test_block_matches_manual_computation():
    torch.manual_seed(1)
    blk = Block(8, 2, mlp_ratio=2.0).double()
    for p in blk.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    a = blk.attn
    h = torch.nn.functional.layer_norm(x, (8,), blk.norm1.weight, blk.norm1.bias, 1e-6)
    q = h @ a.qkv.weight[:8].T + a.q_bias
    k = h @ a.qkv.weight[8:16].T
    v = h @ a.qkv.weight[16:].T + a.v_bias
    heads = []
    for i in range(2):
        s = slice(4 * i, 4 * i + 4)
        att = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 2.0, -1)
        heads.append(att @ v[..., s])
    x1 = x + torch.cat(heads, -1) @ a.proj.weight.T + a.proj.bias
    h2 = torch.nn.functional.layer_norm(x1, (8,), blk.norm2.weight, blk.norm2.bias, 1e-6)
    mlp = torch.nn.functional.gelu(h2 @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    torch.testing.assert_close(blk(x), x1 + mlp)


def test_pretraining_reduces_loss_on_a_fixed_batch():
    cfg = _cfg(mask_type="hrd")
    model = HI2M(cfg)
    t, y, x = torch.meshgrid(torch.arange(4.0), torch.arange(32.0), torch.arange(32.0), indexing="ij")
    phase = torch.arange(4.0)[:, None, None, None, None]  # one moving grating per clip
    video = torch.sin(0.3 * x + 0.2 * y + 0.5 * t + phase).expand(4, 3, 4, 32, 32).contiguous()  # (B, C, T, H, W)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for step in range(30):
        out = model(video, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else float(out.sample_loss.mean())
    assert float(out.sample_loss.mean()) < 0.8 * first


def test_hrd_head_init_zero_is_uniform_and_xavier_is_content_dependent():
    from hi2m.analysis import importance

    video = torch.randn(2, 3, 4, 32, 32)
    for init, uniform in (("zero", True), ("xavier", False)):
        torch.manual_seed(0)
        model = HI2M(HI2MConfig.from_name("micro", hrd_head_init=init))
        p = importance(model, video)  # (2, N)
        assert torch.allclose(p, torch.full_like(p, 1 / p.shape[1])) == uniform, init
    with pytest.raises(ValueError, match="hrd_head_init"):
        HI2MConfig.from_name("micro", hrd_head_init="orthogonal")
    with pytest.raises(ValueError, match="hrd_advantage"):
        HI2MConfig.from_name("micro", hrd_advantage="rank")
