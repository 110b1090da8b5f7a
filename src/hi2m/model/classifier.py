"""Expression classifier on the HI2M encoder: full fine-tuning or linear probing."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from hi2m.labels import DFER_CLASSES
from hi2m.model.config import HI2MConfig
from hi2m.model.state import WarmStart, warm_start
from hi2m.model.vit import VideoEncoder, init_vit_weights, trunc_normal_


class VideoClassifier(nn.Module):
    """Encoder on all tokens -> mean pool -> norm -> dropout -> Linear head.

    Fine-tuning (VideoMAE's recipe): the encoder has no final norm; the pooled feature goes through
    ``fc_norm`` (LayerNorm). Linear probing (MAE's recipe): the encoder keeps its pretrained final norm
    and is frozen; the pooled feature goes through a BatchNorm without affine parameters.
    """

    def __init__(
        self,
        cfg: HI2MConfig,
        num_classes: int = len(DFER_CLASSES),
        class_names: tuple[str, ...] | None = None,
        linear_probe: bool = False,
        head_dropout: float = 0.0,
        head_init_scale: float = 1e-3,
    ):
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.cfg = cfg.replace(encoder_final_norm=linear_probe)
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names else tuple(DFER_CLASSES[:num_classes])
        self.linear_probe = linear_probe
        self.head_dropout = head_dropout
        self.encoder = VideoEncoder(self.cfg)
        dim = cfg.embed_dim
        self.fc_norm = None if linear_probe else nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.bn = nn.BatchNorm1d(dim, affine=False, eps=1e-6) if linear_probe else None
        self.dropout = nn.Dropout(head_dropout)
        self.head = nn.Linear(dim, num_classes)
        init_vit_weights(self)
        trunc_normal_(self.head.weight, std=0.02)
        with torch.no_grad():  # a small head: the first steps do not disturb the pretrained features
            self.head.weight.mul_(head_init_scale)
        if linear_probe:
            self.encoder.requires_grad_(False)

    def forward_features(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video (B, C, T, H, W) -> (tokens (B, N, D), pooled feature (B, D) before the head)."""
        tokens = self.encoder(video)  # (B, N, D)
        pooled = tokens.mean(dim=1)  # (B, D)
        pooled = self.bn(pooled) if self.bn is not None else self.fc_norm(pooled)
        return tokens, pooled

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, C, T, H, W) -> logits (B, num_classes)."""
        return self.head(self.dropout(self.forward_features(video)[1]))

    def train(self, mode: bool = True) -> "VideoClassifier":
        super().train(mode)
        if self.linear_probe:  # a frozen encoder stays in eval mode (no drop path)
            self.encoder.eval()
        return self

    def load_encoder(self, state_dict: Mapping[str, torch.Tensor], source: str = "pretrained encoder") -> WarmStart:
        """Start the encoder from pretrained weights (``encoder.*`` keys of an HI2M state dict, or bare
        encoder keys); returns what was loaded, what is new (the head) and what was left out (decoder,
        policy...).

        Every encoder parameter must be present with the right shape (an error names the offending key).
        A pretrained final norm is left out when this classifier has none (fine-tuning: fc_norm instead);
        linear probing requires it.
        """
        if not any(k.startswith("encoder.") for k in state_dict):
            state_dict = {f"encoder.{k}": v for k, v in state_dict.items()}
        encoder = {k: v for k, v in state_dict.items() if k.startswith("encoder.")}
        report = warm_start(self, encoder, source, required=("encoder.",))  # head, fc_norm: new
        report.left_out = sorted(report.left_out + [k for k in state_dict if not k.startswith("encoder.")])
        return report
