"""hi2m.study.protocol: the label-efficiency protocol of ``hi2m demo`` and benchmarks/synthface_study.py, as
engine runs (the SynthFace pool and stream datasets, the run configs) and measurements on saved models."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from hi2m.study import protocol as P

TINY = P.Recipe(pretrain_steps=3, finetune_steps=3, batch=4, finetune_epoch=8,
                model=dict(P.MODEL, embed_dim=32, depth=1, num_heads=2, decoder_dim=16, decoder_depth=1,
                           decoder_heads=1, hrd_dim=16, hrd_heads=1))


def test_uar_war_against_sklearn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    rng = np.random.default_rng(0)
    target = rng.integers(0, P.NUM_CLASSES, 200)
    pred = np.where(rng.random(200) < 0.4, target, rng.integers(0, P.NUM_CLASSES, 200))
    uar, war = P.uar_war(pred, target)
    assert uar == pytest.approx(100 * balanced_accuracy_score(target, pred))
    assert war == pytest.approx(100 * accuracy_score(target, pred))


def test_budget_indices_balanced_nested_and_short_pool_refused():
    labels = np.random.default_rng(1).permutation(np.arange(70) % P.NUM_CLASSES)
    small, large = P.budget_indices(labels, 3), P.budget_indices(labels, 10)
    assert np.bincount(labels[small], minlength=P.NUM_CLASSES).tolist() == [3] * P.NUM_CLASSES
    assert set(small) <= set(large) and len(large) == 70
    with pytest.raises(ValueError, match="fewer than 11"):
        P.budget_indices(labels, 11)


def test_render_clips_matches_the_generator_and_splits_differ():
    from hi2m.data.synthface import generate_clip, synthface_config

    clips = P.render_clips(P.LABELLED, "train", 7)
    assert clips["frames"].shape == (7, P.FRAMES, P.SIZE, P.SIZE, 3) and clips["frames"].dtype == np.uint8
    assert sorted(clips["label"].tolist()) == list(range(P.NUM_CLASSES))  # balanced
    ref = generate_clip(synthface_config(seed=0, num_train=7, **P.LABELLED), "train", 5)
    assert np.array_equal(clips["frames"][5], ref.frames)
    assert np.array_equal(clips["region"][5], ref.region_masks)
    assert clips["difficulty"][5] == ref.difficulty["difficulty_score"]
    assert not np.array_equal(P.render_clips(P.LABELLED, "test", 1)["frames"][0], clips["frames"][0])


def test_the_pool_dataset_holds_exactly_the_budget_of_the_rendered_pool():
    from hi2m.data.adapters import build_dataset
    from hi2m.data.transforms import EvalViews

    pool = P.render_clips(P.LABELLED, "train", 28)
    idx = P.budget_indices(pool["label"], 2)
    options = {"synthface": {**P.LABELLED, "seed": 0}, "count": {"train": 28}, "per_class": {"train": 2},
               "repeat": {"train": 3}}
    train = build_dataset("synthface-pool", ".", split="train", num_frames=P.FRAMES, train=True,
                          transform=EvalViews(P.SIZE), seed=5, **options)
    assert len(train) == 3 * 14 and train.labels == pool["label"][idx].tolist() * 3
    for i, k in enumerate(idx):  # the budget's clips, in pool order, then again
        expected = EvalViews(P.SIZE)(pool["frames"][k])
        assert torch.equal(train[i]["video"], expected) and torch.equal(train[i + 14]["video"], expected)
        assert train[i]["label"] == pool["label"][k]
    test = build_dataset("synthface-pool", ".", split="test", num_frames=P.FRAMES, train=False,
                         transform=EvalViews(P.SIZE), **{**options, "count": {"train": 28, "test": 7}})
    assert len(test) == 7 and test[0]["video"].shape == (1, 3, P.FRAMES, P.SIZE, P.SIZE)  # (K, C, T, S, S)
    with pytest.raises(ValueError, match="num_frames"):
        build_dataset("synthface-pool", ".", split="train", num_frames=16, **options)


def test_configs_encode_the_recipe(tmp_path):
    from hi2m.train.runner import resolve_lr, steps_per_epoch

    pre = P.pretrain_config(P.HI2M_VARIANT, 2, P.Recipe(), tmp_path, "pre", workers=1)
    assert pre.trainer.max_steps == 1500 and pre.data.options["clips_per_epoch"] == 1500 * 16
    assert pre.data.options["synthface"]["seed"] == 1002 and pre.model_config().mask_type == "hrd"
    spe = steps_per_epoch(1500 * 16, pre, 1)
    assert round(pre.optim.warmup_epochs * spe) == 75 and resolve_lr(pre, 1) == 1.5e-3
    pooled = P.pretrain_config(P.HI2M_VARIANT, 0, P.Recipe(), tmp_path, "pool", pool=4000)
    assert pooled.optim.epochs == 6 and pooled.data.options["pool"] == 4000  # 24000 draws over a 4000-clip pool
    ft = P.finetune_config(tmp_path / "m", 10, 0, P.Recipe(), tmp_path, "ft", pool=2100, test_clips=350)
    spe = steps_per_epoch(70 * ft.data.options["repeat"]["train"], ft, 1)
    assert ft.optim.epochs * spe >= 1000 and round(ft.optim.warmup_epochs * spe) == 100
    assert ft.finetune.select == "last" and ft.finetune.mixup == 0 and ft.finetune.crop_scale is None
    assert ft.finetune.pretrained == str(tmp_path / "m") and ft.optim.betas == [0.9, 0.999]
    # a pretraining batch apart from the fine-tuning one: the same clip views over half the steps
    wide = P.Recipe(pretrain_steps=750, pretrain_batch=32)
    pre32 = P.pretrain_config(P.HI2M_VARIANT, 0, wide, tmp_path, "pre32", pool=4000)
    assert pre32.data.batch_size == 32 and pre32.trainer.max_steps == 750 and pre32.optim.epochs == 6
    assert round(pre32.optim.warmup_epochs * steps_per_epoch(4000, pre32, 1)) == 37
    ft32 = P.finetune_config(None, 10, 0, wide, tmp_path, "ft32", pool=2100, test_clips=350)
    assert ft32.data.batch_size == 16 and pre.data.batch_size == 16


def test_stage_runs_through_the_engine_and_measurements_read_the_saved_model(tmp_path):
    from hi2m.io.weights import load_pretrained
    from hi2m.train.runner import finetune, pretrain

    pre = pretrain(P.pretrain_config(P.HI2M_VARIANT, 0, TINY, tmp_path, "pre", workers=0))
    assert (pre["run_dir"] / "config.yaml").is_file() and (pre["model_dir"] / "model.safetensors").is_file()
    curve = P.logged_curve(pre["run_dir"], "train/L_R", points=3)
    assert [s for s, _ in curve] == [1, 2, 3] and all(np.isfinite(v) for _, v in curve)
    model = load_pretrained(pre["model_dir"])
    held = P.render_clips(P.UNLABELLED, "val", 4)
    meas = P.pretrain_measurements(model, held, P.render_clips(P.WILD, "val", 4))
    assert 0 < meas["region_area"] < 1 and 0 < meas["region_mass"] < 1
    assert meas["region_ratio"] == pytest.approx(meas["region_mass"] / meas["region_area"], rel=0.3)
    for key in ("hrd_spearman", "hsm_difficulty_spearman", "hsm_difficulty_spearman_wild"):
        assert -1 <= meas[key] <= 1
    ft = finetune(P.finetune_config(pre["model_dir"], 1, 0, TINY, tmp_path, "ft", pool=14, test_clips=7),
                  verbose=False)
    result = P.metrics_of(ft["run_dir"])
    assert result["uar"] == pytest.approx(100 * ft["result"].uar) and sum(map(sum, result["confusion"])) == 7
    with open(ft["run_dir"] / "predictions.csv") as f:
        assert len(list(csv.DictReader(f))) == 7  # the test split, scored once, at the last step


def test_pixel_features_hold_the_last_frame_and_the_change():
    frames = np.random.default_rng(2).integers(0, 256, (2, 4, 8, 8, 3), dtype=np.uint8)
    f = P.pixel_features({"frames": frames})
    assert f.shape == (2, 2 * 3 * 8 * 8)
    v = frames.astype(np.float32).transpose(0, 4, 1, 2, 3)  # (n, C, T, H, W)
    np.testing.assert_array_equal(f[1, :192], v[1, :, -1].ravel())
    np.testing.assert_array_equal(f[1, 192:], (v[1, :, -1] - v[1, :, 0]).ravel())


def test_linear_probe_separates_separable_features_and_not_noise():
    rng = np.random.default_rng(3)
    y = np.arange(140) % P.NUM_CLASSES
    x = rng.normal(size=(140, 16)) + 4 * np.eye(P.NUM_CLASSES, 16)[y]  # class c shifted along axis c
    assert P.linear_probe(x[:70], y[:70], x[70:], y[70:])[0] > 95
    noise = rng.normal(size=(140, 16))
    assert P.linear_probe(noise[:70], y[:70], noise[70:], y[70:])[0] < 40


def test_logged_curve_averages_windows_across_resumed_logs(tmp_path):
    logs = tmp_path / "logs"
    (logs / "resume-1").mkdir(parents=True)
    (logs / "metrics.csv").write_text("step,train/L_R\n0,4.0\n1,2.0\n")
    (logs / "resume-1" / "metrics.csv").write_text("step,train/L_R,other\n2,1.0,\n3,3.0,\n")
    assert P.logged_curve(tmp_path, "train/L_R", points=2) == [(2, 3.0), (4, 2.0)]
