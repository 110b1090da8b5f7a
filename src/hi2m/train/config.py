"""Run configuration: typed sections, a YAML file, built-in defaults and ``section.key=value`` overrides.

A run's configuration is a :class:`RunConfig`: one dataclass per section (``run``, ``model``, ``data``,
``optim``, ``trainer``, ``finetune``), each field with its type (allowed values as ``Literal``), its
range and a one-line doc (``hi2m config show`` prints them). :func:`load_config` resolves
defaults < YAML file (``base:`` names another file) < overrides and validates everything once; any
bad key, type, choice or range is a :class:`ConfigError` whose message is one line naming the key::

    optim.lerning_rate: unknown key (did you mean base_lr?)

The engine receives the typed object; derived values (warm-up steps, the scaled lr) are computed where
they are used and never written back. ``<run dir>/config.yaml`` holds :meth:`RunConfig.to_dict`;
``hi2m <command> --config <run dir>/config.yaml`` repeats the run, and a file written by an earlier
version (fewer keys) still loads: missing keys take their defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union


class ConfigError(ValueError):
    """A configuration that cannot run; the message is one line naming the key (or the file)."""


def _f(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
       above: float | None = None, below: float | None = None) -> Any:
    """A dataclass field with its doc and range (``min``/``max`` inclusive, ``above``/``below`` exclusive)."""
    meta = {"doc": doc, "min": min, "max": max, "above": above, "below": below}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


# ---- sections ------------------------------------------------------------------------------------------

@dataclass
class RunSettings:
    dir: str = _f("runs", "folder of the run directories (a relative path: from where the command starts)")
    name: str | None = _f(None, "the run directory's name under dir (default: <command>-<date>-<time>)")


MODEL_SIZES = ("micro", "tiny", "small", "base")


@dataclass
class ModelSettings:
    """The model section: a named size, whether to compile, and any :class:`hi2m.model.HI2MConfig` field."""

    size: Literal["micro", "tiny", "small", "base"] = _f("base", "encoder size: micro (tests), tiny, small, base (ViT-B, the paper)")
    compile: bool = _f(False, "torch.compile the transformer blocks and the HRD policy (pays only on long runs)")
    init: str | None = _f(None, "pretraining: start from these weights (an hi2m model directory, a transformers "
                          "VideoMAE folder or a VideoMAE .pth); None: random init")
    fields: dict[str, Any] = _f({}, "HI2MConfig fields that differ from the size's defaults (mask_type, hsm, target...)")


@dataclass
class DataSettings:
    dataset: str = _f("synthetic", "dataset adapter: voxceleb2, dfew, ferv39k, mafw, csv, synthetic, synthface-stream")
    root: str = _f("data/synthface", "dataset root folder (a relative path: from where the command starts)")
    options: dict[str, Any] = _f({}, "adapter options: fold, list_file, on_bad_line, synthface: {...}")
    classes: list[str] | None = _f(None, "csv adapter: the class names, in label-index order (None: the root's "
                                   "classes.txt, else the seven DFEW classes)")
    train_split: str = _f("train", "split to train on")
    val_split: str | None = _f(None, "split for model selection (None with val_fraction > 0: carved from train)")
    val_fraction: float = _f(0.0, "stratified, seeded share of train held out for model selection", min=0, below=1)
    test_split: str = _f("test", "split the final model is tested on")
    num_frames: int = _f(16, "frames per clip the model sees (T)", min=1)
    stride: int = _f(4, "step between sampled frames", min=1)
    image_size: int = _f(160, "frame side after resizing and cropping", min=1)
    crop_box: list[int] | None = _f(None, "(top, left, bottom, right) before resizing; VoxCeleb2: [0, 32, 160, 192]")
    crop_scales: list[float] = _f([1.0, 0.875, 0.75, 0.66], "pretraining: multi-scale crop sides relative to the "
                                  "shorter side (VideoMAE's; [1.0]: the whole frame)")
    batch_size: int = _f(8, "clips per device per step", min=1)
    num_workers: int = _f(2, "DataLoader worker processes per device (0: load in the main process)", min=0)
    repeats: int = _f(1, "pretraining: random windows per decoded clip (repeated sampling)", min=1)
    augment: Literal["auto", "worker", "device"] = _f(
        "auto", "pretraining: where the multi-scale crop, resize and normalisation run. worker: in the DataLoader "
        "workers (float32 items); device: batched on the training device (workers send uint8 frames and crop "
        "boxes, 4x fewer bytes); auto: device on a GPU, worker on the CPU. Fine-tuning augments in the workers")
    temporal_views: int = _f(2, "evaluation: windows per clip (K)", min=1)
    spatial_views: int = _f(2, "evaluation: crops per window (M)", min=1)
    max_bad_share: float = _f(0.01, "stop when more than this share of an epoch's clips cannot be read", min=0, max=1)
    decode_time_limit: float = _f(60.0, "seconds of decoding per clip before it is skipped as too slow (0: none)", min=0)
    loader_timeout: float = _f(600.0, "seconds without a batch from a worker: name its file, quarantine it, stop (0: none)", min=0)


@dataclass
class OptimSettings:
    base_lr: float = _f(3e-4, "peak learning rate before scaling", above=0)
    lr_scaling: Literal["linear", "none"] = _f("linear", "linear: lr = base_lr x total batch / 256 (VideoMAE); none: lr = base_lr")
    min_lr: float = _f(1e-6, "learning rate at the end of the cosine schedule", min=0)
    weight_decay: float = _f(0.05, "AdamW weight decay", min=0)
    betas: list[float] = _f([0.9, 0.95], "AdamW betas (two values in [0, 1))")
    epochs: int = _f(80, "training epochs", min=1)
    warmup_epochs: float = _f(5.0, "linear warm-up length in epochs", min=0)
    layer_decay: float | None = _f(None, "fine-tuning: per-layer lr decay (0.75 in the paper); None: off", above=0, max=1)
    clip_grad: float | None = _f(None, "gradient norm clipping; None: off", above=0)
    hrd_lr_scale: float = _f(1.0, "pretraining with HRD: the policy's lr relative to the autoencoder's (Eq. 5's alpha)", min=0)
    hrd_weight_decay: float | None = _f(None, "the HRD policy's weight decay; None: weight_decay", min=0)


PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")


@dataclass
class TrainerSettings:
    accelerator: str = _f("auto", "Lightning accelerator: auto, cpu, gpu, cuda, mps")
    devices: Union[int, str, list[int]] = _f("auto", "devices per node: a count, a list of ids, or auto")
    num_nodes: int = _f(1, "nodes (machines)", min=1)
    strategy: str = _f("auto", "Lightning strategy: auto, ddp, ...")
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"] = _f(
        "32-true", "numeric precision: 32-true, bf16-mixed, 16-mixed, ...")
    accumulate_grad_batches: int = _f(1, "batches per optimiser step", min=1)
    max_steps: int = _f(-1, "stop after this many optimiser steps (-1: after optim.epochs)", min=-1)
    limit_train_batches: Union[int, float, None] = _f(None, "batches per epoch (an int) or share of the epoch (a float <= 1); None: all", above=0)
    limit_val_batches: Union[int, float, None] = _f(None, "validation batches (an int) or share (a float <= 1); None: all", min=0)
    log_every_n_steps: int = _f(10, "log every n optimiser steps", min=1)
    max_bad_steps: int = _f(5, "consecutive NaN/Inf losses (or empty batches) before the run stops", min=1)
    checkpoint_every_n_steps: int = _f(0, "a step checkpoint every n steps (0: by time only)", min=0)
    checkpoint_every_n_minutes: float = _f(30.0, "a step checkpoint every n minutes (0: by steps only)", min=0)
    keep_checkpoints: int = _f(2, "step checkpoints kept (the newest)", min=1)
    enable_progress_bar: bool = _f(True, "show Lightning's progress bar")
    deterministic: bool = _f(False, "deterministic algorithms only (slower)")


@dataclass
class FinetuneSettings:
    pretrained: str | None = _f(None, "encoder to start from: an hi2m model directory, a transformers VideoMAE folder or a VideoMAE .pth; None: random init")
    linear_probe: bool = _f(False, "train only the head on a frozen encoder")
    drop_path: float = _f(0.1, "stochastic depth rate", min=0, below=1)
    head_dropout: float = _f(0.0, "dropout before the head", min=0, below=1)
    label_smoothing: float = _f(0.1, "label smoothing of the cross-entropy", min=0, below=1)
    mixup: float = _f(0.8, "mixup alpha (0: off)", min=0)
    cutmix: float = _f(1.0, "cutmix alpha (0: off)", min=0)
    mixup_prob: float = _f(1.0, "probability of mixing a batch", min=0, max=1)
    rand_augment: list[Union[int, float]] | None = _f([2, 7.0], "RandAugment (number of ops, magnitude); None: off")
    erase_p: float = _f(0.25, "random erasing probability", min=0, max=1)
    crop_scale: list[float] | None = _f([0.25, 1.0], "random resized crop's area share range; None: the whole frame")
    select: Literal["val", "last"] = _f("val", "val: best validation UAR (needs a validation set); last: the last epoch")
    folds: list[int] | None = _f(None, "DFEW / MAFW: folds to run one after the other, each and mean +- std")


SECTIONS: dict[str, type] = {"run": RunSettings, "model": ModelSettings, "data": DataSettings,
                             "optim": OptimSettings, "trainer": TrainerSettings, "finetune": FinetuneSettings}
SEED_DOC = "seed of everything random: initialisation, masks, data order, augmentation"
# words people type for a key, and the key they mean (for "did you mean ...?")
SYNONYMS = {"learning_rate": "base_lr", "lr": "base_lr", "warmup": "warmup_epochs", "num_epochs": "epochs",
            "wd": "weight_decay", "workers": "num_workers", "batch": "batch_size", "gpus": "devices",
            "frames": "num_frames", "resolution": "image_size", "img_size": "image_size"}


@dataclass
class RunConfig:
    """A whole run's configuration (see the module docstring)."""

    seed: int = _f(0, SEED_DOC, min=0)
    run: RunSettings = field(default_factory=RunSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)

    # ---- dict round trip ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (config.yaml): the model section flat, as in the YAML files."""
        out: dict[str, Any] = {"seed": self.seed}
        for name in SECTIONS:
            section = getattr(self, name)
            if name == "model":
                out[name] = {"size": section.size, "compile": section.compile, "init": section.init,
                             **copy.deepcopy(section.fields)}
            else:
                out[name] = {f.name: copy.deepcopy(getattr(section, f.name)) for f in dataclasses.fields(section)}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Validate plain data (defaults for missing keys); raises :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(SECTIONS) - {"seed"})
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown section{_suggest(unknown[0], ['seed', *SECTIONS])}")
        seed = _check_value("seed", data.get("seed", 0), int, fields_by_name(cls)["seed"].metadata)
        sections = {}
        for name, kind in SECTIONS.items():
            raw = data.get(name) or {}
            if not isinstance(raw, dict):
                raise ConfigError(f"{name}: expected a mapping of keys, got {raw!r}")
            sections[name] = _model_section(raw) if name == "model" else _section(name, kind, raw)
        cfg = cls(seed=seed, **sections)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Checks across fields and against the registries (datasets, HI2MConfig)."""
        from hi2m.data.adapters import DATASETS

        if self.data.dataset not in DATASETS:
            raise ConfigError(f"data.dataset: unknown dataset {self.data.dataset!r}"
                              f"{_suggest(self.data.dataset, sorted(DATASETS))} (known: {', '.join(sorted(DATASETS))})")
        if self.data.crop_box is not None and len(self.data.crop_box) != 4:
            raise ConfigError(f"data.crop_box: expected [top, left, bottom, right], got {self.data.crop_box}")
        if len(self.optim.betas) != 2 or not all(0 <= b < 1 for b in self.optim.betas):
            raise ConfigError(f"optim.betas: expected two values in [0, 1), got {self.optim.betas}")
        if not self.data.crop_scales or not all(0 < s <= 1 for s in self.data.crop_scales):
            raise ConfigError(f"data.crop_scales: expected values in (0, 1], got {self.data.crop_scales}")
        scale = self.finetune.crop_scale
        if scale is not None and (len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1):
            raise ConfigError(f"finetune.crop_scale: expected [low, high] with 0 < low <= high <= 1, got {scale}")
        if self.finetune.rand_augment is not None and len(self.finetune.rand_augment) != 2:
            raise ConfigError(f"finetune.rand_augment: expected [number of ops, magnitude], got {self.finetune.rand_augment}")
        if self.trainer.max_steps == 0:
            raise ConfigError("trainer.max_steps: must be -1 (train for optim.epochs) or >= 1, got 0")
        if self.data.classes is not None:
            if self.data.dataset != "csv":
                raise ConfigError(f"data.classes: only the csv adapter takes a class list ({self.data.dataset} "
                                  "has its own)")
            if len({c.lower() for c in self.data.classes}) != len(self.data.classes) or not self.data.classes:
                raise ConfigError(f"data.classes: expected distinct names, got {self.data.classes}")
        self.model_config()  # HI2MConfig's own checks (divisibility, cross-field rules)

    def model_config(self, **extra: Any):
        """The :class:`hi2m.model.HI2MConfig` this run builds (data.num_frames / image_size set the input)."""
        from hi2m.model.config import HI2MConfig

        values = dict(self.model.fields)
        values.setdefault("num_frames", self.data.num_frames)
        values.setdefault("image_size", self.data.image_size)
        values.update(extra)
        try:
            return HI2MConfig.from_name(self.model.size, **values)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"model: {err}") from err

    def save(self, run_dir: str | Path) -> Path:
        """Write ``<run_dir>/config.yaml`` (atomically): what ``--config`` repeats and ``--resume`` checks."""
        from hi2m.io.files import atomic_write

        text, path = dump_yaml(self), Path(run_dir) / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        return path

    def changes_since(self, saved_path: str | Path) -> list[str]:
        """``key: saved -> now`` lines for the keys a resumed run may not change (see :func:`config_changes`)."""
        import yaml

        return config_changes(yaml.safe_load(Path(saved_path).read_text()) or {}, self)

    def replace(self, **sections: dict[str, Any]) -> "RunConfig":
        """A validated copy with some keys changed: ``cfg.replace(data={"num_frames": 8})``."""
        return RunConfig.from_dict(deep_merge(self.to_dict(), sections))


def fields_by_name(kind: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(kind)}


def _suggest(word: str, known: list[str]) -> str:
    options = list(known) + [s for s in SYNONYMS if SYNONYMS[s] in known]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {SYNONYMS.get(close[0], close[0]) if close[0] not in known else close[0]}?)"


def _section(name: str, kind: type, raw: dict[str, Any]):
    fields = fields_by_name(kind)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}: unknown key{_suggest(unknown[0], list(fields))}")
    hints = typing.get_type_hints(kind)
    values = {key: _check_value(f"{name}.{key}", value, hints[key], fields[key].metadata) for key, value in raw.items()}
    return kind(**values)


def _model_section(raw: dict[str, Any]) -> ModelSettings:
    from hi2m.model import config as mc

    raw = dict(raw)
    fields = fields_by_name(ModelSettings)
    size = _check_value("model.size", raw.pop("size", "base"), typing.get_type_hints(ModelSettings)["size"],
                        fields["size"].metadata)
    compile_ = _check_value("model.compile", raw.pop("compile", False), bool, fields["compile"].metadata)
    init = _check_value("model.init", raw.pop("init", None), typing.get_type_hints(ModelSettings)["init"],
                        fields["init"].metadata)
    known = fields_by_name(mc.HI2MConfig)
    hints = typing.get_type_hints(mc.HI2MConfig)
    choices = {"mask_type": mc.MASK_TYPES, "target": mc.TARGET_MODES, "hsm_activation": mc.HSM_ACTIVATIONS,
               "hsm_reduction": mc.REDUCTIONS, "hrd_reduction": mc.REDUCTIONS, "hrd_advantage": mc.HRD_ADVANTAGES,
               "hrd_head_init": mc.HRD_HEAD_INITS}
    checked = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"model.{key}: unknown key{_suggest(key, ['size', 'compile', 'init', *known])}")
        hint = Literal[choices[key]] if key in choices else hints[key]  # type: ignore[valid-type]
        checked[key] = _check_value(f"model.{key}", value, hint, {})
    return ModelSettings(size=size, compile=compile_, init=init, fields=checked)


def _type_name(hint: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             type(None): "null", dict: "a mapping", list: "a list"}
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """(ok, value converted to ``hint``): ints become floats where a float is asked for, tuples lists."""
    if hint is Any:
        return True, value
    origin = typing.get_origin(hint)
    if origin is Literal:
        return (value in typing.get_args(hint) and not isinstance(value, bool)), value
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        for arg in sorted(args, key=lambda a: a is float):  # try exact types before int -> float
            ok, converted = _convert(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        (item,) = typing.get_args(hint)[:1] or (Any,)
        out = []
        for v in value:
            ok, c = _convert(v, item)
            if not ok:
                return False, value
            out.append(c)
        return True, out
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def _check_value(key: str, value: Any, hint: Any, meta: Any) -> Any:
    ok, value = _convert(value, hint)
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, above, below = (meta.get(k) for k in ("min", "max", "above", "below"))
        if lo is not None and value < lo:
            raise ConfigError(f"{key}: must be >= {lo:g}, got {value}")
        if hi is not None and value > hi:
            raise ConfigError(f"{key}: must be <= {hi:g}, got {value}")
        if above is not None and value <= above:
            raise ConfigError(f"{key}: must be > {above:g}, got {value}")
        if below is not None and value >= below:
            raise ConfigError(f"{key}: must be < {below:g}, got {value}")
    return value


# keys a resumed run may change: how it is run, not what it computes
RESUME_MAY_CHANGE = ("data.num_workers", "data.max_bad_share", "data.decode_time_limit", "data.loader_timeout",
                     "trainer.enable_progress_bar", "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "trainer.checkpoint_every_n_minutes", "trainer.keep_checkpoints",
                     "trainer.max_bad_steps", "run.dir", "run.name")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(saved: "RunConfig | dict[str, Any]", now: "RunConfig") -> list[str]:
    """Keys whose values differ between a run's saved config and the config it is resumed with, as
    ``key: saved -> now`` lines (keys in :data:`RESUME_MAY_CHANGE` are allowed to differ). A config saved
    by an earlier version is read with today's defaults for the keys it lacks."""
    a, b = _flat(as_config(saved).to_dict()), _flat(now.to_dict())
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)
                  and not any(k == m or k.startswith(m + ".") for m in RESUME_MAY_CHANGE))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys]


