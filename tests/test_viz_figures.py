"""hi2m visualize: each figure is written, non-empty, and changes with the data it shows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn", reason="scikit-learn is not installed (t-SNE)")

from _media import write_video  # noqa: E402
from hi2m.model import HI2M, HI2MConfig  # noqa: E402
from hi2m.io.weights import load_pretrained, save_pretrained  # noqa: E402
from hi2m.viz import plots  # noqa: E402
from hi2m.viz import run as vrun  # noqa: E402


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB")).astype(np.int16)
    assert img.shape[0] > 50 and img.shape[1] > 50 and img.std() > 5, f"{path} looks empty"
    return img


def differs(a: Path, b: Path) -> bool:
    x, y = pixels(a), pixels(b)
    return x.shape != y.shape or bool(np.abs(x - y).max() > 0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from hi2m.train.config import DEFAULTS, deep_merge
    from hi2m.train.runner import finetune, pretrain

    root = tmp_path_factory.mktemp("viz")
    synth = {"num_train": 28, "num_val": 14, "num_test": 14, "num_frames": 8, "size": 32}
    base = {"model": {"size": "micro", "mask_ratio": 0.75},
            "data": {"dataset": "synthetic", "root": str(root / "data"), "options": {"synthface": synth},
                     "num_frames": 8, "stride": 1, "image_size": 32, "batch_size": 4, "num_workers": 0,
                     "temporal_views": 2, "spatial_views": 1, "val_split": "val"},
            "optim": {"epochs": 2, "warmup_epochs": 0, "base_lr": 1e-3, "lr_scaling": "none"},
            "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "enable_progress_bar": False},
            "run": {"dir": str(root / "runs"), "name": "pre"}}
    pre = pretrain(deep_merge(DEFAULTS, base))
    ft = finetune(deep_merge(DEFAULTS, deep_merge(base, {
        "optim": {"epochs": 1}, "run": {"name": "ft"},
        "finetune": {"pretrained": str(pre["model_dir"]), "select": "val"}})), verbose=False)
    return {"pre": Path(pre["run_dir"]), "ft": Path(ft["run_dir"]), "root": root}


@pytest.fixture(scope="module")
def hrd_model_dir(tmp_path_factory) -> Path:
    """A pretraining model whose HRD policy is not uniform (random output layer)."""
    torch.manual_seed(0)
    model = HI2M(HI2MConfig.from_name("micro", num_frames=8, image_size=64, mask_type="hrd", mask_ratio=0.75))
    with torch.no_grad():
        for p in model.masker.policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return save_pretrained(model, tmp_path_factory.mktemp("hrd") / "model")


def test_hrd_figure_follows_the_clip(hrd_model_dir, tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((8, 64, 64, 3), np.uint8)
    frames[:, 8:40, 16:48] = rng.integers(0, 255, (8, 32, 32, 3))  # a textured square on black
    perm = rng.permutation(64 * 64)
    shuffled = frames.reshape(8, -1, 3)[:, perm].reshape(frames.shape)  # the same pixels, shuffled
    clip = write_video(tmp_path / "clip.mp4", frames, fps=10)
    mixed = write_video(tmp_path / "shuffled.mp4", shuffled, fps=10)
    written, _ = vrun.visualize(hrd_model_dir, tmp_path / "fig", videos=[str(clip), str(mixed)])
    names = {p.name for p in written}
    assert {"hrd_00.png", "hrd_01.png", "hsm.png"} <= names
    assert differs(tmp_path / "fig" / "hrd_00.png", tmp_path / "fig" / "hrd_01.png")

    model = load_pretrained(hrd_model_dir)
    clips = vrun.load_video_clips([clip, mixed], model.cfg, stride=1)[:, 0]  # (2, C, T, S, S)
    probs, visible = vrun.hrd_maps(model, clips)
    assert probs.shape == (2, *model.cfg.grid)
    torch.testing.assert_close(probs.flatten(1).sum(1), torch.ones(2))
    assert visible.flatten(1).sum(1).tolist() == [model.cfg.num_visible] * 2
    assert (probs[0] - probs[1]).abs().max() > 1e-4  # the heat map depends on the content


def test_hsm_figure_changes_with_losses_and_weights(tmp_path):
    frames = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loss = torch.tensor([0.5, 0.7, 0.6, 0.9])
    a = plots.hsm_figure(frames, loss, torch.ones(4), tmp_path / "a.png")
    b = plots.hsm_figure(frames, loss, torch.tensor([0.2, 1.3, 0.7, 1.9]), tmp_path / "b.png")
    c = plots.hsm_figure(frames, loss, torch.ones(4), tmp_path / "c.png")
    assert differs(a, b) and not differs(a, c)


def test_pretraining_run_figures_from_its_dataset(runs, tmp_path):
    from hi2m.cli import main

    assert main(["visualize", str(runs["pre"]), "--out", str(tmp_path), "--num-clips", "4"]) == 0
    for name in ["hrd_00.png", "hrd_03.png", "hsm.png", "loss_stats.png", "hrd_health.png"]:
        pixels(tmp_path / name)
    table = (tmp_path / "loss_stats.txt").read_text().splitlines()
    assert len(table) == 3  # header + 2 epochs
    rows = vrun.read_loss_stats(runs["pre"])
    assert f"{rows[1]['L_R_mean']:8.4f}" in table[2] and f"{rows[1]['L_motion_min']:8.4f}" in table[2]


def test_loss_stats_from_logs_match_the_csv(runs, tmp_path):
    from_csv = vrun.read_loss_stats(runs["pre"])
    logs_only = tmp_path / "run"
    (logs_only / "logs").mkdir(parents=True)
    shutil.copy(runs["pre"] / "logs" / "metrics.csv", logs_only / "logs" / "metrics.csv")
    from_logs = vrun.read_loss_stats(logs_only)
    assert [r["epoch"] for r in from_logs] == [r["epoch"] for r in from_csv]
    for a, b in zip(from_logs, from_csv):
        assert a["L_R_mean"] == pytest.approx(b["L_R_mean"], rel=1e-5)
        assert a["L_appearance_max"] == pytest.approx(b["L_appearance_max"], rel=1e-5)
    changed = [dict(r) for r in from_csv]
    changed[0]["L_R_max"] += 0.5
    assert differs(plots.loss_stats_figure(from_csv, tmp_path / "a.png"),
                   plots.loss_stats_figure(changed, tmp_path / "b.png"))


def test_finetuning_run_confusion_and_tsne(runs, tmp_path):
    from hi2m.cli import main

    assert main(["visualize", str(runs["ft"]), "--out", str(tmp_path / "a")]) == 0
    pixels(tmp_path / "a" / "tsne.png")
    copy = tmp_path / "ft"
    shutil.copytree(runs["ft"], copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    k = len(metrics["confusion"])
    metrics["confusion"] = np.eye(k, dtype=int).tolist()  # a different matrix
    (copy / "metrics.json").write_text(json.dumps(metrics))
    written, _ = vrun.visualize(copy, tmp_path / "b")
    assert {p.name for p in written} >= {"confusion.png", "tsne.png"}
    assert differs(tmp_path / "a" / "confusion.png", tmp_path / "b" / "confusion.png")
    assert not differs(tmp_path / "a" / "tsne.png", tmp_path / "b" / "tsne.png")  # same clips, same seed


def test_tsne_separates_separated_clusters_and_figure_follows_labels(tmp_path):
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 1, (10, 16)), rng.normal(8, 1, (10, 16))])
    emb = plots.tsne_embedding(feats)
    assert emb.shape == (20, 2)
    a, b = emb[:10], emb[10:]
    within = max(np.linalg.norm(a - a.mean(0), axis=1).mean(), np.linalg.norm(b - b.mean(0), axis=1).mean())
    assert np.linalg.norm(a.mean(0) - b.mean(0)) > 2 * within
    labels = [0] * 10 + [1] * 10
    one = plots.tsne_figure(emb, labels, ["x", "y"], tmp_path / "1.png")
    two = plots.tsne_figure(emb, labels[::-1], ["x", "y"], tmp_path / "2.png")
    assert differs(one, two)


def test_hrd_health_over_training_follows_the_logs(runs, tmp_path):
    rows = vrun.read_hrd_health(runs["pre"])
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows) and len(rows) >= 10  # logged every step
    for r in rows:
        assert set(r) >= {"step", "kl_uniform", "spearman", "overlap", "loss_cv", "entropy"}
    changed = [dict(r) for r in rows]
    changed[-1]["spearman"] = 0.9
    assert differs(plots.hrd_health_figure(rows, tmp_path / "a.png", uniform_overlap=0.25),
                   plots.hrd_health_figure(changed, tmp_path / "b.png", uniform_overlap=0.25))
