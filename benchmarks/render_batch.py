"""Drawing SynthFace clips a batch at a time against one at a time, through the same renderer.

``render_specs`` draws a batch of clips with one array operation per shape (each clip its own window, cut at
the batch's common size). The peer in the same run is the same code drawing one clip per call. Rows: frame
size x clips per call, milliseconds per clip (the best of ``--rounds`` alternated rounds, ``frames_only``:
what a pretraining pool renders) and the ratio to one clip per call; ``*`` marks the batch the renderer uses
(``batch_clips``). Every batch is checked to give the pixels of the clips drawn one by one.

    python benchmarks/render_batch.py [--clips 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hi2m.data.synthface.config import synthface_config
from hi2m.data.synthface.params import sample_stream_spec
from hi2m.data.synthface.render import batch_clips, render_specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("| frame | clips per call | ms per clip | vs 1 per call |")
    print("|---|---|---|---|")
    for size in (16, 32, 64, 96):
        config = synthface_config(preset="voxceleb2", num_frames=8, size=size, seed=0)
        specs = [sample_stream_spec(config, k) for k in range(args.clips)]
        batches = sorted({1, 4, 8, 16, batch_clips(size)})
        frames = {}
        best = {b: float("inf") for b in batches}
        for _ in range(args.rounds):
            for b in batches:  # alternated, so a slow spell of the host hits every row alike
                t = time.perf_counter()
                clips = [c for a in range(0, args.clips, b) for c in render_specs(specs[a:a + b], config, True)]
                best[b] = min(best[b], time.perf_counter() - t)
                frames[b] = np.stack([c.frames for c in clips])
        for b in batches:
            if not np.array_equal(frames[b], frames[1]):
                raise SystemExit(f"{size}px, {b} clips per call: pixels differ from one clip per call")
            mark = " *" if b == batch_clips(size) else ""
            print(f"| {size}x{size} | {b}{mark} | {1000 * best[b] / args.clips:.2f} | {best[1] / best[b]:.2f}x |")


if __name__ == "__main__":
    main()
