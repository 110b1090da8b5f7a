"""Sequential video decoding for inference: every ``stride``-th frame, upright, as RGB.

Prediction reads each video once from start to end, so it decodes sequentially (no index, no
seeking) and converts to RGB only the frames it samples. Frames are turned upright according to
the stream's display matrix (phones store portrait video as landscape frames plus a rotation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from hi2m.data.boundary import check_time, paused
from hi2m.data.errors import DecodeError
from hi2m.data.video import ffmpeg_errors, open_video_stream

DEFAULT_FPS = 30.0  # used only when a stream declares no frame rate


@dataclass
class VideoInfo:
    """What the container says about a video stream (sizes are after rotation)."""

    path: str
    width: int
    height: int
    fps: float
    declared_frames: int  # 0 when the container does not say
    duration: float | None  # seconds, None when unknown
    codec: str
    fps_known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width, "height": self.height, "fps": round(self.fps, 4), "codec": self.codec,
            "declared_frames": self.declared_frames,
            "duration": None if self.duration is None else round(self.duration, 3),
        }


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as PyAV reports it) to (H, W, 3)."""
    turns = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(frame, k=turns)) if turns else frame  # (H', W', 3)


class SequentialVideo:
    """A video file opened for one pass of sequential decoding (a context manager).

    Raises :class:`DecodeError` naming the file when it is missing, empty, not a video, or breaks
    while decoding.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 0) -> None:
        self.path = str(path)
        self._container: Any = None
        if not os.path.isfile(self.path):
            raise DecodeError(self.path, "file does not exist")
        self._container, self._stream = open_video_stream(self.path, threads)
        rate = self._stream.average_rate or self._stream.guessed_rate
        ctx = self._stream.codec_context
        duration = None
        if self._stream.duration is not None and self._stream.time_base:
            duration = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / 1e6
        self.info = VideoInfo(
            path=self.path, width=int(ctx.width), height=int(ctx.height),
            fps=float(rate) if rate else DEFAULT_FPS, declared_frames=int(self._stream.frames or 0),
            duration=duration, codec=str(ctx.name), fps_known=bool(rate),
        )

    def frames(self, stride: int = 1, start: float | None = None
               ) -> Iterator[tuple[int, float, np.ndarray | None]]:
        """Yield (frame index, time in seconds from the first frame, RGB (H, W, 3) or None) for every
        decoded frame; only frames whose index is a multiple of ``stride`` are converted (others: None).
        Inside a :func:`~hi2m.data.boundary.file_boundary`, only the time spent decoding counts against its
        limit (the clock stops while the caller holds a frame).

        ``start`` (seconds): seek to the keyframe at or before it first, so a span late in a long video is not
        decoded from the beginning; decoding then begins up to one keyframe interval early (callers drop the
        frames before ``start``), times count from the stream's start, and indices are time x fps (exact at
        a constant frame rate). A ``start`` past the end yields nothing."""
        seek = bool(start and start > 0)
        origin = 0.0
        if seek:
            base = self._stream.time_base
            origin = float((self._stream.start_time or 0) * base) if base else 0.0
            try:
                self._container.seek(int((start + origin) / float(base)), stream=self._stream, backward=True,
                                     any_frame=False)
            except ffmpeg_errors() as err:
                raise DecodeError(self.path, f"cannot seek to {start:.3f} s ({err})") from err
        first_time: float | None = origin if seek else None
        index = count = 0
        rotation_checked = False
        try:
            for frame in self._container.decode(self._stream):
                check_time()
                t = frame.time
                if t is None:
                    t = (first_time or 0.0) + count / self.info.fps
                if first_time is None:
                    first_time = t
                if seek:
                    index = int(round((t - first_time) * self.info.fps))
                if not rotation_checked:
                    self.rotation = int(getattr(frame, "rotation", 0) or 0)
                    if int(round(self.rotation / 90.0)) % 2:
                        self.info.width, self.info.height = self.info.height, self.info.width
                    rotation_checked = True
                rgb = None
                if index % stride == 0:
                    rgb = upright(frame.to_ndarray(format="rgb24"), self.rotation)  # (H, W, 3)
                with paused():
                    yield index, t - first_time, rgb
                index += 1
                count += 1
        except ffmpeg_errors() as err:
            raise DecodeError(self.path, f"decoding failed after {count} frames ({err})") from err
        if count == 0 and not seek:
            raise DecodeError(self.path, "video stream has no decodable frame")

    rotation: int = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "SequentialVideo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
