"""What each SynthFace difficulty knob does to a simple supervised reference.

The reference is a multinomial logistic regression on raw pixels (the apex-ish last frame and the last
minus the first frame, standardised), trained on 100 labelled clips per class and tested on 350 clips:
how much of the expression a linear model can read off the pixels when it has many labels. It is cheap,
has no training schedule to tune, and is the same for every row, so the rows compare the *data*.

Rows: the `dfew` preset (the generator's full nuisance), then that preset with one knob switched off at a
time, every nuisance off, all clips at low intensity, and the `voxceleb2` preset. Seeds: the SynthFace
seed (clips) varies over --seeds; mean +- std.

    python benchmarks/synthface_knobs.py                 # 8x32x32 (the study's geometry)
    python benchmarks/synthface_knobs.py --size 64 --frames 16
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

OFF = {  # one knob switched off
    "head motion off": dict(head_motion=0.0),
    "background static": dict(background_motion=0.0),
    "lighting constant": dict(lighting_change=0.0),
    "no occluders": dict(occlusion_prob=0.0),
    "no noise": dict(noise=0.0),
    "no low-intensity clips": dict(low_intensity_share=0.0),
}
ALL_OFF = dict(head_motion=0.0, background_motion=0.0, lighting_change=0.0, occlusion_prob=0.0, noise=0.0,
               low_intensity_share=0.0, blink_prob=0.0)


def rows() -> dict[str, dict]:
    out = {"dfew preset (full nuisance)": dict(preset="dfew")}
    out.update({name: dict(preset="dfew", **knob) for name, knob in OFF.items()})
    out["every nuisance off"] = dict(preset="dfew", **ALL_OFF)
    out["every clip low-intensity"] = dict(preset="dfew", low_intensity_share=1.0)
    out["voxceleb2 preset"] = dict(preset="voxceleb2")
    return out


def pixel_features(frames: np.ndarray) -> np.ndarray:
    """(n, T, H, W, 3) uint8 -> (n, 2*H*W*3): the last frame and the last minus the first frame."""
    x = frames.astype(np.float32) / 255.0
    return np.concatenate([x[:, -1].reshape(len(x), -1), (x[:, -1] - x[:, 0]).reshape(len(x), -1)], axis=1)


def clips(settings: dict, split: str, count: int, frames: int, size: int, seed: int):
    from hi2m.data.synthface import generate_clip, synthface_config

    counts = {f"num_{s}": (count if s == split else 7) for s in ("train", "val", "test")}
    cfg = synthface_config(seed=seed, num_frames=frames, size=size, **counts, **settings)
    made = [generate_clip(cfg, split, i) for i in range(count)]
    return np.stack([c.frames for c in made]), np.array([c.label for c in made])


def uar(pred: np.ndarray, target: np.ndarray) -> float:
    return 100 * float(np.mean([(pred[target == c] == c).mean() for c in np.unique(target)]))


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--test", type=int, default=350)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"Logistic regression on raw pixels, {args.per_class} labelled clips per class, {args.test} test clips, "
          f"{args.frames}x{args.size}x{args.size}, SynthFace seeds {args.seeds}; chance 14.3 UAR\n")
    print("| data | test UAR | train UAR |\n|---|---|---|")
    for name, settings in rows().items():
        test_uars, train_uars = [], []
        for seed in args.seeds:
            xtr, ytr = clips(settings, "train", 7 * args.per_class, args.frames, args.size, seed)
            xte, yte = clips(settings, "test", args.test, args.frames, args.size, seed)
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=500))
            clf.fit(pixel_features(xtr), ytr)
            test_uars.append(uar(clf.predict(pixel_features(xte)), yte))
            train_uars.append(uar(clf.predict(pixel_features(xtr)), ytr))
        sd = statistics.stdev(test_uars) if len(test_uars) > 1 else 0.0
        print(f"| {name} | {statistics.mean(test_uars):.1f} +- {sd:.1f} | {statistics.mean(train_uars):.1f} |",
              flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
