"""``hi2m visualize``: every figure a run directory (or a bare model directory) supports.

* pretraining model: HRD importance / visible maps (Fig. 7, when ``mask_type`` is ``hrd``) and HSM
  per-clip losses and weights (Fig. 8), on clips given as videos or drawn from the run's dataset;
* fine-tuning run: the confusion matrix of ``metrics.json`` (Fig. 3) and a t-SNE of the pooled
  features of the test clips listed in ``predictions.csv`` (Fig. 4);
* pretraining run: the per-epoch loss statistics of ``loss_stats.csv`` (Table 10) as text and plot.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from hi2m.analysis import importance
from hi2m.data.boundary import file_boundary
from hi2m.data.sampling import eval_windows
from hi2m.data.transforms import EvalViews
from hi2m.data.video import open_clip_source, read_windows
from hi2m.io.weights import load_pretrained
from hi2m.model.classifier import VideoClassifier
from hi2m.train.config import as_config
from hi2m.train.data import eval_dataset
from hi2m.viz.figures import confusion_figure, hrd_figure
from hi2m.viz.plots import (
    hrd_health_figure,
    hsm_figure,
    loss_stats_figure,
    loss_stats_table,
    tsne_embedding,
    tsne_figure,
)


@dataclass
class Target:
    """What was given: the model directory and, when there is one, its run directory."""

    model_dir: Path | None
    run_dir: Path | None
    config: dict[str, Any] = field(default_factory=dict)


def resolve(path: str | Path) -> Target:
    """A run directory (holding ``model/``), a model directory, or a model directory inside a run."""
    import yaml

    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: not a directory (give a run directory or a model directory)")
    if (p / "config.json").is_file():
        model_dir, run_dir = p, (p.parent if (p.parent / "config.yaml").is_file() else None)
    elif (p / "model" / "config.json").is_file() or (p / "config.yaml").is_file():
        model_dir = p / "model" if (p / "model" / "config.json").is_file() else None
        run_dir = p
    else:
        raise FileNotFoundError(f"{p}: neither a run directory (config.yaml, model/) nor a model directory (config.json)")
    config = {}
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    return Target(model_dir, run_dir, config)


# ---- clips -----------------------------------------------------------------------------------

def load_video_clips(paths: Sequence[str | Path], cfg, stride: int, windows: int = 1) -> torch.Tensor:
    """``windows`` evenly spaced windows of each video (looped if short), normalised: (B, K, C, T, S, S)."""
    transform = EvalViews(cfg.image_size, 1, cfg.pixel_mean, cfg.pixel_std)
    out = []
    for path in paths:
        with file_boundary(path), open_clip_source(path) as src:  # any failure: DecodeError naming the file
            clips = read_windows(src, eval_windows(src.num_frames, cfg.num_frames, stride, windows))
        out.append(torch.stack([transform(c) for c in clips]))  # (K, C, T, S, S)
    return torch.stack(out)


def run_clips(config: dict[str, Any], split_key: str, limit: int, model_cfg, windows: int = 1):
    """The first ``limit`` readable clips of a run's dataset split (``data.<split_key>``), read by the engine's
    evaluation dataset (the one evaluation transform; files, frame folders or in-memory SynthFace alike):
    (names, labels, videos (B, V, C, T, S, S)) with V = ``windows`` x the run's spatial views."""
    cfg = as_config(config).replace(data={"num_frames": model_cfg.num_frames, "image_size": model_cfg.image_size,
                                          "temporal_views": windows})
    dataset = eval_dataset(cfg, model_cfg, getattr(cfg.data, split_key))
    names, labels, videos = [], [], []
    for i in range(len(dataset)):
        if len(videos) == limit:
            break
        item = dataset[i]
        if "error" in item:
            continue
        video = item["video"]
        videos.append(video.reshape(-1, *video.shape[-4:]))  # (V, C, T, S, S)
        names.append(Path(str(item["path"])).name)
        labels.append(int(item["label"]))
    if not videos:
        raise ValueError(f"no readable clip in the run's {getattr(cfg.data, split_key)!r} split")
    return names, labels, torch.stack(videos)


