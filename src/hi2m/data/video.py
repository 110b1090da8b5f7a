"""Clip sources: one reader interface over video files (PyAV) and frame folders.

A *clip source* knows how many frames a clip has and returns any subset of them as
a ``uint8`` array ``(T, H, W, 3)`` in RGB order, whatever the container, codec, frame
rate or pixel format (grayscale sources are expanded to three channels).

Video files are indexed once when opened: the packets of the video stream are
demuxed (cheap: no decoding) to learn the presentation timestamp of every frame and
which frames are keyframes. Frame ``i`` is the ``i``-th timestamp in presentation
order, so indices are exact for any frame rate, B-frames and variable frame rate.
:meth:`VideoFileSource.read` then seeks to the keyframe at or before the first
needed frame, decodes forward, converts only the needed frames to RGB and stops
after the last one. When the needed frames are far apart (several windows from one
clip) it seeks again instead of decoding the frames in between.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from hi2m.data.boundary import check_frame_header, check_time
from hi2m.data.errors import DecodeError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".flv", ".ts"}
)

# Seeking again only pays off when it skips more than this many frames of decoding.
SEEK_MIN_SKIP = 4


class ClipSource(Protocol):
    """What every clip reader offers."""

    path: str
    num_frames: int  # number of decodable frames (> 0)
    fps: float | None  # None for frame folders

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        ...

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 (T, H, W, 3)."""
        ...

    def frames(self, indices: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        """The distinct frames at ``indices``, each uint8 (H, W, 3), by index (all of one size)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> "ClipSource": ...

    def __exit__(self, *exc: object) -> None: ...


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value: ``2.jpg`` before ``10.jpg``."""
    parts = re.split(r"(\d+)", name)
    # re.split alternates text and digit runs, so int and str never meet at one position.
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))


