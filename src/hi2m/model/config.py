"""Model configuration: one flat dataclass, named sizes, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MASK_TYPES = ("random", "tube", "hrd")
TARGET_MODES = ("dual", "appearance", "motion", "pixel")
HSM_ACTIVATIONS = ("softplus", "relu", "elu", "swish")
REDUCTIONS = ("mean", "sum")
HRD_ADVANTAGES = ("none", "mean", "zscore")
HRD_HEAD_INITS = ("zero", "xavier")

# Encoder sizes (width, depth, heads). "micro" exists for tests and CPU smoke runs.
ENCODER_SIZES: dict[str, dict[str, int]] = {
    "micro": dict(embed_dim=48, depth=2, num_heads=3),
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),  # the paper's ViT-B
}
# Every named size uses the VideoMAE ViT-B decoder (384 / 4 / 6) except "micro".
MICRO_DECODER = dict(decoder_dim=32, decoder_depth=1, decoder_heads=2, hrd_dim=32, hrd_heads=2)


@dataclass
class HI2MConfig:
    """Everything that defines an HI2M model and its pretraining objective.

    Defaults follow the paper (Sec. 4.2, Eq. 8) and VideoMAE ViT-B conventions;
    see docs/paper-notes.md for the choices where the paper is silent.
    """

    # input: video (B, in_chans, num_frames, image_size, image_size), normalised with pixel_mean/std
    num_frames: int = 16
    image_size: int = 160
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    pixel_mean: tuple[float, ...] = IMAGENET_MEAN
    pixel_std: tuple[float, ...] = IMAGENET_STD

    # encoder (ViT on visible tokens only)
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True  # VideoMAE style: q and v biases, no k bias
    drop_path: float = 0.0  # stochastic depth, linearly increasing over blocks
    norm_eps: float = 1e-6
    encoder_final_norm: bool = True  # False when a classifier mean-pools then applies fc_norm

    # decoder (on [visible, mask tokens])
    decoder_dim: int = 384
    decoder_depth: int = 4
    decoder_heads: int = 6
    decoder_norm_eps: float | None = None  # the decoder's last LayerNorm; None -> norm_eps
    # VideoMAE V2's decoder masking (training only): the share of the masked tokens left out of the decoder;
    # it reconstructs the rest, a uniform random subset per clip. 0 = every masked token (the paper).
    decoder_mask_ratio: float = 0.0

    # masking (Sec. 3.3); mask_ratio is rho, N_v = round(N * (1 - rho))
    mask_type: str = "hrd"
    mask_ratio: float = 0.9
    hrd_dim: int = 192  # width of the token-importance network (Eq. 5-6)
    hrd_heads: int = 4
    hrd_uniform_mix: float = 1e-3  # share of the uniform distribution mixed into P (keeps P > 0)
    hrd_detach_input: bool = False  # True: L_HRD does not reach the patch embedding
    hrd_head_init: str = "zero"  # "zero": P starts uniform; "xavier": AdaMAE's content-dependent start

    # objectives (Eq. 1-4, 7, 8)
    target: str = "dual"
    hsm: bool = True
    hsm_activation: str = "softplus"
    hsm_reduction: str = "mean"
    hsm_detach_weights: bool = True
    hrd_lambda: float = 1e-4
    hrd_reduction: str = "mean"
    # reward in Eq. 7: "none" = L_R as written; "mean" / "zscore" = per-clip baselines (docs/paper-notes.md)
    hrd_advantage: str = "mean"
    hrd_entropy: float = 0.02  # beta: beta * H(P) is subtracted from L_HRD (keeps P from collapsing)

    extra: dict[str, Any] = field(default_factory=dict)  # free-form metadata (e.g. provenance)

    def __post_init__(self) -> None:
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)
        _check_choice("mask_type", self.mask_type, MASK_TYPES)
        _check_choice("target", self.target, TARGET_MODES)
        _check_choice("hsm_activation", self.hsm_activation, HSM_ACTIVATIONS)
        _check_choice("hsm_reduction", self.hsm_reduction, REDUCTIONS)
        _check_choice("hrd_reduction", self.hrd_reduction, REDUCTIONS)
        _check_choice("hrd_advantage", self.hrd_advantage, HRD_ADVANTAGES)
        _check_choice("hrd_head_init", self.hrd_head_init, HRD_HEAD_INITS)
        if self.hrd_entropy < 0:
            raise ValueError(f"hrd_entropy must be >= 0, got {self.hrd_entropy}")
        if self.num_frames % self.tubelet_size or self.image_size % self.patch_size:
            raise ValueError(
                f"num_frames={self.num_frames} must be a multiple of tubelet_size={self.tubelet_size} "
                f"and image_size={self.image_size} a multiple of patch_size={self.patch_size}"
            )
        if self.embed_dim % self.num_heads or self.decoder_dim % self.decoder_heads or self.hrd_dim % self.hrd_heads:
            raise ValueError("every width must be divisible by its number of heads")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.decoder_mask_ratio < 1.0:
            raise ValueError(f"decoder_mask_ratio must be in [0, 1), got {self.decoder_mask_ratio}")
        if self.target != "pixel" and self.tubelet_size < 2:
            raise ValueError(f"target={self.target!r} needs tubelet_size >= 2 (it uses frame differences)")
        if len(self.pixel_mean) != self.in_chans or len(self.pixel_std) != self.in_chans:
            raise ValueError("pixel_mean and pixel_std need one value per input channel")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') = (T / tubelet, H / patch, W / patch)."""
        s = self.image_size // self.patch_size
        return (self.num_frames // self.tubelet_size, s, s)

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def num_visible(self) -> int:
        """N_v = round(N (1 - rho)), rounded half up (Eq. 6); never 0."""
        return max(1, round_half_up(self.num_tokens * (1.0 - self.mask_ratio)))

    @property
    def num_decoded(self) -> int:
        """Masked tokens the decoder reconstructs in training: N_m - round(N_m x decoder_mask_ratio), >= 1."""
        n_m = self.num_tokens - self.num_visible
        return max(1, n_m - round_half_up(n_m * self.decoder_mask_ratio))

    @property
    def patch_values(self) -> int:
        """Pixel values in one tubelet: tubelet * patch * patch * channels."""
        return self.tubelet_size * self.patch_size**2 * self.in_chans

    @property
    def target_dim(self) -> int:
        """Values the decoder predicts per token for the chosen target mode."""
        frame = self.patch_size**2 * self.in_chans
        if self.target == "appearance":
            return frame
        if self.target == "motion":
            return self.patch_values - frame
        return self.patch_values  # dual and pixel

    # ---- construction and serialisation ---------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "HI2MConfig":
        if name not in ENCODER_SIZES:
            raise ValueError(f"unknown model size {name!r}; choose one of {sorted(ENCODER_SIZES)}")
        values: dict[str, Any] = dict(ENCODER_SIZES[name])
        if name == "micro":
            values.update(MICRO_DECODER, num_frames=4, image_size=32)
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pixel_mean"], d["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HI2MConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown HI2MConfig fields: {unknown}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> "HI2MConfig":
        return dataclasses.replace(self, **changes)


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() goes to even: round(2.5) == 2)."""
    return int(math.floor(x + 0.5 + 1e-9))


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
