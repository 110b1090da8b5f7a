"""Class lists of the built-in datasets: the seven basic expressions (DFEW, FERV39K, SynthFace) and MAFW's 11."""

from __future__ import annotations

# Index order used by DFEW's official label files (1-based there: 1 = Happy ... 7 = Fear)
# and by FERV39K; hi2m uses the 0-based position in this tuple everywhere.
DFER_CLASSES: tuple[str, ...] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")

# MAFW's single-expression set (Liu et al., ACM MM 2022): its split files name the label in lowercase;
# this is the index order MAFW's public baselines (MAE-DFER, HiCMAE) report per-class results in.
MAFW_CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
                                 "contempt", "anxiety", "helplessness", "disappointment")
