"""Temporal sampling: which frame indices form a clip window.

A window is ``num_frames`` indices ``start, start + stride, ...``; it spans
``(num_frames - 1) * stride + 1`` frames of the source. Training draws the start
uniformly at random; evaluation spreads ``num_windows`` starts evenly over the clip.

A clip shorter than the span never crashes: the window starts at frame 0 and

* ``short="loop"`` (default) wraps around: index ``k`` becomes ``k % num_available``
  (a 3-frame clip read with stride 1 gives 0, 1, 2, 0, 1, 2, ...);
* ``short="pad"`` repeats the last frame: index ``k`` becomes
  ``min(k, num_available - 1)``.

A clip with no frame is an error (the decoders already refuse such clips).
"""

from __future__ import annotations

from typing import Literal, Union

import numpy as np

ShortPolicy = Literal["loop", "pad"]
SHORT_POLICIES: tuple[str, ...] = ("loop", "pad")

# Anything that can draw integers: a torch.Generator, a numpy Generator or None
# (None = torch's global RNG, which DataLoader seeds differently in every worker).
GeneratorLike = Union["np.random.Generator", object, None]


def window_span(num_frames: int, stride: int) -> int:
    """Number of source frames covered by one window."""
    if num_frames < 1 or stride < 1:
        raise ValueError(f"num_frames and stride must be >= 1, got {num_frames}, {stride}")
    return (num_frames - 1) * stride + 1


def window_at(
    start: int, num_available: int, num_frames: int, stride: int, short: ShortPolicy = "loop"
) -> np.ndarray:
    """Indices (num_frames,) of the window starting at ``start``, folded into the clip."""
    if num_available < 1:
        raise ValueError("cannot sample a window from a clip with 0 frames")
    if short not in SHORT_POLICIES:
        raise ValueError(f"short must be one of {SHORT_POLICIES}, got {short!r}")
    raw = start + stride * np.arange(num_frames, dtype=np.int64)  # (T,)
    if short == "loop":
        return raw % num_available
    return np.minimum(raw, num_available - 1)


def _randint(high: int, generator: GeneratorLike) -> int:
    """A uniform integer in [0, high) from a torch or numpy generator."""
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, high))
    import torch

    return int(torch.randint(0, high, (1,), generator=generator).item())  # type: ignore[arg-type]


def train_window(
    num_available: int,
    num_frames: int = 16,
    stride: int = 4,
    generator: GeneratorLike = None,
    short: ShortPolicy = "loop",
) -> np.ndarray:
    """A random window (num_frames,) for training; deterministic for a seeded generator."""
    span = window_span(num_frames, stride)
    start = _randint(num_available - span + 1, generator) if num_available >= span else 0
    return window_at(start, num_available, num_frames, stride, short)


def eval_windows(
    num_available: int,
    num_frames: int = 16,
    stride: int = 4,
    num_windows: int = 2,
    short: ShortPolicy = "loop",
) -> list[np.ndarray]:
    """``num_windows`` windows with evenly spaced starts, first at frame 0, last ending at the end.

    A clip shorter than the span yields ``num_windows`` copies of the same window.
    """
    if num_windows < 1:
        raise ValueError(f"num_windows must be >= 1, got {num_windows}")
    span = window_span(num_frames, stride)
    last_start = max(num_available - span, 0)
    if num_windows == 1:
        starts = [last_start // 2]  # a single evaluation window is centred
    else:
        starts = np.round(np.linspace(0, last_start, num_windows)).astype(np.int64).tolist()
    return [window_at(int(s), num_available, num_frames, stride, short) for s in starts]


def train_windows(
    num_available: int,
    num_frames: int = 16,
    stride: int = 4,
    repeats: int = 1,
    generator: GeneratorLike = None,
    short: ShortPolicy = "loop",
) -> list[np.ndarray]:
    """``repeats`` independent random windows (repeated sampling from one decode)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    return [train_window(num_available, num_frames, stride, generator, short) for _ in range(repeats)]
