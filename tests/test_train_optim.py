"""Optimiser groups, lr schedule and gradient clipping (hi2m.train.optim)."""

import math

import pytest
import torch
import torch.nn as nn

from hi2m.train import optim as O

DEPTH = 2


class _Attn(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(d))
        self.v_bias = nn.Parameter(torch.zeros(d))
        self.proj = nn.Linear(d, d)


class _Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = _Attn(d)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, 2 * d)


class _Encoder(nn.Module):
    def __init__(self, d, depth):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(3, d, (2, 4, 4), (2, 4, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, d))
        self.blocks = nn.ModuleList(_Block(d) for _ in range(depth))
        self.norm = nn.LayerNorm(d)


class _Classifier(nn.Module):
    """Parameter names as in the HI2M classifier, plus a few extras (tokens, a frozen layer)."""

    def __init__(self, d=8, depth=DEPTH, k=7):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = _Encoder(d, depth)
        self.fc_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, k)
        self.frozen = nn.Linear(d, d)
        self.frozen.requires_grad_(False)


# name -> (weight decay?, layer id) for DEPTH = 2, written out by hand.
EXPECTED = {
    "cls_token": (False, 0),
    "mask_token": (False, 0),
    "encoder.pos_embed": (False, 0),
    "encoder.patch_embed.proj.weight": (True, 0),
    "encoder.patch_embed.proj.bias": (False, 0),
    "encoder.blocks.0.norm1.weight": (False, 1),
    "encoder.blocks.0.norm1.bias": (False, 1),
    "encoder.blocks.0.attn.qkv.weight": (True, 1),
    "encoder.blocks.0.attn.q_bias": (False, 1),
    "encoder.blocks.0.attn.v_bias": (False, 1),
    "encoder.blocks.0.attn.proj.weight": (True, 1),
    "encoder.blocks.0.attn.proj.bias": (False, 1),
    "encoder.blocks.0.mlp.fc1.weight": (True, 1),
    "encoder.blocks.0.mlp.fc1.bias": (False, 1),
    "encoder.blocks.1.norm1.weight": (False, 2),
    "encoder.blocks.1.norm1.bias": (False, 2),
    "encoder.blocks.1.attn.qkv.weight": (True, 2),
    "encoder.blocks.1.attn.q_bias": (False, 2),
    "encoder.blocks.1.attn.v_bias": (False, 2),
    "encoder.blocks.1.attn.proj.weight": (True, 2),
    "encoder.blocks.1.attn.proj.bias": (False, 2),
    "encoder.blocks.1.mlp.fc1.weight": (True, 2),
    "encoder.blocks.1.mlp.fc1.bias": (False, 2),
    "encoder.norm.weight": (False, 3),
    "encoder.norm.bias": (False, 3),
    "fc_norm.weight": (False, 3),
    "fc_norm.bias": (False, 3),
    "head.weight": (True, 3),
    "head.bias": (False, 3),
}


def _group_of(groups):
    """id(param) -> list of the groups holding it."""
    where = {}
    for g in groups:
        for p in g["params"]:
            where.setdefault(id(p), []).append(g)
    return where


def test_expectation_table_covers_the_trainable_parameters():
    model = _Classifier()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(EXPECTED)


@pytest.mark.parametrize("layer_decay", [None, 0.75])
def test_groups_weight_decay_and_layer_scales(layer_decay):
    model = _Classifier()
    groups = O.param_groups(model, weight_decay=0.05, layer_decay=layer_decay, num_layers=DEPTH, base_lr=1e-3)
    where = _group_of(groups)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert id(p) not in where, f"frozen {name} is in a group"
            continue
        assert len(where[id(p)]) == 1, f"{name} is in {len(where[id(p)])} groups"
        g = where[id(p)][0]
        decay, layer = EXPECTED[name]
        assert g["weight_decay"] == (0.05 if decay else 0.0), name
        want_scale = 1.0 if layer_decay is None else 0.75 ** (DEPTH + 1 - layer)
        assert g["lr_scale"] == pytest.approx(want_scale), name
        assert g["lr"] == pytest.approx(1e-3 * want_scale), name
    # merged: one group per distinct (decay, layer) key, and names are distinct
    keys = {(d, None if layer_decay is None else lay) for d, lay in EXPECTED.values()}
    assert len(groups) == len(keys)
    assert len({g["name"] for g in groups}) == len(groups)


