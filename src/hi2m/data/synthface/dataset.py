"""In-memory SynthFace clips as torch Datasets (rendered in memory, nothing on disk): a split rendered on the
fly (:class:`SynthFaceClips`), a fixed labelled pool rendered once (:class:`SynthFacePool`, what the study and
the demo fine-tune on) and the endless unlabelled stream (:class:`SynthFaceStream`)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from hi2m.data.dataset import item_generator
from hi2m.data.transforms import view_fields
from hi2m.data.synthface.config import NUM_CLASSES, SynthFaceConfig, check_split
from hi2m.data.synthface.render import generate_clip, generate_stream_clip, render_many, render_stream_pool
from hi2m.labels import DFER_CLASSES


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (C, T, H, W) in [0, 1]. A read-only array (a prerendered pool's) is copied
    first (a few KB), not aliased: torch would warn that its tensor could write to it."""
    frames = np.ascontiguousarray(frames)
    video = torch.from_numpy(frames if frames.flags.writeable else frames.copy())  # (T, H, W, 3)
    return video.permute(3, 0, 1, 2).float().div_(255.0)  # (C, T, H, W)


class SynthFaceClips(Dataset):
    """Clips of one split generated on the fly from ``(config, split, index)``.

    Items are dicts ``{"video": float (C, T, H, W) in [0, 1], "label": int,
    "index": int, "region_mask": bool (T, H, W)}``; an optional ``transform`` is
    applied to the whole dict. Works with any number of DataLoader workers since
    every clip is generated independently from its own seed.
    """

    def __init__(
        self,
        config: SynthFaceConfig | None = None,
        split: str = "train",
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        check_split(split)
        self.config = config or SynthFaceConfig()
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return self.config.count(self.split)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        clip = generate_clip(self.config, self.split, index)
        item = {
            "video": frames_to_tensor(clip.frames),  # (C, T, H, W)
            "label": int(clip.label),
            "index": int(index),
            "region_mask": torch.from_numpy(clip.region_masks),  # (T, H, W) bool
        }
        return self.transform(item) if self.transform else item


class SynthFaceStream(Dataset):
    """Endless unlabelled SynthFace for pretraining, rendered on the fly in whichever process reads it
    (DataLoader workers included); nothing touches the disk.

    An epoch has ``clips_per_epoch`` items; item ``i`` of epoch ``e`` (set with :meth:`set_epoch`, as the
    training engine does) is clip ``e * clips_per_epoch + i`` of the stream, so pretraining never sees the
    same clip twice. ``pool`` (optional) wraps the stream index modulo ``pool`` clips: a finite
    unlabelled set of that size, for studying how much unlabelled data pretraining needs.

    Items: ``{"video": transform(frames) or float (C, T, H, W) in [0, 1], "label": -1, "index": stream
    index, "path": "synthface-stream:<index>"}``; ``transform(uint8 (T, H, W, 3), generator)`` as for
    :class:`hi2m.data.dataset.ClipDataset`; ``repeats`` > 1 stacks that many transformed views (R, C, T, H, W).
    """

    def __init__(self, config: SynthFaceConfig, clips_per_epoch: int, transform: Callable | None = None,
                 pool: int | None = None, repeats: int = 1, seed: int = 0, prerender: int = 0) -> None:
        if clips_per_epoch <= 0:
            raise ValueError(f"clips_per_epoch must be positive, got {clips_per_epoch}")
        if pool is not None and pool <= 0:
            raise ValueError(f"pool must be positive or None, got {pool}")
        if prerender and not pool:
            raise ValueError("prerender renders a finite pool once: set pool (the endless stream renders on the fly)")
        self.config, self.clips_per_epoch, self.transform = config, int(clips_per_epoch), transform
        self.pool, self.repeats, self.seed, self.epoch = pool, int(repeats), int(seed), 0
        # prerender: the whole pool rendered once by that many processes, then read from memory (uint8,
        # pool x T x H x W x 3) -- a pool read for several epochs costs one rendering, not one per epoch
        self.frames = rendered_pool(config, int(pool), int(prerender)) if prerender else None

    def __len__(self) -> int:
        return self.clips_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def stream_index(self, index: int) -> int:
        k = self.epoch * self.clips_per_epoch + index
        return k % self.pool if self.pool else k

    @property
    def labels(self) -> list[int]:
        return [-1] * self.clips_per_epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = self.stream_index(index)
        if self.frames is not None:
            frames = self.frames[k]  # (T, H, W, 3) uint8
        else:
            frames = generate_stream_clip(self.config, k, frames_only=True).frames
        if self.transform is None:
            fields = {"video": frames_to_tensor(frames)}  # (C, T, H, W)
        else:
            g = torch.Generator().manual_seed((self.seed * 0x9E3779B1 + k * 0xC2B2AE35) % (2**63))
            fields = view_fields([self.transform(frames, g) for _ in range(self.repeats)], self.repeats > 1)
        return {**fields, "label": -1, "index": k, "path": f"synthface-stream:{k}"}


@functools.lru_cache(maxsize=1)
def rendered_pool(config: SynthFaceConfig, count: int, workers: int) -> np.ndarray:
    """Stream clips 0 .. count - 1 rendered once per process and kept (read-only): the variants of one seed
    of a study pretrain on the same pool (the config is frozen, so it is the cache key)."""
    frames = render_stream_pool(config, count, workers)  # (count, T, H, W, 3)
    frames.setflags(write=False)
    return frames


_SPLITS: dict[tuple, tuple] = {}  # (config, split, count) -> clips, the 4 newest


def render_split(config: SynthFaceConfig, split: str, count: int, workers: int = 1) -> tuple:
    """The first ``count`` clips of ``split`` (SynthClip each), rendered once per process (by ``workers``
    spawned processes when > 1) and kept: several runs of one study or demo read the same pool (the config is
    frozen, so it is the cache key; how it was rendered is not: the clips are the same)."""
    key = (config, split, count)
    if key not in _SPLITS:
        counts = {f"num_{name}": (count if name == split else 0) for name in ("train", "val", "test")}
        _SPLITS[key] = render_many(dataclasses.replace(config, **counts), split, count, workers)
        while len(_SPLITS) > 4:
            del _SPLITS[next(iter(_SPLITS))]
    return _SPLITS[key]


def budget_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` clips of every class, sorted (nested: a larger budget holds the smaller)."""
    picks = [np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)]
    short = [c for c, p in enumerate(picks) if len(p) < per_class]
    if short:
        raise ValueError(f"the labelled pool has fewer than {per_class} clips of classes {short}")
    return np.sort(np.concatenate(picks))


class SynthFacePool(Dataset):
    """A fixed pool of labelled SynthFace clips, rendered once into memory: the first ``count`` clips of
    ``split``, of which the first ``per_class`` of every class are used (None: all; budgets are nested, so
    10 clips per class are among the 300), listed ``repeat`` times per epoch (a small budget still fills
    an epoch of many steps; each listing gets its own augmentation).

    Items are those of :class:`hi2m.data.dataset.ClipDataset`: ``transform(uint8 (T, H, W, 3), generator)``
    gives ``video``; in training the generator depends on (seed, epoch, index) only; in evaluation the
    video gets the windows axis, (1, ...) (one window: the clip is the model's length).
    """

    def __init__(self, config: SynthFaceConfig, split: str, count: int, per_class: int | None = None,
                 transform: Callable | None = None, train: bool = True, seed: int = 0, repeat: int = 1) -> None:
        check_split(split)
        if count <= 0 or repeat <= 0:
            raise ValueError(f"count and repeat must be positive, got {count}, {repeat}")
        self.repeat = int(repeat)
        self.config, self.split, self.train, self.seed, self.epoch = config, split, train, int(seed), 0
        self.transform = transform
        clips = render_split(config, split, count)
        labels = np.asarray([c.label for c in clips], dtype=np.int64)  # (count,)
        self.pool_index = budget_indices(labels, per_class) if per_class else np.arange(count)
        self.frames = [clips[k].frames for k in self.pool_index]  # each uint8 (T, H, W, 3)
        self._labels = labels[self.pool_index]
        self.classes = tuple(DFER_CLASSES)

    def __len__(self) -> int:
        return len(self.frames) * self.repeat

    @property
    def labels(self) -> list[int]:
        return self._labels.tolist() * self.repeat

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        g = item_generator(self.seed, self.epoch, index) if self.train else None
        index = index % len(self.frames)
        frames = self.frames[index]
        video = self.transform(frames, g) if self.transform else frames_to_tensor(frames)  # (C, T, H, W) or views
        if not self.train:
            video = video[None]  # (1, ...): one window
        k = int(self.pool_index[index])
        return {"video": video, "label": int(self._labels[index]), "index": index, "path": f"synthface:{self.split}:{k}"}
