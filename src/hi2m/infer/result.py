"""What prediction returns: one record per window and a summary per video, as dicts, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hi2m.io.files import atomic_write

# Per-video status values.
OK = "ok"  # every window had a face
PARTIAL = "partial"  # some windows had no face (reported with face = false), or decoding broke partway
NO_FACE = "no_face"  # no window had a face: no prediction
FAILED = "failed"  # the file could not be read, or anything else failed on it (the message says what)


@dataclass
class WindowPrediction:
    """One sliding window: the sampled frames it covers and, when it shows a face, the class probabilities."""

    index: int
    start_frame: int  # first and last source frame index of the window
    end_frame: int
    start_time: float  # seconds: first frame's time, last frame's time + one frame
    end_time: float
    face: bool  # True when the window had enough frames with a face to be classified
    face_coverage: float  # share of the window's sampled frames with a tracked face
    looped: bool = False  # the video was shorter than one window: its frames were repeated
    probs: list[float] | None = None  # class probabilities (None without a face)
    top: str | None = None  # most probable class (None without a face)

    def to_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index, "start_frame": self.start_frame, "end_frame": self.end_frame,
            "start_time": round(self.start_time, 3), "end_time": round(self.end_time, 3),
            "face": self.face, "face_coverage": round(self.face_coverage, 3), "looped": self.looped,
            "top": self.top,
            "probs": None if self.probs is None else {c: round(p, 5) for c, p in zip(class_names, self.probs)},
        }
        return d


@dataclass
class Peak:
    """The window where one class was most probable, and the face there (for ``--report``'s thumbnails)."""

    prob: float
    window: int  # WindowPrediction.index
    time: float  # seconds, the middle of that window
    crop: np.ndarray = field(repr=False)  # (S, S, 3) uint8, the face crop of the window's middle frame


@dataclass
class VideoResult:
    """Everything predicted for one video. ``status`` is one of ok / partial / no_face / error."""

    path: str
    status: str
    class_names: tuple[str, ...]
    windows: list[WindowPrediction] = field(default_factory=list)
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # fps, size, codec, duration
    frame_coverage: float = 0.0  # share of all sampled frames with a tracked face
    settings: dict[str, Any] = field(default_factory=dict)
    # (source frame index, tracked box or None) per sampled frame, for drawing; not in to_dict()
    frame_boxes: list[tuple[int, Any]] = field(default_factory=list, repr=False)
    # class name -> the window where it peaked, with the face crop there; not in to_dict()
    peaks: dict[str, Peak] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """True when the video got at least one prediction."""
        return self.status in (OK, PARTIAL)

    @property
    def summary(self) -> dict[str, Any]:
        """Mean probabilities over the windows with a face, the dominant expression (highest mean
        probability), each class's share of those windows (by top class) and face coverage."""
        faced = [w for w in self.windows if w.face and w.probs is not None]
        out: dict[str, Any] = {
            "windows": len(self.windows),
            "windows_with_face": len(faced),
            "window_face_share": round(len(faced) / len(self.windows), 4) if self.windows else 0.0,
            "frame_face_coverage": round(self.frame_coverage, 4),
            "mean_probs": None, "dominant": None, "window_share": None,
        }
        if faced:
            mean = np.mean([w.probs for w in faced], axis=0)  # (K,)
            out["mean_probs"] = {c: round(float(p), 5) for c, p in zip(self.class_names, mean)}
            out["dominant"] = self.class_names[int(np.argmax(mean))]
            out["window_share"] = {c: round(sum(w.top == c for w in faced) / len(faced), 4) for c in self.class_names}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "status": self.status, "message": self.message, "info": self.info,
            "settings": self.settings, "summary": self.summary,
            "windows": [w.to_dict(self.class_names) for w in self.windows],
        }


def csv_header(class_names: Sequence[str]) -> list[str]:
    return (["video", "status", "row", "window", "start_time", "end_time", "face", "face_coverage", "top"]
            + [f"prob_{c}" for c in class_names] + ["message"])


def csv_rows(r: VideoResult, class_names: Sequence[str]) -> list[list[Any]]:
    """One row per window (``row = window``) and one per video (``row = summary``, mean probabilities,
    top = dominant expression); a failed video gets a summary row with its status and message."""
    rows = []
    for w in r.windows:
        probs = dict(zip(r.class_names, w.probs)) if w.probs is not None else {}
        rows.append([r.path, r.status, "window", w.index, f"{w.start_time:.3f}", f"{w.end_time:.3f}",
                     int(w.face), f"{w.face_coverage:.3f}", w.top or ""]
                    + [f"{probs[c]:.5f}" if c in probs else "" for c in class_names] + [""])
    s = r.summary
    mean = s["mean_probs"] or {}
    end = f"{r.windows[-1].end_time:.3f}" if r.windows else ""
    rows.append([r.path, r.status, "summary", "", "0.000" if r.windows else "", end,
                 int(bool(s["windows_with_face"])), f"{s['frame_face_coverage']:.3f}", s["dominant"] or ""]
                + [f"{mean[c]:.5f}" if c in mean else "" for c in class_names] + [r.message])
    return rows


class ResultWriter:
    """Writes each video's result as soon as it is known, so a batch that is interrupted or meets a bad
    file keeps every finished result.

    - ``jsonl``: one JSON object per video, a line each, flushed;
    - ``csv``: the header once, then each video's rows, flushed;
    - ``json``: one document ``{"model", "class_names", "videos": [...]}``; written to a file, it is
      rewritten atomically after every video (always complete and valid); on stdout it is printed at
      the end.
    """

    def __init__(self, fmt: str, out: str | None, model: str, class_names: Sequence[str]) -> None:
        if fmt not in ("json", "jsonl", "csv"):
            raise ValueError(f"format must be json, jsonl or csv, got {fmt!r}")
        self.fmt, self.out, self.model, self.class_names = fmt, out, model, tuple(class_names)
        self.videos: list[dict[str, Any]] = []
        self._stream: Any = None
        if out and fmt != "json":
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(out, "w", newline="")  # noqa: SIM115 - closed in close()
        elif not out:
            self._stream = sys.stdout
        if fmt == "csv":
            self._csv = csv.writer(self._stream, lineterminator="\n")
            self._csv.writerow(csv_header(self.class_names))
            self._stream.flush()
        elif fmt == "json" and out:  # json to a file: valid from the start
            self._write_document()

    def _document(self) -> str:
        return json.dumps({"model": self.model, "class_names": list(self.class_names), "videos": self.videos},
                          indent=2) + "\n"

    def _write_document(self) -> None:
        atomic_write(self.out, lambda tmp: Path(tmp).write_text(self._document()))

    def add(self, result: VideoResult) -> None:
        if self.fmt == "csv":
            self._csv.writerows(csv_rows(result, self.class_names))
        elif self.fmt == "jsonl":
            self._stream.write(json.dumps(result.to_dict()) + "\n")
        else:
            self.videos.append(result.to_dict())
            if self.out:
                self._write_document()
            return
        self._stream.flush()

    def close(self) -> None:
        if self.fmt == "json" and not self.out:
            sys.stdout.write(self._document())
        if self._stream is not None and self._stream is not sys.stdout:
            self._stream.close()
        self._stream = None
