"""Masking strategies behind one interface: ``random`` (per token), ``tube`` (VideoMAE), ``hrd`` (learned).

Every strategy returns a :class:`Mask` holding the sorted visible indices the encoder sees, the
sorted masked indices the decoder reconstructs and, for ``hrd``, log P of the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from hi2m.model.config import HI2MConfig, round_half_up
from hi2m.model.hrd import TokenImportanceNet, importance_distribution, sample_without_replacement


@dataclass
class Mask:
    visible: torch.Tensor  # (B, N_v) ascending token indices fed to the encoder
    masked: torch.Tensor  # (B, N_m) ascending token indices the decoder predicts
    log_probs: torch.Tensor | None = None  # (B, N) log P of the HRD policy, else None

    @property
    def num_tokens(self) -> int:
        return self.visible.shape[1] + self.masked.shape[1]

    @property
    def bool_masked(self) -> torch.Tensor:
        """(B, N) True where the token is masked (the transformers ``bool_masked_pos`` convention)."""
        m = torch.ones(self.visible.shape[0], self.num_tokens, dtype=torch.bool, device=self.visible.device)
        return m.scatter(1, self.visible, False)

    @classmethod
    def from_visible(
        cls, visible: torch.Tensor, num_tokens: int, log_probs: torch.Tensor | None = None, check: bool = True
    ) -> "Mask":
        """Complete a mask from visible indices (B, N_v); rows may be in any order.

        ``check`` verifies that no index repeats (a host sync; the built-in samplers skip it)."""
        visible = visible.sort(dim=-1).values
        is_vis = torch.zeros(visible.shape[0], num_tokens, dtype=torch.bool, device=visible.device)
        is_vis.scatter_(1, visible, True)
        if check and int(is_vis.sum(1).min()) != visible.shape[1]:
            raise ValueError("visible indices repeat within a sample")
        # a stable sort on the 0/1 flag lists the masked tokens first, each group ascending
        order = torch.argsort(is_vis.to(torch.int8), dim=1, stable=True)  # (B, N)
        return cls(visible, order[:, : num_tokens - visible.shape[1]], log_probs)

    @classmethod
    def from_bool(cls, bool_masked: torch.Tensor) -> "Mask":
        """From a (B, N) bool mask (True = masked) with the same count in every row."""
        counts = (~bool_masked).sum(1)
        if int(counts.min()) != int(counts.max()):
            raise ValueError(f"every sample needs the same number of visible tokens, got {counts.tolist()}")
        order = torch.argsort((~bool_masked).to(torch.int8), dim=1, stable=True, descending=True)  # visible first
        return cls.from_visible(order[:, : int(counts[0])], bool_masked.shape[1])


@dataclass
class DecodedMask(Mask):
    """A mask whose ``masked`` lists only the tokens the decoder reconstructs (decoder masking): a subset of
    the tokens hidden from the encoder. ``bool_masked`` marks that subset: the tokens that carry a loss,
    and so HRD's reward."""

    total: int = 0  # N, all tokens

    @property
    def num_tokens(self) -> int:
        return self.total

    @property
    def bool_masked(self) -> torch.Tensor:
        m = torch.zeros(self.masked.shape[0], self.total, dtype=torch.bool, device=self.masked.device)
        return m.scatter(1, self.masked, True)


def decoder_subset(mask: Mask, keep: int, generator: torch.Generator | None = None) -> DecodedMask:
    """Keep a uniform random ``keep`` of each clip's masked tokens for the decoder (VideoMAE V2's decoder
    masking, with a random rule rather than its running cell: HRD's reward then stays an unbiased sample
    of the masked tokens' losses). mask.masked (B, N_m) -> DecodedMask with masked (B, keep), ascending."""
    B, n_m = mask.masked.shape
    noise = torch.rand(B, n_m, generator=generator, device=mask.masked.device)  # (B, N_m)
    pick = noise.argsort(dim=1)[:, :keep].sort(dim=1).values  # (B, K) positions within the masked list
    return DecodedMask(mask.visible, torch.gather(mask.masked, 1, pick), mask.log_probs, total=mask.num_tokens)


def random_visible(batch: int, num_tokens: int, num_visible: int, generator=None, device=None) -> torch.Tensor:
    """Uniform random masking per token (MAE): num_visible distinct indices per sample. -> (B, N_v)."""
    noise = torch.rand(batch, num_tokens, generator=generator, device=device)  # (B, N)
    return noise.argsort(dim=1)[:, :num_visible].sort(dim=1).values


def tube_visible(batch: int, grid: tuple[int, int, int], mask_ratio: float, generator=None, device=None) -> torch.Tensor:
    """VideoMAE tube masking: one random spatial mask repeated over every time slice. -> (B, T' * k)."""
    t, h, w = grid
    k = max(1, round_half_up(h * w * (1.0 - mask_ratio)))  # visible positions per slice
    spatial = random_visible(batch, h * w, k, generator, device)  # (B, k)
    offsets = torch.arange(t, device=spatial.device) * (h * w)  # (T',)
    return (offsets[None, :, None] + spatial[:, None, :]).flatten(1)  # (B, T' * k), ascending


class MaskGenerator(nn.Module):
    """Chooses the visible tokens of each clip; holds the HRD policy when ``mask_type == 'hrd'``."""

    def __init__(self, cfg: HI2MConfig):
        super().__init__()
        self.cfg = cfg
        self.policy = TokenImportanceNet(cfg) if cfg.mask_type == "hrd" else None

    def forward(self, tokens: torch.Tensor, generator: torch.Generator | None = None) -> Mask:
        """tokens: patch embeddings (B, N, D) (only the HRD policy reads them)."""
        cfg, (B, N) = self.cfg, tokens.shape[:2]
        if cfg.mask_type == "random":
            return Mask.from_visible(random_visible(B, N, cfg.num_visible, generator, tokens.device), N, check=False)
        if cfg.mask_type == "tube":
            return Mask.from_visible(tube_visible(B, cfg.grid, cfg.mask_ratio, generator, tokens.device), N, check=False)
        x = tokens.detach() if cfg.hrd_detach_input else tokens
        log_p = importance_distribution(self.policy(x), cfg.hrd_uniform_mix)  # (B, N)
        visible = sample_without_replacement(log_p, cfg.num_visible, generator)  # (B, N_v)
        return Mask.from_visible(visible, N, log_p, check=False)
