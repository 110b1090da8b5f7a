"""Is the demo's pretraining step bound by compute or by per-op overhead, and SynthFace's rendering by pixels or
by per-clip Python? The two questions behind the "3x steps per second" and "render at the speed of the step"
targets of the six-minute demo, in one run.

1. The plain step (forward, backward, fused AdamW; protocol MODEL, 8x32x32, the full method) at batch 16, 32
   and 64, alternated: milliseconds per step and clips per second. Per-op overhead would make the larger
   batches cheaper per clip; compute does not. Beside it the step's FLOPs (torch's FlopCounterMode: matmuls,
   attention, the patch convolution) and the share of the step's CPU time in matmul kernels (profiler).
2. Rendering one clip (``frames_only``, what the pool renders) at 16, 32, 64 and 128 px: the part that does
   not grow with the pixels is the per-clip cost a batched renderer could share out.

    python benchmarks/step_scaling.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from hi2m.data.synthface.config import synthface_config
from hi2m.data.synthface.render import generate_stream_clip
from hi2m.model import HI2M
from hi2m.study import protocol as P
from hi2m.train.optim import build_adamw


def make_step(batch: int):
    cfg = P.pretrain_config(P.HI2M_VARIANT, 0, P.Recipe(), Path(tempfile.mkdtemp()), "probe")
    torch.manual_seed(0)
    model = HI2M(cfg.model_config()).train()
    opt = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95), fused=True)
    x = torch.rand(batch, 3, P.FRAMES, P.SIZE, P.SIZE)

    def step(i: int) -> None:
        model(x, generator=torch.Generator().manual_seed(i)).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, x, step


def median_ms(step, n: int = 30) -> float:
    for i in range(5):
        step(i)
    times = []
    for i in range(n):
        t = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = (16, 32, 64)
    steps = {b: make_step(b) for b in batches}
    ms: dict[int, list[float]] = {b: [] for b in batches}
    for r in range(args.rounds):
        for b in batches if r % 2 == 0 else reversed(batches):
            ms[b].append(median_ms(steps[b][2]))
    model, x, step = steps[16]
    with FlopCounterMode(display=False) as fc:
        model(x, generator=torch.Generator().manual_seed(0)).loss.backward()
    flops = fc.get_total_flops()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(10):
            step(i)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; demo geometry {P.FRAMES}x{P.SIZE}x{P.SIZE}, "
          f"full HI2M; medians of 30 steps, best of {args.rounds} alternated rounds\n")
    print("| batch | ms per step | clips/s | ms per clip vs batch 16 |\n|---|---|---|---|")
    base = min(ms[16]) / 16
    for b in batches:
        best = min(ms[b])
        print(f"| {b} | {best:.1f} | {1000 * b / best:.0f} | {best / b / base:.2f}x |")
    best16 = min(ms[16]) / 1000
    print(f"\nbatch 16: {flops / 1e9:.2f} GFLOP per step (forward + backward) = {flops / best16 / 1e9:.0f} GFLOP/s "
          f"over the whole step; matmul kernels {100 * matmul / total:.0f}% of its CPU time "
          f"({flops / (best16 * matmul / total) / 1e9:.0f} GFLOP/s inside them)")

    print("\n| frame size | ms per clip (frames_only) |\n|---|---|")
    for size in (16, 32, 64, 128):
        config = synthface_config(preset="voxceleb2", num_frames=P.FRAMES, size=size, seed=1000)
        for k in range(20):
            generate_stream_clip(config, k, frames_only=True)
        t = time.process_time()
        for k in range(200):
            generate_stream_clip(config, k, frames_only=True)
        print(f"| {size} | {1000 * (time.process_time() - t) / 200:.2f} |")


if __name__ == "__main__":
    main()