# ---- loading ---------------------------------------------------------------------------------------------

DEFAULTS: dict[str, Any] = RunConfig().to_dict()


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
        raise ConfigError(f"override {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({_one_line(err)})") from err
    return key.split("."), value


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        path, value = parse_override(text)
        node = cfg
        for depth, part in enumerate(path[:-1]):
            if not isinstance(node.get(part), dict):
                if part in node and node[part] is not None:
                    raise ConfigError(f"override {text!r}: {'.'.join(path[:depth + 1])} is not a section")
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return cfg


ConfigSource = Union[str, Path, RunConfig, dict, None]


def load_config(path: ConfigSource, overrides: list[str] | tuple[str, ...] | None = None,
                defaults: dict[str, Any] | None = None, **sections: Any) -> RunConfig:
    """defaults < source < ``"section.key=value"`` overrides < ``sections``, validated, with path keys made
    absolute. Raises :class:`ConfigError` (one line naming the key) for anything wrong.

    ``path``: a YAML file (``base:`` names another YAML file, relative to this one), a :class:`RunConfig`,
    a plain dict of sections, or None (the defaults). ``sections``: keyword arguments per section
    (``model={"size": "micro"}``, ``seed=3``), merged key by key -- what the Python API passes on."""
    cfg = copy.deepcopy(defaults if defaults is not None else DEFAULTS)
    if isinstance(path, RunConfig):
        cfg = path.to_dict()
    elif isinstance(path, dict):
        cfg = deep_merge(cfg, path)
    elif path is not None:
        if not isinstance(path, (str, Path)):
            raise ConfigError(f"a configuration is a YAML file's path, a RunConfig or a dict, got {type(path).__name__}")
        cfg = deep_merge(cfg, _read_yaml(Path(path)))
    if isinstance(overrides, str):
        overrides = [overrides]
    cfg = _numbers(deep_merge(apply_overrides(cfg, list(overrides or [])), _plain_paths(sections)))
    return absolute_paths(RunConfig.from_dict(cfg))


