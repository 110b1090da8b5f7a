"""Run configuration: a YAML file, built-in defaults, and ``key.sub=value`` command-line overrides.

The resolved configuration (defaults < YAML < overrides) is what a run uses and what it writes to
``<run dir>/config.yaml``; ``hi2m <command> --config <run dir>/config.yaml`` repeats the run.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "run": {"dir": "runs", "name": None},
    # Any HI2MConfig field, plus "size" (micro | tiny | small | base).
    # "compile": torch.compile the transformer blocks and the HRD policy (off: it pays only on long
    # runs, see benchmarks/compile_breakeven.py)
    "model": {"size": "base", "compile": False},
    "data": {
        "dataset": "synthetic",
        "root": "data/synthface",
        "options": {},  # adapter options: fold, list_file, on_bad_line, synthface: {...}
        "train_split": "train",
        "val_split": None,  # a split name; None with val_fraction > 0 carves one from train
        "val_fraction": 0.0,  # stratified, seeded share of train held out for model selection
        "test_split": "test",
        "num_frames": 16,
        "stride": 4,
        "image_size": 160,
        "crop_box": None,  # (top, left, bottom, right) before resizing; VoxCeleb2: [0, 32, 160, 192]
        "batch_size": 8,  # per device
        "num_workers": 2,
        "repeats": 1,  # pretraining: windows per decoded clip
        "temporal_views": 2,  # evaluation: K windows per clip
        "spatial_views": 2,  # evaluation: M crops per window
        "max_bad_share": 0.01,  # stop when more clips than this fail to decode in an epoch
        "decode_time_limit": 60.0,  # seconds of decoding per clip before it is skipped as too slow (0: none)
        "loader_timeout": 600.0,  # seconds without a batch from a worker: name its file, quarantine it, stop (0: none)
    },
    "optim": {
        "base_lr": 3e-4,
        "lr_scaling": "linear",  # lr = base_lr * total_batch / 256 ("none": lr = base_lr)
        "min_lr": 1e-6,
        "weight_decay": 0.05,
        "betas": [0.9, 0.95],
        "epochs": 80,
        "warmup_epochs": 5,
        "layer_decay": None,  # fine-tuning: 0.75
        "clip_grad": None,
        # pretraining with HRD: the policy's lr is hrd_lr_scale x the autoencoder's at every step (Eq. 5's
        # alpha); hrd_weight_decay None = weight_decay
        "hrd_lr_scale": 1.0,
        "hrd_weight_decay": None,
    },
    "trainer": {
        "accelerator": "auto",
        "devices": "auto",
        "num_nodes": 1,
        "strategy": "auto",
        "precision": "32-true",  # bf16-mixed | 16-mixed | 32-true
        "accumulate_grad_batches": 1,
        "max_steps": -1,
        "limit_train_batches": None,
        "limit_val_batches": None,
        "log_every_n_steps": 10,
        "max_bad_steps": 5,  # consecutive NaN/Inf losses before the run stops
        # step checkpoints (checkpoints/step-<global step>.ckpt) on top of the one at each epoch end; the
        # newest keep_checkpoints are kept. A crash loses at most the interval; SIGTERM / SIGUSR1 lose nothing.
        "checkpoint_every_n_steps": 0,  # 0: by time only
        "checkpoint_every_n_minutes": 30.0,  # 0: by steps only
        "keep_checkpoints": 2,
        "enable_progress_bar": True,
        "deterministic": False,
    },
    "finetune": {
        "pretrained": None,  # a model directory, an original VideoMAE .pth, or None (random init)
        "linear_probe": False,
        "drop_path": 0.1,
        "head_dropout": 0.0,
        "label_smoothing": 0.1,
        "mixup": 0.8,
        "cutmix": 1.0,
        "mixup_prob": 1.0,
        "rand_augment": [2, 7.0],
        "erase_p": 0.25,
        "select": "val",  # "val": best val UAR (needs a val split) | "last": the last epoch
        "folds": None,  # DFEW: a list of folds to run one after the other
    },
}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in recursively (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``optim.base_lr=1e-3`` -> (["optim", "base_lr"], 0.001); the value is read as YAML."""
    import yaml

    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"override {text!r}: empty key")
    return key.split("."), yaml.safe_load(raw) if raw != "" else None


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        path, value = parse_override(text)
        node = cfg
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None, defaults: dict | None = None) -> dict:
    """defaults < YAML file (``base:`` names another YAML file, relative to this one) < overrides."""

    cfg = copy.deepcopy(defaults if defaults is not None else DEFAULTS)
    if path is not None:
        cfg = deep_merge(cfg, _read_yaml(Path(path)))
    cfg = _numbers(apply_overrides(cfg, overrides or []))
    validate(cfg)
    return absolute_paths(cfg)


