"""SynthFace: procedural face-expression videos, hi2m's built-in default data.

Seven DFEW classes carried by moving facial action units (brows, eyes, nose,
mouth), with nuisance factors that make some clips hard, per-frame ground-truth
masks of the expression-bearing regions, and a per-clip difficulty record. See
``docs/synthface.md``.

``SynthFaceClips`` (torch) is imported lazily so that the generator and the
writer's worker processes do not pay for importing torch.
"""

from __future__ import annotations

from typing import Any

from hi2m.data.synthface.config import (
    PRESETS,
    SPLITS,
    SYNTHFACE_VERSION,
    SynthFaceConfig,
    clip_label,
    split_labels,
    synthface_config,
)
from hi2m.data.synthface.face import PART_IDS
from hi2m.data.synthface.params import AU_NAMES, PROTOTYPES, ClipSpec, au_vector, sample_spec
from hi2m.data.synthface.render import SynthClip, generate_clip, generate_stream_clip, render_spec
from hi2m.data.synthface.storage import (
    ensure_synthface,
    is_complete,
    load_occlusion,
    load_region_masks,
    load_region_parts,
    read_marker,
    write_synthface,
)

__all__ = [
    "AU_NAMES",
    "PART_IDS",
    "PRESETS",
    "PROTOTYPES",
    "SPLITS",
    "SYNTHFACE_VERSION",
    "ClipSpec",
    "SynthClip",
    "SynthFaceClips",
    "SynthFaceConfig",
    "SynthFaceStream",
    "au_vector",
    "clip_label",
    "ensure_synthface",
    "generate_clip",
    "generate_stream_clip",
    "is_complete",
    "load_occlusion",
    "load_region_masks",
    "load_region_parts",
    "read_marker",
    "render_spec",
    "sample_spec",
    "split_labels",
    "synthface_config",
    "write_synthface",
]


def __getattr__(name: str) -> Any:
    if name in ("SynthFaceClips", "SynthFaceStream", "frames_to_tensor"):
        from hi2m.data.synthface import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