def resume_source(config: ConfigSource, resume: str | Path | None, flag: str = "resume") -> ConfigSource:
    """The configuration a run starts from: ``config``, or -- resuming a run directory without one -- that
    run's own ``config.yaml`` (the command line and the Python API alike; ``flag`` names the option in the
    error)."""
    if config is not None or resume is None or str(resume) == "auto":
        return config
    saved = Path(resume) / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{flag} {resume}: not a run directory (no config.yaml)")
    return saved


def _plain_paths(node: Any) -> Any:
    """``Path`` values (a Run's ``model_dir`` passed as ``finetune={"pretrained": ...}``) as strings."""
    if isinstance(node, dict):
        return {k: _plain_paths(v) for k, v in node.items()}
    return str(node) if isinstance(node, Path) else node


def as_config(cfg: RunConfig | dict[str, Any]) -> RunConfig:
    """A :class:`RunConfig` from either form (plain dicts are validated, defaults filling the gaps)."""
    return cfg if isinstance(cfg, RunConfig) else RunConfig.from_dict(deep_merge(DEFAULTS, _numbers(cfg)))


# Config keys that hold file-system paths. A relative value means "relative to the current
# directory when the command starts", as on any command line; it is made absolute once, here, so
# nothing later joins it to another relative path, and the run's saved config.yaml still points at
# the same files when the run is resumed or visualised from another directory.
PATH_KEYS: tuple[tuple[str, str], ...] = (("run", "dir"), ("data", "root"), ("finetune", "pretrained"), ("model", "init"))


