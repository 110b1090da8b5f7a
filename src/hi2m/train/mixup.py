"""Mixup / CutMix for video clips with label smoothing, and the matching soft-target cross-entropy.

One mixing coefficient per batch; each clip is mixed with its partner in the reversed batch
(``x.flip(0)``), so odd batch sizes work (the middle clip is paired with itself). CutMix cuts one box
in space and uses it on every frame: clips are mixed in space, not in time.

Formulas (K classes, smoothing eps):
- smooth(y) = (1 - eps) * one_hot(y) + eps / K   (the true class gets 1 - eps + eps/K)
- soft targets = lam * smooth(y) + (1 - lam) * smooth(y.flip(0))
- Mixup: lam ~ Beta(a, a), x = lam * x + (1 - lam) * x.flip(0)
- CutMix: lam ~ Beta(a, a) sizes a box of area (1 - lam) * H * W at a uniform centre, clipped to the
  frame; lam is then corrected to 1 - box area / (H * W).
All randomness comes from an optional ``torch.Generator`` (the global one otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


# ---- random draws from a torch.Generator ----------------------------------------------------------


def _uniform(generator: torch.Generator | None) -> float:
    """One U[0, 1) draw."""
    return float(torch.rand((), generator=generator))


def _normal(generator: torch.Generator | None) -> float:
    """One N(0, 1) draw."""
    return float(torch.randn((), generator=generator))


def sample_gamma(shape: float, generator: torch.Generator | None = None) -> float:
    """One Gamma(shape, 1) draw (Marsaglia & Tsang 2000; shape < 1 via Gamma(shape + 1) * U^(1/shape))."""
    if shape <= 0:
        raise ValueError(f"shape must be > 0, got {shape}")
    if shape < 1:
        u = 1.0 - _uniform(generator)  # in (0, 1]
        return sample_gamma(shape + 1.0, generator) * u ** (1.0 / shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = _normal(generator)
        v = (1.0 + c * z) ** 3
        if v <= 0:
            continue
        u = 1.0 - _uniform(generator)  # in (0, 1], log is finite
        if math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v):
            return d * v


def sample_beta(a: float, b: float, generator: torch.Generator | None = None) -> float:
    """One Beta(a, b) draw as G_a / (G_a + G_b) with independent gammas."""
    x, y = sample_gamma(a, generator), sample_gamma(b, generator)
    if x + y == 0.0:  # both underflowed (tiny shapes): the limit is a coin flip between 0 and 1
        return float(_uniform(generator) < a / (a + b))
    return x / (x + y)


# ---- targets and losses -----------------------------------------------------------------------------


def smooth_one_hot(targets: torch.Tensor, num_classes: int, eps: float = 0.0) -> torch.Tensor:
    """(B,) class ids -> (B, K) float32: 1 - eps + eps/K on the true class, eps/K elsewhere."""
    one_hot = F.one_hot(targets.long(), num_classes).float()  # (B, K)
    return one_hot * (1.0 - eps) + eps / num_classes


def soft_target_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k q_k log softmax(logits)_k``; logits (B, K), soft targets (B, K).

    The log-softmax is taken in float32 at least (safe under bf16/fp16 autocast).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_probs = F.log_softmax(logits.to(dtype), dim=-1)  # (B, K)
    return -(soft_targets.to(dtype) * log_probs).sum(dim=-1).mean()


def label_smoothing_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, eps: float = 0.1
) -> torch.Tensor:
    """Cross-entropy against :func:`smooth_one_hot` targets, i.e. ``F.cross_entropy(label_smoothing=eps)``."""
    return soft_target_cross_entropy(logits, smooth_one_hot(targets, logits.shape[-1], eps).to(logits.device))


# ---- mixing -------------------------------------------------------------------------------------------


@dataclass
class MixResult:
    """A mixed batch and how it was made. ``box`` is (y1, y2, x1, x2), half-open, for CutMix only."""

    video: torch.Tensor  # (B, C, T, H, W)
    soft_targets: torch.Tensor  # (B, K) float32
    lam: float  # weight of the original clip (1.0 when nothing was mixed)
    mode: str  # "none", "mixup" or "cutmix"
    box: tuple[int, int, int, int] | None = None


def cutmix_box(
    height: int, width: int, lam: float, generator: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """A box of about (1 - lam) * H * W pixels at a uniform centre, clipped to the frame: (y1, y2, x1, x2)."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(height, (), generator=generator))
    cx = int(torch.randint(width, (), generator=generator))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return y1, y2, x1, x2


