"""``hi2m predict --live SOURCE``: rolling predictions from a camera, a network stream or standard input.

:class:`LiveSource` decodes in a thread into a bounded queue. When the model falls behind, the queue is
full and the **oldest** frame is dropped (and counted): predictions stay close to now instead of drifting
behind a growing backlog. A source that stops delivering frames for ``stall`` seconds, or ends, is
reported; ``reconnect`` reopens it that many times. :func:`run_live` samples the frames at the model's
rate, tracks the faces and classifies each window as soon as it is complete (the same per-face timelines
as a file, :class:`hi2m.infer.predictor._VideoRun`), and hands every window to ``emit`` with its latency:
the seconds from the arrival of its last frame to its prediction.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from hi2m.infer.predictor import _VideoRun

_END = object()  # the decode thread's last word: followed by nothing


class LiveError(Exception):
    """The source cannot be opened, or delivered no frame; the message names it."""


@dataclass
class LiveStats:
    """What a live run saw: frames decoded, dropped (the queue was full), sampled, windows, reconnections."""

    decoded: int = 0
    dropped: int = 0
    sampled: int = 0
    windows: int = 0
    reconnects: int = 0
    ended: str = ""  # why it stopped: "signal", "stream ended", "stalled", "error: ..."


def open_source(source: str, timeout: float) -> Any:
    """PyAV container of ``source``: ``-`` (standard input), a V4L2 camera (``/dev/videoN``), or anything
    FFmpeg opens (a URL: rtsp, http, udp, tcp, srt; a platform camera name with its format). Raises
    :class:`LiveError` naming the source."""
    import av

    try:
        if source == "-":
            return av.open(sys.stdin.buffer, mode="r", timeout=timeout)
        if source.startswith("/dev/video"):
            return av.open(source, mode="r", format="v4l2", timeout=timeout)
        return av.open(source, mode="r", timeout=timeout)
    except Exception as err:  # noqa: BLE001 - FFmpeg's ways to fail to open are many; each becomes one line
        raise LiveError(f"cannot open {source} ({type(err).__name__}: {err})") from None


class LiveSource:
    """Frames of a live source as ``(seconds, arrival wall time, RGB (H, W, 3))``, decoded in a thread."""

    def __init__(self, source: str, queue_size: int = 8, stall: float = 10.0, reconnect: int = 0,
                 say: Callable[[str], None] = lambda m: None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.source, self.stall, self.reconnect, self.say = source, stall, reconnect, say
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.stats = LiveStats()
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the source (raises :class:`LiveError`) and start decoding."""
        container = open_source(self.source, self.stall)
        if not container.streams.video:
            container.close()
            raise LiveError(f"{self.source} has no video stream")
        self._thread = threading.Thread(target=self._decode, args=(container,), daemon=True, name="hi2m-live")
        self._thread.start()

    def _put(self, item: Any) -> None:
        with self._lock:  # drop the oldest frame when the consumer is behind
            while True:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        old = self.queue.get_nowait()
                        if old is not _END:
                            self.stats.dropped += 1
                    except queue.Empty:
                        pass

    def _decode(self, container: Any) -> None:
        offset, last = 0.0, 0.0
        tries = self.reconnect
        while True:
            reason = "stream ended"
            try:
                for frame in container.decode(video=0):
                    if self.stop.is_set():
                        reason = "signal"
                        break
                    t = frame.time if frame.time is not None else last + 1 / 25
                    last = t
                    self.stats.decoded += 1
                    self._put((offset + t, time.monotonic(), frame.to_ndarray(format="rgb24")))
            except Exception as err:  # noqa: BLE001 - a broken stream ends this connection, reported
                reason = f"error: {type(err).__name__}: {err}"
            finally:
                container.close()
            if self.stop.is_set() or tries <= 0:
                break
            tries -= 1
            self.say(f"{self.source}: {reason}; reconnecting ({self.reconnect - tries}/{self.reconnect})")
            time.sleep(1.0)
            try:
                container = open_source(self.source, self.stall)
            except LiveError as err:
                reason = str(err)
                break
            self.stats.reconnects += 1
            offset += last + 1 / 25  # times keep running across a reconnection
        self.stats.ended = self.stats.ended or reason
        self._put(_END)

    def frames(self) -> Iterator[tuple[float, float, np.ndarray]]:
        """The decoded frames, until the source ends, stalls for ``stall`` seconds or :attr:`stop` is set."""
        waited = 0.0
        while not self.stop.is_set():
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                waited += 0.2
                if waited >= self.stall:
                    self.stats.ended = f"stalled: no frame for {self.stall:g} s"
                    self.stop.set()
                    return
                continue
            if item is _END:
                return
            waited = 0.0
            yield item
        self.stats.ended = self.stats.ended or "signal"

    def close(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def run_live(predictor, source: LiveSource, emit: Callable[[dict[str, Any]], None]) -> LiveStats:
    """Predict on ``source`` until it ends, stalls or ``source.stop`` is set; every window goes to ``emit`` as
    a dict (``time`` = its end in stream seconds, ``start_time``, ``face_id``, ``face``, ``top``, ``probs``,
    ``latency_s``, ``dropped_frames`` so far). Raises :class:`LiveError` when no frame ever arrives."""
    run = _LiveRun(predictor, source, emit)
    run.result()
    if run.stats.sampled == 0:
        raise LiveError(f"{source.source} delivered no frame ({source.stats.ended or 'nothing received'})")
    return run.stats


class _LiveRun(_VideoRun):
    """A :class:`_VideoRun` over a live source: frames sampled by their times, each window out as it closes."""

    def __init__(self, predictor, source: LiveSource, emit: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(predictor, source.source)
        self.source, self.emit, self.stats = source, emit, source.stats
        self.arrival: list[float] = []  # per sampled frame: when it was decoded (monotonic seconds)
        self.on_window = self._emitted

    def result(self) -> None:  # type: ignore[override]
        rate = self.opts.sample_fps
        self._start(rate, 1)  # the frames kept are already the sampled ones
        self.batch_size = 1  # every window as soon as it closes
        self.broken, due = None, None
        for t, wall, rgb in self.source.frames():
            if due is not None and t < due:
                continue  # between two sampled times
            due = t + 1.0 / rate if due is None or t - due > 1.0 / rate else due + 1.0 / rate
            self.arrival.append(wall)
            self.stats.sampled += 1
            self._add_sampled(len(self.frame_index), t, rgb)
        if self.frame_index:
            self._finish()

    def _emitted(self, w) -> None:
        self.stats.windows += 1
        self.emit({
            "time": round(w.end_time, 3), "start_time": round(w.start_time, 3), "face_id": w.face_id,
            "face": w.face, "top": w.top,
            "probs": None if w.probs is None else {c: round(p, 5) for c, p in zip(self.p.class_names, w.probs)},
            "latency_s": round(time.monotonic() - self.arrival[w.end_frame], 3),  # live: frame_index[k] == k
            "dropped_frames": self.stats.dropped,
        })