def absolute_paths(cfg: RunConfig, cwd: str | Path | None = None) -> RunConfig:
    """A copy of ``cfg`` whose path keys (:data:`PATH_KEYS`) are absolute, resolved against ``cwd``
    (default: the current directory). Idempotent; None values stay None."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    out = copy.deepcopy(cfg)
    for section, key in PATH_KEYS:
        value = getattr(getattr(out, section), key)
        if value is not None:
            setattr(getattr(out, section), key, str((base / Path(value).expanduser()).absolute()))
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


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _read_yaml(path: Path, depth: int = 0) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({_one_line(e)})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is not None:
        if depth > 8:
            raise ConfigError(f"{path}: 'base:' chain too deep")
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise ConfigError(f"{path}: base file {base_path} not found")
        data = deep_merge(_read_yaml(base_path, depth + 1), data)
    return data


def dump_yaml(cfg: RunConfig | dict[str, Any]) -> str:
    import yaml

    data = cfg.to_dict() if isinstance(cfg, RunConfig) else cfg
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def describe(cfg: RunConfig) -> str:
    """The resolved configuration as YAML, each key followed by its doc (``hi2m config show``)."""
    import yaml

    def line(indent: str, key: str, value: Any, doc: str) -> str:
        text = yaml.safe_dump({key: value}, default_flow_style=True, width=10_000).strip()[1:-1]
        return f"{indent}{text:<{48 - len(indent)}}  # {doc}"

    lines = [line("", "seed", cfg.seed, SEED_DOC)]
    for name, kind in SECTIONS.items():
        section = getattr(cfg, name)
        lines.append(f"{name}:")
        for f in dataclasses.fields(kind):
            if name == "model" and f.name == "fields":
                from hi2m.model.config import HI2MConfig

                model = cfg.model_config()
                for key in fields_by_name(HI2MConfig):
                    if key != "extra":
                        mark = "set" if key in section.fields else f"from size {section.size}"
                        lines.append(line("  ", key, _plain(getattr(model, key)), f"HI2MConfig field ({mark})"))
                continue
            lines.append(line("  ", f.name, getattr(section, f.name), f.metadata["doc"]))
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