class _SourceBase:
    """Shared index validation and context-manager plumbing."""

    path: str
    num_frames: int

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (T,)
        if idx.size == 0:
            raise ValueError(f"{self.path}: no frame indices requested")
        if idx.min() < 0 or idx.max() >= self.num_frames:
            raise IndexError(
                f"{self.path}: frame indices must lie in [0, {self.num_frames}), "
                f"got min {int(idx.min())}, max {int(idx.max())}"
            )
        return idx

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        frames = self.frames(indices)
        return np.stack([frames[int(i)] for i in np.asarray(indices, dtype=np.int64).reshape(-1)])  # (T, H, W, 3)

    def frames(self, indices: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (no-op by default)."""

    def __enter__(self) -> "_SourceBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameFolderSource(_SourceBase):
    """A folder of jpg/png/bmp frames, ordered by natural sort of the file names."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            names = [
                entry.name
                for entry in os.scandir(self.path)
                if entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
            ]
        except OSError as err:
            raise DecodeError(self.path, f"cannot list frame folder ({err})") from err
        if not names:
            raise DecodeError(self.path, "frame folder holds no decodable frames (jpg/png/bmp)")
        names.sort(key=natural_key)
        self.files: list[str] = [os.path.join(self.path, n) for n in names]
        self.num_frames = len(names)
        self.fps: float | None = None
        self._size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the first frame (read from the image header only)."""
        if self._size is None:
            from PIL import Image

            try:
                with Image.open(self.files[0]) as image:
                    width, height = image.size
            except Exception as err:  # PIL raises many types for broken files
                raise DecodeError(self.files[0], f"cannot read frame ({err})") from err
            self._size = (height, width)
        return self._size

    def _load(self, i: int) -> np.ndarray:
        from PIL import Image

        check_time()
        try:
            with Image.open(self.files[i]) as image:
                frame = np.asarray(image.convert("RGB"))  # (H, W, 3)
        except Exception as err:
            raise DecodeError(self.files[i], f"cannot decode frame {i} ({err})") from err
        return frame

    def frames(self, indices: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        unique = np.unique(self._check_indices(indices))
        loaded = {int(i): self._load(int(i)) for i in unique}
        shapes = {f.shape for f in loaded.values()}
        if len(shapes) > 1:
            raise DecodeError(self.path, f"frames have different sizes: {sorted(shapes)}")
        return loaded


def ffmpeg_errors() -> tuple[type[BaseException], ...]:
    """The exception types through which PyAV reports data FFmpeg cannot read (a ``DecodeError``, kind
    ``decode``); anything else is left to :func:`~hi2m.data.boundary.file_boundary` (kind ``unexpected``)."""
    import av

    return (av.error.FFmpegError, OSError, ValueError, RuntimeError)


def open_video_stream(path: str, threads: int, thread_type: str = "AUTO") -> tuple[Any, Any]:
    """Open ``path`` with PyAV and return (container, first video stream) with the decoder's threads set.

    A file FFmpeg cannot open, without a video stream, without a decoder for it, or whose header declares
    an impossible frame size or count is a DecodeError naming the file; the container is closed before
    raising. Other exceptions propagate to the caller's :func:`~hi2m.data.boundary.file_boundary`.
    """
    import av

    container = None
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError(path, "file is empty (0 bytes)")
        container = av.open(path, mode="r")
        if not container.streams.video:
            raise DecodeError(path, "file has no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context
        if codec is None:  # FFmpeg knows no decoder for this stream (often a damaged codec tag)
            raise DecodeError(path, "FFmpeg has no decoder for the video stream (damaged or unsupported codec)")
        check_frame_header(path, int(codec.width), int(codec.height), int(stream.frames or 0))
        codec.thread_count = threads
        codec.thread_type = thread_type
        return container, stream
    except Exception as err:
        if container is not None:
            container.close()
        if isinstance(err, ffmpeg_errors()):
            raise DecodeError(path, f"cannot open as a video ({err})") from err
        raise


class VideoFileSource(_SourceBase):
    """A video file decoded with PyAV (any container/codec FFmpeg can read).

    ``threads`` is the decoder thread count (1 = single-threaded, the right choice
    inside DataLoader workers; 0 = let FFmpeg decide).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        self.path = str(path)
        self._threads = threads
        self._container: Any = None
        self.frames_decoded = 0  # frames the decoder produced so far (for tests/benchmarks)
        self.fps: float | None = None
        try:
            self._open()
            self._index_packets()
        except DecodeError:
            self.close()
            raise
        except ffmpeg_errors() as err:
            self.close()
            raise DecodeError(self.path, f"cannot open as a video ({err})") from err
        except BaseException:
            self.close()
            raise

    # -- opening and indexing -------------------------------------------------------
    def _open(self) -> None:
        self.close()
        self._container, self._stream = open_video_stream(
            self.path, self._threads, "AUTO" if self._threads != 1 else "SLICE"
        )

    def _index_packets(self) -> None:
        """Demux the video stream once to learn frame timestamps and keyframes."""
        stamps: list[int | None] = []
        keys: list[bool] = []
        demuxed = 0
        for packet in self._container.demux(self._stream):
            check_time()
            if packet.size == 0:
                continue  # flush packet at the end of the stream
            demuxed += 1
            if packet.is_discard:
                continue  # dropped by an edit list: never shown
            stamps.append(packet.pts if packet.pts is not None else packet.dts)
            keys.append(bool(packet.is_keyframe))
        if not stamps:
            raise DecodeError(self.path, "video stream has no frames")
        declared = int(self._stream.frames or 0)  # from the container header, 0 if unknown
        if declared and demuxed < declared:
            raise DecodeError(
                self.path,
                f"file is truncated: the header declares {declared} frames "
                f"but only {demuxed} are present",
            )
        self.num_frames = len(stamps)
        # Without usable timestamps, fall back to decoding from the start and counting.
        self._sequential = any(s is None for s in stamps) or len(set(stamps)) != len(stamps)
        if self._sequential:
            self._pts = np.arange(self.num_frames, dtype=np.int64)
            self._keys = np.zeros(1, dtype=np.int64)
        else:
            order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
            self._pts = np.asarray(stamps, dtype=np.int64)[order]  # (N,) presentation order
            is_key = np.asarray(keys, dtype=bool)[order]
            self._keys = np.flatnonzero(is_key)  # frame indices of keyframes
            if self._keys.size == 0 or self._keys[0] != 0:
                self._keys = np.concatenate([[0], self._keys])  # start of file is always safe
        self._index_of_pts = {int(p): i for i, p in enumerate(self._pts)}
        codec = self._stream.codec_context
        self._size = (int(codec.height), int(codec.width))  # (H, W)
        self.fps = self._frame_rate()

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def _frame_rate(self) -> float | None:
        """The container's average rate, else one derived from the timestamps."""
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate:
            return float(rate)
        if self.num_frames > 1 and not self._sequential and self._stream.time_base:
            seconds = float((self._pts[-1] - self._pts[0]) * self._stream.time_base)
            return (self.num_frames - 1) / seconds if seconds > 0 else None
        return None

    @property
    def keyframes(self) -> np.ndarray:
        """Frame indices of the keyframes (seek points), ascending."""
        return self._keys.copy()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    # -- reading ----------------------------------------------------------------------
    def frames(self, indices: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        wanted = [int(i) for i in np.unique(self._check_indices(indices))]
        try:
            if self._container is None:
                self._open()
            if self._sequential:
                frames = self._decode_from_start(wanted)
            else:
                frames = {}
                for segment in self._plan_segments(wanted):
                    self._decode_segment(segment, frames)
        except DecodeError:
            raise
        except ffmpeg_errors() as err:
            raise DecodeError(self.path, f"decoding failed ({err})") from err
        missing = [i for i in wanted if i not in frames]
        if missing:
            raise DecodeError(
                self.path,
                f"{len(missing)} of the requested frames could not be decoded "
                f"(first missing: {missing[:5]}; the file may be truncated)",
            )
        shapes = {f.shape for f in frames.values()}
        if len(shapes) > 1:
            raise DecodeError(self.path, f"frame size changes inside the video: {sorted(shapes)}")
        return frames

    def _keyframe_at_or_before(self, index: int) -> int:
        return int(self._keys[bisect_right(self._keys, index) - 1])

    def _plan_segments(self, wanted: list[int]) -> list[list[int]]:
        """Group sorted frame indices into runs that each start with one seek.

        A new run starts when a keyframe lies well after the previous wanted frame
        (more than ``SEEK_MIN_SKIP`` frames) and at or before the next one: seeking
        there skips decoding the frames in between.
        """
        segments: list[list[int]] = []
        for i in wanted:
            if segments and self._keyframe_at_or_before(i) <= segments[-1][-1] + SEEK_MIN_SKIP:
                segments[-1].append(i)
            else:
                segments.append([i])
        return segments

    def _decode_segment(self, segment: list[int], out: dict[int, np.ndarray]) -> None:
        """Seek before ``segment[0]`` and decode up to ``segment[-1]``.

        If the demuxer lands after the first wanted frame (possible with unusual
        seek indexes), retry from the previous keyframe, and finally from the start.
        """
        key_pos = bisect_right(self._keys, segment[0]) - 1
        while True:
            key = int(self._keys[key_pos])
            if self._decode_range(key, segment, out):
                return
            if key == 0:
                raise DecodeError(self.path, f"cannot reach frame {segment[0]} by seeking")
            key_pos -= 1

    def _decode_range(self, key: int, segment: list[int], out: dict[int, np.ndarray]) -> bool:
        """Seek to keyframe ``key`` and collect the frames of ``segment``; False on overshoot."""
        self._container.seek(int(self._pts[key]), backward=True, any_frame=False, stream=self._stream)
        wanted_pts = {int(self._pts[i]) for i in segment}
        first_pts = int(self._pts[segment[0]])
        last_pts = int(self._pts[segment[-1]])
        codec = self._stream.codec_context
        try:
            return self._collect(segment, wanted_pts, first_pts, last_pts, out)
        finally:
            codec.skip_frame = "DEFAULT"

    def _collect(self, segment: list[int], wanted_pts: set[int], first_pts: int, last_pts: int,
                 out: dict[int, np.ndarray]) -> bool:
        first_frame = True
        codec = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            check_time()
            # a frame nobody asked for and no later frame refers to is not decoded at all (a quarter of the
            # decoding time at x264's defaults, benchmarks/loader.py); the setting applies per packet
            codec.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted_pts else "NONREF"
            for frame in packet.decode():
                self.frames_decoded += 1
                pts = frame.pts
                if pts is None:
                    continue
                if first_frame and pts > first_pts:
                    return False  # landed after the first wanted frame
                first_frame = False
                if pts in wanted_pts:
                    out[self._index_of_pts[pts]] = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                if pts >= last_pts:
                    return True
        return True

    def _decode_from_start(self, wanted: list[int]) -> dict[int, np.ndarray]:
        """Fallback for streams without timestamps: decode from the start and count."""
        self._open()
        wanted_set = set(wanted)
        out: dict[int, np.ndarray] = {}
        for i, frame in enumerate(self._container.decode(self._stream)):
            check_time()
            self.frames_decoded += 1
            if i in wanted_set:
                out[i] = frame.to_ndarray(format="rgb24")  # (H, W, 3)
            if i >= wanted[-1]:
                break
        return out


def open_clip_source(path: str | os.PathLike[str], threads: int = 1) -> ClipSource:
    """Open a video file or a frame folder behind the :class:`ClipSource` interface.

    Raises :class:`DecodeError` (naming ``path``) when the clip is missing, cannot be
    opened or has no decodable frame.
    """
    p = Path(path)
    if p.is_dir():
        return FrameFolderSource(p)
    if p.is_file():
        return VideoFileSource(p, threads=threads)
    raise DecodeError(p, "clip does not exist (expected a video file or a frame folder)", kind="missing")


def read_windows(source: ClipSource, windows: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Read several index windows from one source, decoding the union of frames once.

    Returns one uint8 array (T_k, H, W, 3) per window, in the order given.
    """
    if not windows:
        return []
    flat = [np.asarray(w, dtype=np.int64).reshape(-1) for w in windows]
    frames = source.frames(np.concatenate(flat))  # each distinct frame once
    return [np.stack([frames[int(i)] for i in w]) for w in flat]  # each (T_k, H, W, 3)
