"""Rendering one SynthFace clip: scene, face, occluder, lighting, noise, masks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hi2m.data.synthface.config import SynthFaceConfig
from hi2m.data.synthface.face import draw_face, region_parts, stack_identities
from hi2m.data.synthface.params import ClipSpec, au_tracks, sample_spec, sample_stream_spec, talking_track
from hi2m.data.synthface.raster import Canvas, Pose, coverage


@dataclass
class SynthClip:
    """One generated clip with its labels and ground truth."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    label: int  # index into DFER_CLASSES
    region_masks: np.ndarray | None  # (T, H, W) bool, expression-bearing regions (None: frames_only)
    params: dict[str, float]  # action-unit apex intensities, onset, ramp, apex frame, intensity
    difficulty: dict[str, float] | None  # nuisance strengths of this clip (see docs/synthface.md; None: frames_only)
    region_parts: np.ndarray | None = field(repr=False, default=None)  # (T, H, W) uint8 part ids
    occlusion: np.ndarray | None = field(repr=False, default=None)  # (T, H, W) bool, occluder pixels
    identity: dict[str, Any] = field(repr=False, default_factory=dict)


def _clip_time(num_frames: int) -> np.ndarray:
    """Normalised time 0..1 over the clip. Shape (T,)."""
    return np.linspace(0.0, 1.0, num_frames)


def head_pose(spec: ClipSpec, config: SynthFaceConfig) -> Pose:
    """Smooth per-frame head translation, rotation and scale."""
    head, size = spec.scene["head"], config.size
    t = _clip_time(config.num_frames)  # (T,)
    wave = 2.0 * math.pi * head["freq"] * t  # (T,)

    def path(amp: float, phase: float) -> np.ndarray:
        return amp * (np.sin(wave + phase) - math.sin(phase))  # (T,) starts at 0

    cx = size * (0.5 + head["offset_x"] + path(head["amp_x"], head["phase_x"]))
    cy = size * (0.5 + head["offset_y"] + path(head["amp_y"], head["phase_y"]))
    angle = 0.5 * path(head["amp_rot"], head["phase_rot"])
    radius = size * spec.identity["face_radius"] * config.face_scale * (1.0 + head["scale_drift"] * t)
    return Pose(cx=cx, cy=cy, radius=radius, angle=angle)


def _grating(pos: np.ndarray, kx: float, ky: float, shift: np.ndarray, phase: float) -> np.ndarray:
    """sin(kx * x + ky * y - shift_t + phase) via the angle-sum identity. (T, S, S)."""
    ax = kx * pos + phase  # (S,)
    ay = ky * pos[None, :] - shift[:, None]  # (T, S)
    sin_x, cos_x = np.sin(ax)[None, None, :], np.cos(ax)[None, None, :]  # (1, 1, S)
    sin_y, cos_y = np.sin(ay)[:, :, None], np.cos(ay)[:, :, None]  # (T, S, 1)
    return sin_x * cos_y + cos_x * sin_y


def draw_background(num_frames: int, size: int, bg: dict[str, Any]) -> np.ndarray:
    """Drifting textured background from three sine gratings. (3, T, H, W) float32."""
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size  # (S,)
    drift = bg["speed"] * np.arange(num_frames, dtype=np.float32)  # (T,)
    waves = []
    for (du, dv), wavelength, phase in zip(bg["waves"], bg["wavelength"], bg["phase"]):
        norm = math.hypot(du, dv) + 1e-6
        kx, ky = 2 * math.pi * du / norm / wavelength, 2 * math.pi * dv / norm / wavelength
        shift = ((kx * bg["vx"] + ky * bg["vy"]) * drift).astype(np.float32)  # (T,)
        waves.append(_grating(pos, kx, ky, shift, phase))  # (T, S, S)
    pattern_a = waves[0] + 0.5 * waves[1]  # (T, S, S)
    pattern_b = waves[2] * waves[0]  # (T, S, S) checker-like texture
    image = np.empty((3, num_frames, size, size), dtype=np.float32)  # (3, T, H, W)
    for c in range(3):
        image[c] = bg["base"][c] + 0.5 * bg["tint_a"][c] * pattern_a + 0.7 * bg["tint_b"][c] * pattern_b
    return image


