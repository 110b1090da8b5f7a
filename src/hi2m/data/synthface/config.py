"""SynthFace configuration, splits, per-clip seeds and the balanced label plan."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from hi2m.labels import DFER_CLASSES

SYNTHFACE_VERSION = "synthface-1.0"
SPLITS: tuple[str, ...] = ("train", "val", "test")
NUM_CLASSES = len(DFER_CLASSES)

# Arbitrary constants mixed into every seed sequence so that SynthFace streams never
# coincide with another numpy stream built from the same user seed.
_SALT = 0x5F3A_CE11
_SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
_LABEL_STREAM = 0xA1
_CLIP_STREAM = 0xC1
_UNLABELLED_STREAM = 0xD1  # the endless unlabelled pretraining stream


@dataclass(frozen=True)
class SynthFaceConfig:
    """Everything that determines a SynthFace dataset (two equal configs give equal data).

    Counts are per split and are balanced over the seven classes (the label of clip
    ``i`` comes from a seeded shuffle of ``[0, 1, ..., 6, 0, 1, ...]``). Difficulty
    knobs scale the nuisance factors; setting one to zero switches that factor off.
    """

    seed: int = 0
    num_train: int = 1400
    num_val: int = 350
    num_test: int = 350
    num_frames: int = 16
    size: int = 96
    fps: int = 25
    # --- difficulty knobs -------------------------------------------------------
    head_motion: float = 1.0  # scales head translation / rotation / scale amplitude
    background_motion: float = 1.0  # scales background drift speed (0 = static)
    lighting_change: float = 1.0  # scales brightness / light-direction change over time
    occlusion_prob: float = 0.3  # share of clips with a moving occluder
    max_occlusion: float = 0.6  # largest occluder half-thickness in face units (1 = half face height)
    noise: float = 10.0  # largest sensor-noise std in gray levels (0..255)
    low_intensity_share: float = 0.2  # share of clips with a weak (low-intensity) apex
    blink_prob: float = 0.2  # share of clips with a class-unrelated blink
    face_scale: float = 1.0  # multiplies the face size (1.3: the face fills the frame, as VoxCeleb2 crops)
    talking: float = 0.0  # amplitude of class-unrelated speech-like mouth opening (0 = off)
    version: str = SYNTHFACE_VERSION

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 2:
            raise ValueError(f"size must be an even number >= 16 (yuv420p), got {self.size}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        for name in ("num_train", "num_val", "num_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("occlusion_prob", "low_intensity_share", "blink_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0.5 <= self.face_scale <= 1.5:
            raise ValueError(f"face_scale must be in [0.5, 1.5], got {self.face_scale}")
        if not 0.0 <= self.talking <= 1.0:
            raise ValueError(f"talking must be in [0, 1], got {self.talking}")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "SynthFaceConfig":
        """A config from one of :data:`PRESETS` (``voxceleb2``, ``dfew``), then ``overrides``."""
        if preset not in PRESETS:
            raise ValueError(f"unknown SynthFace preset {preset!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **overrides})

    def count(self, split: str) -> int:
        """Number of clips in ``split``."""
        check_split(split)
        return int(getattr(self, f"num_{split}"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SynthFaceConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        return cls(**values)

    def replace(self, **changes: Any) -> "SynthFaceConfig":
        """Copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# Presets that mirror the paper's two kinds of data (docs/synthface.md, "Presets"). Chosen by what those
# datasets look like, never tuned to a downstream result.
PRESETS: dict[str, dict[str, Any]] = {
    # VoxCeleb2's face crops (the pretraining data): the face fills the frame, head and background nearly
    # still, people talk and blink; no occluders, clean video, expressions mostly mild.
    "voxceleb2": dict(face_scale=1.3, head_motion=0.15, background_motion=0.0, lighting_change=0.2,
                      occlusion_prob=0.0, noise=2.0, low_intensity_share=0.5, blink_prob=0.6, talking=1.0),
    # DFEW / FERV39K (movie clips in the wild): the generator's full nuisance.
    "dfew": dict(face_scale=1.0, head_motion=1.0, background_motion=1.0, lighting_change=1.0,
                 occlusion_prob=0.3, noise=10.0, low_intensity_share=0.2, blink_prob=0.2, talking=0.0),
}


def synthface_config(preset: str | None = None, **fields: Any) -> SynthFaceConfig:
    """A :class:`SynthFaceConfig` from an optional preset name and field overrides (what the ``synthetic``
    dataset's ``synthface`` option and ``ensure_synthface`` accept)."""
    return SynthFaceConfig.from_preset(preset, **fields) if preset else SynthFaceConfig(**fields)


def check_split(split: str) -> None:
    """Raise ``ValueError`` for an unknown split name."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def clip_seed_sequence(config: SynthFaceConfig, split: str, index: int) -> np.random.SeedSequence:
    """Seed of one clip, derived from (seed, split, index) only, so clips are independent."""
    check_split(split)
    return np.random.SeedSequence([_SALT, _CLIP_STREAM, config.seed, _SPLIT_CODES[split], index])


def stream_seed_sequence(config: SynthFaceConfig, index: int) -> np.random.SeedSequence:
    """Seed of clip ``index`` (any integer >= 0) of the unlabelled stream; disjoint from every split."""
    if index < 0:
        raise IndexError(f"stream index must be >= 0, got {index}")
    return np.random.SeedSequence([_SALT, _UNLABELLED_STREAM, config.seed, index])


@functools.lru_cache(maxsize=32)
def _label_plan(seed: int, split: str, count: int) -> tuple[int, ...]:
    seq = np.random.SeedSequence([_SALT, _LABEL_STREAM, seed, _SPLIT_CODES[split], count])
    labels = np.arange(count) % NUM_CLASSES  # (N,) balanced to within one clip
    np.random.default_rng(seq).shuffle(labels)
    return tuple(int(x) for x in labels)


def split_labels(config: SynthFaceConfig, split: str) -> np.ndarray:
    """Labels (int, index into ``DFER_CLASSES``) of every clip of ``split``."""
    return np.asarray(_label_plan(config.seed, split, config.count(split)), dtype=np.int64)


def clip_label(config: SynthFaceConfig, split: str, index: int) -> int:
    """Label of clip ``index`` of ``split``."""
    count = config.count(split)
    if not 0 <= index < count:
        raise IndexError(f"index {index} out of range for {split} split of {count} clips")
    return _label_plan(config.seed, split, count)[index]
