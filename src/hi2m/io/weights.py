"""Model directories: ``config.json`` + ``model.safetensors``, written atomically, read without pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from hi2m.io.files import atomic_write
from hi2m.io.videomae import read_torch_checkpoint, videomae_to_hi2m_state_dict
from hi2m.model.classifier import VideoClassifier
from hi2m.model.config import HI2MConfig
from hi2m.model.mae import HI2M
from hi2m.model.state import load_state_dict_strict

FORMAT = "hi2m"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def describe(model: nn.Module) -> dict[str, Any]:
    """The JSON description from which ``build_model`` recreates the architecture."""
    if isinstance(model, HI2M):
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "task": "pretraining", "model": model.cfg.to_dict()}
    if isinstance(model, VideoClassifier):
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": "classification",
            "model": model.cfg.to_dict(),
            "num_classes": model.num_classes,
            "class_names": list(model.class_names),
            "linear_probe": model.linear_probe,
            "head_dropout": model.head_dropout,
        }
    raise TypeError(f"cannot save a {type(model).__name__}")


def build_model(description: dict[str, Any]) -> nn.Module:
    if description.get("format") != FORMAT:
        raise ValueError("not an hi2m model description (config.json without format: hi2m)")
    if int(description.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"model format {description['format_version']} is newer than this hi2m ({FORMAT_VERSION})")
    cfg = HI2MConfig.from_dict(description["model"])
    if description["task"] == "pretraining":
        return HI2M(cfg)
    if description["task"] == "classification":
        return VideoClassifier(
            cfg,
            num_classes=description["num_classes"],
            class_names=tuple(description["class_names"]),
            linear_probe=description.get("linear_probe", False),
            head_dropout=description.get("head_dropout", 0.0),
        )
    raise ValueError(f"unknown task {description['task']!r}")


def save_pretrained(model: nn.Module, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``directory/config.json`` and ``directory/model.safetensors`` (each atomically; weights first)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    description = describe(model)
    if metadata:
        description["metadata"] = metadata
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))
    atomic_write(
        directory / CONFIG_NAME,
        lambda tmp: Path(tmp).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n"),
    )
    return directory


def load_pretrained(directory: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by ``save_pretrained``; every weight must match (strict)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (config_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: a model directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    description = _read_json(config_path)
    with torch.random.fork_rng(devices=[]):  # the random init that the weights replace draws nothing from the caller's stream
        model = build_model(description)
    load_state_dict_strict(model, load_file(str(weights_path), device=str(map_location)), source=str(weights_path))
    model.metadata = description.get("metadata", {})
    return model.eval()


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a warm-start source, in hi2m's names; nothing is ever unpickled.

    - an hi2m model directory (``config.json`` with ``format: hi2m``, ``model.safetensors``);
    - a transformers VideoMAE folder (``save_pretrained`` layout: ``config.json`` with
      ``model_type: videomae``; ``VideoMAEModel``, ``...ForPreTraining`` or ``...ForVideoClassification``),
      weights from ``model.safetensors`` (sharded too) or ``pytorch_model.bin`` read with ``weights_only=True``;
    - an original VideoMAE / MAE-DFER ``.pth`` (``weights_only=True``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass an hi2m model directory, a transformers VideoMAE folder "
                                "or a VideoMAE .pth")
    if not path.is_dir():
        return videomae_to_hi2m_state_dict(read_torch_checkpoint(path))
    config = path / CONFIG_NAME
    if not config.is_file():
        raise FileNotFoundError(f"{config} not found: a model folder holds {CONFIG_NAME} and its weights")
    description = _read_json(config)
    if description.get("format") == FORMAT:
        from safetensors.torch import load_file

        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found: an hi2m model directory holds {WEIGHTS_NAME}")
        return load_file(str(weights))
    if description.get("model_type") == "videomae":
        from hi2m.io.videomae import hf_to_hi2m_state_dict

        return hf_to_hi2m_state_dict(transformers_weights(path))
    raise ValueError(f"{config}: neither an hi2m model (format: hi2m) nor a transformers VideoMAE "
                     f"(model_type: videomae), found model_type {description.get('model_type')!r}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e


def transformers_weights(folder: Path) -> dict[str, torch.Tensor]:
    """A transformers folder's tensors: safetensors (one file or an index of shards) or pytorch_model.bin."""
    from safetensors.torch import load_file

    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(str(folder / shard)).items()}
    if (folder / "pytorch_model.bin").is_file():
        return read_torch_checkpoint(folder / "pytorch_model.bin")
    raise FileNotFoundError(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")
