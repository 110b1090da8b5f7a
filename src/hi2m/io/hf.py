"""Export to transformers: a directory that ``transformers`` loads with no hi2m code.

- a fine-tuned :class:`~hi2m.model.classifier.VideoClassifier` -> ``VideoMAEForVideoClassification``
  (config.json with ``id2label``, ``model.safetensors``, and the video processor's config: the model's
  pixel mean / std, frame size and frame count);
- a pretrained :class:`~hi2m.model.mae.HI2M` -> ``VideoMAEForPreTraining`` (encoder, decoder and
  ``encoder_to_decoder``, every weight exact).

What VideoMAE has no place for is reported in :attr:`HFExport.dropped`, never dropped silently: the HRD
policy (VideoMAE masks at random), and what a dual-target decoder head means there: it has the size of
transformers' normalised-pixel head but predicts Eq. 1's dual target (appearance, then motion), so its
outputs are exact and transformers' own pretraining loss on them is not hi2m's. Refused, with the
reason: a linear-probe classifier (BatchNorm head) and appearance- or motion-only decoders (other sizes).
transformers' ``fc_norm`` is a LayerNorm with eps 1e-5 whatever the config says; hi2m's uses
``norm_eps`` (1e-6): the exported logits differ by that alone (measured in :attr:`HFExport.max_abs_diff`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hi2m.io.videomae import config_from_hf, hf_to_hi2m_state_dict
from hi2m.io.weights import transformers_weights
from hi2m.model.classifier import VideoClassifier
from hi2m.model.mae import HI2M
from hi2m.model.masking import Mask, tube_visible
from hi2m.model.state import load_state_dict_strict

_BLOCK = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
          "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}


@dataclass
class HFExport:
    directory: Path
    architecture: str
    dropped: list[str] = field(default_factory=list)
    max_abs_diff: float = float("nan")


def hf_config(cfg, task: str, class_names: tuple[str, ...] = ()):
    """A transformers ``VideoMAEConfig`` with the architecture of an hi2m ``HI2MConfig``."""
    from transformers import VideoMAEConfig

    if cfg.mlp_ratio * cfg.embed_dim != int(cfg.mlp_ratio * cfg.embed_dim):
        raise ValueError("the MLP width must be an integer")
    values: dict[str, Any] = dict(
        image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=cfg.in_chans, num_frames=cfg.num_frames,
        tubelet_size=cfg.tubelet_size, hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads, intermediate_size=int(cfg.mlp_ratio * cfg.embed_dim), hidden_act="gelu",
        layer_norm_eps=cfg.norm_eps, qv_bias=cfg.qkv_bias, qkv_bias=cfg.qkv_bias,
        use_mean_pooling=not cfg.encoder_final_norm, norm_pix_loss=True,
        decoder_hidden_size=cfg.decoder_dim, decoder_num_hidden_layers=cfg.decoder_depth,
        decoder_num_attention_heads=cfg.decoder_heads, decoder_intermediate_size=int(cfg.mlp_ratio * cfg.decoder_dim),
    )
    if task == "classification":
        values.update(id2label=dict(enumerate(class_names)), label2id={n: i for i, n in enumerate(class_names)},
                      architectures=["VideoMAEForVideoClassification"])
    else:
        values.update(architectures=["VideoMAEForPreTraining"])
    values["hi2m_target"] = cfg.target  # what the decoder predicts (read back by load_transformers)
    return VideoMAEConfig(**values)


def hi2m_to_hf_state_dict(sd: dict[str, torch.Tensor], prefix: str = "videomae.") -> dict[str, torch.Tensor]:
    """hi2m names -> transformers VideoMAE names (the inverse of ``hi2m.io.videomae.hf_to_hi2m_state_dict``):
    fused q/k/v split into query / key / value (key without bias), ``encoder.`` under ``prefix``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = re.match(r"(encoder|decoder)\.blocks\.(\d+)\.(.*)", key)
        if m:
            stack = f"{prefix}encoder.layer" if m.group(1) == "encoder" else "decoder.decoder_layers"
            base, rest = f"{stack}.{m.group(2)}", m.group(3)
            if rest == "attn.qkv.weight":
                q, k, v = value.chunk(3)
                out.update({f"{base}.attention.attention.query.weight": q, f"{base}.attention.attention.key.weight": k,
                            f"{base}.attention.attention.value.weight": v})
                continue
            if rest in ("attn.q_bias", "attn.v_bias"):
                out[f"{base}.attention.attention.{'query' if rest == 'attn.q_bias' else 'value'}.bias"] = value
                continue
            for src, dst in _BLOCK.items():
                if rest.startswith(src + "."):
                    rest = dst + rest[len(src):]
                    break
            out[f"{base}.{rest}"] = value
        elif key.startswith("encoder.patch_embed.proj."):
            out[f"{prefix}embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("encoder.norm."):
            out[f"{prefix}layernorm." + key.rsplit(".", 1)[1]] = value
        else:
            out[key] = value
    return out


def export_transformers(model, out: str | Path, check: bool = True, seed: int = 0) -> HFExport:
    """Write ``model`` (a VideoClassifier or an HI2M) as a transformers model directory; with ``check``,
    reload it with transformers and compare its outputs with hi2m's on random clips."""
    import transformers


    out = Path(out)
    cfg = model.cfg
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    dropped: list[str] = []
    if isinstance(model, VideoClassifier):
        if model.linear_probe:
            raise ValueError("a linear-probe classifier (BatchNorm head) has no VideoMAE equivalent; export the "
                             "fine-tuned one, or use hi2m export --onnx")
        task, arch = "classification", "VideoMAEForVideoClassification"
        hf_sd = hi2m_to_hf_state_dict({k: v for k, v in sd.items() if k.startswith("encoder.")})
        hf_sd.update({"fc_norm.weight": sd["fc_norm.weight"], "fc_norm.bias": sd["fc_norm.bias"],
                      "classifier.weight": sd["head.weight"], "classifier.bias": sd["head.bias"]})
        config = hf_config(cfg, task, model.class_names)
        hf_model = transformers.VideoMAEForVideoClassification(config)
    elif isinstance(model, HI2M):
        task, arch = "pretraining", "VideoMAEForPreTraining"
        policy = sorted(k for k in sd if k.startswith("masker."))
        if policy:
            dropped.append(f"HRD policy ({len(policy)} tensors: {policy[0]} ...): VideoMAE masks at random")
        if cfg.target not in ("dual", "pixel"):
            raise ValueError(f"a {cfg.target}-target decoder predicts {cfg.target_dim} values per token, transformers' "
                             f"{cfg.patch_values}: export a fine-tuned classifier of this encoder instead")
        if cfg.target == "dual":
            dropped.append("meaning of the decoder head: it predicts hi2m's dual target (each tubelet's first "
                           "frame, normalised, then its frame differences, Eq. 1), not transformers' normalised "
                           "pixels; the weights are exact, transformers' pretraining loss on them is not Eq. 1")
        hf_sd = hi2m_to_hf_state_dict({k: v for k, v in sd.items() if not k.startswith("masker.")})
        config = hf_config(cfg, task)
        hf_model = transformers.VideoMAEForPreTraining(config)
    else:
        raise TypeError(f"cannot export a {type(model).__name__} to transformers")
    own = hf_model.state_dict()
    missing = sorted(k for k in own if k not in hf_sd and "position_embeddings" not in k)
    unexpected = sorted(k for k in hf_sd if k not in own)
    if missing or unexpected:
        raise RuntimeError(f"weight names do not line up with transformers' {arch}: missing {missing}, "
                           f"unexpected {unexpected}")
    hf_model.load_state_dict(hf_sd, strict=False)
    hf_model.save_pretrained(out)
    processor(cfg).save_pretrained(out)
    report = HFExport(out, arch, dropped)
    if check:
        report.max_abs_diff = compare(model, out, seed)
    return report


def processor(cfg):
    """transformers' VideoMAE video processor with hi2m's input contract: frames resized to the model's
    size (shortest edge, then a centre crop), scaled to [0, 1], normalised with the model's mean / std."""
    from transformers import VideoMAEImageProcessor

    return VideoMAEImageProcessor(do_resize=True, size={"shortest_edge": cfg.image_size}, do_center_crop=True,
                                  crop_size={"height": cfg.image_size, "width": cfg.image_size}, do_rescale=True,
                                  rescale_factor=1 / 255, do_normalize=True, image_mean=list(cfg.pixel_mean),
                                  image_std=list(cfg.pixel_std))


@torch.no_grad()
def compare(model, directory: Path, seed: int = 0, batch: int = 2) -> float:
    """Max abs difference between hi2m's and the reloaded transformers model's outputs on random clips:
    logits for a classifier, the decoder's normalised-pixel prediction for a pretrained model (same mask)."""
    import transformers


    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, cfg.in_chans, cfg.num_frames, cfg.image_size, cfg.image_size, generator=g)
    model.eval()
    if isinstance(model, VideoClassifier):
        hf = transformers.VideoMAEForVideoClassification.from_pretrained(directory).eval()
        return float((hf(pixel_values=video.transpose(1, 2)).logits - model(video)).abs().max())

    hf = transformers.VideoMAEForPreTraining.from_pretrained(directory).eval()
    mask = Mask.from_visible(tube_visible(batch, cfg.grid, cfg.mask_ratio, g), cfg.num_tokens)
    theirs = hf(pixel_values=video.transpose(1, 2), bool_masked_pos=mask.bool_masked).logits  # (B, N_m, P)
    return float((theirs - model(video, mask=mask).pred).abs().max())