def test_layer_decay_infers_depth_and_ignores_wrappers():
    model = _Classifier()
    wrapped = nn.Module()
    wrapped.module = model  # the DDP layout: names start with "module."
    inferred = O.param_groups(wrapped, 0.05, layer_decay=0.5)
    explicit = O.param_groups(model, 0.05, layer_decay=0.5, num_layers=DEPTH)
    assert [(g["name"], g["lr_scale"], len(g["params"])) for g in inferred] == [
        (g["name"], g["lr_scale"], len(g["params"])) for g in explicit
    ]
    with pytest.raises(ValueError):
        O.layer_id("encoder.blocks.2.norm1.weight", num_layers=DEPTH)
    with pytest.raises(ValueError):
        O.param_groups(nn.Linear(2, 2), 0.05, layer_decay=0.5)  # no blocks to infer depth from


def test_groups_on_the_pretraining_model():
    from hi2m.model import HI2M, HI2MConfig

    model = HI2M(HI2MConfig.from_name("micro", num_frames=4, image_size=32))
    groups = O.param_groups(model, weight_decay=0.05)
    where = _group_of(groups)
    for name, p in model.named_parameters():
        assert len(where[id(p)]) == 1
        no_decay = p.ndim <= 1 or name in {"mask_token", "masker.policy.pos_embed"}
        assert where[id(p)][0]["weight_decay"] == (0.0 if no_decay else 0.05), name


def test_build_adamw_starts_at_scaled_lrs():
    opt = O.build_adamw(
        _Classifier(), lr=2e-3, weight_decay=0.05, betas=(0.9, 0.95), layer_decay=0.75, num_layers=DEPTH
    )
    assert isinstance(opt, torch.optim.AdamW)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(2e-3 * g["lr_scale"])
        assert g["betas"] == (0.9, 0.95)


def test_scaled_lr():
    assert O.scaled_lr(1.5e-4, 512) == pytest.approx(3e-4)
    assert O.scaled_lr(1e-3, 32, reference=64) == pytest.approx(5e-4)
    with pytest.raises(ValueError):
        O.scaled_lr(1e-3, 0)


def _reference_lr(step, total, warmup, base, min_lr, start):
    """The schedule written out directly, for comparison."""
    if step < warmup:
        return start + (base - start) * step / warmup
    t = min(step, total)
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


def test_warmup_cosine_values():
    total, warmup, base, min_lr, start = 100, 10, 1e-3, 1e-6, 1e-5
    lrs = [O.warmup_cosine(s, total, warmup, base, min_lr, start) for s in range(130)]
    for s in (0, 1, 5, 9, 10, 11, 55, 99, 100, 129):
        assert lrs[s] == pytest.approx(_reference_lr(s, total, warmup, base, min_lr, start), rel=1e-12)
    assert lrs[0] == pytest.approx(start)
    assert lrs[warmup] == pytest.approx(base)
    assert lrs[55] == pytest.approx((base + min_lr) / 2)  # half-way through the decay
    assert lrs[total] == pytest.approx(min_lr) and lrs[129] == pytest.approx(min_lr)
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1:warmup + 1]))  # warmup strictly increasing
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # then non-increasing
    # continuous at the warmup boundary (fractional steps approach it from both sides)
    for eps in (1e-3, 1e-6):
        below = O.warmup_cosine(warmup - eps, total, warmup, base, min_lr, start)
        above = O.warmup_cosine(warmup + eps, total, warmup, base, min_lr, start)
        assert abs(below - base) < 2 * eps * base and abs(above - base) < 2 * eps * base


def test_warmup_cosine_edge_cases():
    assert O.warmup_cosine(0, 50, 0, 1.0) == pytest.approx(1.0)  # no warmup: starts at base
    assert O.warmup_cosine(7, 7, 7, 1.0, min_lr=0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        O.warmup_cosine(0, 5, 10, 1.0)
    with pytest.raises(ValueError):
        O.warmup_cosine(-1, 5, 1, 1.0)


def test_schedule_apply_is_stateless_and_scaled():
    sched = O.WarmupCosine(total_steps=40, warmup_steps=5, base_lr=1e-3, min_lr=1e-5)
    opt = O.build_adamw(_Classifier(), lr=1e-3, weight_decay=0.05, layer_decay=0.75, num_layers=DEPTH)
    for step in (17, 3, 17, 40, 0):  # any order: the lr only depends on the step
        lr = sched.apply(opt, step)
        assert lr == O.warmup_cosine(step, 40, 5, 1e-3, 1e-5)
        for g in opt.param_groups:
            assert g["lr"] == pytest.approx(lr * g["lr_scale"], rel=1e-12)


def test_schedule_factor_with_lambda_lr():
    sched = O.WarmupCosine(total_steps=20, warmup_steps=4, base_lr=1e-2, start_lr=1e-4)
    opt = O.build_adamw(_Classifier(), lr=1e-2, weight_decay=0.05, layer_decay=0.8, num_layers=DEPTH)
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(opt, sched.factor)
    for step in range(20):
        for g in opt.param_groups:
            assert g["lr"] == pytest.approx(sched(step) * g["lr_scale"], rel=1e-9)
        opt.step()
        lambda_lr.step()


def _params_with_grads(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(s)) for s in [(3, 4), (5,), (2, 2, 2)]]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)
    return params