def unnormalise(video: torch.Tensor, cfg) -> torch.Tensor:
    """Normalised (..., C, T, H, W) -> [0, 1]."""
    shape = (cfg.in_chans, 1, 1, 1)
    return (video * torch.tensor(cfg.pixel_std).view(shape) + torch.tensor(cfg.pixel_mean).view(shape)).clamp(0, 1)


# ---- pretraining figures ---------------------------------------------------------------------

@torch.no_grad()
def hrd_maps(model, video: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """HRD importance P and one visible-token draw from it, both (B, T', H', W') (visible as bool)."""
    probs = importance(model, video)  # (B, N)
    g = torch.Generator().manual_seed(seed)
    _, mask = model.draw_mask(video, g)
    visible = ~mask.bool_masked  # (B, N)
    grid = model.cfg.grid
    return probs.view(-1, *grid), visible.view(-1, *grid)


def pretraining_figures(model, clips: torch.Tensor, names: Sequence[str], out: Path, seed: int = 0) -> list[Path]:
    """HRD figure per clip (HRD models only) and one HSM figure for the batch. clips (B, C, T, S, S)."""
    cfg = model.cfg
    written = []
    if cfg.mask_type == "hrd":
        probs, visible = hrd_maps(model, clips, seed)
        for b, name in enumerate(names):
            written.append(hrd_figure(unnormalise(clips[b], cfg), probs[b], visible[b], out / f"hrd_{b:02d}.png",
                                      title=f"HRD: {name}"))
    torch.manual_seed(seed)
    with torch.no_grad():
        result = model(clips)
    frames = unnormalise(clips, cfg)[:, :, cfg.num_frames // 2]  # (B, C, S, S) middle frames
    written.append(hsm_figure(frames, result.sample_loss, result.weights, out / "hsm.png", names=names,
                              title=f"HSM ({cfg.hsm_activation}, hsm={'on' if cfg.hsm else 'off'})"))
    return written


# ---- fine-tuning figures ---------------------------------------------------------------------

@torch.no_grad()
def pooled_features(model, videos: torch.Tensor, batch: int = 8) -> np.ndarray:
    """Pooled classifier features (N, D) of clips (N, V, C, T, S, S), averaged over their V views."""
    feats = []
    for i in range(0, len(videos), batch):
        clips = videos[i:i + batch]  # (B, V, C, T, S, S)
        b, v = clips.shape[:2]
        _, pooled = model.forward_features(clips.flatten(0, 1))  # (B*V, D)
        feats.append(pooled.view(b, v, -1).mean(1).numpy())
    return np.concatenate(feats)


def finetuning_figures(model, run_dir: Path, config: dict[str, Any], out: Path, max_clips: int = 300) -> list[Path]:
    written = []
    metrics = run_dir / "metrics.json"
    names = list(model.class_names)
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        written.append(confusion_figure(torch.tensor(m["confusion"]), names, out / "confusion.png",
                                        title=f"UAR {100 * m['uar']:.1f}  WAR {100 * m['war']:.1f}"))
    if config:
        _, targets, videos = run_clips(config, "test_split", max_clips, model.cfg, windows=2)
        emb = tsne_embedding(pooled_features(model, videos))
        written.append(tsne_figure(emb, targets, names, out / "tsne.png",
                                   title=f"t-SNE of pooled features, {len(targets)} test clips"))
    return written


# ---- losses ------------------------------------------------------------------------------

def read_loss_stats(run_dir: Path) -> list[dict[str, float]]:
    """Per-epoch rows of ``loss_stats.csv``, or the ``epoch/*`` columns of ``logs/metrics.csv``."""
    path = run_dir / "loss_stats.csv"
    rows: list[dict[str, float]] = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
    elif (run_dir / "logs" / "metrics.csv").is_file():
        with open(run_dir / "logs" / "metrics.csv", newline="") as f:
            for r in csv.DictReader(f):
                stats = {k[len("epoch/"):]: float(v) for k, v in r.items() if k.startswith("epoch/") and v}
                if stats and r.get("epoch"):
                    rows.append({"epoch": float(r["epoch"]), **stats})
    return rows


def loss_figures(run_dir: Path, out: Path) -> list[Path]:
    rows = read_loss_stats(run_dir)
    if not rows:
        return []
    table = out / "loss_stats.txt"
    out.mkdir(parents=True, exist_ok=True)
    table.write_text(loss_stats_table(rows))
    return [table, loss_stats_figure(rows, out / "loss_stats.png")]


def read_hrd_health(run_dir: Path) -> list[dict[str, float]]:
    """The ``train/hrd_*`` diagnostics of every logged step, from ``logs/metrics.csv`` and the logs of
    resumed sessions (``logs/resume-*/``), sorted by step (a resumed session's rows win)."""
    by_step: dict[float, dict[str, float]] = {}
    logs = [run_dir / "logs" / "metrics.csv"] + sorted((run_dir / "logs").glob("resume-*/metrics.csv"))
    for path in logs:
        if not path.is_file():
            continue
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                vals = {k[len("train/hrd_"):]: float(v) for k, v in r.items() if k.startswith("train/hrd_") and v}
                if vals and r.get("step"):
                    by_step[float(r["step"])] = {"step": float(r["step"]), **vals}
    return [by_step[k] for k in sorted(by_step)]


def hrd_health_figures(run_dir: Path, out: Path) -> list[Path]:
    rows = read_hrd_health(run_dir)
    if not rows:
        return []
    model = run_dir / "model" / "config.json"
    uniform = None
    if model.is_file():
        ratio = json.loads(model.read_text()).get("model", {}).get("mask_ratio")
        uniform = None if ratio is None else 1.0 - float(ratio)  # ~N_v / N
    return [hrd_health_figure(rows, out / "hrd_health.png", uniform_overlap=uniform)]


def visualize(path: str | Path, out: str | Path | None = None, videos: Sequence[str] = (), num_clips: int = 6,
              seed: int = 0) -> tuple[list[Path], list[str]]:
    """Write every figure ``path`` supports; returns (files written, notes on what was skipped)."""
    target = resolve(path)
    if out is None:
        base = target.run_dir or target.model_dir
        out = base / "figures"
    out = Path(out)
    written: list[Path] = []
    notes: list[str] = []
    data = target.config.get("data", {})
    stride = int(data.get("stride", 4))
    model = load_pretrained(target.model_dir) if target.model_dir is not None else None
    if model is None:
        notes.append("no model directory: model figures skipped")
    elif isinstance(model, VideoClassifier):
        if target.run_dir is None:
            notes.append("a bare classifier directory: confusion / t-SNE need a run directory")
        else:
            written += finetuning_figures(model, target.run_dir, target.config, out)
    else:
        clips = None
        if videos:
            clips, names = load_video_clips(list(videos), model.cfg, stride)[:, 0], [Path(p).name for p in videos]
        elif target.config:
            names, _, views = run_clips(target.config, "train_split", num_clips, model.cfg)
            clips = views[:, 0]  # (B, C, T, S, S)
        else:
            notes.append("pretraining model without a run config: give clips with --video for HRD / HSM figures")
        if clips is not None:
            written += pretraining_figures(model, clips, names, out, seed)
            if model.cfg.mask_type != "hrd":
                notes.append(f"mask_type is {model.cfg.mask_type!r}: no HRD figure")
    if target.run_dir is not None:
        losses = loss_figures(target.run_dir, out)
        written += losses + hrd_health_figures(target.run_dir, out)
        if not losses and not isinstance(model, VideoClassifier):
            notes.append("no loss_stats.csv or epoch statistics in logs/metrics.csv")
    return written, notes
