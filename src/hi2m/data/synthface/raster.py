"""Vectorised anti-aliased rasterisation of a batch of clips on per-frame face coordinate grids.

Shapes are described by signed distance functions (negative inside) in *face
units* (1 = half the face height), evaluated for every clip and frame of a batch
at once on ``(B, T, h, w)`` arrays. ``coverage`` turns a distance into an alpha
with a one-pixel smooth edge. Each shape is drawn only inside a pixel window that
bounds it over the whole clip: every clip of the batch has its own window, cut
out of the frame at a size shared by the batch (the part of that crop outside a
clip's own window is masked off), which keeps the cost proportional to the
shape's size and the Python overhead shared by the batch.

A batch draws every pixel exactly as a batch of one does: per-clip constants are
:class:`PerClip` values, which meet float32 arrays the way Python floats do.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

_EPS = 1e-6


class PerClip:
    """A per-clip constant (one float64 per clip, shape (B, 1, 1, 1)) that behaves like a Python float.

    Arithmetic with Python numbers and other ``PerClip`` stays float64 (what Python computes for one clip);
    meeting a float32 array it is cast to float32 first, as numpy (NEP 50) does with a Python float, and
    meeting a float64 array it stays float64. So code written for one clip's Python floats draws a batch with
    the same bits.
    """

    __array_ufunc__ = None  # numpy's operators defer to the reflected ones below

    def __init__(self, value: Any) -> None:
        self.value = np.asarray(value, dtype=np.float64)  # (B, 1, 1, 1)
        self._f32: np.ndarray | None = None

    @classmethod
    def stack(cls, values: list[float]) -> PerClip:
        return cls(np.asarray(values, dtype=np.float64).reshape(-1, 1, 1, 1))

    def _apply(self, other: Any, fn: Callable, reflected: bool) -> Any:
        if type(other) is np.ndarray:
            a = self.f32() if other.dtype == np.float32 else self.value
            return fn(other, a) if reflected else fn(a, other)
        b = other.value if isinstance(other, PerClip) else other  # or a Python number
        return PerClip(fn(b, self.value) if reflected else fn(self.value, b))

    def _operator(fn: Callable, reflected: bool) -> Callable:  # noqa: N805 - builds the methods below
        return lambda self, other: self._apply(other, fn, reflected)

    __add__, __radd__ = _operator(operator.add, False), _operator(operator.add, True)
    __sub__, __rsub__ = _operator(operator.sub, False), _operator(operator.sub, True)
    __mul__, __rmul__ = _operator(operator.mul, False), _operator(operator.mul, True)
    __truediv__, __rtruediv__ = _operator(operator.truediv, False), _operator(operator.truediv, True)
    del _operator

    def __neg__(self) -> PerClip:
        return PerClip(-self.value)

    def f32(self) -> np.ndarray:
        """As a float32 array (B, 1, 1, 1)."""
        if self._f32 is None:
            self._f32 = self.value.astype(np.float32)
        return self._f32


def larger(a: Any, b: Any) -> Any:
    """``max(a, b)`` of two Python floats or per-clip constants (whichever is larger, per clip)."""
    if isinstance(a, PerClip) or isinstance(b, PerClip):
        value = lambda x: x.value if isinstance(x, PerClip) else x  # noqa: E731
        return PerClip(np.maximum(value(a), value(b)))
    return max(a, b)


def _unit(x: np.ndarray) -> np.ndarray:
    """``np.clip(x, 0, 1)`` in place, without np.clip's Python-level checks (a third of a small shape's cost)."""
    np.maximum(x, 0.0, out=x)
    return np.minimum(x, 1.0, out=x)


def coverage(sdf_px: np.ndarray) -> np.ndarray:
    """Alpha in [0, 1] from a signed distance in pixels (smooth clamp, 1 px edge)."""
    x = _unit(0.5 - sdf_px)
    return x * x * (3.0 - 2.0 * x)


def ellipse_sdf(u: np.ndarray, v: np.ndarray, cu, cv, a, b) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (gradient-normalised)."""
    x, y = (u - cu) / a, (v - cv) / b
    k1 = np.sqrt(x * x + y * y)
    k2 = np.sqrt((x / a) ** 2 + (y / b) ** 2) + _EPS
    return k1 * (k1 - 1.0) / k2


