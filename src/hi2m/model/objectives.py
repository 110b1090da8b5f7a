"""The HI2M objectives, one paper equation per function.

Shapes: B clips, N tokens, N_m masked tokens, p patch size, ts tubelet size, C channels.
Every function here is pure (no module state); the model in ``hi2m.model.mae`` wires them up.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

TARGET_NORM_EPS = 1e-6  # VideoMAE adds it to the (unbiased) std, after the square root
HSM_STD_EPS = 1e-6  # added to sigma in Eq. 3 so one clip, or equal losses, give finite weights


# ---- Eq. 1: targets and reconstruction loss ------------------------------------------------


def tubelet_pixels(video: torch.Tensor, patch_size: int = 16, tubelet_size: int = 2) -> torch.Tensor:
    """Cut a video into tokens in the encoder's time-major order.

    video (B, C, T, H, W) -> (B, N, ts, p*p, C), pixels of each token ordered (frame, row, column, channel).
    """
    B, C, T, H, W = video.shape
    p, ts = patch_size, tubelet_size
    x = video.reshape(B, C, T // ts, ts, H // p, p, W // p, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, T', H', W', ts, p, p, C)
    return x.reshape(B, -1, ts, p * p, C)  # (B, N, ts, p*p, C)


def normalize_tubelets(tokens: torch.Tensor, eps: float = TARGET_NORM_EPS) -> torch.Tensor:
    """Per token and channel: (x - mean) / (unbiased std + eps) over the ts*p*p positions.

    tokens (B, N, ts, p*p, C) -> same shape, float32.
    """
    B, N, ts, pp, C = tokens.shape
    x = tokens.float().reshape(B, N, ts * pp, C)
    mean = x.mean(dim=2, keepdim=True)  # (B, N, 1, C)
    std = x.var(dim=2, unbiased=True, keepdim=True).sqrt()  # (B, N, 1, C)
    return ((x - mean) / (std + eps)).reshape(B, N, ts, pp, C)


def targets_from_tubelets(tokens: torch.Tensor, mode: str = "dual") -> torch.Tensor:
    """Eq. 1 targets from raw token pixels (B, M, ts, p*p, C) in [0, 1] -> (B, M, D_t), float32.

    Every token is first normalised per channel over its whole tubelet. ``dual``: the appearance
    target V^a is the normalised first frame (the paper's V[0:T:2]) and the motion target V^m the
    normalised next frame minus the normalised previous one (V[1:T:2] - V[0:T:2]); each half is
    ordered (row, column, channel). ``appearance`` / ``motion``: one half (Table 9). ``pixel``:
    VideoMAE's whole normalised tubelet, frame-major.
    """
    x = normalize_tubelets(tokens)  # (B, M, ts, pp, C)
    if mode == "pixel":
        return x.flatten(2)
    if mode not in ("dual", "appearance", "motion"):
        raise ValueError(f"unknown target mode {mode!r}")
    appearance = x[:, :, 0].flatten(2)  # (B, M, pp*C)
    if mode == "appearance":
        return appearance
    motion = (x[:, :, 1:] - x[:, :, :-1]).flatten(2)  # (B, M, (ts-1)*pp*C)
    if mode == "motion":
        return motion
    return torch.cat([appearance, motion], dim=-1)


def dual_targets(video: torch.Tensor, patch_size: int = 16, tubelet_size: int = 2) -> torch.Tensor:
    """Dual appearance / motion targets of Eq. 1 for every token of a clip.

    video (B, C, T, H, W) in [0, 1] pixel scale -> (B, N, ts*p*p*C): [V^a (p*p*C) | V^m ((ts-1)*p*p*C)],
    tokens in the encoder's time-major order (see ``targets_from_tubelets``).
    """
    return targets_from_tubelets(tubelet_pixels(video, patch_size, tubelet_size), "dual")


def reconstruction_targets(
    video: torch.Tensor, mode: str = "dual", patch_size: int = 16, tubelet_size: int = 2
) -> torch.Tensor:
    """Targets of a target mode (``dual``, ``appearance``, ``motion``, ``pixel``) for every token.
    video (B, C, T, H, W) in [0, 1] -> (B, N, D_t)."""
    return targets_from_tubelets(tubelet_pixels(video, patch_size, tubelet_size), mode)


def squared_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(pred - target)^2 in float32. pred, target (B, N_m, D_t) -> (B, N_m, D_t)."""
    return (pred.float() - target.float()).pow(2)


def token_losses(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 1 per token: mean squared error over all values of the token's target.

    With dual targets that is the mean of the appearance and motion errors (the paper's Table 10
    reports L_R as their mean). pred, target (B, N_m, D_t) -> (B, N_m), float32.
    """
    return squared_errors(pred, target).mean(dim=-1)


def sample_losses(per_token: torch.Tensor) -> torch.Tensor:
    """Eq. 1 per clip: L_R^i = 1 / (N - N_v) * sum over the masked tokens. (B, N_m) -> (B,)."""
    return per_token.mean(dim=-1)


# ---- Eq. 2-4: hard sample mining -----------------------------------------------------------

_ACTIVATIONS = {
    "softplus": F.softplus,  # Eq. 3: log(1 + e^z)
    "relu": F.relu,
    "elu": F.elu,
    "swish": F.silu,
}


def hsm_weights(
    sample_losses: torch.Tensor,
    activation: str = "softplus",
    detach: bool = True,
    eps: float = HSM_STD_EPS,
) -> torch.Tensor:
    """Eq. 2-3: w_i = act((L_R^i - mu) / sigma), mu and sigma over the batch.

    sigma is the population std (1/B, Eq. 2) plus ``eps``, so a batch of one clip or of equal losses
    gives z = 0 and finite weights. Under torch.distributed the statistics are over the global batch:
    the per-clip losses of all ranks are gathered (detached; the local ones keep their graph when
    ``detach=False``). ``activation``: softplus (paper), relu, elu, swish (Table 12).
    sample_losses (B,) -> weights (B,), float32.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown HSM activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    local = sample_losses.float()
    if detach:
        local = local.detach()
    everyone = gather_with_local_grad(local)  # (B_global,)
    mu = everyone.mean()
    sigma = (everyone - mu).pow(2).mean().sqrt()  # population std, Eq. 2
    return _ACTIVATIONS[activation]((local - mu) / (sigma + eps))


def hsm_loss(sample_losses: torch.Tensor, weights: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Eq. 4: L_HSM = sum_i w_i L_R^i (``sum``) or its batch mean (``mean``, the default:
    independent of the batch size, so the learning rate does not have to follow it). (B,), (B,) -> ()."""
    weighted = weights * sample_losses.float()  # (B,)
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean":
        return weighted.mean()
    raise ValueError(f"unknown reduction {reduction!r}")


def gather_with_local_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' x (B_r,) concatenated in rank order; the local slice is x itself (keeps autograd).

    Without an initialised process group this is x. Ranks may hold different batch sizes.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(int(s) for s in sizes))
    padded = torch.zeros(longest, dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x.detach()
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    pieces = [p[: int(s)] for p, s in zip(parts, sizes)]
    pieces[rank] = x
    return torch.cat(pieces)


# ---- Eq. 7-8: hard region discovery and the joint loss ---------------------------------------


HRD_ADVANTAGES = ("none", "mean", "zscore")
HRD_STD_EPS = 1e-6  # added to the per-clip std of the z-scored advantage


def hrd_advantages(token_losses: torch.Tensor, masked: torch.Tensor, mode: str = "none",
                   eps: float = HRD_STD_EPS) -> torch.Tensor:
    """The reward each masked token carries in Eq. 7, detached; 0 on visible tokens.

    ``none``: the token's reconstruction loss L_R^{i,j} itself (Eq. 7 as written). ``mean``: minus the
    mean loss of the clip's masked tokens (a per-clip baseline). ``zscore``: that difference divided by
    the population std of the clip's masked-token losses plus ``eps``. See docs/paper-notes.md (HRD
    dynamics) for why the literal reward barely moves P and what the baselines change.
    token_losses (B, N) (only masked entries are read), masked (B, N) bool -> (B, N), float32 or float64.
    """
    if mode not in HRD_ADVANTAGES:
        raise ValueError(f"unknown HRD advantage {mode!r}; choose from {HRD_ADVANTAGES}")
    dtype = torch.promote_types(token_losses.dtype, torch.float32)  # float32, or float64 when given float64
    m = masked.to(dtype)  # (B, N)
    zero = torch.zeros((), device=token_losses.device, dtype=dtype)
    reward = torch.where(masked, token_losses.detach().to(dtype), zero)  # (B, N); visible entries never read
    if mode == "none":
        return reward
    n = m.sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1)
    mean = reward.sum(dim=1, keepdim=True) / n  # (B, 1)
    centred = (reward - mean) * m  # (B, N)
    if mode == "mean":
        return centred
    std = (centred.pow(2).sum(dim=1, keepdim=True) / n).sqrt()  # (B, 1) population std
    return centred / (std + eps)


def hrd_loss(
    log_probs: torch.Tensor,
    token_losses: torch.Tensor,
    masked: torch.Tensor,
    reduction: str = "mean",
    advantage: str = "none",
) -> torch.Tensor:
    """Eq. 7, the policy-gradient loss of hard region discovery (REINFORCE with reward L_R^{i,j}).

    ``mean`` (default): mean over clips j of [ - mean over masked tokens i of log P_i^j * A^{i,j} ],
    the normalisation AdaMAE tuned lambda = 1e-4 with; ``sum``: the paper's double sum. The reward
    A^{i,j} is L_R^{i,j} itself with ``advantage='none'`` (the paper) or a per-clip baseline of it
    (:func:`hrd_advantages`). The token losses are detached: no gradient of this term reaches the
    autoencoder through L_R.
    log_probs (B, N) = log P, token_losses (B, N) (only masked entries are read), masked (B, N) bool -> ().
    """
    reward = hrd_advantages(token_losses, masked, advantage)  # (B, N), 0 on visible tokens
    per_clip = -(log_probs * reward).sum(dim=1)  # (B,)
    if reduction == "sum":
        return per_clip.sum()
    if reduction == "mean":
        return (per_clip / masked.sum(dim=1).clamp_min(1)).mean()
    raise ValueError(f"unknown reduction {reduction!r}")


def policy_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """H(P) = -sum_i P_i log P_i per clip, in nats (log N for a uniform P). log_probs (B, N) -> (B,)."""
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def hrd_objective(
    log_probs: torch.Tensor,
    token_losses: torch.Tensor,
    masked: torch.Tensor,
    reduction: str = "mean",
    advantage: str = "none",
    entropy_weight: float = 0.0,
    loss_scale: float = 1.0,
) -> torch.Tensor:
    """What the policy minimises: ``loss_scale`` x L_HRD (Eq. 7, :func:`hrd_loss`) minus ``entropy_weight``
    x the mean entropy of P (an entropy bonus that keeps the sampling stochastic; 0 gives Eq. 7 alone).
    ``loss_scale`` turns a ``sum`` over a random subset of the masked tokens (decoder masking) into an
    unbiased estimate of the sum over all of them. -> ()."""
    loss = loss_scale * hrd_loss(log_probs, token_losses, masked, reduction, advantage)
    if entropy_weight:
        loss = loss - entropy_weight * policy_entropy(log_probs).mean()
    return loss


def joint_loss(l_hsm: torch.Tensor, l_hrd: torch.Tensor | None, lam: float = 1e-4) -> torch.Tensor:
    """Eq. 8: L = L_HSM + lambda * L_HRD (L_HRD absent when HRD is off)."""
    return l_hsm if l_hrd is None else l_hsm + lam * l_hrd
