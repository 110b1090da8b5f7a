"""Small media writers for tests, benchmarks and synthetic data.

``write_video`` encodes an array of frames with PyAV; ``write_frame_folder`` saves
numbered images; ``index_pattern`` draws a frame whose index survives lossy
compression (one black/white stripe per bit), and ``read_index_pattern`` recovers it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

PATTERN_BITS = 8  # index_pattern encodes frame indices 0..255


def index_pattern(index: int, height: int = 64, width: int = 64) -> np.ndarray:
    """An RGB frame (H, W, 3) whose vertical stripes spell ``index`` in binary.

    Stripe ``b`` (from the left) is white when bit ``b`` of ``index`` is set. The
    stripes are wide flat regions, so the code survives H.264/HEVC/MPEG-4 encoding.
    """
    if not 0 <= index < 2**PATTERN_BITS:
        raise ValueError(f"index_pattern encodes 0..{2**PATTERN_BITS - 1}, got {index}")
    if width < PATTERN_BITS * 4:
        raise ValueError(f"index_pattern needs width >= {PATTERN_BITS * 4}, got {width}")
    frame = np.zeros((height, width, 3), dtype=np.uint8)  # (H, W, 3)
    stripe = width // PATTERN_BITS
    for bit in range(PATTERN_BITS):
        if (index >> bit) & 1:
            frame[:, bit * stripe : (bit + 1) * stripe] = 255
    return frame


def read_index_pattern(frame: np.ndarray) -> int:
    """Recover the index drawn by :func:`index_pattern` from a decoded (H, W, 3) frame."""
    height, width = frame.shape[:2]
    stripe = width // PATTERN_BITS
    centre = frame[height // 4 : 3 * height // 4].astype(np.float32).mean(axis=(0, 2))  # (W,)
    value = 0
    for bit in range(PATTERN_BITS):
        middle = centre[bit * stripe + stripe // 4 : (bit + 1) * stripe - stripe // 4]
        if middle.mean() > 127.5:
            value |= 1 << bit
    return value


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray] | np.ndarray,
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    options: dict[str, str] | None = None,
    input_format: str | None = None,
    container_format: str | None = None,
) -> Path:
    """Encode frames (each (H, W, 3) uint8 RGB, or (H, W) gray) into a video file.

    ``gop`` sets the keyframe interval; ``options`` are codec options passed to
    FFmpeg (e.g. ``{"crf": "23"}``); ``container_format`` names the container when the file name's
    suffix does not (e.g. ``"mp4"`` for a temporary file). Returns the path written.
    """
    import av
    from fractions import Fraction

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames)
    fmt = input_format or ("gray" if first.ndim == 2 else "rgb24")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        opts = dict(options or {})
        if codec == "libx265":
            opts.setdefault("x265-params", "log-level=error")
        if opts:
            stream.options = opts
        for array in _chain(first, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(
    folder: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    ext: str = "jpg",
    name: str = "{:d}",
    quality: int = 95,
) -> Path:
    """Save frames as ``folder/<name>.<ext>`` (1-based numbers, no zero padding by default)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(frames, start=1):
        image = Image.fromarray(array)
        target = folder / f"{name.format(i)}.{ext}"
        if ext.lower() in ("jpg", "jpeg"):
            image.save(target, quality=quality)
        else:
            image.save(target)
    return folder


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest
