"""One boundary per file: whatever goes wrong while one clip is read becomes a :class:`DecodeError` naming it.

FFmpeg has more failure modes than any list of exception types (a stream without a decoder gives
``AttributeError`` deep inside PyAV; a damaged header can make a demuxer loop for minutes), so the
readers do not try to enumerate them. Every caller that reads one clip -- the training dataset,
``hi2m data check``, ``hi2m predict``, the SynthFace tools -- wraps the whole read (open, probe, seek,
decode, transform) in :func:`file_boundary`:

- a :class:`DecodeError` passes through unchanged;
- any other ``Exception`` becomes ``DecodeError(path, "unexpected <Type>: <message>", kind="unexpected")``
  with the original exception as ``__cause__``: the file is skipped and counted like any bad file, but
  its report line names the exception type, so a programming error is visible, and a run where such
  errors exceed the bad-file limit still stops with the list (``SkipTracker``);
- ``KeyboardInterrupt`` and ``SystemExit`` are not ``Exception`` and pass through.

The boundary also carries a per-file time limit. The readers call :func:`check_time` at every packet
and frame, so a file that keeps a decoder busy for longer than the limit is refused
(``kind="timeout"``) instead of stalling a worker. Time during which the consumer holds a decoded frame
(``paused``: e.g. ``hi2m predict`` running the model) does not count: the limit is on decoding.

:func:`check_frame_header` refuses a stream whose header declares an absurd frame size or frame count
before anything is allocated for it.
"""

from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from typing import Iterator

from hi2m.data.errors import DecodeError

# Larger than any real camera (8K UHD is 7680 x 4320 = 33 Mpx); one RGB frame of this size is 120 MB.
MAX_FRAME_SIDE = 16384
MAX_FRAME_PIXELS = 40_000_000
# About 39 days at 30 fps: a header declaring more is damaged, not long.
MAX_DECLARED_FRAMES = 100_000_000


class _Clock:
    """Seconds spent reading one file, against its limit (``None`` = no limit)."""

    def __init__(self, path: str, limit: float | None) -> None:
        self.path = path
        self.limit = limit if limit and limit > 0 else None
        self.spent = 0.0
        self.since: float | None = time.monotonic()

    def elapsed(self) -> float:
        running = time.monotonic() - self.since if self.since is not None else 0.0
        return self.spent + running

    def check(self) -> None:
        if self.limit is not None and self.elapsed() > self.limit:
            raise DecodeError(
                self.path,
                f"decoding took more than {self.limit:g} s, the per-file time limit "
                f"(raise it if such files are expected)",
                kind="timeout",
            )

    def pause(self) -> None:
        if self.since is not None:
            self.spent += time.monotonic() - self.since
            self.since = None

    def resume(self) -> None:
        if self.since is None:
            self.since = time.monotonic()


_CLOCK: contextvars.ContextVar[_Clock | None] = contextvars.ContextVar("hi2m_file_clock", default=None)


@contextmanager
def file_boundary(path: object, time_limit: float | None = None) -> Iterator[None]:
    """Read one file inside this block: any exception leaves it as a :class:`DecodeError` naming ``path``.

    ``time_limit``: seconds of decoding allowed for this file (``None`` or 0 = no limit), enforced by
    the readers' :func:`check_time` calls.
    """
    token = _CLOCK.set(_Clock(str(path), time_limit))
    try:
        yield
    except DecodeError:
        raise
    except Exception as err:  # noqa: BLE001 - the boundary: any failure of one file is that file's
        raise DecodeError(path, f"unexpected {type(err).__name__}: {err}", kind="unexpected") from err
    finally:
        _CLOCK.reset(token)


def check_time() -> None:
    """Raise ``DecodeError(kind="timeout")`` when the file being read has used up its time limit."""
    clock = _CLOCK.get()
    if clock is not None:
        clock.check()


@contextmanager
def paused() -> Iterator[None]:
    """Stop the current file's clock inside this block (the consumer is working, not the decoder)."""
    clock = _CLOCK.get()
    if clock is None:
        yield
        return
    clock.pause()
    try:
        yield
    finally:
        clock.resume()


def check_frame_header(path: object, width: int, height: int, declared_frames: int = 0) -> None:
    """Refuse a stream whose header declares an impossible frame size or count (before decoding)."""
    if width <= 0 or height <= 0:
        raise DecodeError(path, f"the video header declares no frame size ({width}x{height})", kind="header")
    if width > MAX_FRAME_SIDE or height > MAX_FRAME_SIDE or width * height > MAX_FRAME_PIXELS:
        raise DecodeError(
            path,
            f"the video header declares {width}x{height} frames ({width * height / 1e6:.1f} Mpx), more than "
            f"the {MAX_FRAME_PIXELS / 1e6:.0f} Mpx / {MAX_FRAME_SIDE} px per side hi2m accepts",
            kind="header",
        )
    if declared_frames > MAX_DECLARED_FRAMES:
        raise DecodeError(
            path,
            f"the video header declares {declared_frames} frames, more than the {MAX_DECLARED_FRAMES} "
            "hi2m accepts (a damaged header)",
            kind="header",
        )
