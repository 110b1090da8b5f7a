"""In-memory SynthFace clips as a torch Dataset (rendered on the fly, nothing on disk)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from hi2m.data.synthface.config import SynthFaceConfig, check_split
from hi2m.data.synthface.render import generate_clip


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (C, T, H, W) in [0, 1]."""
    video = torch.from_numpy(np.ascontiguousarray(frames))  # (T, H, W, 3)
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
