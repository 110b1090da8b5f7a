"""Following one face through a video: association, smoothing, interpolation, square crops.

Detection runs on every ``detect_every``-th sampled frame. :class:`FaceTracker` turns the raw
detections of those frames into one box per detection frame:

* with no face tracked yet, it takes the **largest** detected face;
* afterwards it keeps the detection that overlaps the tracked box best (IoU >= ``min_iou``), so the
  crop does not jump to another person who happens to be larger for a moment;
* the box is smoothed with an exponential moving average (``smoothing`` = weight of the old box);
* when no detection overlaps the tracked face, the face counts as missed: it is held for
  ``max_missed`` detection frames (bridging detector misses and one-off false positives), then the
  tracker switches to the largest face detected in that frame, or to none.

Frames between two detection frames get the linear interpolation of the two boxes
(:func:`interpolate`).
"""

from __future__ import annotations

import time

import numpy as np

from hi2m.infer.detect import Box, iou


class FaceTracker:
    """Pick and smooth one face box per detection frame (see the module docstring)."""

    def __init__(self, min_iou: float = 0.3, smoothing: float = 0.4, max_missed: int = 1) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.min_iou = min_iou
        self.smoothing = smoothing
        self.max_missed = max_missed
        self.box: Box | None = None
        self.missed = 0

    def update(self, detections: list[Box]) -> Box | None:
        """Feed the detections of the next detection frame; returns the tracked box (or None)."""
        if self.box is not None and detections:
            overlaps = [iou(self.box, d) for d in detections]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= self.min_iou:
                self.missed = 0
                self.box = blend(self.box, detections[best], self.smoothing)
                return self.box
        if self.box is not None:  # the tracked face was not found (maybe a false positive elsewhere)
            self.missed += 1
            if self.missed <= self.max_missed:
                return self.box
        self.missed = 0
        self.box = max(detections, key=lambda d: d.area) if detections else None
        return self.box


    def step(self, detections: list[Box]) -> dict[int, Box]:
        """:meth:`update` in the multi-face form :class:`FaceCrops` takes: ``{0: box}`` or ``{}``."""
        box = self.update(detections)
        return {} if box is None else {0: box}


class MultiFaceTracker:
    """Every face of a video, each with an id that stays with it (``hi2m predict --faces all``).

    Per detection frame (:meth:`step`):

    1. detections continue the live tracks they overlap best (IoU >= ``min_iou``, greedily from the
       highest overlap; each track and each detection used once), smoothed as :class:`FaceTracker` does;
    2. a detection left over continues the nearest track that is either live but unmatched (it moved
       fast) or lost for at most ``reid_steps`` detection frames (it left and came back), when its centre
       lies within ``reid_distance`` x that track's box side and its size within a factor ``reid_scale``;
       a face is never given an id another face holds in the same frame;
    3. any other detection starts a new track (ids 0, 1, 2 ... in order of appearance, left to right
       within a frame).

    A track that finds no detection is held for ``max_missed`` detection frames (its last box), then
    lost (not returned) and, after ``reid_steps`` more, forgotten.
    """

    def __init__(self, min_iou: float = 0.3, smoothing: float = 0.4, max_missed: int = 1, reid_steps: int = 0,
                 reid_distance: float = 1.0, reid_scale: float = 1.5) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.min_iou, self.smoothing, self.max_missed = min_iou, smoothing, max_missed
        self.reid_steps, self.reid_distance, self.reid_scale = reid_steps, reid_distance, reid_scale
        self.boxes: dict[int, Box] = {}  # id -> last box, live and lost tracks
        self.missed: dict[int, int] = {}  # id -> detection frames without a detection
        self.next_id = 0

    def step(self, detections: list[Box]) -> dict[int, Box]:
        """Feed the detections of the next detection frame; returns ``{id: box}`` of the faces tracked now."""
        live = [i for i in self.boxes if self.missed[i] <= self.max_missed]
        pairs = sorted(((iou(self.boxes[i], d), -i, j) for i in live for j, d in enumerate(detections)), reverse=True)
        taken: dict[int, int] = {}  # track id -> detection index
        used: set[int] = set()
        for overlap, neg_i, j in pairs:
            if overlap < self.min_iou:
                break
            if -neg_i not in taken and j not in used:
                taken[-neg_i] = j
                used.add(j)
        for i, j in taken.items():
            self.boxes[i] = blend(self.boxes[i], detections[j], self.smoothing)
        rest = sorted((j for j in range(len(detections)) if j not in used), key=lambda j: detections[j].x0)
        for j in rest:
            d = detections[j]
            near = [(self._distance(i, d), i) for i in self.boxes if i not in taken and self._resembles(i, d)]
            if near:
                i = min(near)[1]
                self.boxes[i] = d  # after a gap the old box says little: take the detection as it is
            else:
                i = self.next_id
                self.next_id += 1
                self.boxes[i] = d
            taken[i] = j
        for i in list(self.boxes):
            self.missed[i] = 0 if i in taken else self.missed.get(i, 0) + 1
            if self.missed[i] > self.max_missed + self.reid_steps:
                del self.boxes[i], self.missed[i]
        return {i: self.boxes[i] for i in sorted(self.boxes) if self.missed[i] <= self.max_missed}

    def _distance(self, i: int, d: Box) -> float:
        (ax, ay), (bx, by) = self.boxes[i].center, d.center
        return float(np.hypot(ax - bx, ay - by))

    def _resembles(self, i: int, d: Box) -> bool:
        """Close enough (centre within reid_distance x side) and of a similar size to continue track ``i``."""
        box = self.boxes[i]
        if self.missed[i] > self.max_missed + self.reid_steps:
            return False
        side, other = max(box.width, box.height), max(d.width, d.height)
        ratio = max(side, other) / max(min(side, other), 1e-6)
        return ratio <= self.reid_scale and self._distance(i, d) <= self.reid_distance * side


