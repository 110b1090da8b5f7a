"""Video ViT building blocks: tubelet embedding, sinusoid positions, pre-norm blocks, encoder.

Parameter names follow the original VideoMAE code (``patch_embed.proj``, ``blocks.N.attn.qkv``,
``attn.q_bias``/``attn.v_bias``, ``mlp.fc1``...), so its checkpoints load by name.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hi2m.model.config import HI2MConfig


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sin/cos position table (Vaswani et al. 2017), as VideoMAE uses it.

    Row p, column j: angle = p / 10000^(2*(j//2)/dim); even columns sin, odd columns cos.
    Tokens are indexed time-major (t * H'W' + h * W' + w), so this is the paper's "fixed
    periodic positional encoding" over the 3-D token grid (Sec. 3.1). Returns (num_positions, dim).
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    j = torch.arange(dim, dtype=torch.float64)[None, :]  # (1, D)
    angle = pos / torch.pow(10000.0, 2.0 * torch.div(j, 2, rounding_mode="floor") / dim)  # (N, D)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))  # (N, D)
    return table.float()


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), idx (B, M) -> (B, M, D): the tokens at idx, per sample."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class TubeletEmbed(nn.Module):
    """Non-overlapping (tubelet, patch, patch) cubes -> one d-dim token each (Sec. 3.1)."""

    def __init__(self, cfg: HI2MConfig, dim: int):
        super().__init__()
        self.grid = cfg.grid
        kernel = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        B, C, T, H, W = video.shape
        expected = (self.grid[0] * self.proj.kernel_size[0], self.grid[1] * self.proj.kernel_size[1])
        if (T, H) != expected or H != W:
            raise ValueError(
                f"expected video (B, C, T={expected[0]}, H=W={expected[1]}), got {tuple(video.shape)}"
            )
        x = self.proj(video)  # (B, D, T', H', W')
        return x.flatten(2).transpose(1, 2)  # (B, N, D), time-major token order


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch for a random subset of samples."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)  # (B, 1, 1)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention on scaled_dot_product_attention (flash / efficient kernels on GPU).

    One fused qkv projection; with ``qkv_bias`` a learnable q and v bias and a fixed zero k bias
    (VideoMAE's layout: a key bias cancels in the softmax anyway).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias, self.v_bias = None, None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))  # (3C,)
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3C)
        q, k, v = qkv.view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, C/h)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, C/h)
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class VideoEncoder(nn.Module):
    """Tubelet embedding + fixed positions + ViT blocks; runs on all or on visible tokens only."""

    def __init__(self, cfg: HI2MConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = TubeletEmbed(cfg, cfg.embed_dim)
        self.register_buffer("pos_embed", sinusoid_table(cfg.num_tokens, cfg.embed_dim)[None], persistent=False)
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, r, cfg.norm_eps) for r in rates
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps) if cfg.encoder_final_norm else nn.Identity()

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, C, T, H, W) -> patch tokens (B, N, D), without positions."""
        return self.patch_embed(video)

    def forward_tokens(self, tokens: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """Patch tokens (B, N, D) -> encoded (B, N_v, D) for the visible indices (B, N_v), or all N."""
        x = tokens + self.pos_embed.to(tokens.dtype)  # (B, N, D)
        if visible is not None:
            x = gather_tokens(x, visible)  # (B, N_v, D)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, video: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_tokens(self.embed(video), visible)


def init_vit_weights(module: nn.Module) -> None:
    """VideoMAE / MAE initialisation: xavier-uniform Linear (and the patch Conv3d seen as a Linear)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv3d):
            w = m.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def trunc_normal_(t: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    return nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)


__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "Mlp",
    "TubeletEmbed",
    "VideoEncoder",
    "gather_tokens",
    "init_vit_weights",
    "num_params",
    "sinusoid_table",
    "trunc_normal_",
]
