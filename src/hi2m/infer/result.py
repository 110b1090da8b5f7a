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
    face_id: int | None = None  # the tracked face (``--faces all``); None with one face per video

    def to_dict(self, class_names: Sequence[str]) -> dict[str, Any]:
        d: dict[str, Any] = {} if self.face_id is None else {"face_id": self.face_id}
        d |= {
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
    # face id -> (source frame index, its box or None) per sampled frame from the face's first to its last (the
    # whole video for the one face of faces="one"), for drawing; not in to_dict()
    face_boxes: dict[int, list[tuple[int, Any]]] = field(default_factory=dict, repr=False)
    # (face id, class name) -> the window where that class peaked for that face, with the face crop there
    peaks: dict[tuple[int, str], Peak] = field(default_factory=dict, repr=False)
    faces: list[int] | None = None  # ``--faces all``: the face ids found (None: one face per video)

    @property
    def frame_boxes(self) -> list[tuple[int, Any]]:
        """(source frame index, box or None) per sampled frame of the one face (face 0)."""
        return self.face_boxes.get(0, [])

    def windows_of(self, face: int | None) -> list[WindowPrediction]:
        """The windows of one face (None: the one-face mode's)."""
        return [w for w in self.windows if w.face_id == face]

    @property
    def ok(self) -> bool:
        """True when the video got at least one prediction."""
        return self.status in (OK, PARTIAL)

    @property
    def summary(self) -> dict[str, Any]:
        """Mean probabilities over the windows with a face, the dominant expression (highest mean
        probability), each class's share of those windows (by top class) and face coverage (with several
        faces: over all of them; per face: :meth:`face_summary`)."""
        return summarize(self.windows, self.class_names, self.frame_coverage)

    def face_summary(self, face: int) -> dict[str, Any]:
        """:attr:`summary` of one face's windows, its first and last second and its share of sampled frames."""
        boxes = self.face_boxes.get(face, [])
        seen = [i for i, b in boxes if b is not None]
        out = summarize(self.windows_of(face), self.class_names,  # coverage: within its span in the video
                        len(seen) / len(boxes) if boxes else 0.0)
        fps = self.info.get("fps") or 0.0
        out["first_time"] = round(seen[0] / fps, 3) if seen and fps else None
        out["last_time"] = round(seen[-1] / fps, 3) if seen and fps else None
        if out["windows_with_face"] == 0:  # reported, not dropped
            frames = self.settings.get("window_frames")
            out["note"] = (f"in view on {len(seen)} sampled frames: too short for a window of {frames} frames with "
                           f"a face in {self.settings.get('min_face_coverage', 0.5):.0%} of them")
        return {"face_id": face, **out}

    def to_dict(self) -> dict[str, Any]:
        d = {
            "path": self.path, "status": self.status, "message": self.message, "info": self.info,
            "settings": self.settings, "summary": self.summary,
        }
        if self.faces is not None:
            d["faces"] = [self.face_summary(f) for f in self.faces]
        d["windows"] = [w.to_dict(self.class_names) for w in self.windows]
        return d


def summarize(windows: Sequence[WindowPrediction], class_names: Sequence[str], coverage: float) -> dict[str, Any]:
    """The summary of some windows (see :attr:`VideoResult.summary`)."""
    faced = [w for w in windows if w.face and w.probs is not None]
    out: dict[str, Any] = {
        "windows": len(windows),
        "windows_with_face": len(faced),
        "window_face_share": round(len(faced) / len(windows), 4) if windows else 0.0,
        "frame_face_coverage": round(coverage, 4),
        "mean_probs": None, "dominant": None, "window_share": None,
    }
    if faced:
        mean = np.mean([w.probs for w in faced], axis=0)  # (K,)
        out["mean_probs"] = {c: round(float(p), 5) for c, p in zip(class_names, mean)}
        out["dominant"] = class_names[int(np.argmax(mean))]
        out["window_share"] = {c: round(sum(w.top == c for w in faced) / len(faced), 4) for c in class_names}
    return out


def csv_header(class_names: Sequence[str], face_ids: bool = False) -> list[str]:
    """The CSV columns; ``face_ids`` (``--faces all``): a ``face_id`` column after ``video``."""
    return (["video"] + (["face_id"] if face_ids else []) + ["status", "row", "window", "start_time", "end_time",
                                                             "face", "face_coverage", "top"]
            + [f"prob_{c}" for c in class_names] + ["message"])


def csv_rows(r: VideoResult, class_names: Sequence[str], face_ids: bool = False) -> list[list[Any]]:
    """One row per window (``row = window``) and one per video (``row = summary``, mean probabilities,
    top = dominant expression); a failed video gets a summary row with its status and message. With
    ``face_ids``: the face of each window, and a summary row per face after the video's (face_id empty)."""
    def row(face, kind, index, start, end, has_face, coverage, top, probs, message):
        return ([r.path] + ([face] if face_ids else []) + [r.status, kind, index, start, end, has_face, coverage, top]
                + [f"{probs[c]:.5f}" if c in probs else "" for c in class_names] + [message])

    rows = []
    for w in r.windows:
        probs = dict(zip(r.class_names, w.probs)) if w.probs is not None else {}
        rows.append(row("" if w.face_id is None else w.face_id, "window", w.index, f"{w.start_time:.3f}",
                        f"{w.end_time:.3f}", int(w.face), f"{w.face_coverage:.3f}", w.top or "", probs, ""))
    summaries = [("", r.summary, r.windows)]
    if face_ids and r.faces:
        summaries += [(f, r.face_summary(f), r.windows_of(f)) for f in r.faces]
    for face, s, windows in summaries:
        end = f"{max(w.end_time for w in windows):.3f}" if windows else ""
        start = f"{windows[0].start_time:.3f}" if windows and face != "" else ("0.000" if windows else "")
        rows.append(row(face, "summary", "", start, end, int(bool(s["windows_with_face"])),
                        f"{s['frame_face_coverage']:.3f}", s["dominant"] or "", s["mean_probs"] or {},
                        r.message if face == "" else ""))
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

    def __init__(self, fmt: str, out: str | None, model: str, class_names: Sequence[str],
                 face_ids: bool = False) -> None:
        if fmt not in ("json", "jsonl", "csv"):
            raise ValueError(f"format must be json, jsonl or csv, got {fmt!r}")
        self.fmt, self.out, self.model, self.class_names = fmt, out, model, tuple(class_names)
        self.face_ids = face_ids
        self.videos: list[dict[str, Any]] = []
        self._stream: Any = None
        if out and fmt != "json":
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(out, "w", newline="")  # noqa: SIM115 - closed in close()
        elif not out:
            self._stream = sys.stdout
        if fmt == "csv":
            self._csv = csv.writer(self._stream, lineterminator="\n")
            self._csv.writerow(csv_header(self.class_names, self.face_ids))
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
            self._csv.writerows(csv_rows(result, self.class_names, self.face_ids))
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
