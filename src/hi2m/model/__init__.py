"""Pure-PyTorch HI2M models (no training-framework imports here).

Names are imported on first use (PEP 562), so reading a configuration (``hi2m.model.config``, plain Python)
does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ENCODER_SIZES": "hi2m.model.config",
    "HI2MConfig": "hi2m.model.config",
    "HI2M": "hi2m.model.mae",
    "PretrainOutput": "hi2m.model.mae",
    "VideoEncoder": "hi2m.model.vit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hi2m.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