class Mixup:
    """Batch-level Mixup / CutMix with label smoothing for clips (B, C, T, H, W) and targets (B,).

    With probability ``prob`` a batch is mixed: CutMix with probability ``switch_prob`` when both alphas
    are positive, else whichever alpha is positive (both 0: never mixed). Unmixed batches are returned
    as they are, with smoothed one-hot targets. ``mixer(video, targets)`` returns (video, soft targets);
    :meth:`mix` also reports lam, the mode and the box. The input video is never modified in place.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        num_classes: int = 7,
        generator: torch.Generator | None = None,
    ) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"alphas must be >= 0, got {mixup_alpha}, {cutmix_alpha}")
        if not (0 <= prob <= 1 and 0 <= switch_prob <= 1 and 0 <= label_smoothing < 1):
            raise ValueError("prob and switch_prob must lie in [0, 1], label_smoothing in [0, 1)")
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes
        self.generator = generator

    def __call__(
        self, video: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T, H, W), (B,) -> mixed video (B, C, T, H, W), soft targets (B, K)."""
        result = self.mix(video, targets, generator)
        return result.video, result.soft_targets

    def _choose_mode(self, generator: torch.Generator | None) -> str:
        """'none', 'mixup' or 'cutmix' for this batch."""
        if self.prob == 0 or (self.mixup_alpha == 0 and self.cutmix_alpha == 0):
            return "none"
        if _uniform(generator) >= self.prob:
            return "none"
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            return "cutmix" if _uniform(generator) < self.switch_prob else "mixup"
        return "cutmix" if self.cutmix_alpha > 0 else "mixup"

    def mix(
        self, video: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None
    ) -> MixResult:
        """Mix one batch; ``generator`` overrides the one given at construction."""
        generator = generator if generator is not None else self.generator
        if video.ndim < 3 or not video.is_floating_point():
            got = f"{video.dtype} {tuple(video.shape)}"
            raise ValueError(f"need a floating-point batch (B, C, T, H, W), got {got}")
        if targets.shape != (video.shape[0],):
            raise ValueError(f"need targets (B,) = ({video.shape[0]},), got {tuple(targets.shape)}")
        smoothed = smooth_one_hot(targets, self.num_classes, self.label_smoothing)  # (B, K)
        mode = self._choose_mode(generator)
        if mode == "none":
            return MixResult(video, smoothed, 1.0, mode)
        box = None
        if mode == "mixup":
            lam = sample_beta(self.mixup_alpha, self.mixup_alpha, generator)
            mixed = video * lam + video.flip(0) * (1.0 - lam)  # (B, C, T, H, W)
        else:
            H, W = video.shape[-2:]
            box = cutmix_box(H, W, sample_beta(self.cutmix_alpha, self.cutmix_alpha, generator), generator)
            y1, y2, x1, x2 = box
            mixed = video.clone()  # (B, C, T, H, W)
            mixed[..., y1:y2, x1:x2] = video.flip(0)[..., y1:y2, x1:x2]  # same box on every frame
            lam = 1.0 - (y2 - y1) * (x2 - x1) / (H * W)
        soft = smoothed * lam + smoothed.flip(0) * (1.0 - lam)  # (B, K)
        return MixResult(mixed, soft, lam, mode, box)
