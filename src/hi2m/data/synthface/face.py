"""Drawing a batch of faces (head, brows, eyes, nose, mouth) and their expression regions.

All functions draw into a :class:`Canvas` in face units (origin at the face
centre, 1 = half the face height, ``v`` pointing down). Action-unit tracks are
``(B, T, 1, 1)`` float32 arrays so every clip and frame is drawn in one vectorised
pass; an identity is a batch of them (:func:`stack_identities`): numbers as
:class:`PerClip` constants, colours as (B, 3) float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hi2m.data.synthface.raster import Canvas, PerClip, band_sdf, ellipse_sdf, larger, segment_sdf

Tracks = dict[str, np.ndarray]  # action-unit name -> (B, T, 1, 1) intensity

# Ids of the expression-bearing parts in the saved region map (0 = none).
PART_IDS: dict[str, int] = {"brows": 1, "eyes": 2, "nose": 3, "mouth": 4}

_SCLERA = np.array([238.0, 236.0, 230.0])
_PUPIL = np.array([12.0, 10.0, 10.0])
_MOUTH_INSIDE = np.array([70.0, 22.0, 28.0])
_TEETH = np.array([240.0, 238.0, 225.0])


def stack_identities(identities: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of identities: each number a :class:`PerClip` (for a batch of one the Python float itself,
    which PerClip imitates at less cost), each colour (B, 3) float32."""
    out: dict[str, Any] = {}
    for key, value in identities[0].items():
        values = [ident[key] for ident in identities]
        if isinstance(value, list):
            out[key] = np.asarray(values, dtype=np.float32)
        else:
            out[key] = values[0] if len(values) == 1 else PerClip.stack(values)
    return out


def _any_on(on: PerClip | float) -> bool:
    return bool(on.value.any()) if isinstance(on, PerClip) else bool(on)


def _switched(alpha: np.ndarray, on: PerClip | float) -> np.ndarray:
    """``alpha`` where a 0/1 per-clip switch is on, 0 where it is off (a pixel under alpha 0 is unchanged)."""
    return alpha * (on.f32() if isinstance(on, PerClip) else np.float32(on))


def brow_height(ident: dict[str, Any]) -> float:
    """Rest height of the brows (face units)."""
    return ident["eye_v"] - ident["brow_gap"]


def draw_head(cv: Canvas, ident: dict[str, Any]) -> None:
    """Neck, hair, ears and the skin-shaded face oval (drawn before the features)."""
    skin, hair = ident["skin"], ident["hair"]  # (B, 3)
    hair_on = ident["has_hair"]
    fw = ident["face_width"]
    win = cv.window(0.0, 1.9, 1.3)
    u, v = cv.coords(win)
    neck = np.maximum(np.abs(u) - 0.45 * fw, 0.6 - v)  # (B, T, h, w) open-ended strip
    cv.paint(win, cv.alpha(neck), skin * 0.78)
    if _any_on(hair_on):
        win = cv.window(0.0, -0.1, 1.3)
        u, v = cv.coords(win)
        cv.paint(win, _switched(cv.alpha(ellipse_sdf(u, v, 0.0, -0.12, fw * 1.12, 1.0)), hair_on), hair)
    for side in (-1.0, 1.0):
        win = cv.window(side * fw, 0.0, 0.25)
        u, v = cv.coords(win)
        cv.paint(win, cv.alpha(ellipse_sdf(u, v, side * fw * 0.97, -0.02, 0.1, 0.17)), skin * 0.88)
    win = cv.window(0.0, 0.0, 1.05)
    u, v = cv.coords(win)
    narrowing = 1.0 - 0.14 * np.clip(v, 0.0, 1.0)  # (B, T, h, w) egg shape: narrower chin
    sdf = ellipse_sdf(u / narrowing, v, 0.0, 0.0, fw, 1.0)  # (B, T, h, w)
    rim = np.clip(1.0 + sdf / 0.35, 0.0, 1.0) ** 2  # (B, T, h, w) 0 in the middle, 1 at the edge
    shaded = skin[:, :, None, None, None] * (1.0 - 0.2 * rim)[:, None]  # (B, 3, T, h, w)
    face_alpha = cv.alpha(sdf)
    cv.paint(win, face_alpha, shaded)
    if _any_on(hair_on):
        hairline = ident["hairline"] + 0.35 * u * u  # (B, T, h, w) lower at the temples
        cv.paint(win, _switched(face_alpha * cv.alpha(v - hairline), hair_on), hair)