# Config keys that hold file-system paths. A relative value means "relative to the current
# directory when the command starts", as on any command line; it is made absolute once, here, so
# nothing later joins it to another relative path, and the run's saved config.yaml still points at
# the same files when the run is resumed or visualised from another directory.
PATH_KEYS: tuple[tuple[str, str], ...] = (("run", "dir"), ("data", "root"), ("finetune", "pretrained"))


def absolute_paths(cfg: dict[str, Any], cwd: str | Path | None = None) -> dict[str, Any]:
    """A copy of ``cfg`` whose path keys (:data:`PATH_KEYS`) are absolute, resolved against ``cwd``
    (default: the current directory). Idempotent; None values stay None."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    out = copy.deepcopy(cfg)
    for section, key in PATH_KEYS:
        value = out.get(section, {}).get(key)
        if value is not None:
            out[section][key] = str((base / Path(value).expanduser()).absolute())
    return out


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _numbers(node: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; read such values as floats."""
    if isinstance(node, dict):
        return {k: _numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers(v) for v in node]
    if isinstance(node, str) and _SCIENTIFIC.match(node):
        return float(node)
    return node


def _read_yaml(path: Path, depth: int = 0) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is not None:
        if depth > 8:
            raise ValueError(f"{path}: 'base:' chain too deep")
        data = deep_merge(_read_yaml((path.parent / base).resolve(), depth + 1), data)
    return data


def validate(cfg: dict[str, Any]) -> None:
    """Catch misspelt keys early (a long run should not start on a typo)."""
    from hi2m.model.config import HI2MConfig

    for section in ("run", "data", "optim", "trainer", "finetune"):
        unknown = sorted(set(cfg.get(section, {})) - set(DEFAULTS[section]))
        if unknown:
            raise ValueError(f"unknown key(s) in '{section}': {unknown}; known: {sorted(DEFAULTS[section])}")
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown top-level key(s): {unknown}; known: {sorted(DEFAULTS)}")
    model = dict(cfg["model"])
    model.pop("size", None)
    model.pop("compile", None)
    fields = set(HI2MConfig.__dataclass_fields__)
    bad = sorted(set(model) - fields)
    if bad:
        raise ValueError(f"unknown model field(s): {bad}")
    if cfg["finetune"]["select"] not in ("val", "last"):
        raise ValueError("finetune.select must be 'val' or 'last'")
    if cfg["optim"]["lr_scaling"] not in ("linear", "none"):
        raise ValueError("optim.lr_scaling must be 'linear' or 'none'")


def model_config(cfg: dict[str, Any], **extra: Any):
    """The HI2MConfig a run config describes (data.num_frames / image_size set the input)."""
    from hi2m.model.config import HI2MConfig

    model = dict(cfg["model"])
    size = model.pop("size", "base")
    model.pop("compile", None)  # how to run the model, not what it is
    model.setdefault("num_frames", cfg["data"]["num_frames"])
    model.setdefault("image_size", cfg["data"]["image_size"])
    model.update(extra)
    return HI2MConfig.from_name(size, **model)


def dump_yaml(cfg: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
