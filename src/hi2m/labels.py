"""The seven basic-expression labels shared by DFEW, FERV39K and SynthFace."""

from __future__ import annotations

# Index order used by DFEW's official label files (1-based there: 1 = Happy ... 7 = Fear)
# and by FERV39K; hi2m uses the 0-based position in this tuple everywhere.
DFER_CLASSES: tuple[str, ...] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