def draw_brows(cv: Canvas, ident: dict[str, Any], au: Tracks) -> None:
    """Two brows as bent capsules, glabella lines (knit) and forehead lines (raise)."""
    sep, rest = ident["eye_sep"], brow_height(ident)
    color, thick = ident["brow"], ident["brow_thick"]
    shift = -0.10 * au["brow_raise"] + 0.07 * au["brow_lower"]  # (B, T, 1, 1)
    knit, inner_up = au["brow_knit"], au["brow_inner_raise"]
    for side in (-1.0, 1.0):
        inner_v = rest + shift + 0.045 * knit + 0.02 * au["brow_lower"] - 0.11 * inner_up
        inner = (side * (sep - 0.13 - 0.045 * knit), inner_v)
        mid_v = rest - ident["brow_arch"] + shift - 0.025 * au["brow_raise"] - 0.03 * inner_up
        mid = (side * (sep - 0.01), mid_v)
        outer = (side * (sep + 0.16), rest + 0.03 + shift + 0.02 * inner_up)
        win = cv.window(side * sep, rest, 0.3)
        u, v = cv.coords(win)
        sdf = np.minimum(segment_sdf(u, v, inner, mid, thick), segment_sdf(u, v, mid, outer, thick * 0.8))
        cv.paint(win, cv.alpha(sdf), color)
    skin = ident["skin"]
    win = cv.window(0.0, rest, 0.35)
    u, v = cv.coords(win)
    lines = np.minimum(
        segment_sdf(u, v, (-0.035, rest + 0.0), (-0.03, rest + 0.09), 0.012),
        segment_sdf(u, v, (0.035, rest + 0.0), (0.03, rest + 0.09), 0.012),
    )
    cv.paint(win, cv.alpha(lines) * (0.85 * knit), skin * 0.55)
    forehead = np.minimum(
        segment_sdf(u, v, (-0.2, rest - 0.17), (0.2, rest - 0.17), 0.011),
        segment_sdf(u, v, (-0.14, rest - 0.23), (0.14, rest - 0.23), 0.011),
    )
    cv.paint(win, cv.alpha(forehead) * (0.8 * au["brow_raise"]), skin * 0.6)


def draw_eyes(cv: Canvas, ident: dict[str, Any], au: Tracks, blink: np.ndarray) -> None:
    """Sclera, iris, pupil and lids; opening follows widen / narrow / close and blinks."""
    sep, ey = ident["eye_sep"], ident["eye_v"]
    w0, h0 = ident["eye_w"], ident["eye_h"]
    closure = np.clip(0.8 * au["eye_close"] + blink, 0.0, 1.0)  # (B, T, 1, 1)
    opening = (1.0 + 0.8 * au["eye_widen"] - 0.55 * au["eye_narrow"]) * (1.0 - closure)
    h = np.maximum(h0 * opening, 0.004)  # (B, T, 1, 1)
    w = w0 * (1.0 + 0.06 * au["eye_widen"] - 0.04 * au["eye_narrow"])
    lid = ident["brow"] * 0.6
    skin = ident["skin"]
    for side in (-1.0, 1.0):
        ex = side * sep
        win = cv.window(ex, ey, 0.3)
        u, v = cv.coords(win)
        eye_sdf = ellipse_sdf(u, v, ex, ey, w, h)  # (B, T, h, w)
        sclera = cv.alpha(eye_sdf)
        cv.paint(win, sclera, _SCLERA)
        iris_u = ex + ident["gaze_u"] * w0 * 0.5
        iris = ellipse_sdf(u, v, iris_u, ey, 0.8 * h0, 0.8 * h0)
        cv.paint(win, cv.alpha(iris) * sclera, ident["iris"])
        cv.paint(win, cv.alpha(iris + 0.45 * h0) * sclera, _PUPIL)
        # the ellipse distance is only approximate far from a thin (closing) eye, so the
        # lid line is also cut to the eye's width
        upper = cv.alpha(np.abs(eye_sdf) - 0.016) * cv.alpha(v - ey - 0.3 * h) * cv.alpha(np.abs(u - ex) - w)
        cv.paint(win, upper, lid)
        lower_lid = segment_sdf(u, v, (ex - 0.7 * w0, ey + h + 0.025), (ex + 0.7 * w0, ey + h + 0.025), 0.01)
        cv.paint(win, cv.alpha(lower_lid) * (0.7 * au["eye_narrow"]), skin * 0.6)


def draw_nose(cv: Canvas, ident: dict[str, Any], au: Tracks) -> None:
    """Nose shading, nostrils (lifted by the wrinkle) and wrinkle lines on the bridge."""
    skin, tip = ident["skin"], ident["nose_tip"]
    wrinkle = au["nose_wrinkle"]  # (B, T, 1, 1)
    win = cv.window(0.0, tip * 0.5, 0.4)
    u, v = cv.coords(win)
    bridge = segment_sdf(u, v, (0.05, -0.02), (0.075, tip - 0.03), 0.018)
    cv.paint(win, cv.alpha(bridge) * 0.35, skin * 0.7)
    base = ellipse_sdf(u, v, 0.0, tip + 0.005 - 0.02 * wrinkle, 0.095, 0.035)
    cv.paint(win, cv.alpha(base) * 0.4, skin * 0.78)
    for side in (-1.0, 1.0):
        nostril = ellipse_sdf(u, v, side * 0.045, tip + 0.015 - 0.035 * wrinkle, 0.026 + 0.01 * wrinkle, 0.015)
        cv.paint(win, cv.alpha(nostril), skin * 0.35)
    bunching = ellipse_sdf(u, v, 0.0, -0.02, 0.1, 0.09)  # skin pushed together on the bridge
    cv.paint(win, cv.alpha(bunching + 0.03) * (0.35 * wrinkle), skin * 0.7)
    lines = segment_sdf(u, v, (-0.06, -0.07), (0.06, -0.07), 0.016)
    for k in (1, 2):
        dv = -0.07 + 0.045 * k
        lines = np.minimum(lines, segment_sdf(u, v, (-0.065, dv), (0.065, dv), 0.016))
    for side in (-1.0, 1.0):
        crease = segment_sdf(u, v, (side * 0.08, -0.06), (side * 0.11, 0.04), 0.014)
        lines = np.minimum(lines, crease)
    cv.paint(win, cv.alpha(lines) * wrinkle, skin * 0.42)


