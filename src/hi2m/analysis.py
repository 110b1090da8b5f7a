"""Measurements on a trained model: where HRD's importance lands."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hi2m.model import HI2M
from hi2m.model.hrd import importance_distribution


@torch.no_grad()
def importance(model: HI2M, video: torch.Tensor) -> torch.Tensor:
    """HRD token importance P (B, N) for normalised clips (B, C, T, H, W)."""
    if model.masker.policy is None:
        raise ValueError("this model has no HRD policy (mask_type is not 'hrd')")
    tokens = model.encoder.embed(video)  # (B, N, D)
    return importance_distribution(model.masker.policy(tokens), model.cfg.hrd_uniform_mix).exp()


def token_coverage(region: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """Share of each token's pixels inside a region: (B, T, H, W) bool -> (B, N) in [0, 1], time-major."""
    k = (tubelet_size, patch_size, patch_size)
    return F.avg_pool3d(region.float()[:, None], kernel_size=k, stride=k).flatten(1)  # (B, N)


@torch.no_grad()
def region_share(model: HI2M, video: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip: (HRD's probability mass on the region = sum_i P_i r_i, the region's share of the clip =
    mean_i r_i, i.e. what uniform masking would put there). video (B, C, T, H, W) normalised,
    region (B, T, H, W) bool -> two (B,) tensors."""
    p = importance(model, video)  # (B, N)
    r = token_coverage(region, model.cfg.patch_size, model.cfg.tubelet_size)  # (B, N)
    return (p * r).sum(1), r.mean(1)