def occluder_alpha(spec: ClipSpec, config: SynthFaceConfig, pose: Pose) -> np.ndarray | None:
    """Coverage of the moving occluder (bar or blob) in image space, or None. (T, H, W)."""
    occ = spec.scene["occluder"]
    if not occ["present"] or occ["size"] <= 0:
        return None
    num_frames, size = config.num_frames, config.size
    r0 = float(pose.radius[0])
    frames = np.arange(num_frames, dtype=np.float32) * (16.0 / max(num_frames, 2))  # (T,)
    ox = pose.cx[0] + r0 * (occ["start_u"] + occ["vel_u"] * frames)  # (T,) pixels
    oy = pose.cy[0] + r0 * (occ["start_v"] + occ["vel_v"] * frames)
    grid = np.arange(size, dtype=np.float32) + 0.5  # (S,)
    dx = grid[None, None, :] - ox.astype(np.float32)[:, None, None]  # (T, 1, S)
    dy = grid[None, :, None] - oy.astype(np.float32)[:, None, None]  # (T, S, 1)
    cos, sin = math.cos(occ["angle"]), math.sin(occ["angle"])
    along, across = cos * dx + sin * dy, cos * dy - sin * dx  # (T, S, S)
    half = occ["size"] * r0  # occluder half-thickness in pixels
    if occ["kind"] < 0.5:
        sdf = np.abs(across) - half  # infinite bar
    else:
        k = np.sqrt((along / (1.3 * half)) ** 2 + (across / half) ** 2)
        sdf = (k - 1.0) * half
    return coverage(sdf)


def occluder_color(spec: ClipSpec, size: int) -> np.ndarray:
    """Striped occluder texture. (3, 1, H, W) or (3,) when untextured."""
    occ = spec.scene["occluder"]
    base = np.asarray(occ["color"], dtype=np.float32)
    if occ["stripes"] < 1.0:
        return base
    grid = np.arange(size, dtype=np.float32)
    wave = np.sin(grid[None, :] * 0.7 + grid[:, None] * 0.3 * (1 + occ["angle"]))  # (S, S)
    return base[:, None, None, None] + (occ["stripes"] * wave)[None, None]  # (3, 1, S, S)


def lighting_field(num_frames: int, size: int, light: dict[str, float]) -> np.ndarray:
    """Multiplicative light: global gain ramp times a rotating gradient. (T, H, W)."""
    t = _clip_time(num_frames)  # (T,)
    gain = (light["gain_start"] + light["gain_change"] * t).astype(np.float32)  # (T,)
    angle = light["angle"] + light["angle_change"] * t  # (T,)
    pos = np.linspace(-1.0, 1.0, size, dtype=np.float32)  # (S,)
    gx = (light["slope"] * np.cos(angle)).astype(np.float32)[:, None, None]  # (T, 1, 1)
    gy = (light["slope"] * np.sin(angle)).astype(np.float32)[:, None, None]
    return gain[:, None, None] * (1.0 + gx * pos[None, None, :] + gy * pos[None, :, None])  # (T, S, S)


def blink_track(spec: ClipSpec, num_frames: int) -> np.ndarray:
    """Extra eye closure of a class-unrelated blink (about 3 frames at 25 fps). (T, 1, 1)."""
    blink = spec.scene["blink"]
    out = np.zeros(num_frames, dtype=np.float32)
    if blink["present"]:
        centre = blink["frame"] * (num_frames - 1)
        out = np.clip(1.2 - np.abs(np.arange(num_frames) - centre) / 1.5, 0.0, 1.0).astype(np.float32)
    return out[:, None, None]


