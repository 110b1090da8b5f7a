"""The screenshot of ``hi2m predict --report`` in docs/inference.md, from hi2m's own data (no third-party faces).

    python examples/report_example.py MODEL_DIR        # a classifier fine-tuned on SynthFace, e.g. hi2m demo's
                                                       # runs/demo/finetune-pretrained-300/model

Renders SynthFace test clips of a few expressions one after another into a video (8x32x32 clips, upscaled to
256 px, 8 fps), predicts with the whole frame as the face (SynthFace's faces fill the frame; the detectors
are trained on photographs), writes ``report_example.html`` and, with headless Chromium, docs/images/report.png.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    import cv2

    import hi2m
    from hi2m.data.writer import write_video
    from hi2m.infer import Box
    from hi2m.infer.report import ReportWriter
    from hi2m.study import protocol as P

    model = sys.argv[1]
    out = Path("report_example")
    out.mkdir(exist_ok=True)
    clips = P.render_clips(P.LABELLED, "test", 70)
    order = []
    for label in (2, 0, 4, 2, 1, 3):  # Neutral, Happy, Surprise, Neutral, Sad, Angry: three clips each
        order += list(np.flatnonzero(clips["label"] == label)[:3])
    frames = np.concatenate([clips["frames"][i] for i in order])  # (n * 8, 32, 32, 3)
    big = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_CUBIC) for f in frames])
    video = write_video(out / "synthface_expressions.mp4", big, fps=8)

    class WholeFrame:
        def detect(self, frame):
            h, w = frame.shape[:2]
            return [Box(0, 0, w, h)]

    predictor = hi2m.load(model, detector=WholeFrame(), stride=1, hop=1.0, margin=0.0)
    result = predictor.predict(video)
    report = ReportWriter(out / "report_example.html", str(model), predictor.class_names)
    report.add(result)
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if browser is None:
        print(f"wrote {report.path}; no Chromium for the screenshot")
        return
    shot = Path(__file__).resolve().parents[1] / "docs" / "images" / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1000,1500", f"--screenshot={shot}", report.path.resolve().as_uri()],
                   check=True, capture_output=True)
    print(f"wrote {report.path} and {shot}")


if __name__ == "__main__":
    main()
