"""Measurements on a trained model: where HRD's importance lands, whether its policy is healthy, and
what reconstruction finds hard."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hi2m.model import HI2M
from hi2m.model.hrd import importance_distribution, sample_without_replacement


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


# ---- HRD health: is the policy learning, and is it still sampling? ------------------------------


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..M along the last dimension, ties sharing their average rank (as scipy's rankdata).
    x (B, M) -> (B, M) float64. Pairwise, in chunks of rows: O(M^2) memory per row."""
    out = []
    for chunk in x.double().split(8):
        less = (chunk[:, None, :] < chunk[:, :, None]).sum(-1).double()  # (b, M) values below each entry
        equal = (chunk[:, None, :] == chunk[:, :, None]).sum(-1).double()  # (b, M) ties, itself included
        out.append(less + 0.5 * (equal - 1) + 1)
    return torch.cat(out)


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each row of a with the same row of b; 0 for a constant row
    (e.g. a uniform policy). a, b (B, M) -> (B,) float64."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    denom = (ra.pow(2).sum(-1) * rb.pow(2).sum(-1)).sqrt()  # (B,)
    return torch.where(denom > 0, (ra * rb).sum(-1) / denom.clamp_min(1e-300), torch.zeros_like(denom))


@torch.no_grad()
def hrd_diagnostics(
    log_probs: torch.Tensor,
    masked: torch.Tensor,
    token_loss: torch.Tensor,
    num_visible: int,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Health signals of the HRD policy on one batch (docs/paper-notes.md, HRD dynamics).

    - ``entropy``: mean H(P) in nats; ``kl_uniform``: mean KL(P || uniform) = log N - H(P);
    - ``spearman``: Spearman between log P (monotone in the policy's logits) and the detached
      per-token losses over each clip's masked tokens, mean over clips: does P rank hard tokens high?
    - ``loss_cv``: mean within-clip coefficient of variation of those token losses (how much there is to find);
    - ``overlap``: mean share of tokens two independent visible-set draws from P have in common
      (N_v / N for a uniform policy, 1 for a policy collapsed to a fixed top-k).
    log_probs (B, N), masked (B, N_m) token indices, token_loss (B, N_m) -> floats.
    """
    log_probs = log_probs.detach().float()
    B, N = log_probs.shape
    entropy = -(log_probs.exp() * log_probs).sum(-1)  # (B,)
    lp_masked = log_probs.gather(1, masked)  # (B, N_m)
    tok = token_loss.detach().double()  # (B, N_m)
    cv = tok.std(-1, unbiased=False) / tok.mean(-1).clamp_min(1e-12)  # (B,)
    first = sample_without_replacement(log_probs, num_visible, generator)  # (B, N_v)
    second = sample_without_replacement(log_probs, num_visible, generator)  # (B, N_v)
    in_first = torch.zeros(B, N, dtype=torch.bool, device=log_probs.device).scatter_(1, first, True)
    overlap = in_first.gather(1, second).float().mean(-1)  # (B,)
    return {
        "entropy": float(entropy.mean()),
        "kl_uniform": float(math.log(N) - entropy.mean()),
        "spearman": float(spearman_rows(lp_masked, tok).mean()),
        "loss_cv": float(cv.mean()),
        "overlap": float(overlap.mean()),
    }


@torch.no_grad()
def uniform_token_losses(model: HI2M, video: torch.Tensor, draws: int = 8,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token reconstruction loss under *uniform random* masking (what reconstruction finds hard,
    independent of where the policy would mask): ``draws`` random masks at the model's ratio, each
    token's Eq. 1 loss averaged over the draws that masked it.
    video (B, C, T, H, W) normalised -> (loss (B, N), times masked (B, N)); loss is 0 where never masked."""
    from hi2m.model.masking import Mask, random_visible

    B, N, n_vis = video.shape[0], model.cfg.num_tokens, model.cfg.num_visible
    total = torch.zeros(B, N, device=video.device)
    count = torch.zeros(B, N, device=video.device)
    for _ in range(draws):
        mask = Mask.from_visible(random_visible(B, N, n_vis, generator, video.device), N, check=False)
        out = model(video, mask=mask)
        total.scatter_add_(1, mask.masked, out.token_loss.float())
        count.scatter_add_(1, mask.masked, torch.ones_like(out.token_loss, dtype=torch.float32))
    return total / count.clamp_min(1), count
