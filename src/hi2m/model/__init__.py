"""Pure-PyTorch HI2M models (no training-framework imports here)."""

from hi2m.model.config import ENCODER_SIZES, HI2MConfig
from hi2m.model.mae import HI2M, PretrainOutput
from hi2m.model.vit import VideoEncoder

__all__ = ["ENCODER_SIZES", "HI2M", "HI2MConfig", "PretrainOutput", "VideoEncoder"]
