"""Hard Region Discovery: the token-importance policy and its sampler (Sec. 3.3, Eq. 5-6).

The policy only *chooses* tokens; it is trained by the policy-gradient loss of Eq. 7
(``hi2m.model.objectives.hrd_loss``), never by the reconstruction loss.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hi2m.model.config import HI2MConfig
from hi2m.model.vit import Block, init_vit_weights, trunc_normal_


def importance_distribution(logits: torch.Tensor, uniform_mix: float) -> torch.Tensor:
    """Token-importance scores P (Sec. 3.3): softmax over all N tokens, mixed with a uniform share.

    P = (1 - eps) * softmax(logits) + eps / N, so every P_i >= eps / N > 0 even when the softmax
    underflows: log P stays finite in Eq. 7, and sampling without replacement never has to
    pick a zero-probability token (CPU ``torch.multinomial`` silently returns duplicates then).
    logits (B, N) -> log P (B, N), computed in float32.
    """
    probs = torch.softmax(logits.float(), dim=-1)  # (B, N)
    if uniform_mix > 0:
        probs = (1.0 - uniform_mix) * probs + uniform_mix / logits.shape[-1]
    return torch.log(probs)


def sample_without_replacement(
    log_probs: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Eq. 6, I_v ~ Categorical(N_v, P): k distinct indices per row, drawn sequentially without replacement.

    Gumbel-top-k: the k largest of log P_i - log E_i with E_i ~ Exp(1) are distributed exactly like k
    successive draws without replacement from P. Unlike ``torch.multinomial`` it is one vectorised
    top-k on any device and reproducible with a generator. log_probs (B, N) -> indices (B, k), ascending.
    """
    if not 0 < k <= log_probs.shape[-1]:
        raise ValueError(f"cannot draw {k} of {log_probs.shape[-1]} tokens")
    noise = torch.empty(log_probs.shape, device=log_probs.device, dtype=torch.float32)
    noise.exponential_(generator=generator)  # (B, N), Exp(1)
    keys = log_probs.detach().float() - torch.log(noise)  # (B, N)
    idx = keys.topk(k, dim=-1).indices  # (B, k)
    return idx.sort(dim=-1).values


class TokenImportanceNet(nn.Module):
    """The HRD agent (parameters theta): patch tokens -> one logit per token.

    Patch embeddings (B, N, D) -> Linear to the policy width -> + its own learnable position
    embedding -> one pre-norm multi-head self-attention block -> LayerNorm -> Linear(., 1).
    Running at ``hrd_dim`` (default 192) instead of the encoder width keeps it cheap: at 768 over all
    800 tokens it would add ~40% to a ViT-B pretraining step (see benchmarks/pretrain_step.py).
    """

    def __init__(self, cfg: HI2MConfig):
        super().__init__()
        self.in_proj = nn.Linear(cfg.embed_dim, cfg.hrd_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.hrd_dim))
        self.block = Block(cfg.hrd_dim, cfg.hrd_heads, mlp_ratio=4.0, qkv_bias=True, eps=cfg.norm_eps)
        self.norm = nn.LayerNorm(cfg.hrd_dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.hrd_dim, 1)
        self.head_init = cfg.hrd_head_init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ViT init; the head per ``hrd_head_init``: ``zero`` makes the initial policy uniform (plain random
        masking), ``xavier`` (AdaMAE) gives content-dependent logits from the first step."""
        init_vit_weights(self)
        trunc_normal_(self.pos_embed)
        if self.head_init == "xavier":
            nn.init.xavier_uniform_(self.head.weight)
        else:
            nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.in_proj(tokens) + self.pos_embed.to(tokens.dtype)  # (B, N, d_h)
        x = self.block(x)  # (B, N, d_h)
        return self.head(self.norm(x)).squeeze(-1)  # (B, N) logits