def render_specs(specs: list[ClipSpec], config: SynthFaceConfig, frames_only: bool = False) -> list[SynthClip]:
    """Draw a batch of clips from their parameters (deterministic): every clip has the pixels it has drawn
    alone, and the batch shares the drawing's per-shape Python overhead (what the small features cost at small
    frames; the arithmetic stays per pixel: benchmarks/render_batch.py).
    ``frames_only``: the same frames, without the region masks and the difficulty record (None), for
    pretraining pools."""
    num_frames, size = config.num_frames, config.size
    poses = [head_pose(spec, config) for spec in specs]
    image = np.stack([draw_background(num_frames, size, spec.scene["background"]) for spec in specs])
    canvas = Canvas(image, poses)  # (B, 3, T, H, W)
    tracks = []
    for spec in specs:
        au = au_tracks(spec.expression, num_frames)
        au["mouth_open"] = np.clip(au["mouth_open"] + talking_track(spec.scene, num_frames), 0.0, 1.0)
        tracks.append(au)
    au = {k: np.stack([t[k] for t in tracks]).astype(np.float32)[:, :, None, None] for k in tracks[0]}
    blink = np.stack([blink_track(spec, num_frames) for spec in specs])  # (B, T, 1, 1)
    identity = stack_identities([spec.identity for spec in specs])
    draw_face(canvas, identity, au, blink)
    image = canvas.image  # (B, 3, T, H, W)
    parts = None if frames_only else region_parts(canvas, identity)  # (B, T, H, W)
    occlusion = np.zeros(canvas.shape, dtype=bool)  # (B, T, H, W)
    for b, (spec, pose) in enumerate(zip(specs, poses)):
        occ_alpha = occluder_alpha(spec, config, pose)
        if occ_alpha is not None:
            color = occluder_color(spec, size)
            color = color if color.ndim == 4 else color[:, None, None, None]
            image[b] += occ_alpha[None] * (color - image[b])
            occlusion[b] = occ_alpha > 0.5
        image[b] *= lighting_field(num_frames, size, spec.scene["lighting"])[None]
        sigma = spec.scene["noise_sigma"]
        if sigma > 0.0:
            noise = np.random.default_rng(spec.noise_seed).standard_normal((num_frames, size, size), dtype=np.float32)
            image[b] += (sigma * noise)[None]  # (3, T, H, W) luminance noise
    planes = np.clip(image + 0.5, 0.0, 255.0).astype(np.uint8)  # (B, 3, T, H, W)
    clips = []
    for b, (spec, pose) in enumerate(zip(specs, poses)):  # each clip its own arrays, not views of the batch
        frames = np.ascontiguousarray(planes[b].transpose(1, 2, 3, 0))  # (T, H, W, 3)
        clip = SynthClip(frames=frames, label=spec.label, region_masks=None, params=dict(spec.expression),
                         difficulty=None, identity=spec.identity)
        if not frames_only:
            clip.region_parts, clip.occlusion = parts[b].copy(), occlusion[b].copy()
            clip.region_masks = clip.region_parts > 0
            clip.difficulty = difficulty_record(spec, config, pose, clip.region_masks, clip.occlusion)
        clips.append(clip)
    return clips


def render_spec(spec: ClipSpec, config: SynthFaceConfig, frames_only: bool = False) -> SynthClip:
    """Draw one clip from its parameters (a batch of one; see :func:`render_specs`)."""
    return render_specs([spec], config, frames_only)[0]


def difficulty_record(
    spec: ClipSpec, config: SynthFaceConfig, pose: Pose, masks: np.ndarray, occlusion: np.ndarray
) -> dict[str, float]:
    """Per-clip nuisance strengths plus a heuristic overall difficulty score in [0, 1]."""
    radius = pose.radius[0]
    disp = np.hypot(pose.cx - pose.cx[0], pose.cy - pose.cy[0]) / radius  # (T,) face units
    step = np.hypot(np.diff(pose.cx), np.diff(pose.cy)) / radius  # (T-1,)
    covered = (occlusion & masks).sum(axis=(1, 2)) / np.maximum(masks.sum(axis=(1, 2)), 1)  # (T,)
    light = spec.scene["lighting"]
    expr = spec.expression
    record = {
        "intensity": expr["intensity"],
        "low_intensity": expr["low_intensity"],
        "expression_speed": 1.0 / max(expr["ramp"], 1e-6),  # apex strength per frame
        "motion_amplitude": float(disp.max()),
        "motion_speed": float(step.mean()) if step.size else 0.0,
        "rotation_deg": float(np.degrees(np.ptp(pose.angle))),
        "scale_change": float(abs(pose.radius[-1] / radius - 1.0)),
        "fast_motion": spec.scene["head"]["fast"],
        "occluded": spec.scene["occluder"]["present"],
        "occlusion_fraction": float(covered.mean()),
        "occlusion_max": float(covered.max()),
        "noise_sigma": spec.scene["noise_sigma"],
        "lighting_change": abs(light["gain_change"]) + 0.1 * abs(light["angle_change"]),
        "background_speed": spec.scene["background"]["speed"] * config.size,  # px per frame
        "blink": spec.scene["blink"]["present"],
        "talking": spec.scene["talk"]["amp"],
    }
    parts = [
        (1.0 - record["intensity"]) / 0.7,
        record["motion_amplitude"] / 0.5,
        record["occlusion_fraction"] / 0.5,
        record["noise_sigma"] / 10.0,
        record["rotation_deg"] / 20.0,
    ]
    record["difficulty_score"] = float(np.mean(np.clip(parts, 0.0, 1.0)))
    return {k: float(v) for k, v in record.items()}


