"""More figures from a run: HSM weights per clip (paper Fig. 8), t-SNE of clip features (Fig. 4) and the
per-epoch loss statistics of Table 10 (a text table and a plot). matplotlib is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from hi2m.viz.figures import _pyplot, save_figure

LOSS_GROUPS = (("L_R", "L_R (total)"), ("L_appearance", "appearance"), ("L_motion", "motion"))
HRD_HEALTH = (("kl_uniform", "KL(P || uniform), nats"), ("spearman", "Spearman(P, token loss)"),
              ("overlap", "overlap of two visible draws"), ("loss_cv", "token-loss CV within a clip"))


def hsm_figure(frames: torch.Tensor, sample_loss: torch.Tensor, weights: torch.Tensor, path: str | Path,
               title: str = "", names: Sequence[str] | None = None) -> Path:
    """Clips sorted by reconstruction loss: one sample frame each, titled with L_R, the HSM weight w
    and the weighted loss w * L_R, and a bar chart of the three per clip.

    frames (B, C, H, W) in [0, 1]; sample_loss, weights (B,); names: a label per clip.
    """
    plt = _pyplot()
    loss = sample_loss.detach().double().cpu()
    w = weights.detach().double().cpu()
    order = torch.argsort(loss).tolist()
    b = len(order)
    fig = plt.figure(figsize=(max(6.0, 1.5 * b), 4.6))
    grid = fig.add_gridspec(2, b, height_ratios=[1.1, 1.0])
    for col, i in enumerate(order):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(frames[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        ax.set_title(f"L_R {loss[i]:.3f}\nw {w[i]:.2f}\nwL {w[i] * loss[i]:.3f}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[1, :])
    x = np.arange(b)
    vals = [(loss[order].numpy(), "L_R"), (w[order].numpy(), "w"), ((w * loss)[order].numpy(), "w * L_R")]
    for k, (v, name) in enumerate(vals):
        ax.bar(x + (k - 1) * 0.27, v, width=0.27, label=name)
    labels = [names[i] if names else f"clip {i}" for i in order]
    ax.set_xticks(x, labels, fontsize=7, rotation=20 if names else 0)
    ax.legend(fontsize=7)
    ax.set_xlabel("clips, easiest to hardest")
    fig.suptitle(title or "hard sample mining: per-clip loss and weight", fontsize=9)
    return save_figure(fig, path)


def tsne_embedding(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of features (N, D) (scikit-learn; PCA init, perplexity capped for small N) -> (N, 2).

    The exact gradient up to 2000 clips: scikit-learn's Barnes-Hut variant was 300x slower on 14 points
    on a 2-core machine (its OpenMP threads), and exact is O(N^2), cheap at figure sizes."""
    from sklearn.manifold import TSNE

    n = features.shape[0]
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 clips, got {n}")
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                method="exact" if n <= 2000 else "barnes_hut").fit_transform(features)


def tsne_figure(embedding: np.ndarray, labels: Sequence[int], class_names: Sequence[str], path: str | Path,
                title: str = "") -> Path:
    """Scatter of a 2-D embedding (N, 2), one colour per class."""
    plt = _pyplot()
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(class_names):
        sel = labels == k
        if sel.any():
            ax.scatter(embedding[sel, 0], embedding[sel, 1], s=22, color=cmap(k % 10), label=f"{name} ({sel.sum()})")
    ax.legend(fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "t-SNE of clip features", fontsize=9)
    return save_figure(fig, path)


def loss_stats_table(rows: Sequence[Mapping[str, float]]) -> str:
    """Table 10 as text: per epoch the mean / max / min of L_R and its appearance and motion parts."""
    head = f"{'epoch':>5} " + " ".join(f"{label[:12]:>12} {'mean':>8} {'max':>8} {'min':>8}" for _, label in LOSS_GROUPS)
    lines = [head]
    for r in rows:
        cells = []
        for key, _ in LOSS_GROUPS:
            vals = [r.get(f"{key}_{s}") for s in ("mean", "max", "min")]
            cells.append(f"{'':>12} " + " ".join(f"{v:8.4f}" if v is not None else f"{'-':>8}" for v in vals))
        lines.append(f"{int(r['epoch']):5d} " + " ".join(cells))
    return "\n".join(lines) + "\n"


def loss_stats_figure(rows: Sequence[Mapping[str, float]], path: str | Path, title: str = "") -> Path:
    """One panel per loss (L_R, appearance, motion): the per-epoch mean with the min-max band."""
    plt = _pyplot()
    epochs = np.array([float(r["epoch"]) for r in rows])
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, (key, label) in zip(axes, LOSS_GROUPS):
        if f"{key}_mean" not in rows[0] or rows[0][f"{key}_mean"] is None:
            ax.set_title(f"{label}: not logged", fontsize=9)
            continue
        mean, hi, lo = (np.array([float(r[f"{key}_{s}"]) for r in rows]) for s in ("mean", "max", "min"))
        ax.fill_between(epochs, lo, hi, alpha=0.25, label="min-max")
        ax.plot(epochs, mean, marker="o", label="mean")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title or "reconstruction loss per epoch (Table 10)", fontsize=9)
    return save_figure(fig, path)


def hrd_health_figure(rows: Sequence[Mapping[str, float]], path: str | Path, uniform_overlap: float | None = None,
                      title: str = "") -> Path:
    """HRD's health over training, one panel per diagnostic (hi2m.analysis.hrd_diagnostics) against the
    step: is P learning where reconstruction is hard (Spearman), leaving uniform (KL), still sampling
    (overlap well below 1; ``uniform_overlap`` = N_v / N is drawn for reference)?"""
    plt = _pyplot()
    steps = np.array([float(r["step"]) for r in rows])
    fig, axes = plt.subplots(1, len(HRD_HEALTH), figsize=(12, 3.0))
    for ax, (key, label) in zip(axes, HRD_HEALTH):
        values = np.array([float(r.get(key, np.nan)) for r in rows])
        ax.plot(steps, values, lw=1.2)
        if key == "overlap" and uniform_overlap is not None:
            ax.axhline(uniform_overlap, color="grey", ls="--", lw=0.8, label="uniform")
            ax.axhline(1.0, color="red", ls=":", lw=0.8, label="collapsed")
            ax.legend(fontsize=7)
        if key == "spearman":
            ax.axhline(0.0, color="grey", ls="--", lw=0.8)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
    fig.suptitle(title or "HRD policy health", fontsize=9)
    return save_figure(fig, path)


def learning_curves_figure(pretrain_curve: Sequence[tuple[int, float]], finetune_curves: Mapping[str, Sequence[tuple[int, float]]],
                           chance: float | None, path: str | Path, title: str = "", ylabel: str = "test UAR (%)") -> Path:
    """Two panels: the pretraining reconstruction loss against the step, and a value of each fine-tuning run
    (``ylabel``: its test UAR by default, with the ``chance`` level drawn when given) against the step."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps, loss = zip(*pretrain_curve)
    left.plot(steps, loss, marker=".")
    left.set_xlabel("pretraining step")
    left.set_ylabel("reconstruction loss (Eq. 1)")
    left.set_title("pretraining on unlabelled clips", fontsize=9)
    for name, curve in finetune_curves.items():
        s, value = zip(*curve)
        right.plot(s, value, marker="o", label=name)
    if chance is not None:
        right.axhline(chance, color="grey", ls="--", lw=0.8, label="chance")
    right.set_xlabel("fine-tuning step")
    right.set_ylabel(ylabel)
    right.set_title("fine-tuning on the labelled clips", fontsize=9)
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
