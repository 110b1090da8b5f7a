"""The built-in face detectors by name, and the choice ``hi2m predict`` makes by default.

Best first (measured by ``benchmarks/face_detectors.py``, table in docs/inference.md): ``mtcnn``
when its weights are installed, else ``haar``.
"""

from __future__ import annotations

from hi2m.infer.detect import FaceDetector, HaarFaceDetector


DETECTORS = ("mtcnn", "haar")  # best first


def make_detector(name: str = "auto", device: str = "cpu") -> FaceDetector:
    """A built-in detector by name (``mtcnn``, ``haar``), or ``auto``: the best one installed.

    ``auto`` falls back to Haar only when MTCNN's weights are not installed; asking for ``mtcnn``
    by name without them raises with the install command.
    """
    if name not in DETECTORS + ("auto",):
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS + ('auto',))}")
    if name in ("auto", "mtcnn"):
        from hi2m.infer.mtcnn import MTCNNFaceDetector, find_weights  # torch: only when asked for

        if name == "mtcnn" or find_weights() is not None:
            return MTCNNFaceDetector(device=device)
    return HaarFaceDetector()


def detector_name(name: str = "auto") -> str:
    """The detector ``make_detector(name)`` builds, without building it (``auto``: mtcnn when its weights
    are installed, else haar)."""
    if name != "auto":
        return name
    from hi2m.infer.mtcnn import find_weights

    return "mtcnn" if find_weights() is not None else "haar"
