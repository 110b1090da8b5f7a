"""The clip dataset shared by every adapter.

An adapter (see :mod:`hi2m.data.adapters`) turns a dataset root into a list of
:class:`ClipRecord` (clip path + label); :class:`ClipDataset` decodes, samples and
transforms them. Items are dicts::

    {"video": float tensor, "label": int (-1 if unlabelled), "index": int, "path": str}

(plus ``"box"``, the crop box of each view, and a uint8 ``video`` when the transform leaves the
augmentation to the training device: see :class:`hi2m.data.transforms.PretrainViews`).

``video`` is ``(C, T, H, W)`` for one training window. Training with
``repeats=R > 1`` (repeated sampling: R random windows from one decode) gives
``(R, C, T, H, W)``, and evaluation with ``num_windows=K`` evenly spaced windows gives
``(K, C, T, H, W)`` (also for K = 1 it keeps the leading axis, so eval batches always
have shape (B, K, C, T, H, W) and the caller averages the K predictions).

A clip that fails in any way while it is read (open, decode, transform; see
:func:`hi2m.data.boundary.file_boundary`) does not raise: the item is a marker
``{"error": message, "kind": reason kind, "path": path, "index": i}`` that
:func:`hi2m.data.skipping.collate_skip_bad` removes from the batch and reports.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from hi2m.data.boundary import file_boundary
from hi2m.data.errors import DecodeError
from hi2m.data.records import ClipRecord, RecordTable
from hi2m.data.sampling import SHORT_POLICIES, eval_windows, train_windows, window_span
from hi2m.data.splits import BadLine
from hi2m.data.transforms import default_transform, view_fields
from hi2m.data.video import open_clip_source, read_windows
from hi2m.labels import DFER_CLASSES


class ClipDataset(Dataset):
    """Decode, sample and transform clips listed as :class:`ClipRecord`.

    Args:
        records: the clips (kept as a :class:`RecordTable`: flat buffers that forked workers share).
        num_frames: frames per window (T).
        stride: step between sampled frames.
        transform: ``transform(uint8 (T, H, W, 3), generator) -> float (C, T, H, W)``;
            default: float in [0, 1] without resizing.
        train: random windows (True) or ``num_windows`` evenly spaced ones (False).
        num_windows: K, evaluation windows per clip.
        repeats: R, random windows per decode in training (repeated sampling).
        short: ``"loop"`` or ``"pad"``, for clips shorter than the window.
        seed: None = use torch's global RNG (seeded per DataLoader worker); an int
            makes every item deterministic given (seed, epoch, index).
        decode_threads: FFmpeg decoder threads per clip (1 inside DataLoader workers).
        time_limit: seconds of decoding allowed per clip (None = no limit); a slower clip is skipped.
        classes: class names, index = label.
        name: a short description used in messages.
        bad_lines: entries skipped while building the record list (reported by adapters).
    """

    def __init__(
        self,
        records: Sequence[ClipRecord] | RecordTable,
        *,
        num_frames: int = 16,
        stride: int = 4,
        transform: Callable[..., torch.Tensor] | None = None,
        train: bool = True,
        num_windows: int = 2,
        repeats: int = 1,
        short: str = "loop",
        seed: int | None = None,
        decode_threads: int = 1,
        time_limit: float | None = None,
        classes: Sequence[str] = DFER_CLASSES,
        name: str = "clips",
        bad_lines: Sequence[BadLine] = (),
    ) -> None:
        window_span(num_frames, stride)  # validates both
        if short not in SHORT_POLICIES:
            raise ValueError(f"short must be one of {SHORT_POLICIES}, got {short!r}")
        if num_windows < 1 or repeats < 1:
            raise ValueError(f"num_windows and repeats must be >= 1, got {num_windows}, {repeats}")
        self.records = RecordTable.of(records)
        self.num_frames = num_frames
        self.stride = stride
        self.transform = transform if transform is not None else default_transform()
        self.train = train
        self.num_windows = num_windows
        self.repeats = repeats
        self.short = short
        self.seed = seed
        self.decode_threads = decode_threads
        self.time_limit = time_limit
        self.classes = tuple(classes)
        self.name = name
        self.bad_lines = list(bad_lines)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        mode = f"train, repeats={self.repeats}" if self.train else f"eval, num_windows={self.num_windows}"
        return (
            f"ClipDataset({self.name}: {len(self)} clips, num_frames={self.num_frames}, "
            f"stride={self.stride}, {mode}, short={self.short!r})"
        )

    @property
    def labels(self) -> list[int]:
        return self.records.labels.tolist()

    def set_epoch(self, epoch: int) -> None:
        """Change the per-item random stream when ``seed`` is set (call before each epoch)."""
        self.epoch = epoch

    def _generator(self, index: int) -> torch.Generator | None:
        return None if self.seed is None else item_generator(self.seed, self.epoch, index)

    def windows(self, num_available: int, generator: torch.Generator | None = None) -> list:
        """The index windows an item reads from a clip of ``num_available`` frames."""
        if self.train:
            return train_windows(num_available, self.num_frames, self.stride, self.repeats, generator, self.short)  # type: ignore[arg-type]
        return eval_windows(num_available, self.num_frames, self.stride, self.num_windows, self.short)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        generator = self._generator(index)
        try:
            with file_boundary(record.path, self.time_limit):
                with open_clip_source(record.path, threads=self.decode_threads) as source:
                    clips = read_windows(source, self.windows(source.num_frames, generator))
                views = [self._transform(record.path, clip, generator) for clip in clips]  # each (C, T, H, W)
        except DecodeError as err:
            return bad_item(err, index, record.path)
        stacked = not (self.train and self.repeats == 1)
        return {**view_fields(views, stacked), "label": record.label, "index": index, "path": record.path}

    def _transform(self, path: str, clip: Any, generator: torch.Generator | None) -> torch.Tensor:
        try:
            return self.transform(clip, generator)
        except ValueError as err:  # e.g. a crop box that does not fit this clip's frame size
            size = "x".join(str(s) for s in clip.shape[1:3])
            raise DecodeError(path, f"transform failed on {size} frames ({err})", kind="transform") from err


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of one training item: the same for (seed, epoch, index) in any process."""
    mixed = (seed * 0x9E3779B1 + epoch * 0x85EBCA6B + index * 0xC2B2AE35) % (2**63)
    return torch.Generator().manual_seed(mixed)


def bad_item(err: DecodeError, index: int, path: str) -> dict[str, Any]:
    """The marker a dataset returns instead of the clip at ``path`` that could not be read (see the
    module docstring)."""
    return {"error": str(err), "kind": err.kind, "path": path, "index": index}
