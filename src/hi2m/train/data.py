"""Datasets and loaders for the training commands, built from a run config."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from hi2m.data.adapters import build_dataset
from hi2m.data.transforms import EvalViews, PretrainViews, finetune_transform, pretrain_transform
from hi2m.train.config import RunConfig


def _dataset(cfg: RunConfig, split: str, train: bool, transform, **extra: Any):
    d = cfg.data
    options = dict(d.options)
    options.setdefault("time_limit", d.decode_time_limit)
    if d.classes:
        options["classes"] = list(d.classes)
    options.update(extra)
    return build_dataset(
        d.dataset, d.root, split=split, num_frames=d.num_frames, stride=d.stride,
        transform=transform, train=train, **options,
    )


def pretrain_views(cfg: RunConfig, model_cfg) -> PretrainViews:
    """The pretraining augmentation of this run; in the workers or on the training device (``data.augment``)."""
    d = cfg.data
    return pretrain_transform(d.image_size, crop_box=d.crop_box, scales=d.crop_scales, mean=model_cfg.pixel_mean,
                              std=model_cfg.pixel_std, on_device=augment_on_device(cfg))


def augment_on_device(cfg: RunConfig) -> bool:
    """``data.augment``, with ``auto`` resolved: on the device when training runs on a GPU."""
    if cfg.data.augment != "auto":
        return cfg.data.augment == "device"
    accelerator = str(cfg.trainer.accelerator).lower()
    if accelerator == "mps":
        return True
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def pretrain_dataset(cfg: RunConfig, model_cfg) -> Dataset:
    return _dataset(cfg, cfg.data.train_split, True, pretrain_views(cfg, model_cfg), repeats=cfg.data.repeats,
                    seed=cfg.seed)


def finetune_datasets(cfg: RunConfig, model_cfg) -> tuple[Dataset, Dataset | None, str]:
    """(train, validation or None, how the validation set was made)."""
    d, f = cfg.data, cfg.finetune
    ra = tuple(f.rand_augment) if f.rand_augment else None
    scale = tuple(f.crop_scale) if f.crop_scale is not None else None
    train_tf = finetune_transform(d.image_size, train=True, scale=scale, rand_augment=ra, erase_p=f.erase_p,
                                  mean=model_cfg.pixel_mean, std=model_cfg.pixel_std)
    train = _dataset(cfg, d.train_split, True, train_tf, seed=cfg.seed)
    if d.val_split:
        return train, eval_dataset(cfg, model_cfg, d.val_split), f"split '{d.val_split}'"
    if d.val_fraction and d.val_fraction > 0:
        full_eval = eval_dataset(cfg, model_cfg, d.train_split)
        train_idx, val_idx = stratified_split(train.labels, d.val_fraction, cfg.seed)
        how = f"{len(val_idx)} clips carved from '{d.train_split}' (stratified, seed {cfg.seed})"
        return Subset(train, train_idx), Subset(full_eval, val_idx), how
    return train, None, "none"


def eval_dataset(cfg: RunConfig, model_cfg, split: str) -> Dataset:
    d = cfg.data

    views = EvalViews(d.image_size, d.spatial_views, model_cfg.pixel_mean, model_cfg.pixel_std)
    return _dataset(cfg, split, False, views, num_windows=d.temporal_views)


def stratified_split(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out ``fraction`` of each class (at least one clip of every class with two or more),
    reproducibly from ``seed``. Returns (train indices, validation indices), each ascending."""
    g = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    val: list[int] = []
    for y in sorted(by_class):
        members = by_class[y]
        order = torch.randperm(len(members), generator=g).tolist()
        k = 0 if len(members) < 2 else max(1, round(fraction * len(members)))
        val += [members[j] for j in order[:k]]
    held = set(val)
    return [i for i in range(len(labels)) if i not in held], sorted(val)