def segment_sdf(u: np.ndarray, v: np.ndarray, p0: tuple, p1: tuple, radius) -> np.ndarray:
    """Signed distance to a capsule (segment ``p0``-``p1`` with round caps)."""
    pu, pv = u - p0[0], v - p0[1]
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    h = _unit((pu * du + pv * dv) / (du * du + dv * dv + _EPS))
    return np.hypot(pu - h * du, pv - h * dv) - radius


def band_sdf(v: np.ndarray, top, bottom, side: np.ndarray) -> np.ndarray:
    """Distance-like value for the strip ``top < v < bottom`` cut by ``side < 0``."""
    return np.maximum(np.maximum(top - v, v - bottom), side)


@dataclass
class Pose:
    """Per-frame placement of the face in the image, each array of shape (T,)."""

    cx: np.ndarray  # face centre x in pixels
    cy: np.ndarray  # face centre y in pixels
    radius: np.ndarray  # half face height in pixels
    angle: np.ndarray  # in-plane rotation in radians


@dataclass
class Window:
    """One pixel window per clip, cut out at the batch's common size ``h`` x ``w``."""

    top: np.ndarray  # (B,) int64, first row of each clip's crop
    left: np.ndarray  # (B,) int64, first column
    inside: np.ndarray  # (B, 1, h, w) float32, 1 inside the clip's own window, 0 in the crop's margin
    h: int
    w: int
    full: bool  # every crop is its clip's whole window (no margin)

    def crops(self, frames: np.ndarray) -> np.ndarray:
        """A view ``(B, ..., H', W', h, w)`` of every h x w crop of a C-contiguous ``frames`` (B, ..., H, W)
        (what ``sliding_window_view`` gives, without its checks); index it with :meth:`pick`."""
        *lead, height, width = frames.shape
        shape = (*lead, height - self.h + 1, width - self.w + 1, self.h, self.w)
        strides = frames.strides + frames.strides[-2:]
        return np.ndarray(shape, frames.dtype, buffer=frames, strides=strides)

    def pick(self, ndim: int) -> tuple:
        """The index picking each clip's own crop out of :meth:`crops` of a ``ndim``-dimensional array."""
        batch = np.arange(len(self.top))
        return (batch,) + (slice(None),) * (ndim - 3) + (self.top, self.left)

    def gather(self, frames: np.ndarray) -> np.ndarray:
        """Each clip's crop of ``frames`` (B, ..., H, W): (B, ..., h, w), a copy -- or, for a batch of one, a
        view (what :meth:`scatter` then writes back is already there)."""
        if len(self.top) == 1:
            top, left = int(self.top[0]), int(self.left[0])
            return frames[..., top : top + self.h, left : left + self.w]
        return self.crops(frames)[self.pick(frames.ndim)]

    def scatter(self, frames: np.ndarray, crop: np.ndarray) -> None:
        """Write crops (B, ..., h, w) back into ``frames`` (B, ..., H, W) in place."""
        if len(self.top) == 1:  # a batch of one: gather gave a view
            return
        self.crops(frames)[self.pick(frames.ndim)] = crop


