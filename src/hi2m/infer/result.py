"""What prediction returns: one record per window and a summary per video, as dicts, JSON or CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

# Per-video status values.
OK = "ok"  # every window had a face
PARTIAL = "partial"  # some windows had no face; they are reported with face = false
NO_FACE = "no_face"  # no window had a face: no prediction
ERROR = "error"  # the file could not be read


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


def to_csv(results: Sequence[VideoResult]) -> str:
    """One row per window (``row = window``) and one per video (``row = summary``, mean probabilities,
    top = dominant expression); a failed video gets a summary row with its status and message."""
    names: list[str] = []
    for r in results:
        names += [c for c in r.class_names if c not in names]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["video", "status", "row", "window", "start_time", "end_time", "face", "face_coverage",
                     "top"] + [f"prob_{c}" for c in names] + ["message"])
    for r in results:
        for w in r.windows:
            probs = dict(zip(r.class_names, w.probs)) if w.probs is not None else {}
            writer.writerow([r.path, r.status, "window", w.index, f"{w.start_time:.3f}", f"{w.end_time:.3f}",
                             int(w.face), f"{w.face_coverage:.3f}", w.top or ""]
                            + [f"{probs[c]:.5f}" if c in probs else "" for c in names] + [""])
        s = r.summary
        mean = s["mean_probs"] or {}
        end = f"{r.windows[-1].end_time:.3f}" if r.windows else ""
        writer.writerow([r.path, r.status, "summary", "", "0.000" if r.windows else "", end,
                         int(bool(s["windows_with_face"])), f"{s['frame_face_coverage']:.3f}", s["dominant"] or ""]
                        + [f"{mean[c]:.5f}" if c in mean else "" for c in names] + [r.message])
    return buf.getvalue()
