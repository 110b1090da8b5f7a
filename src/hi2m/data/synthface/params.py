"""Per-clip random parameters: expression (action units), identity and scene nuisances.

Everything here is cheap (no pixels). Each group of parameters draws from its own
child seed of the clip's seed, and every random number is drawn whether or not a
knob switches its effect off, so changing a difficulty knob never changes the
identity or expression of a clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hi2m.labels import DFER_CLASSES
from hi2m.data.synthface.config import (
    SynthFaceConfig,
    check_split,
    clip_label,
    clip_seed_sequence,
    stream_seed_sequence,
)

# Facial "action units" driven by the expression, each with an apex intensity in [0, 1].
AU_NAMES: tuple[str, ...] = (
    "brow_raise",  # whole brow moves up (surprise, fear)
    "brow_lower",  # whole brow moves down (anger)
    "brow_knit",  # inner brow ends pulled together and down, glabella lines appear
    "brow_inner_raise",  # inner brow ends raised, oblique "sad" brows
    "eye_widen",  # upper lid raised, white visible around the iris
    "eye_narrow",  # lids squeezed (smile, anger, disgust)
    "eye_close",  # lids drooping towards closed (sadness)
    "mouth_corner_up",  # smile
    "mouth_corner_down",  # frown
    "mouth_open",  # jaw drop, dark mouth interior visible
    "mouth_stretch",  # mouth pulled wider horizontally (fear)
    "lip_press",  # lips pressed thin, mouth narrower (anger)
    "upper_lip_raise",  # upper lip lifted, upper teeth show (disgust)
    "nose_wrinkle",  # wrinkle lines across the nose bridge, nostrils lifted (disgust)
)

# Class prototypes: apex intensity of each action unit at full expression strength.
PROTOTYPES: dict[str, dict[str, float]] = {
    "Happy": {"mouth_corner_up": 1.0, "eye_narrow": 0.6, "mouth_stretch": 0.35, "mouth_open": 0.25},
    "Sad": {"brow_inner_raise": 0.9, "brow_knit": 0.5, "mouth_corner_down": 1.0, "eye_close": 0.35},
    "Neutral": {},
    "Angry": {"brow_lower": 1.0, "brow_knit": 0.9, "lip_press": 1.0, "eye_narrow": 0.4},
    "Surprise": {"brow_raise": 1.0, "eye_widen": 1.0, "mouth_open": 1.0},
    "Disgust": {
        "nose_wrinkle": 1.0,
        "upper_lip_raise": 0.9,
        "mouth_corner_down": 0.35,
        "brow_lower": 0.4,
        "eye_narrow": 0.45,
    },
    "Fear": {"brow_raise": 0.7, "brow_knit": 0.7, "eye_widen": 0.9, "mouth_stretch": 1.0, "mouth_open": 0.35},
}

# Expression sampling ranges.
STRONG_INTENSITY = (0.6, 1.0)  # apex strength of an ordinary clip
WEAK_INTENSITY = (0.3, 0.5)  # apex strength of a low-intensity (hard) clip
AU_JITTER = (0.8, 1.2)  # per-AU multiplicative jitter of the prototype
LEAK_PROB = 0.25  # chance that any AU gets a small class-unrelated activation
LEAK_MAX = 0.1


@dataclass
class ClipSpec:
    """All random parameters of one clip; rendering it is deterministic."""

    label: int
    expression: dict[str, float]  # au_<name> apex intensities, onset, ramp, apex_frame, intensity
    identity: dict[str, Any]  # face geometry and colours
    scene: dict[str, Any]  # head pose path, background, lighting, occluder, noise, blink
    noise_seed: int = 0  # seed of the per-pixel sensor noise
    extra: dict[str, Any] = field(default_factory=dict)


def sample_spec(config: SynthFaceConfig, split: str, index: int) -> ClipSpec:
    """Draw the parameters of clip ``index`` of ``split`` (no rendering)."""
    check_split(split)
    return spec_from_seed(config, clip_seed_sequence(config, split, index), clip_label(config, split, index))


def sample_stream_spec(config: SynthFaceConfig, index: int) -> ClipSpec:
    """Clip ``index`` of the endless unlabelled stream (pretraining): its own seed, a uniform random class."""
    return spec_from_seed(config, stream_seed_sequence(config, index), label=None)


def spec_from_seed(config: SynthFaceConfig, seq: np.random.SeedSequence, label: int | None) -> ClipSpec:
    """The clip's parameters from its seed: independent child generators for the expression, identity,
    scene and pixel noise (children 0-3) and, when ``label`` is None, a uniform class (child 4)."""
    rng_expr, rng_id, rng_scene, rng_noise, rng_label = [np.random.default_rng(child) for child in seq.spawn(5)]
    if label is None:
        label = int(rng_label.integers(len(DFER_CLASSES)))
    return ClipSpec(
        label=label,
        expression=sample_expression(rng_expr, label, config),
        identity=sample_identity(rng_id),
        scene=sample_scene(rng_scene, config),
        noise_seed=int(rng_noise.integers(0, 2**63 - 1)),
    )


def sample_expression(rng: np.random.Generator, label: int, config: SynthFaceConfig) -> dict[str, float]:
    """Action-unit apex intensities and the onset/apex timing of the expression."""
    proto = PROTOTYPES[DFER_CLASSES[label]]
    weak = bool(rng.random() < config.low_intensity_share)
    strong_draw, weak_draw = rng.uniform(*STRONG_INTENSITY), rng.uniform(*WEAK_INTENSITY)
    intensity = weak_draw if weak else strong_draw
    jitter = rng.uniform(*AU_JITTER, size=len(AU_NAMES))  # (A,)
    leak = rng.uniform(0.0, LEAK_MAX, size=len(AU_NAMES)) * (rng.random(len(AU_NAMES)) < LEAK_PROB)  # (A,)
    apex = np.array([proto.get(name, 0.0) for name in AU_NAMES]) * intensity * jitter + leak  # (A,)
    apex = np.clip(apex, 0.0, 1.0)
    last = config.num_frames - 1
    onset = rng.uniform(0.0, 0.35) * last  # frames before the face starts to move
    ramp = rng.uniform(0.2, 0.55) * last  # frames from onset to apex (short = fast)
    out = {f"au_{name}": float(a) for name, a in zip(AU_NAMES, apex)}
    out.update(
        intensity=float(intensity),
        low_intensity=float(weak),
        onset=float(onset),
        ramp=float(ramp),
        apex_frame=float(min(last, math.ceil(onset + ramp))),
    )
    return out


def expression_profile(expression: dict[str, float], num_frames: int) -> np.ndarray:
    """Expression strength over time, 0 at neutral and 1 at the apex. Shape (T,)."""
    t = np.arange(num_frames, dtype=np.float64)  # (T,)
    x = np.clip((t - expression["onset"]) / max(expression["ramp"], 1e-6), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)  # (T,) smoothstep ramp then hold


def au_tracks(expression: dict[str, float], num_frames: int) -> dict[str, np.ndarray]:
    """Per-frame intensity of every action unit, each shape (T,)."""
    profile = expression_profile(expression, num_frames)
    return {name: expression[f"au_{name}"] * profile for name in AU_NAMES}


def au_vector(expression: dict[str, float]) -> np.ndarray:
    """Apex action-unit intensities as a vector in ``AU_NAMES`` order. Shape (A,)."""
    return np.array([expression[f"au_{name}"] for name in AU_NAMES], dtype=np.float64)


_SKIN_LIGHT = np.array([240.0, 205.0, 178.0])
_SKIN_DARK = np.array([105.0, 70.0, 50.0])
_HAIR = np.array([[25, 20, 18], [70, 45, 30], [120, 80, 45], [200, 165, 105], [150, 60, 30], [110, 105, 100]], float)
_IRIS = np.array([[70, 45, 25], [60, 100, 140], [70, 110, 70], [40, 30, 25]], float)


def sample_identity(rng: np.random.Generator) -> dict[str, Any]:
    """Face shape, feature layout and colours of one synthetic person."""
    tone = rng.random()
    skin = _SKIN_LIGHT * (1 - tone) + _SKIN_DARK * tone + rng.normal(0, 6, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 8, 3)
    lips = skin * np.array([0.85, 0.55, 0.58]) + np.array([25.0, 0.0, 5.0])
    return {
        "face_radius": rng.uniform(0.33, 0.39),  # half face height / frame size
        "face_width": rng.uniform(0.72, 0.86),  # half width / half height
        "eye_sep": rng.uniform(0.27, 0.35),  # eye centre offset from the midline
        "eye_v": rng.uniform(-0.2, -0.1),  # eye height (face units, down = +)
        "eye_w": rng.uniform(0.12, 0.15),
        "eye_h": rng.uniform(0.055, 0.075),
        "gaze_u": rng.uniform(-0.3, 0.3),  # iris offset as a fraction of eye width
        "brow_gap": rng.uniform(0.15, 0.21),
        "brow_thick": rng.uniform(0.026, 0.042),
        "brow_arch": rng.uniform(0.0, 0.05),
        "nose_tip": rng.uniform(0.14, 0.24),
        "mouth_v": rng.uniform(0.44, 0.54),
        "mouth_w": rng.uniform(0.19, 0.25),
        "lip_thick": rng.uniform(0.04, 0.055),
        "hairline": rng.uniform(-0.8, -0.55),
        "has_hair": float(rng.random() < 0.85),
        "skin_tone": float(tone),
        "skin": np.clip(skin, 0, 255).tolist(),
        "hair": np.clip(hair, 0, 255).tolist(),
        "brow": np.clip(hair * 0.7, 0, 255).tolist(),
        "lips": np.clip(lips, 0, 255).tolist(),
        "iris": (_IRIS[rng.integers(len(_IRIS))] + rng.normal(0, 6, 3)).clip(0, 255).tolist(),
    }


def sample_scene(rng: np.random.Generator, config: SynthFaceConfig) -> dict[str, Any]:
    """Head motion, background, lighting, occluder, blink and noise of one clip."""
    fast = rng.random() < 0.2
    head = {
        "offset_x": rng.uniform(-0.06, 0.06),  # frame fractions
        "offset_y": rng.uniform(-0.04, 0.06),
        "amp_x": config.head_motion * 0.07 * rng.uniform(-1, 1) * rng.random(),
        "amp_y": config.head_motion * 0.05 * rng.uniform(-1, 1) * rng.random(),
        "amp_rot": config.head_motion * math.radians(12.0) * rng.uniform(-1, 1),
        "scale_drift": config.head_motion * rng.uniform(-0.1, 0.1),
        "freq": rng.uniform(1.0, 2.5) if fast else rng.uniform(0.2, 1.0),  # cycles per clip
        "phase_x": rng.uniform(0, 2 * math.pi),
        "phase_y": rng.uniform(0, 2 * math.pi),
        "phase_rot": rng.uniform(0, 2 * math.pi),
        "fast": float(fast),
    }
    bg_angle = rng.uniform(0, 2 * math.pi)
    background = {
        "base": rng.uniform(40, 210, 3).tolist(),
        "tint_a": rng.uniform(-60, 60, 3).tolist(),
        "tint_b": rng.uniform(-40, 40, 3).tolist(),
        "waves": rng.uniform(-1, 1, (3, 2)).tolist(),  # direction vectors (un-normalised)
        "wavelength": rng.uniform(0.06, 0.35, 3).tolist(),  # frame fractions
        "phase": rng.uniform(0, 2 * math.pi, 3).tolist(),
        "speed": config.background_motion * rng.uniform(0.0, 0.02),  # frame fractions per frame
        "vx": math.cos(bg_angle),
        "vy": math.sin(bg_angle),
    }
    lighting = {
        "gain_start": rng.uniform(0.85, 1.1),
        "gain_change": config.lighting_change * rng.uniform(-0.25, 0.25),
        "slope": rng.uniform(0.0, 0.3),  # strength of the light-direction gradient
        "angle": rng.uniform(0, 2 * math.pi),
        "angle_change": config.lighting_change * rng.uniform(-1.2, 1.2),
    }
    occ_draw = rng.random()
    occluder = {
        "present": float(occ_draw < config.occlusion_prob),
        "kind": float(rng.random() < 0.5),  # 0 = moving bar, 1 = moving blob
        "size": config.max_occlusion * rng.uniform(0.35, 1.0),  # fraction of face height
        "angle": rng.uniform(0, math.pi),
        "start_u": rng.uniform(-0.9, 0.9),  # start position relative to the face (face units)
        "start_v": rng.uniform(-0.9, 0.9),
        "vel_u": rng.uniform(-1, 1) * 0.08,  # face units per frame at 16 frames
        "vel_v": rng.uniform(-1, 1) * 0.08,
        "color": rng.uniform(20, 235, 3).tolist(),
        "stripes": rng.uniform(0.0, 40.0),
    }
    blink_draw = rng.random()
    blink = {"present": float(blink_draw < config.blink_prob), "frame": rng.uniform(0, 1)}
    noise_draw = rng.random()
    # drawn last, so the draws above (and every clip made before the knob existed) stay the same
    talk = {
        "amp": config.talking * rng.uniform(0.3, 0.8),  # peak extra mouth opening
        "rate": rng.uniform(0.08, 0.2),  # syllables per frame: 2-5 Hz at 25 fps
        "phase": rng.uniform(0, 2 * math.pi),
        "jitter": rng.uniform(0.0, 0.6, 4).tolist(),  # uneven syllable strengths
    }
    return {
        "head": head,
        "background": background,
        "lighting": lighting,
        "occluder": occluder,
        "blink": blink,
        "noise_sigma": config.noise * noise_draw**2,
        "talk": talk,
    }


def talking_track(scene: dict[str, Any], num_frames: int) -> np.ndarray:
    """Class-unrelated speech-like mouth opening per frame, in [0, amp]: rectified syllable pulses
    whose strengths vary slowly. Shape (T,); zeros when the ``talking`` knob is 0."""
    talk = scene["talk"]
    if talk["amp"] <= 0:
        return np.zeros(num_frames)
    t = np.arange(num_frames, dtype=np.float64)  # (T,)
    pulses = np.clip(np.sin(2 * math.pi * talk["rate"] * t + talk["phase"]), 0.0, None)  # (T,)
    j = talk["jitter"]
    strength = 1.0 - j[0] * (0.5 + 0.5 * np.sin(0.37 * t + 6 * j[1])) - j[2] * (0.5 + 0.5 * np.sin(0.11 * t + 6 * j[3]))
    return talk["amp"] * pulses * np.clip(strength, 0.2, 1.0)