def generate_clip(config: SynthFaceConfig, split: str, index: int) -> SynthClip:
    """Generate clip ``index`` of ``split`` from (config.seed, split, index) alone."""
    return render_spec(sample_spec(config, split, index), config)


def generate_stream_clip(config: SynthFaceConfig, index: int, frames_only: bool = False) -> SynthClip:
    """Clip ``index`` (any integer >= 0) of the endless unlabelled stream, from (config.seed, index) alone
    (``frames_only``: see :func:`render_spec`)."""
    return render_spec(sample_stream_spec(config, index), config, frames_only)


# A batch is drawn at once where it measured faster than clip by clip (benchmarks/render_batch.py, against
# one clip a call of the same code): 16 clips of 32x32 a call 1.8x (the demo's size), 32 of 16x16 3.0x; at
# 64x64 4 clips gain nothing (1.04x), and at 96x96 the arithmetic of the batch's common crops outweighs the
# Python overhead it shares (0.87x at 4 clips), so big frames are drawn one clip a call.
BATCH_PIXELS = 16 * 32 * 32


def batch_clips(size: int) -> int:
    """Clips drawn per :func:`render_specs` call at frame size ``size``: ``BATCH_PIXELS`` worth, 1 where
    that is under 4 clips (size > 64)."""
    clips = BATCH_PIXELS // (size * size)
    return clips if clips >= 4 else 1


def render_stream_frames(config: SynthFaceConfig, start: int, stop: int) -> np.ndarray:
    """The frames of stream clips ``start .. stop - 1``: uint8 (stop - start, T, H, W, 3), drawn in batches
    (the pixels each has drawn alone). Numpy only, so a rendering process does not import torch."""
    out = np.empty((stop - start, config.num_frames, config.size, config.size, 3), dtype=np.uint8)
    step = batch_clips(config.size)
    for a in range(start, stop, step):
        specs = [sample_stream_spec(config, k) for k in range(a, min(a + step, stop))]
        for i, clip in enumerate(render_specs(specs, config, frames_only=True)):
            out[a - start + i] = clip.frames
    return out


def render_split_clips(config: SynthFaceConfig, split: str, start: int, stop: int) -> list[SynthClip]:
    """Clips ``start .. stop - 1`` of ``split``, with their masks and records, drawn in batches."""
    step, clips = batch_clips(config.size), []
    for a in range(start, stop, step):
        specs = [sample_spec(config, split, k) for k in range(a, min(a + step, stop))]
        clips.extend(render_specs(specs, config))
    return clips


def _in_processes(job, count: int, workers: int, *args) -> list:
    """``job(*args, a, b)`` over chunks [a, b) of ``range(count)`` in ``workers`` spawned processes (nothing
    of the caller's threads or signal handlers is inherited); the results in chunk order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(16, -(-count // (workers * 16)))  # 16 chunks per process: an even finish
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(job, *args, a, min(a + chunk, count)) for a in range(0, count, chunk)]
        return [j.result() for j in jobs]


def render_stream_pool(config: SynthFaceConfig, count: int, workers: int) -> np.ndarray:
    """Stream clips ``0 .. count - 1`` rendered by ``workers`` processes, in chunks: uint8 (count, T, H, W, 3),
    the same pixels as :func:`generate_stream_clip` gives one by one (each clip depends on (config, index)
    alone)."""
    if workers <= 1 or count < 64:
        return render_stream_frames(config, 0, count)
    return np.concatenate(_in_processes(render_stream_frames, count, workers, config))


def render_many(config: SynthFaceConfig, split: str, count: int, workers: int = 1) -> tuple[SynthClip, ...]:
    """Clips ``0 .. count - 1`` of ``split`` (masks and records included), by ``workers`` processes."""
    if workers <= 1 or count < 64:
        return tuple(render_split_clips(config, split, 0, count))
    return tuple(c for block in _in_processes(render_split_clips, count, workers, config, split) for c in block)
