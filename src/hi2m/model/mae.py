"""The HI2M pretraining model: encoder on visible tokens, decoder, HRD masking, HSM-weighted loss.

    video -> tubelet tokens -> [mask generator picks visible tokens] -> encoder (visible only)
          -> decoder ([visible, mask tokens]) -> predictions for the masked tokens
          -> dual targets (Eq. 1) -> per-token / per-clip L_R -> HSM weights (Eq. 2-4)
          -> L = L_HSM + lambda * L_HRD (Eq. 7-8)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from hi2m.model import objectives as obj
from hi2m.model.masking import DecodedMask, Mask, MaskGenerator, decoder_subset
from hi2m.model.config import HI2MConfig
from hi2m.model.vit import Block, VideoEncoder, gather_tokens, init_vit_weights, sinusoid_table, trunc_normal_


@dataclass
class PretrainOutput:
    """What one forward pass returns: the loss and everything a run logs or plots."""

    loss: torch.Tensor  # () L of Eq. 8, the value to backpropagate
    loss_hsm: torch.Tensor  # () L_HSM (Eq. 4); the plain mean of L_R when HSM is off
    loss_hrd: torch.Tensor | None  # () L_HRD (Eq. 7, with the configured advantage and entropy bonus), None when HRD is off
    sample_loss: torch.Tensor  # (B,) L_R^i, detached
    sample_loss_appearance: torch.Tensor | None  # (B,) appearance part of L_R^i (dual target), detached
    sample_loss_motion: torch.Tensor | None  # (B,) motion part of L_R^i (dual target), detached
    weights: torch.Tensor  # (B,) HSM weights w_i (ones when HSM is off)
    token_loss: torch.Tensor  # (B, N_m) per-token L_R of the masked tokens, detached
    pred: torch.Tensor  # (B, N_m, D_t) decoder predictions for the masked tokens
    mask: Mask  # visible / masked indices and log P

    @property
    def probs(self) -> torch.Tensor | None:
        """(B, N) HRD token-importance P, or None for random / tube masking."""
        return None if self.mask.log_probs is None else self.mask.log_probs.detach().exp()

    @property
    def visible(self) -> torch.Tensor:
        return self.mask.visible


class VideoDecoder(nn.Module):
    """Light transformer decoder: the visible encodings plus mask tokens -> values of the masked tokens."""

    def __init__(self, cfg: HI2MConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio, cfg.qkv_bias, 0.0, cfg.norm_eps)
            for _ in range(cfg.decoder_depth)
        )
        eps = cfg.norm_eps if cfg.decoder_norm_eps is None else cfg.decoder_norm_eps
        self.norm = nn.LayerNorm(cfg.decoder_dim, eps=eps)
        self.head = nn.Linear(cfg.decoder_dim, cfg.target_dim)

    def forward(self, x: torch.Tensor, num_masked: int) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)  # (B, N, D_d)
        return self.head(self.norm(x[:, -num_masked:]))  # (B, N_m, D_t)


class HI2M(nn.Module):
    """HI2M masked video autoencoder for pretraining (Sec. 3).

    ``forward(video)`` takes clips normalised with ``cfg.pixel_mean`` / ``cfg.pixel_std``; the targets are
    computed from the same clips brought back to [0, 1].
    """

    def __init__(self, cfg: HI2MConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoEncoder(cfg)
        self.masker = MaskGenerator(cfg)
        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.register_buffer("decoder_pos_embed", sinusoid_table(cfg.num_tokens, cfg.decoder_dim)[None], persistent=False)
        self.decoder = VideoDecoder(cfg)
        shape = (1, cfg.in_chans, 1, 1, 1)
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(shape), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(shape), persistent=False)
        init_vit_weights(self)
        trunc_normal_(self.mask_token)
        if self.masker.policy is not None:
            self.masker.policy.reset_parameters()

    # ---- the three stages ---------------------------------------------------------------
    def draw_mask(self, video: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, Mask]:
        """Embed video (B, C, T, H, W) into tokens (B, N, D) and draw the configured mask for them (for HRD:
        a sample from the policy's importance P, Eq. 5-6)."""
        tokens = self.encoder.embed(video)  # (B, N, D)
        return tokens, self.masker(tokens, generator)

    def forward_encoder(
        self, video: torch.Tensor, mask: Mask | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Mask]:
        """video (B, C, T, H, W) -> visible encodings (B, N_v, D) and the mask used."""
        if mask is None:
            tokens, mask = self.draw_mask(video, generator)
        else:
            tokens = self.encoder.embed(video)  # (B, N, D)
        return self.encoder.forward_tokens(tokens, mask.visible), mask

    def forward_decoder(self, latent: torch.Tensor, mask: Mask) -> torch.Tensor:
        """Visible encodings (B, N_v, D) -> predictions for the masked tokens (B, N_m, D_t)."""
        x = self.encoder_to_decoder(latent)  # (B, N_v, D_d)
        pos = self.decoder_pos_embed.to(x.dtype).expand(x.shape[0], -1, -1)  # (B, N, D_d)
        x_vis = x + gather_tokens(pos, mask.visible)  # (B, N_v, D_d)
        x_mask = self.mask_token.to(x.dtype) + gather_tokens(pos, mask.masked)  # (B, N_m, D_d)
        return self.decoder(torch.cat([x_vis, x_mask], dim=1), mask.masked.shape[1])

    def forward_loss(self, video: torch.Tensor, pred: torch.Tensor, mask: Mask) -> PretrainOutput:
        cfg = self.cfg
        with torch.no_grad():  # targets only for the masked tokens
            pixels = video.float() * self.pixel_std + self.pixel_mean  # (B, C, T, H, W) in [0, 1]
            tubelets = obj.tubelet_pixels(pixels, cfg.patch_size, cfg.tubelet_size)  # (B, N, ts, pp, C)
            idx = mask.masked[:, :, None, None, None].expand(-1, -1, *tubelets.shape[2:])
            target = obj.targets_from_tubelets(torch.gather(tubelets, 1, idx), cfg.target)  # (B, N_m, D_t)
        sq = obj.squared_errors(pred, target)  # (B, N_m, D_t)
        tok = sq.mean(dim=-1)  # (B, N_m) Eq. 1 per token
        rec = obj.sample_losses(tok)  # (B,) L_R^i

        app = mot = None
        if cfg.target == "dual":
            half = cfg.patch_size**2 * cfg.in_chans
            sq = sq.detach()
            app = sq[..., :half].mean(dim=(1, 2))  # (B,)
            mot = sq[..., half:].mean(dim=(1, 2))  # (B,)

        if cfg.hsm:
            w = obj.hsm_weights(rec, cfg.hsm_activation, detach=cfg.hsm_detach_weights)  # (B,)
        else:
            w = torch.ones_like(rec)
        l_hsm = obj.hsm_loss(rec, w, cfg.hsm_reduction if cfg.hsm else "mean")

        l_hrd = None
        if mask.log_probs is not None:
            full = torch.zeros_like(mask.log_probs).scatter(1, mask.masked, tok.detach())  # (B, N)
            scale = 1.0
            if isinstance(mask, DecodedMask) and cfg.hrd_reduction == "sum":  # Eq. 7's sum over a sample of M
                scale = (mask.total - mask.visible.shape[1]) / mask.masked.shape[1]
            l_hrd = obj.hrd_objective(mask.log_probs, full, mask.bool_masked, cfg.hrd_reduction,
                                      cfg.hrd_advantage, cfg.hrd_entropy, loss_scale=scale)
        return PretrainOutput(
            loss=obj.joint_loss(l_hsm, l_hrd, cfg.hrd_lambda),
            loss_hsm=l_hsm,
            loss_hrd=l_hrd,
            sample_loss=rec.detach(),
            sample_loss_appearance=app,
            sample_loss_motion=mot,
            weights=w.detach(),
            token_loss=tok.detach(),
            pred=pred,
            mask=mask,
        )

    def forward(
        self, video: torch.Tensor, mask: Mask | None = None, generator: torch.Generator | None = None
    ) -> PretrainOutput:
        """video (B, C, T, H, W), normalised. ``mask`` overrides the configured masking (e.g. for parity tests)."""
        latent, mask = self.forward_encoder(video, mask, generator)
        if self.training and self.cfg.decoder_mask_ratio > 0:  # decoder masking: reconstruct a subset
            mask = decoder_subset(mask, self.cfg.num_decoded, generator)
        pred = self.forward_decoder(latent, mask)
        return self.forward_loss(video, pred, mask)

    # ---- optimiser helpers -----------------------------------------------------------------
    def hrd_parameters(self) -> list[nn.Parameter]:
        return [] if self.masker.policy is None else list(self.masker.policy.parameters())
