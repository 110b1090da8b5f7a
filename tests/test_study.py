"""hi2m.train.study: the label-efficiency protocol shared by ``hi2m demo`` and benchmarks/synthface_study.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hi2m.train import study as S

TINY = S.Recipe(pretrain_steps=3, finetune_steps=3, batch=4,
                model=dict(S.MODEL, embed_dim=32, depth=1, num_heads=2, decoder_dim=16, decoder_depth=1,
                           decoder_heads=1, hrd_dim=16, hrd_heads=1))


def test_uar_war_against_sklearn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    rng = np.random.default_rng(0)
    target = rng.integers(0, S.NUM_CLASSES, 200)
    pred = np.where(rng.random(200) < 0.4, target, rng.integers(0, S.NUM_CLASSES, 200))
    uar, war = S.uar_war(pred, target)
    assert uar == pytest.approx(100 * balanced_accuracy_score(target, pred))
    assert war == pytest.approx(100 * accuracy_score(target, pred))


def test_budget_indices_balanced_nested_and_short_pool_refused():
    labels = np.random.default_rng(1).permutation(np.arange(70) % S.NUM_CLASSES)
    small, large = S.budget_indices(labels, 3), S.budget_indices(labels, 10)
    assert np.bincount(labels[small], minlength=S.NUM_CLASSES).tolist() == [3] * S.NUM_CLASSES
    assert set(small) <= set(large) and len(large) == 70
    with pytest.raises(ValueError, match="fewer than 11"):
        S.budget_indices(labels, 11)


def test_render_clips_matches_the_generator_and_splits_differ():
    from hi2m.data.synthface import generate_clip, synthface_config

    clips = S.render_clips(S.LABELLED, "train", 7)
    assert clips["video"].shape == (7, 3, S.FRAMES, S.SIZE, S.SIZE) and clips["video"].dtype == np.uint8
    assert sorted(clips["label"].tolist()) == list(range(S.NUM_CLASSES))  # balanced
    ref = generate_clip(synthface_config(seed=0, num_train=7, **S.LABELLED), "train", 5)
    assert np.array_equal(clips["video"][5], ref.frames.transpose(3, 0, 1, 2))
    assert np.array_equal(clips["region"][5], ref.region_masks)
    assert clips["difficulty"][5] == ref.difficulty["difficulty_score"]
    assert not np.array_equal(S.render_clips(S.LABELLED, "test", 1)["video"][0], clips["video"][0])


def test_stream_clips_are_the_stream_pretraining_reads():
    from hi2m.data.synthface import SynthFaceStream, synthface_config

    pool = S.stream_clips(3, seed=2)
    stream = SynthFaceStream(synthface_config(seed=1002, **S.UNLABELLED), clips_per_epoch=3)
    for k in range(3):
        assert torch.equal(torch.from_numpy(pool[k]).float() / 255, stream[k]["video"])


def test_pixel_features_hold_the_last_frame_and_the_change():
    data = {"video": np.random.default_rng(2).integers(0, 256, (2, 3, 4, 8, 8), dtype=np.uint8)}
    f = S.pixel_features(data)
    assert f.shape == (2, 2 * 3 * 8 * 8)
    v = data["video"].astype(np.float32)
    np.testing.assert_array_equal(f[1, :192], v[1, :, -1].ravel())
    np.testing.assert_array_equal(f[1, 192:], (v[1, :, -1] - v[1, :, 0]).ravel())


def test_linear_probe_separates_separable_features_and_not_noise():
    rng = np.random.default_rng(3)
    y = np.arange(140) % S.NUM_CLASSES
    x = rng.normal(size=(140, 16)) + 4 * np.eye(S.NUM_CLASSES, 16)[y]  # class c shifted along axis c
    assert S.linear_probe(x[:70], y[:70], x[70:], y[70:])[0] > 95
    noise = rng.normal(size=(140, 16))
    assert S.linear_probe(noise[:70], y[:70], noise[70:], y[70:])[0] < 40


def test_pooled_pretraining_reads_distinct_clips_and_refuses_too_few():
    pool = S.stream_clips(12)
    model, curve = S.pretrain_stream(S.HI2M_VARIANT, 0, TINY, clips=pool)
    assert not model.training and [s for s, _ in curve] == [1, 2, 3] and all(np.isfinite(v) for _, v in curve)
    with pytest.raises(ValueError, match="cannot feed 3 steps of 4"):
        S.pretrain_stream(S.HI2M_VARIANT, 0, TINY, clips=pool[:11])


def test_pool_order_reads_every_clip_once_per_epoch():
    once = S.pool_order(20, steps=4, batch=5, seed=1)  # exactly one epoch
    assert once.shape == (4, 5) and sorted(once.ravel().tolist()) == list(range(20))
    assert not np.array_equal(once, S.pool_order(20, 4, 5, seed=2))
    many = S.pool_order(6, steps=4, batch=4, seed=0, reuse=True).ravel()  # 16 draws: epochs of 6, 6, then 4
    assert sorted(many[:6].tolist()) == sorted(many[6:12].tolist()) == list(range(6))
    assert len(set(many[12:].tolist())) == 4
    with pytest.raises(ValueError, match="6 clips cannot feed"):
        S.pool_order(6, steps=4, batch=4, seed=0)


def test_finetune_uses_only_the_budget_and_scores_the_last_step():
    train = S.render_clips(S.LABELLED, "train", 14)
    test = S.render_clips(S.LABELLED, "test", 7)
    idx = S.budget_indices(train["label"], 1)
    poisoned = dict(train, label=train["label"].copy())
    outside = np.setdiff1d(np.arange(14), idx)
    poisoned["label"][outside] = 99  # any clip outside the budget would break the loss
    model, res = S.finetune_clips(None, poisoned, test, idx, 0, TINY, eval_every=1)
    assert [s for s, _ in res["curve"]] == [1, 2, 3]
    assert res["curve"][-1][1] == res["uar"]
    pred = S.predict(model, test)
    assert pred.tolist() == res["pred"] and S.uar_war(pred, test["label"]) == (res["uar"], res["war"])


def test_measurements_of_a_pretrained_model():
    pool = S.stream_clips(12)
    model, _ = S.pretrain_stream(S.HI2M_VARIANT, 0, TINY, clips=pool)
    held = S.render_clips(S.UNLABELLED, "val", 4)
    meas = S.pretrain_measurements(model, held, S.render_clips(S.WILD, "val", 4))
    assert 0 < meas["region_area"] < 1 and 0 < meas["region_mass"] < 1
    assert meas["region_ratio"] == pytest.approx(meas["region_mass"] / meas["region_area"], rel=0.3)
    for key in ("hrd_spearman", "hsm_difficulty_spearman", "hsm_difficulty_spearman_wild"):
        assert -1 <= meas[key] <= 1
    tube, _ = S.pretrain_stream(S.VARIANTS["baseline (tube)"], 0, TINY, clips=pool)
    assert "region_ratio" not in S.pretrain_measurements(tube, held)
