"""Does a batch of 32 pretrain "the same clips seen" faster than a batch of 16 through the engine?

The plain step (step_scaling.py) measured 0.73-0.75x per clip at batch 32 in two runs of three. This runs the
demo's pretraining (protocol MODEL, 8x32x32, the full method, a prerendered pool read in the main process, as
``hi2m demo`` does) through the engine at batch 16 and at batch 32 for the same clip views, alternated for
``--rounds`` rounds, and prints clip views per second from the clock's start (step 50 of batch 16, step 25 of
batch 32) to the end.

    python benchmarks/pretrain_batch.py [--views 9600] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from demo_budget import Clock  # noqa: E402

from hi2m.study import protocol as P  # noqa: E402
from hi2m.train.runner import pretrain  # noqa: E402


def views_per_second(out: Path, name: str, batch: int, views: int, pool: int, workers: int) -> float:
    recipe = P.Recipe(pretrain_steps=views // batch, pretrain_batch=batch)
    cfg = P.pretrain_config(P.HI2M_VARIANT, 0, recipe, out, name, pool=pool, prerender=workers)
    clock = Clock(start=800 // batch)
    pretrain(cfg, extra_callbacks=[clock])
    return clock.rate * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=9600, help="clip views per run (both batches)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    pool = args.views // 2  # two epochs of the pool, rendered once (the cache is shared by every run)
    rates: dict[int, list[float]] = {16: [], 32: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for batch in (16, 32) if r % 2 == 0 else (32, 16):
                rates[batch].append(views_per_second(Path(tmp), f"b{batch}-r{r}", batch, args.views, pool,
                                                     args.workers))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; demo geometry {P.FRAMES}x{P.SIZE}x"
          f"{P.SIZE}, {args.views} clip views per run over a {pool}-clip prerendered pool, alternated rounds")
    print("| batch | clip views/s per round | best | time per clip vs batch 16 |\n|---|---|---|---|")
    for batch, values in rates.items():
        print(f"| {batch} | {' / '.join(f'{v:.0f}' for v in values)} | {max(values):.0f} | "
              f"{max(rates[16]) / max(values):.2f}x |")


if __name__ == "__main__":
    main()
