"""The training engine on tiny SynthFace runs: configs, samplers, exact resume, NaN guard,
fine-tuning with honest model selection, evaluation of the exported model."""

import csv
import json
import os

import pytest
import torch

from hi2m.train.callbacks import EpochSampler
from hi2m.train.config import DEFAULTS, ConfigError, deep_merge, load_config
from hi2m.train.data import stratified_split

SYNTH = {"num_train": 28, "num_val": 14, "num_test": 14, "num_frames": 8, "size": 32}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from hi2m.data.synthface import ensure_synthface

    root = tmp_path_factory.mktemp("synthface")
    ensure_synthface(root, **SYNTH)
    return root


def tiny_cfg(root, run_dir, **sections):
    cfg = deep_merge(DEFAULTS, {
        "model": {"size": "micro", "mask_ratio": 0.75},
        "data": {"dataset": "synthetic", "root": str(root), "options": {"synthface": SYNTH}, "num_frames": 8,
                 "stride": 1, "image_size": 32, "batch_size": 4, "num_workers": 0, "temporal_views": 2,
                 "spatial_views": 1},
        "optim": {"epochs": 2, "warmup_epochs": 1, "base_lr": 1e-3, "lr_scaling": "none"},
        "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "enable_progress_bar": False},
        "run": {"dir": str(run_dir)},
    })
    return deep_merge(cfg, sections)


# ---- configuration ---------------------------------------------------------------------

