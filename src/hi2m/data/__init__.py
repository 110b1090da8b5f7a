"""Video decoding, temporal sampling, transforms and dataset adapters.

Names are imported lazily (PEP 562) so that ``import hi2m.data`` (done by the CLI
while building ``hi2m --help``) does not import torch, numpy or PyAV.

Main entry points::

    from hi2m.data import build_dataset, collate_skip_bad, SkipTracker
    from hi2m.data import open_clip_source, read_windows, pretrain_transform, finetune_transform
"""

from __future__ import annotations

from hi2m.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # errors
    "DataError": "hi2m.data.errors",
    "DecodeError": "hi2m.data.errors",
    "LayoutError": "hi2m.data.errors",
    "SplitFileError": "hi2m.data.errors",
    "TooManyBadFilesError": "hi2m.data.errors",
    # decoding
    "ClipSource": "hi2m.data.video",
    "FrameFolderSource": "hi2m.data.video",
    "VideoFileSource": "hi2m.data.video",
    "open_clip_source": "hi2m.data.video",
    "read_windows": "hi2m.data.video",
    # sampling
    "train_window": "hi2m.data.sampling",
    "train_windows": "hi2m.data.sampling",
    "eval_windows": "hi2m.data.sampling",
    "window_span": "hi2m.data.sampling",
    # transforms
    "pretrain_transform": "hi2m.data.transforms",
    "finetune_transform": "hi2m.data.transforms",
    "VOXCELEB2_CROP_BOX": "hi2m.data.transforms",
    # datasets
    "ClipDataset": "hi2m.data.dataset",
    "ClipRecord": "hi2m.data.dataset",
    "build_dataset": "hi2m.data.adapters",
    "register_dataset": "hi2m.data.adapters",
    "DATASETS": "hi2m.data.adapters",
    "collate_skip_bad": "hi2m.data.skipping",
    "SkipTracker": "hi2m.data.skipping",
    "DFER_CLASSES": "hi2m.labels",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("hi2m.data", _EXPORTS, globals())
