"""Inference on videos: face detection and tracking, sliding-window expression prediction, features.

    import hi2m
    predictor = hi2m.load("runs/finetune/model")
    result = predictor.predict("clip.mp4")
    result.summary["dominant"], result.to_dict()
    predictor.extract_features(frames)      # uint8 (T, H, W, 3) -> Features(tokens, pooled)

See docs/inference.md.
"""

from hi2m.infer.detect import Box, FaceDetector, HaarFaceDetector
from hi2m.infer.detectors import make_detector
from hi2m.infer.predictor import Features, PredictOptions, Predictor, load
from hi2m.infer.result import VideoResult, WindowPrediction

__all__ = ["Box", "FaceDetector", "Features", "HaarFaceDetector", "PredictOptions", "Predictor", "VideoResult",
           "WindowPrediction", "load", "make_detector"]
