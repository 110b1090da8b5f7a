"""What a step checkpoint costs: write time of a full training checkpoint (weights, AdamW's two moments,
RNG states) against one pretraining step, per model size, in the same process.

    python benchmarks/checkpoint_cost.py [--sizes small base] [--batch 2] [--dir /scratch]

Columns: parameters, checkpoint size, median atomic write time (temp file + rename, as hi2m writes them),
median step time (forward + backward + AdamW, the paper's 16x160x160 clips), and the share of training time
the checkpoints take at hi2m's default interval (trainer.checkpoint_every_n_minutes: 30) and, for
comparison, at one checkpoint every 100 steps. Write into the file system the run directory lives on
(--dir): the write time is the disk's, the step time the machine's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hi2m.model import HI2M, HI2MConfig
from hi2m.io.files import atomic_write
from hi2m.train.checkpointing import rng_states
from hi2m.train.optim import build_adamw


def measure(size: str, batch: int, folder: Path, reps: int) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = HI2MConfig.from_name(size, num_frames=16, image_size=160)
    model = HI2M(cfg)
    opt = build_adamw(model, lr=1e-4, weight_decay=0.05)
    video = torch.randn(batch, 3, cfg.num_frames, cfg.image_size, cfg.image_size)
    steps = []
    for _ in range(reps + 1):  # the first step allocates AdamW's moments; not timed
        t = time.perf_counter()
        out = model(video, generator=torch.Generator().manual_seed(0))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        steps.append(time.perf_counter() - t)
    ckpt = {"state_dict": model.state_dict(), "optimizer_states": [opt.state_dict()], "global_step": 1,
            "hi2m_ranks": [{"rng": rng_states(), "epoch": None}]}
    path = folder / f"{size}.ckpt"
    writes = []
    for _ in range(reps):
        t = time.perf_counter()
        atomic_write(path, lambda tmp: torch.save(ckpt, tmp))
        writes.append(time.perf_counter() - t)
    return {"params": sum(p.numel() for p in model.parameters()), "mb": path.stat().st_size / 2**20,
            "write_s": statistics.median(writes), "step_s": statistics.median(steps[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["small", "base"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 16x160x160 clips")
    print(f"{'size':>6} {'params':>9} {'ckpt MB':>8} {'write s':>8} {'step s':>7} {'write/step':>10} "
          f"{'cost @30 min':>12} {'cost @100 steps':>15}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in args.sizes:
            m = measure(size, args.batch, Path(tmp), args.reps)
            per_30 = m["write_s"] / (30 * 60 + m["write_s"])
            per_100 = m["write_s"] / (100 * m["step_s"] + m["write_s"])
            print(f"{size:>6} {m['params'] / 1e6:8.1f}M {m['mb']:8.0f} {m['write_s']:8.2f} {m['step_s']:7.2f} "
                  f"{m['write_s'] / m['step_s']:10.2f} {100 * per_30:11.2f}% {100 * per_100:14.2f}%")


if __name__ == "__main__":
    main()