def blend(old: Box, new: Box, weight_old: float) -> Box:
    """Coordinate-wise ``weight_old * old + (1 - weight_old) * new`` (the new box's score)."""
    a, b = weight_old, 1.0 - weight_old
    return Box(a * old.x0 + b * new.x0, a * old.y0 + b * new.y0, a * old.x1 + b * new.x1, a * old.y1 + b * new.y1,
               new.score)


def interpolate(before: Box | None, after: Box | None, frac: float) -> Box | None:
    """The box at ``frac`` in [0, 1] of the way from one detection frame to the next.

    Both present: linear interpolation. One missing: the present box for the half of the gap
    nearer to it, None for the other half (the face appears or leaves half-way).
    """
    if before is not None and after is not None:
        return blend(before, after, 1.0 - frac)
    if before is not None:
        return before if frac < 0.5 else None
    if after is not None:
        return after if frac >= 0.5 else None
    return None


def square_crop(frame: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """A square around ``box`` (side = longer box side x (1 + margin), same centre), resized to
    ``size`` x ``size``. Parts outside the frame are black. frame (H, W, 3) uint8 -> (size, size, 3)."""
    import cv2

    h, w = frame.shape[:2]
    cx, cy = box.center
    side = max(2, int(round(max(box.width, box.height) * (1.0 + margin))))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = x0 + side, y0 + side
    out = np.zeros((side, side, 3), dtype=np.uint8)  # (S, S, 3)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)  # (size, size, 3)


def detect_near(detector, frame: np.ndarray, box: Box, context: float = 2.5, face_px: int = 64) -> list[Box]:
    """Detect faces in a search window around a tracked ``box`` only (boxes in frame coordinates).

    The window is a square of ``context`` x the box's longer side around its centre, clipped to the
    frame, and shrunk (never enlarged) so that the tracked face is about ``face_px`` pixels: the
    detector sees a small image, whatever the face's size in the frame.
    """
    import cv2

    h, w = frame.shape[:2]
    side = context * max(box.width, box.height)
    cx, cy = box.center
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return []
    window = frame[y0:y1, x0:x1]  # (h', w', 3)
    scale = min(1.0, face_px / max(box.width, box.height, 1.0))
    if scale < 1.0:
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        window = cv2.resize(window, size, interpolation=cv2.INTER_AREA)
    sx, sy = (x1 - x0) / window.shape[1], (y1 - y0) / window.shape[0]
    return [Box(x0 + b.x0 * sx, y0 + b.y0 * sy, x0 + b.x1 * sx, y0 + b.y1 * sy, b.score)
            for b in detector.detect(np.ascontiguousarray(window))]


class FaceCrops:
    """One tracked face per frame of a stream of frames: the face pipeline of ``hi2m predict`` and
    ``hi2m data prepare`` (one implementation).

    :meth:`push` takes the frames in order. The detector runs on every ``detect_every``-th frame (near the
    tracked face when there is one: :func:`detect_near`, the whole frame otherwise or when the face is not
    found there), the tracker picks and smooths the faces -- :class:`FaceTracker` one (id 0), a
    :class:`MultiFaceTracker` every face (searched for in the whole frame) -- and the frames in between get
    interpolated boxes. Frames wait until the next detection frame (at most ``detect_every - 1`` are held),
    then come back from :meth:`push` as ``(k, {id: box}, {id: square crop (size, size, 3)})``, in order;
    :meth:`finish` returns the last ones. ``timings`` (a dict) gains the seconds spent detecting
    (``detect``) and cropping (``crop``).
    """

    def __init__(self, detector, size: int, margin: float = 0.25, detect_every: int = 2, search: float = 2.5,
                 tracker: FaceTracker | MultiFaceTracker | None = None,
                 timings: dict[str, float] | None = None) -> None:
        self.detector = detector
        self.size, self.margin, self.detect_every, self.search = size, margin, detect_every, search
        self.tracker = tracker or FaceTracker()
        self.timings = timings if timings is not None else {}
        self.pending: list[tuple[int, np.ndarray]] = []  # frames waiting for the next detection frame
        self.anchor: tuple[int, dict[int, Box]] | None = None  # the last detection frame and its boxes
        self.count = 0  # frames pushed
        self.resolved = 0  # frames given their box and crop

    def push(self, rgb: np.ndarray) -> list[tuple[int, dict[int, Box], dict[int, np.ndarray]]]:
        """Add the next frame (H, W, 3) uint8; returns the frames resolved by it (often none)."""
        k = self.count
        self.count += 1
        self.pending.append((k, rgb))
        return self._resolve() if k % self.detect_every == 0 else []

    def finish(self) -> list[tuple[int, dict[int, Box], dict[int, np.ndarray]]]:
        """Resolve the frames still waiting (the last one becomes a detection frame)."""
        return self._resolve() if self.pending else []

    def _detect(self, rgb: np.ndarray) -> list[Box]:
        tracked = getattr(self.tracker, "box", None)  # one tracked face: look near it first
        if tracked is not None and self.search > 0:
            near = detect_near(self.detector, rgb, tracked, context=self.search)
            if any(iou(tracked, d) >= self.tracker.min_iou for d in near):
                return near
        return self.detector.detect(rgb)

    def _resolve(self) -> list[tuple[int, dict[int, Box], dict[int, np.ndarray]]]:
        k_new, rgb_new = self.pending[-1]
        t0 = time.perf_counter()
        boxes_new = self.tracker.step(self._detect(rgb_new))
        self.timings["detect"] = self.timings.get("detect", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        out = []
        for k, rgb in self.pending:
            if self.anchor is None or k == k_new:
                boxes = dict(boxes_new)
            else:
                k_old, boxes_old = self.anchor
                frac = (k - k_old) / (k_new - k_old)
                found = {i: interpolate(boxes_old.get(i), boxes_new.get(i), frac)
                         for i in sorted(set(boxes_old) | set(boxes_new))}
                boxes = {i: b for i, b in found.items() if b is not None}
            out.append((k, boxes, {i: square_crop(rgb, b, self.margin, self.size) for i, b in boxes.items()}))
        self.timings["crop"] = self.timings.get("crop", 0.0) + time.perf_counter() - t0
        self.anchor = (k_new, boxes_new)
        self.pending = []
        self.resolved += len(out)
        return out
