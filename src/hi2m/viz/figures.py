"""Figures: confusion matrices (paper Fig. 3) and HRD importance / mask maps (Fig. 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out, write as PNG (creating the folder) and close a matplotlib figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows = ground truth) with counts, saved as PNG."""
    plt = _pyplot()
    counts = confusion.double()
    rows = counts.sum(1, keepdim=True).clamp_min(1)
    norm = (counts / rows).numpy()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * k, 0.8 + 0.7 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{100 * norm[i, j]:.0f}\n({int(counts[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    return save_figure(fig, path)


def hrd_figure(
    video: torch.Tensor,
    probs: torch.Tensor,
    visible: torch.Tensor,
    path: str | Path,
    region: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """One column per tubelet: input frame, HRD importance P (heat map), visible (white) / masked
    (black) tokens, and, when given, the ground-truth expression regions.

    video (C, T, H, W) in [0, 1]; probs (T', H', W'); visible (T', H', W') bool; region (T, H, W) bool.
    """
    plt = _pyplot()
    t_tok = probs.shape[0]
    ts = video.shape[1] // t_tok
    rows = 4 if region is not None else 3
    fig, axes = plt.subplots(rows, t_tok, figsize=(1.3 * t_tok, 1.4 * rows), squeeze=False)
    vmax = float(probs.max())
    for t in range(t_tok):
        frame = video[:, t * ts].permute(1, 2, 0).clamp(0, 1).numpy()
        axes[0, t].imshow(frame)
        axes[1, t].imshow(probs[t].numpy(), cmap="inferno", vmin=0, vmax=vmax)
        axes[2, t].imshow(visible[t].float().numpy(), cmap="gray", vmin=0, vmax=1)
        if region is not None:
            axes[3, t].imshow(frame)
            axes[3, t].imshow(region[t * ts].float().numpy(), cmap="Greens", alpha=0.5, vmin=0, vmax=1)
        axes[0, t].set_title(f"t={t * ts}", fontsize=7)
    labels = ["input", "HRD P", "visible", "regions"]
    for r in range(rows):
        axes[r, 0].set_ylabel(labels[r], fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