def test_clip_norm_matches_float64_and_clips():
    params = _params_with_grads()
    before = [p.grad.clone() for p in params]
    manual = math.sqrt(sum(float(x) ** 2 for p in params for x in p.grad.double().flatten()))
    frozen = nn.Parameter(torch.zeros(2))  # no grad: ignored
    norm, finite = O.clip_grad_norm_and_check(params + [frozen], max_norm=None)
    assert finite and norm == pytest.approx(manual, rel=1e-6)
    assert all(torch.equal(p.grad, b) for p, b in zip(params, before))  # no clipping without max_norm

    norm, finite = O.clip_grad_norm_and_check(params, max_norm=manual * 10)  # already small enough
    assert all(torch.equal(p.grad, b) for p, b in zip(params, before))

    norm, finite = O.clip_grad_norm_and_check(params, max_norm=1.0)
    assert finite and norm == pytest.approx(manual, rel=1e-6)  # reports the norm before clipping
    clipped = math.sqrt(sum(float(x) ** 2 for p in params for x in p.grad.double().flatten()))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    for p, b in zip(params, before):  # same direction
        torch.testing.assert_close(p.grad, b * (1.0 / manual), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -float("inf")])
def test_clip_reports_non_finite(bad):
    params = _params_with_grads()
    params[1].grad[2] = bad
    before = [p.grad.clone() for p in params]
    norm, finite = O.clip_grad_norm_and_check(params, max_norm=1.0)
    assert not finite and not math.isfinite(norm)
    for p, b in zip(params, before):  # gradients left as they were (the caller skips the step)
        torch.testing.assert_close(p.grad, b, rtol=0, atol=0, equal_nan=True)


def test_clip_half_precision_overflow_and_empty():
    p = nn.Parameter(torch.zeros(4, dtype=torch.float16))
    p.grad = torch.full((4,), 60000.0, dtype=torch.float16)  # squares overflow fp16, not fp32
    norm, finite = O.clip_grad_norm_and_check([p], max_norm=None)
    assert finite and norm == pytest.approx(120000.0, rel=1e-3)
    assert O.clip_grad_norm_and_check([nn.Parameter(torch.zeros(2))], max_norm=1.0) == (0.0, True)


def test_group_rule_gives_the_hrd_policy_its_own_lr_and_weight_decay():
    from hi2m.model import HI2M, HI2MConfig

    model = HI2M(HI2MConfig.from_name("micro", num_frames=4, image_size=32))
    rule = O.GroupRule("masker.policy.", "hrd", lr_scale=10.0, weight_decay=0.0)
    opt = O.build_adamw(model, lr=1e-3, weight_decay=0.05, rules=(rule,))
    where = _group_of(opt.param_groups)
    policy = {id(p) for p in model.hrd_parameters()}
    assert policy and len(policy) < len(list(model.parameters()))
    for name, p in model.named_parameters():
        g = where[id(p)][0]
        if id(p) in policy:
            assert g["name"].startswith("hrd_") and g["lr_scale"] == 10.0 and g["weight_decay"] == 0.0, name
        else:
            assert not g["name"].startswith("hrd_") and g["lr_scale"] == 1.0, name
    sched = O.WarmupCosine(total_steps=50, warmup_steps=5, base_lr=1e-3)
    for step in (0, 3, 5, 20, 49):  # alpha = scale x the autoencoder's lr at every step of the schedule
        lr = sched.apply(opt, step)
        for g in opt.param_groups:
            assert g["lr"] == pytest.approx(lr * (10.0 if g["name"].startswith("hrd_") else 1.0))
    kept = O.param_groups(model, 0.05, rules=(O.GroupRule("masker.policy.", "hrd", lr_scale=2.0),))
    assert {g["weight_decay"] for g in kept if g["name"] == "hrd_decay"} == {0.05}  # None keeps the common one
