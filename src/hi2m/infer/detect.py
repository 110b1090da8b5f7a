"""Face detection behind a small protocol; the best installed detector is the default.

A detector takes one RGB frame and returns face boxes in that frame's pixel coordinates. Anything
with a ``detect(frame) -> list[Box]`` method can be passed to :class:`hi2m.infer.Predictor`
(e.g. a wrapper around a DNN detector); nothing else is asked of it.

Built in, best first (chosen by name or automatically in :mod:`hi2m.infer.detectors`; measured by
``benchmarks/face_detectors.py``, table in docs/inference.md):

* ``mtcnn``: :class:`hi2m.infer.mtcnn.MTCNNFaceDetector`, when its weights are installed
  (``pip install --no-deps "facenet-pytorch==2.6.0"``); finds turned, small and partly covered faces;
* ``haar``: :class:`HaarFaceDetector`, OpenCV's frontal cascade, always there (the fallback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: (x0, y0) top-left, (x1, y1) bottom-right (exclusive), and a score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)


@runtime_checkable
class FaceDetector(Protocol):
    """What the predictor needs from a face detector."""

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Faces in an RGB uint8 frame (H, W, 3), in that frame's pixel coordinates (any order)."""
        ...


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (shipped with ``opencv-python-headless``).

    The frame is converted to grey and shrunk so that its longer side is at most ``max_side``
    pixels before detection (Haar's cost grows with the pixel count; faces that fill a usable part
    of a video frame stay well above ``min_size``), and boxes are scaled back to the frame.
    """

    name = "haar"

    def __init__(
        self,
        max_side: int = 320,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 20,
        cascade: str = "haarcascade_frontalface_default.xml",
    ) -> None:
        import cv2

        path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FileNotFoundError(f"{path}: cannot load the Haar cascade")
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, frame: np.ndarray) -> list[Box]:
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # (H, W)
        scale = min(1.0, self.max_side / max(grey.shape))
        if scale < 1.0:
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)  # (h, w)
        found = self._cascade.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        return [Box(x / scale, y / scale, (x + w) / scale, (y + h) / scale) for x, y, w, h in np.asarray(found).reshape(-1, 4)]