def test_config_file_chain_overrides_and_typos(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {size: small}\noptim: {base_lr: 1e-3, epochs: 10}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\noptim: {epochs: 20}\n")
    cfg = load_config(tmp_path / "child.yaml", ["optim.warmup_epochs=2", "model.hsm=false", "data.options.fold=3"])
    assert cfg.model.size == "small" and cfg.model.fields["hsm"] is False and cfg.model_config().hsm is False
    assert cfg.optim.base_lr == 1e-3 and isinstance(cfg.optim.base_lr, float)
    assert cfg.optim.epochs == 20 and cfg.optim.warmup_epochs == 2
    assert cfg.data.options["fold"] == 3 and cfg.data.batch_size == DEFAULTS["data"]["batch_size"]
    with pytest.raises(ConfigError, match="data.bacth_size: unknown key .did you mean batch_size"):
        load_config(None, ["data.bacth_size=4"])
    with pytest.raises(ConfigError, match="model.hsm_actvation: unknown key .did you mean hsm_activation"):
        load_config(None, ["model.hsm_actvation=relu"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.base_lr"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_paper_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    assert len(configs) >= 6
    for path in configs:
        cfg = load_config(path)  # validated: every key known, every value of its type and range
        cfg.model_config()
    pre = load_config(Path(__file__).parent.parent / "configs" / "pretrain_voxceleb2.yaml")
    assert pre.optim.betas == [0.9, 0.95] and pre.model_config().mask_ratio == 0.9
    # the paper's total batch of 60 views and its 80 (5 warm-up) epochs, counted in views
    assert pre.data.batch_size * pre.trainer.devices * pre.data.repeats == 60
    assert pre.optim.epochs * pre.data.repeats == 80 and pre.optim.warmup_epochs * pre.data.repeats == 5


def test_stratified_split_is_seeded_and_per_class():
    labels = [0] * 20 + [1] * 10 + [2] * 3 + [3]
    train, val = stratified_split(labels, 0.2, seed=1)
    assert sorted(train + val) == list(range(len(labels))) and not set(train) & set(val)
    counts = {c: sum(1 for i in val if labels[i] == c) for c in range(4)}
    assert counts == {0: 4, 1: 2, 2: 1, 3: 0}  # a lone clip stays in train
    assert stratified_split(labels, 0.2, seed=1) == (train, val)
    assert stratified_split(labels, 0.2, seed=2) != (train, val)


def test_epoch_sampler_shards_and_reshuffles():
    a, b = EpochSampler(10, 2, 0, seed=3), EpochSampler(10, 2, 1, seed=3)
    first = [i for _, i in a] + [i for _, i in b]
    assert sorted(first) == list(range(10))
    assert all(e == 0 for e, _ in a)
    a.set_epoch(1)
    assert [i for _, i in a] != first[:5] and all(e == 1 for e, _ in a)
    a.set_epoch(0)
    assert [i for _, i in a] == first[:5]  # the order is a function of (seed, epoch) only
    c = EpochSampler(7, 2, 1, drop_last=True)
    assert len(c) == 3 and len(list(c)) == 3


# ---- runs ------------------------------------------------------------------------------

class StopAfterFirstEpoch:
    """A callback that interrupts a run after its first epoch, as a crash or a time limit would."""

    def __new__(cls):
        import lightning.pytorch as pl

        class _Stop(pl.Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                trainer.should_stop = True

        return _Stop()


def test_resumed_pretraining_continues_exactly(synth_root, tmp_path):
    from safetensors.torch import load_file

    from hi2m.train.runner import pretrain

    full = pretrain(tiny_cfg(synth_root, tmp_path, run={"name": "full"}))
    cut = tiny_cfg(synth_root, tmp_path, run={"name": "cut"})
    first = pretrain(cut, extra_callbacks=[StopAfterFirstEpoch()])
    assert len(first["epoch_stats"]) == 1
    resumed = pretrain(load_config(tmp_path / "cut" / "config.yaml"), resume=tmp_path / "cut")
    assert [s["epoch"] for s in resumed["epoch_stats"]] == [1.0]
    # the first session's logs survive; the resumed one logs beside them
    assert (tmp_path / "cut" / "logs" / "metrics.csv").stat().st_size > 0
    assert (tmp_path / "cut" / "logs" / "resume-1" / "metrics.csv").stat().st_size > 0
    for key, value in full["epoch_stats"][1].items():
        assert resumed["epoch_stats"][0][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)
    with open(tmp_path / "cut" / "loss_stats.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["epoch"]) for r in rows] == [0.0, 1.0]  # Table 10 statistics for every epoch
    assert float(rows[1]["L_appearance_max"]) >= float(rows[1]["L_appearance_mean"]) >= float(rows[1]["L_appearance_min"])
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(tiny_cfg(synth_root, tmp_path, run={"name": "full"}))


def test_pretraining_logs_hrd_health_and_gives_the_policy_its_lr(synth_root, tmp_path):
    """Every logged step carries the HRD diagnostics; each epoch's summary lands in loss_stats.csv; the
    policy's lr is optim.hrd_lr_scale x the autoencoder's at every logged step."""
    import math

    from hi2m.train.runner import pretrain

    cfg = tiny_cfg(synth_root, tmp_path, run={"name": "hrd"}, optim={"hrd_lr_scale": 10.0},
                   model={"size": "micro", "mask_ratio": 0.75, "hrd_advantage": "zscore", "hrd_entropy": 0.1})
    pretrain(cfg)
    with open(tmp_path / "hrd" / "logs" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/hrd_kl_uniform")]
    assert len(rows) >= 10  # 2 epochs x 7 steps, logged every step
    n_tokens = (8 // 2) * (32 // 16) ** 2
    for r in rows:
        assert float(r["train/lr_hrd"]) == pytest.approx(10 * float(r["train/lr"]), rel=1e-5)
        kl, entropy = float(r["train/hrd_kl_uniform"]), float(r["train/hrd_entropy"])
        assert kl == pytest.approx(math.log(n_tokens) - entropy, abs=1e-5) and kl >= -1e-6
        assert -1 <= float(r["train/hrd_spearman"]) <= 1 and 0 < float(r["train/hrd_overlap"]) <= 1
        assert float(r["train/hrd_loss_cv"]) > 0
    with open(tmp_path / "hrd" / "loss_stats.csv") as f:
        stats = list(csv.DictReader(f))
    for key in ("hrd_kl_uniform", "hrd_spearman", "hrd_overlap", "hrd_loss_cv", "hrd_entropy"):
        assert all(math.isfinite(float(r[key])) for r in stats), key


def test_nan_losses_are_skipped_then_stop_the_run(synth_root, tmp_path, monkeypatch):
    from hi2m.model.mae import HI2M
    from hi2m.train.runner import pretrain

    original = HI2M.forward_loss
    calls = {"n": 0}

    def sometimes_nan(self, video, pred, mask):
        out = original(self, video, pred, mask)
        calls["n"] += 1
        if calls["n"] == 2:  # one bad step: skipped, the run goes on
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(HI2M, "forward_loss", sometimes_nan)
    out = pretrain(tiny_cfg(synth_root, tmp_path, run={"name": "one-nan"}, optim={"epochs": 1}))
    with open(tmp_path / "one-nan" / "logs" / "metrics.csv") as f:
        bad = [float(r["train/bad_steps"]) for r in csv.DictReader(f) if r.get("train/bad_steps")]
    assert bad and bad[-1] == 1.0
    from hi2m.io.weights import load_pretrained

    model = load_pretrained(out["model_dir"])
    assert all(torch.isfinite(p).all() for p in model.parameters())

    def always_nan(self, video, pred, mask):
        out = original(self, video, pred, mask)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(HI2M, "forward_loss", always_nan)
    with pytest.raises(RuntimeError, match="NaN/Inf"):
        pretrain(tiny_cfg(synth_root, tmp_path, run={"name": "all-nan"}, trainer={"max_bad_steps": 3}))


def test_finetune_selects_on_validation_and_evaluate_reproduces(synth_root, tmp_path):
    from hi2m.io.weights import load_pretrained
    from hi2m.train.runner import evaluate, finetune, pretrain

    pre = pretrain(tiny_cfg(synth_root, tmp_path, run={"name": "pre"}, optim={"epochs": 1}))
    cfg = tiny_cfg(synth_root, tmp_path, run={"name": "ft"}, data={"val_fraction": 0.25},
                   finetune={"pretrained": str(pre["model_dir"]), "select": "val"},
                   optim={"layer_decay": 0.75})
    out = finetune(cfg, verbose=False)
    assert "best validation UAR" in out["selected"] and "carved from 'train'" in out["selected"]
    report = (tmp_path / "ft" / "report.txt").read_text()
    assert "encoder initialised from" in report and "model selection" in report
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    with open(tmp_path / "ft" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == SYNTH["num_test"] == out["result"].total  # every test clip exactly once
    acc = sum(r["target"] == r["prediction"] for r in rows) / len(rows)
    assert acc == pytest.approx(metrics["war"])
    model = load_pretrained(out["model_dir"])
    assert model.class_names[0] == "Happy"
    again = evaluate(tiny_cfg(synth_root, tmp_path, run={"name": "ev"}), out["model_dir"])["result"]
    assert again.war == pytest.approx(out["result"].war) and again.uar == pytest.approx(out["result"].uar)
    # with the fine-tuning run's own name (`hi2m evaluate -c runs/ft/config.yaml`) it writes beside that run
    before = {f: (tmp_path / "ft" / f).read_bytes() for f in ("config.yaml", "metrics.json", "predictions.csv")}
    beside = [evaluate(tiny_cfg(synth_root, tmp_path, run={"name": "ft"}), out["model_dir"])["run_dir"]
              for _ in range(2)]
    assert {f: (tmp_path / "ft" / f).read_bytes() for f in before} == before
    assert beside[0] != beside[1] and all(d.name.startswith("ft-evaluate-") for d in beside)
    assert json.loads((beside[1] / "metrics.json").read_text())["war"] == pytest.approx(metrics["war"])
    with pytest.raises(ValueError, match="no validation set"):
        finetune(tiny_cfg(synth_root, tmp_path, run={"name": "noval"}, finetune={"select": "val"}))


def test_demo_tiny(tmp_path, capsys):
    from hi2m.io.weights import load_pretrained
    from hi2m.study.demo import run_demo

    out = run_demo(tmp_path / "demo", scale="tiny", budget=3)
    text = capsys.readouterr().out
    assert out["budgets_per_class"] == [3, 1] and "3/class UAR" in text and "1/class UAR" in text
    assert "fine-tuned, HI2M-pretrained" in text and "fine-tuned, random init" in text and "chance" in text
    assert "1/4 rendering 32 unlabelled" in text and "2/4 fine-tuning" in text and "pretraining step 4/4" in text
    # the report says how long it pretrained (4 steps of 4 = 16 views of a 32-clip pool) and where the time went
    assert "4 steps of 4 clips = 16 clip views of a pool of 32 unlabelled clips (0.5 epochs)" in text
    assert set(out["stage_seconds"]) == {"render unlabelled pool", "pretrain", "render labelled pool and test split",
                                         "fine-tune (both inits, with their tests)", "probes, HRD and HSM measurements",
                                         "figures"}
    assert "seconds: render unlabelled pool" in text
    assert "measured in this run" in text and "docs/results-synthface.md" in text
    for b in ("3", "1"):
        for name, slug in (("HI2M", "pretrained"), ("random init", "random-init")):
            ft = out["finetune"][b][name]
            metrics = json.loads((tmp_path / "demo" / f"finetune-{slug}-{b}" / "metrics.json").read_text())
            assert ft["uar"] == pytest.approx(100 * metrics["uar"])  # the report shows the engine's result
            assert f"{ft['uar']:.1f}" in text
    assert set(out["probe"]) == {"HI2M, mean", "HI2M, tokens", "random init, mean", "random init, tokens", "raw pixels"}
    pre = out["pretraining"]
    assert 0.0 < pre["region_area"] < 1.0 and 0.0 <= pre["region_mass"] <= 1.0 and [s for s, _ in pre["curve"]] == [1, 2, 3, 4]
    assert -1.0 <= pre["hsm_difficulty_spearman"] <= 1.0
    for fig in out["figures"]:
        assert os.path.getsize(fig) > 1000
    assert {os.path.basename(f) for f in out["figures"]} >= {"hrd_map.png", "learning_curves.png"}
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["finetune"]["3"]["HI2M"]["war"] == out["finetune"]["3"]["HI2M"]["war"]
    clf = load_pretrained(tmp_path / "demo" / "finetune-pretrained-3" / "model")
    assert clf.num_classes == 7  # the fine-tuned classifier is saved for hi2m predict / export
    with pytest.raises(FileExistsError):
        run_demo(tmp_path / "demo", scale="tiny")
    with pytest.raises(ValueError, match="budget"):
        run_demo(tmp_path / "demo2", scale="tiny", budget=0)


def test_ddp_two_process_pretraining_ranks_agree(synth_root, tmp_path):
    """2-process gloo DDP on CPU through the real command line: weights stay in sync and HSM's
    statistics are those of the global batch."""
    import os
    import subprocess
    import sys

    import yaml

    from hi2m.model import objectives as obj

    cfg = tiny_cfg(synth_root, tmp_path, run={"name": "ddp"}, optim={"epochs": 1},
                   trainer={"devices": 2, "strategy": "ddp", "limit_train_batches": 3})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    hi2m = os.path.join(os.path.dirname(sys.executable), "hi2m")
    env = dict(os.environ, OMP_NUM_THREADS="1", PL_DISABLE_FORK="1")
    done = subprocess.run([hi2m, "pretrain", "-c", str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = json.loads((tmp_path / "ddp" / "ranks.json").read_text())
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 3
    assert ranks[0]["param_checksum"] == pytest.approx(ranks[1]["param_checksum"], rel=1e-9)
    local = [torch.tensor(r["sample_loss"]) for r in ranks]
    assert not torch.equal(local[0], local[1])  # the ranks saw different clips
    expected = obj.hsm_weights(torch.cat(local))  # one process over the global batch
    got = torch.cat([torch.tensor(r["hsm_weights"]) for r in ranks])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(torch.tensor(ranks[0]["hsm_weights"]), obj.hsm_weights(local[0]))


def test_dfew_folds_report_each_fold_and_mean_std(tmp_path):
    """`finetune.folds` runs one fine-tuning per DFEW fold from the official layout and summarises them."""
    import numpy as np

    from hi2m.data.writer import write_frame_folder
    from hi2m.train.runner import finetune

    root = tmp_path / "DFEW"
    rng = np.random.default_rng(0)
    ids = [f"{i:05d}" for i in range(1, 15)]
    for clip_id in ids:
        write_frame_folder(root / "Clip" / "clip_224x224" / clip_id,
                           [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(8)],
                           name=clip_id + "_{:05d}")
    for fold in (1, 2):
        for split, members in (("train", ids[:10]), ("test", ids[10:])):
            rows = [f"{int(c)},{(int(c) + fold) % 7 + 1}" for c in members]
            d = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"set_{fold}.csv").write_text("video_name,label\n" + "\n".join(rows) + "\n")
    cfg = tiny_cfg(root, tmp_path / "runs", run={"name": "dfew"},
                   data={"dataset": "dfew", "root": str(root), "options": {}, "batch_size": 2},
                   optim={"epochs": 1, "warmup_epochs": 0},
                   finetune={"folds": [1, 2], "select": "last", "mixup": 0.0, "cutmix": 0.0})
    cfg["data"]["options"] = {}  # a merge cannot remove the SynthFace options of tiny_cfg
    out = finetune(cfg)
    assert sorted(out["results"]) == [1, 2]
    summary = (tmp_path / "runs" / "dfew" / "folds.txt").read_text()
    assert "mean" in summary and "std" in summary
    for fold in (1, 2):
        metrics = json.loads((tmp_path / "runs" / "dfew" / f"fold{fold}" / "metrics.json").read_text())
        assert metrics["total"] == 4  # the fold's own test list
        assert f"{100 * out['results'][fold].uar:7.2f}" in summary
    # --- resuming the folds: a finished fold is kept, an interrupted one continues from its checkpoint
    base = tmp_path / "runs" / "dfew"
    with pytest.raises(FileExistsError, match="--resume"):
        finetune(cfg)  # the same folds again without --resume: refused, nothing overwritten
    fold1_metrics = (base / "fold1" / "metrics.json").read_bytes()
    fold1_mtime = (base / "fold1" / "metrics.json").stat().st_mtime_ns
    (base / "fold2" / "metrics.json").unlink()  # fold 2 "stopped" after its last checkpoint
    import shutil

    shutil.rmtree(base / "fold2" / "model")
    again = finetune(cfg, resume=base)
    assert (base / "fold1" / "metrics.json").stat().st_mtime_ns == fold1_mtime  # not rerun
    assert (base / "fold1" / "metrics.json").read_bytes() == fold1_metrics
    assert (base / "fold2" / "model" / "config.json").is_file()  # fold 2 finished this time
    for fold in (1, 2):
        assert again["results"][fold].uar == pytest.approx(out["results"][fold].uar)
        assert torch.equal(again["results"][fold].confusion, out["results"][fold].confusion)
    changed = dict(cfg, seed=cfg["seed"] + 1)
    with pytest.raises(ValueError, match="changed config"):
        finetune(changed, resume=base)


def test_a_training_split_smaller_than_one_batch_is_refused(synth_root, tmp_path):
    from hi2m.train.config import ConfigError
    from hi2m.train.runner import finetune, pretrain

    for job in (pretrain, finetune):
        with pytest.raises(ConfigError, match=r"data.batch_size: the training split has 28 clips, fewer than one batch of 64"):
            job(tiny_cfg(synth_root, tmp_path, run={"name": job.__name__}, data={"batch_size": 64},
                         finetune={"select": "last"}))