def load_transformers(directory: str | Path):
    """An hi2m model from a transformers VideoMAE directory (``VideoMAEForVideoClassification`` -> a
    VideoClassifier, ``VideoMAEForPreTraining`` -> an HI2M), pixel mean / std from its processor config:
    what :func:`export_transformers` wrote comes back with the same weights."""
    import json

    import transformers


    directory = Path(directory)
    config = transformers.AutoConfig.from_pretrained(directory)
    norm = {}
    proc = directory / "preprocessor_config.json"
    if proc.is_file():
        p = json.loads(proc.read_text())
        norm = {"pixel_mean": tuple(p["image_mean"]), "pixel_std": tuple(p["image_std"])}
    extra = {"target": getattr(config, "hi2m_target", "pixel"), **norm}
    sd = transformers_weights(directory)  # the tensors as saved, read without pickle; no transformers model built
    if "VideoMAEForVideoClassification" in (config.architectures or []):
        cfg = config_from_hf(config, **extra)
        names = tuple(config.id2label[i] for i in range(config.num_labels))
        model = VideoClassifier(cfg, config.num_labels, names)
        enc = {k: v for k, v in hf_to_hi2m_state_dict(sd).items() if k.startswith("encoder.")}
        load_state_dict_strict(model, {**{k: v for k, v in enc.items() if not k.startswith("encoder.pos")},
                                       "fc_norm.weight": sd["fc_norm.weight"], "fc_norm.bias": sd["fc_norm.bias"],
                                       "head.weight": sd["classifier.weight"], "head.bias": sd["classifier.bias"]},
                               source=str(directory))
        return model.eval()
    cfg = config_from_hf(config, **extra)
    model = HI2M(cfg)
    load_state_dict_strict(model, hf_to_hi2m_state_dict(sd), source=str(directory))
    return model.eval()