class Canvas:
    """A batch of RGB float clips stored channel-first (B, 3, T, H, W) plus the face coordinates of every
    pixel. Paints of one window are done on a crop that is written back when another window is painted.
    """

    def __init__(self, image: np.ndarray, poses: list[Pose]) -> None:
        self._image = image  # (B, 3, T, H, W) float32, 0..255
        batch, _, num_frames, height, width = image.shape
        self.shape = (batch, num_frames, height, width)

        def per_frame(values) -> np.ndarray:
            return np.stack(values)[:, :, None, None]  # (B, T, 1, 1)

        # the placement in float64, as one clip's window is computed
        self.cx, self.cy = per_frame([p.cx for p in poses]), per_frame([p.cy for p in poses])
        self.radius = per_frame([p.radius for p in poses])
        self.cos = per_frame([np.cos(p.angle) for p in poses])  # one clip's call each: the same bits
        self.sin = per_frame([np.sin(p.angle) for p in poses])
        x = np.arange(width, dtype=np.float32) + 0.5  # (W,)
        y = np.arange(height, dtype=np.float32) + 0.5  # (H,)
        cos, sin = self.cos.astype(np.float32), self.sin.astype(np.float32)  # (B, T, 1, 1)
        inv_r = (1.0 / self.radius).astype(np.float32)  # (B, T, 1, 1)
        dx = x - self.cx.astype(np.float32)  # (B, T, 1, W)
        dy = y[:, None] - self.cy.astype(np.float32)  # (B, T, H, 1)
        u = (cos * dx + sin * dy) * inv_r  # (B, T, H, W) face units, right = +
        v = (cos * dy - sin * dx) * inv_r  # (B, T, H, W) face units, down = +
        self.u, self.v = u, v
        self.px = inv_r  # (B, T, 1, 1) size of one pixel in face units
        self._open: Window | None = None  # the window whose crop is being painted
        self._region: np.ndarray | None = None  # (B, 3, T, h, w) that crop

    @property
    def image(self) -> np.ndarray:
        """The clips, every paint written back. (B, 3, T, H, W)."""
        self._close()
        return self._image

    def window(self, cu, cv, extent) -> Window:
        """Pixel window holding the face-space disc (cu, cv, extent) in every frame, per clip."""
        x = self.cx + self.radius * (self.cos * cu - self.sin * cv)  # (B, T, 1, 1) pixels
        y = self.cy + self.radius * (self.sin * cu + self.cos * cv)
        r = self.radius * extent + 2.0
        _, _, height, width = self.shape
        corners = np.stack([(x - r).min(axis=(1, 2, 3)), (y - r).min(axis=(1, 2, 3))])  # (2, B)
        ends = np.stack([(x + r).max(axis=(1, 2, 3)), (y + r).max(axis=(1, 2, 3))])
        limit = np.array([[width], [height]])
        x0, y0 = np.minimum(np.maximum(np.floor(corners), 0), limit).astype(np.int64)  # (B,) each
        x1, y1 = np.minimum(np.maximum(np.ceil(ends), 0), limit).astype(np.int64)
        h, w = int((y1 - y0).max()), int((x1 - x0).max())
        top, left = np.minimum(y0, height - h), np.minimum(x0, width - w)  # (B,) the crops' corners
        if len(top) == 1:  # a batch of one: the crop is the window
            return Window(top, left, np.ones((1, 1, h, w), np.float32), h, w, True)
        rows, cols = top[:, None] + np.arange(h), left[:, None] + np.arange(w)  # (B, h), (B, w)
        inside_rows = (rows >= y0[:, None]) & (rows < y1[:, None])  # (B, h)
        inside_cols = (cols >= x0[:, None]) & (cols < x1[:, None])  # (B, w)
        inside = (inside_rows[:, :, None] & inside_cols[:, None, :]).astype(np.float32)  # (B, h, w)
        return Window(top, left, inside[:, None], h, w, bool(inside.all()))

    def coords(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        """Face coordinates in a window, two (B, T, h, w) arrays."""
        return win.gather(self.u), win.gather(self.v)

    def alpha(self, sdf: np.ndarray) -> np.ndarray:
        """Coverage of a face-unit distance field drawn in this canvas. (B, T, h, w)."""
        return coverage(sdf / self.px)

    def paint(self, win: Window, alpha: np.ndarray, color) -> None:
        """Alpha-blend ``color`` ((3,), (B, 3) or (B, 3, T, h, w)) over the window, in place.

        Outside a clip's own window the alpha is 0, and a pixel under alpha 0 keeps its value exactly, so
        only the rows and columns where some clip's alpha is non-zero are touched (shapes are usually much
        smaller than their window, and switched-off ones are skipped).
        """
        alpha = alpha if win.full else alpha * win.inside  # (B, T, h, w)
        reach = alpha.max(axis=(0, 1))  # (h, w)
        rows = np.flatnonzero(reach.max(axis=1) > 0.0)
        if rows.size == 0:
            return
        cols = np.flatnonzero(reach.max(axis=0) > 0.0)
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        region = self._crop(win)[..., box[0], box[1]]  # (B, 3, T, h', w') view
        color = np.asarray(color, dtype=np.float32)
        color = color[..., box[0], box[1]] if color.ndim == 5 else color.reshape(-1, 3, 1, 1, 1)
        region += alpha[:, None, :, box[0], box[1]] * (color - region)

    def _crop(self, win: Window) -> np.ndarray:
        if win is not self._open:
            self._close()
            self._region = win.gather(self._image)  # (B, 3, T, h, w)
            self._open = win
        return self._region

    def _close(self) -> None:
        """Write the open window's crop back into the image."""
        if self._open is not None:
            self._open.scatter(self._image, self._region)
            self._open, self._region = None, None
