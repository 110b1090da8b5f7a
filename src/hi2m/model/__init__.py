"""Pure-PyTorch HI2M models (no training-framework imports here).

Names are imported on first use (PEP 562), so reading a configuration (``hi2m.model.config``, plain Python)
does not load torch.
"""

from __future__ import annotations

from hi2m.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "ENCODER_SIZES": "hi2m.model.config",
    "HI2MConfig": "hi2m.model.config",
    "HI2M": "hi2m.model.mae",
    "PretrainOutput": "hi2m.model.mae",
    "VideoEncoder": "hi2m.model.vit",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("hi2m.model", _EXPORTS, globals())