def draw_mouth(cv: Canvas, ident: dict[str, Any], au: Tracks) -> None:
    """Lips, mouth line, dark interior and upper teeth, shaped by the mouth AUs."""
    up, down, press = au["mouth_corner_up"], au["mouth_corner_down"], au["lip_press"]
    mv = ident["mouth_v"] + 0.03 * down - 0.01 * up  # (B, T, 1, 1)
    mw = ident["mouth_w"] * (1.0 + 0.3 * au["mouth_stretch"] + 0.12 * up - 0.18 * press)  # (B, T, 1, 1)
    win = cv.window(0.0, ident["mouth_v"], ident["mouth_w"] * 1.5 + 0.3)
    u, v = cv.coords(win)
    un = np.clip(u / mw, -1.2, 1.2)  # (B, T, h, w) position along the mouth, corners at +-1
    taper = np.clip(1.0 - un * un, 0.0, 1.0)
    centre = mv - (0.11 * up - 0.09 * down) * un * un  # (B, T, h, w) lip contact line
    gap = 0.15 * au["mouth_open"] * taper
    top_in = centre - 0.6 * gap - 0.065 * au["upper_lip_raise"] * taper
    bottom_in = centre + 1.4 * gap
    lip = ident["lip_thick"] * (1.0 - 0.7 * press) * np.sqrt(taper) + 0.004
    side = np.abs(u) - mw
    lips = ident["lips"]
    cv.paint(win, cv.alpha(band_sdf(v, top_in - lip, top_in, side)), lips)
    cv.paint(win, cv.alpha(band_sdf(v, bottom_in, bottom_in + 1.25 * lip, side)), lips * 1.05)
    cv.paint(win, cv.alpha(band_sdf(v, centre - 0.009, centre + 0.009, side)), lips * 0.45)
    cv.paint(win, cv.alpha(band_sdf(v, top_in, bottom_in, side)), _MOUTH_INSIDE)
    teeth_bottom = np.minimum(top_in + 0.05, bottom_in)
    cv.paint(win, cv.alpha(band_sdf(v, top_in, teeth_bottom, side + 0.03)), _TEETH)


def draw_face(cv: Canvas, ident: dict[str, Any], au: Tracks, blink: np.ndarray) -> None:
    """The whole face in drawing order."""
    draw_head(cv, ident)
    draw_nose(cv, ident, au)
    draw_mouth(cv, ident, au)
    draw_eyes(cv, ident, au, blink)
    draw_brows(cv, ident, au)


def region_parts(cv: Canvas, ident: dict[str, Any]) -> np.ndarray:
    """Map of expression-bearing regions, uint8 (B, T, H, W) with ids from ``PART_IDS``.

    Each region is a fixed ellipse in face coordinates that bounds everything the
    action units move or change there (brows and forehead/glabella lines, eyes and
    lids, nose bridge wrinkles and nostrils, lips and mouth opening), so it follows
    the head but not the expression.
    """
    parts = np.zeros(cv.shape, dtype=np.uint8)  # (B, T, H, W)
    sep, ey, rest, tip = ident["eye_sep"], ident["eye_v"], brow_height(ident), ident["nose_tip"]
    eye_a, eye_b = ident["eye_w"] * 1.3 + 0.03, ident["eye_h"] * 1.8 + 0.04
    nose_top, nose_bottom = -0.12, tip + 0.06
    shapes = [
        ("eyes", -sep, ey, eye_a, eye_b),
        ("eyes", sep, ey, eye_a, eye_b),
        ("brows", -sep, rest - 0.06, 0.26, 0.18),
        ("brows", sep, rest - 0.06, 0.26, 0.18),
        ("brows", 0.0, rest - 0.04, 0.17, 0.18),
        ("nose", 0.0, 0.5 * (nose_top + nose_bottom), 0.13, 0.5 * (nose_bottom - nose_top)),
        ("mouth", 0.0, ident["mouth_v"] + 0.02, ident["mouth_w"] * 1.45 + 0.06, 0.26),
    ]
    for name, cu, cvv, a, b in shapes:
        win = cv.window(cu, cvv, larger(a, b))
        u, v = cv.coords(win)
        inside = (ellipse_sdf(u, v, cu, cvv, a, b) < 0.0) & (win.inside > 0)  # (B, T, h, w)
        crop = win.gather(parts)  # (B, T, h, w)
        crop[inside & (crop == 0)] = PART_IDS[name]
        win.scatter(parts, crop)
    return parts
