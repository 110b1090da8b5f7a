"""Load weights from transformers' VideoMAE and from original VideoMAE-style ``.pth`` checkpoints.

Both paths end in ``load_state_dict_strict``: a key that is missing or left over is an error that
lists every such key; nothing is silently ignored. ``.pth`` files are read with ``weights_only=True``
(no unpickling of arbitrary objects).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hi2m.model.config import HI2MConfig
from hi2m.model.mae import HI2M
from hi2m.model.state import CheckpointMismatch, load_state_dict_strict

# ---- transformers ------------------------------------------------------------------------

def config_from_hf(hf_config: Any, **overrides: Any) -> HI2MConfig:
    """An HI2MConfig with the same architecture as a transformers ``VideoMAEConfig``.

    transformers uses LayerNorm eps ``layer_norm_eps`` (1e-12 by default) in every block and a default
    nn.LayerNorm (1e-5) as the decoder's last norm; the encoder has a final norm only when
    ``use_mean_pooling`` is False. Masking defaults to ``tube`` and targets to ``pixel`` (VideoMAE).
    """
    c = hf_config
    if c.hidden_act != "gelu":
        raise ValueError(f"only GELU models convert, this one uses {c.hidden_act!r}")
    values: dict[str, Any] = dict(
        num_frames=c.num_frames,
        image_size=c.image_size,
        patch_size=c.patch_size,
        tubelet_size=c.tubelet_size,
        in_chans=c.num_channels,
        embed_dim=c.hidden_size,
        depth=c.num_hidden_layers,
        num_heads=c.num_attention_heads,
        mlp_ratio=c.intermediate_size / c.hidden_size,
        qkv_bias=bool(getattr(c, "qkv_bias", True)),
        norm_eps=c.layer_norm_eps,
        encoder_final_norm=not c.use_mean_pooling,
        decoder_dim=c.decoder_hidden_size,
        decoder_depth=c.decoder_num_hidden_layers,
        decoder_heads=c.decoder_num_attention_heads,
        decoder_norm_eps=1e-5,
        mask_type="tube",
        target="pixel",  # transformers' norm_pix_loss=True target; hi2m has no raw-pixel target
        hsm=False,
    )
    if c.decoder_intermediate_size != c.decoder_hidden_size * values["mlp_ratio"]:
        raise ValueError("encoder and decoder must share one MLP ratio to convert")
    values.update(overrides)
    return HI2MConfig(**values)


_HF_BLOCK = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}


def hf_to_hi2m_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and fuse q/k/v of) a transformers VideoMAE state dict into hi2m's ``HI2M`` names.

    Accepts ``VideoMAEModel`` keys (``embeddings.``, ``encoder.layer.N.``, ``layernorm.``) and
    ``VideoMAEForPreTraining`` keys (``videomae.`` prefix, ``decoder.decoder_layers.N.``...). Keys it
    does not know are passed through unchanged so that the strict load reports them.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        k = key[len("videomae."):] if key.startswith("videomae.") else key
        m = re.match(r"(encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.*)", k)
        if m:
            stack = "encoder.blocks" if m.group(1) == "encoder.layer" else "decoder.blocks"
            prefix, rest = f"{stack}.{m.group(2)}", m.group(3)
            a = re.match(r"attention\.attention\.(query|key|value)\.(weight|bias)$", rest)
            b = re.match(r"attention\.attention\.(q_bias|v_bias)$", rest)
            if a:
                qkv.setdefault(prefix, {})[f"{a.group(1)}.{a.group(2)}"] = value
            elif b:
                qkv.setdefault(prefix, {})[{"q_bias": "query.bias", "v_bias": "value.bias"}[b.group(1)]] = value
            else:
                for src, dst in _HF_BLOCK.items():
                    if rest.startswith(src + "."):
                        rest = dst + rest[len(src):]
                        break
                out[f"{prefix}.{rest}"] = value
            continue
        k = k.replace("embeddings.patch_embeddings.projection.", "encoder.patch_embed.proj.")
        if k.startswith("layernorm."):
            k = "encoder.norm." + k[len("layernorm."):]
        out[k] = value
    for prefix, parts in qkv.items():
        try:
            out[f"{prefix}.attn.qkv.weight"] = torch.cat([parts["query.weight"], parts["key.weight"], parts["value.weight"]])
        except KeyError as e:
            raise CheckpointMismatch(f"{prefix}: attention weights incomplete, missing {e}") from None
        if "key.bias" in parts and bool(parts["key.bias"].abs().max() > 0):
            raise CheckpointMismatch(f"{prefix}: a non-zero key bias has no place in VideoMAE attention")
        if "query.bias" in parts:
            out[f"{prefix}.attn.q_bias"] = parts["query.bias"]
            out[f"{prefix}.attn.v_bias"] = parts["value.bias"]
    return out


def from_hf_videomae(model_or_state_dict: Any, config: HI2MConfig | None = None, **overrides: Any) -> HI2M:
    """Build an hi2m ``HI2M`` holding the weights of a transformers ``VideoMAEModel`` or
    ``VideoMAEForPreTraining`` (a model object, or its state dict together with ``config``).

    Without a decoder in the source (``VideoMAEModel``) only the encoder is loaded and the decoder
    keeps its fresh initialisation; every encoder key must match exactly.
    """
    if isinstance(model_or_state_dict, Mapping):
        if config is None:
            raise ValueError("pass config=HI2MConfig(...) (or config_from_hf(hf_config)) with a bare state dict")
        sd = dict(model_or_state_dict)
    else:
        config = config or config_from_hf(model_or_state_dict.config, **overrides)
        sd = model_or_state_dict.state_dict()
    model = HI2M(config)
    converted = hf_to_hi2m_state_dict(sd)
    has_decoder = any(k.startswith("decoder.") for k in converted)
    load_state_dict_strict(model, converted, only_prefixes=None if has_decoder else ("encoder.",))
    return model


# ---- original VideoMAE / MAE-DFER .pth ----------------------------------------------------

def read_torch_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` checkpoint, read with ``weights_only=True``; unwraps ``model``/``module``/``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # VideoMAE / MAE-DFER save their argparse.Namespace next to the weights: a plain attribute
        # container, the one non-tensor class admitted here.
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the safe unpickler refuses anything but tensors and plain containers
        raise ValueError(f"{path}: not a weights-only PyTorch checkpoint ({e})") from e
    for wrapper in ("model", "module", "state_dict"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a mapping of parameter names to tensors")
    bad = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {bad}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def videomae_to_hi2m_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original VideoMAE naming -> hi2m. Pretraining checkpoints (``encoder.blocks.N.attn.qkv.weight``,
    ``decoder.blocks...``, ``encoder_to_decoder``, ``mask_token``) already use hi2m's names; fine-tuned
    encoders (``blocks.N...``, ``patch_embed...``, ``norm``) get the ``encoder.`` prefix. Position tables
    are fixed and never loaded; an empty classification head (``encoder.head`` of size 0) is dropped."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k in ("pos_embed", "encoder.pos_embed", "decoder.pos_embed"):
            continue
        if k.startswith("encoder.head.") and v.numel() == 0:
            continue
        if k.startswith(("blocks.", "patch_embed.", "norm.")):
            k = "encoder." + k
        out[k] = v
    return out


def load_videomae_checkpoint(path: str | Path, config: HI2MConfig) -> HI2M:
    """An ``HI2M`` with the weights of an original VideoMAE-style ``.pth`` (pretraining or encoder-only)."""
    converted = videomae_to_hi2m_state_dict(read_torch_checkpoint(path))
    model = HI2M(config)
    has_decoder = any(k.startswith("decoder.") for k in converted)
    load_state_dict_strict(model, converted, only_prefixes=None if has_decoder else ("encoder.",), source=str(path))
    return model
