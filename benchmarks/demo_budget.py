"""Where the seconds of ``hi2m demo`` go, and what each change to its pretraining stage bought.

At the demo's geometry (protocol MODEL, 8x32x32 clips, batch 16, the full method) in one process, each
row measured beside the others in the same run:

1. rendering: SynthFace clips per second in this process and with the pool rendered by N processes
   (``render_stream_pool``: what ``hi2m demo`` does before pretraining now);
2. the plain model step (forward, backward, AdamW; no engine, no data): torch's default AdamW against the
   fused one the engine now uses;
3. the engine's pretraining steps per second (clock from step 50): the stream rendered on the fly by one
   DataLoader worker with one torch thread (the demo before), against the prerendered pool read in the
   main process with every thread (the demo now); and, on the prerendered pool, logging every step against
   every 40th (the modules call ``self.log`` only on the steps whose logs are written).

``--demo-json A/demo.json [B/demo.json ...]`` adds the stage seconds of demo runs side by side, with each
one's pretraining clip views per second against the demo of 2026-12-05 (2,000 steps of 16 in 148 s, 216
clip views/s, verified-results.md); ``--steps 0`` prints only that table.

    python benchmarks/demo_budget.py [--steps 600] [--demo-json runs/demo/demo.json ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from hi2m.data.synthface.render import generate_stream_clip, render_stream_pool
from hi2m.model import HI2M
from hi2m.study import protocol as P
from hi2m.train.optim import build_adamw
from hi2m.train.runner import pretrain


def render_rates(config, count: int, workers: int) -> dict[str, float]:
    t = time.perf_counter()
    for k in range(count // 4):
        generate_stream_clip(config, k)
    one = (count // 4) / (time.perf_counter() - t)
    t = time.perf_counter()
    render_stream_pool(config, count, workers)
    return {"render, 1 process (clips/s)": one, f"render, {workers} processes (clips/s)": count / (time.perf_counter() - t)}


def plain_steps(cfg, fused: bool, steps: int = 60) -> float:
    """Median ms of forward + backward + AdamW on random clips of the demo's shape."""
    torch.manual_seed(0)
    model = HI2M(cfg.model_config()).train()
    opt = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95), fused=True if fused else None)
    x = torch.rand(16, 3, P.FRAMES, P.SIZE, P.SIZE)
    times = []
    for i in range(steps):
        g = torch.Generator().manual_seed(i)
        t = time.perf_counter()
        model(x, generator=g).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times[10:])


class Clock(pl.Callback):
    """Steps per second from step ``start`` to the end of training."""

    def __init__(self, start: int = 50):
        self.start, self.rate = start, float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.start:
            self.t0 = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.rate = (trainer.global_step - self.start) / (time.perf_counter() - self.t0)


def engine_rate(out: Path, name: str, steps: int, pool: int, prerender: int, log_every: int | None = None) -> float:
    recipe = P.Recipe(pretrain_steps=steps)
    cfg = P.pretrain_config(P.HI2M_VARIANT, 0, recipe, out, name, workers=1, pool=pool, prerender=prerender)
    if log_every is not None:
        cfg = cfg.replace(trainer={"log_every_n_steps": log_every})
    threads = torch.get_num_threads()
    if not prerender:  # the demo before: one core renders in the worker, the step gets the others
        torch.set_num_threads(max(1, threads - 1))
    clock = Clock()
    try:
        pretrain(cfg, extra_callbacks=[clock])
    finally:
        torch.set_num_threads(threads)
    return clock.rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600, help="engine steps per row (clock from step 50)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--demo-json", type=Path, nargs="+", default=[])
    args = parser.parse_args()
    if args.steps:
        measure(args)
    if args.demo_json:
        demo_stages([json.loads(p.read_text()) for p in args.demo_json], args.demo_json)


BEFORE_VIEWS_PER_S = 2000 * 16 / 148  # the demo of 2026-12-05: 2,000 pretraining steps of 16 clips in 148 s


def demo_stages(demos: list[dict], paths: list[Path]) -> None:
    """The stage seconds of demo runs side by side, and their pretraining clip views per second."""
    stages = list(dict.fromkeys(k for d in demos for k in d.get("stage_seconds", {})))
    print("\n| stage | " + " | ".join(str(p) for p in paths) + " |\n|---|" + "---|" * len(demos))
    for stage in stages:
        print(f"| {stage} | " + " | ".join(f"{d['stage_seconds'].get(stage, float('nan')):.0f}" for d in demos) + " |")
    print("| all stages (s) | " + " | ".join(f"{d['seconds']:.0f}" for d in demos) + " |")
    print("| pretraining | " + " | ".join(f"{d['pretraining']['steps']} x {d['pretraining'].get('batch', 16)}"
                                          for d in demos) + " |")
    rates = [d["pretraining"]["clip_views"] / d["stage_seconds"]["pretrain"] for d in demos]
    print("| pretraining clip views/s | " + " | ".join(f"{r:.0f}" for r in rates) + " |")
    print(f"| vs 2026-12-05 ({BEFORE_VIEWS_PER_S:.0f} clip views/s) | "
          + " | ".join(f"{r / BEFORE_VIEWS_PER_S:.2f}x" for r in rates) + " |")


def measure(args: argparse.Namespace) -> None:
    recipe = P.Recipe(pretrain_steps=args.steps)
    pool = args.steps * recipe.batch // 2  # two epochs of the pool
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cfg = P.pretrain_config(P.HI2M_VARIANT, 0, recipe, out, "probe", pool=pool, prerender=1)
        rows = render_rates(P.stream_config(cfg), 2000, args.workers)
        rows["plain model step, AdamW default (ms)"] = plain_steps(cfg, fused=False)
        rows["plain model step, AdamW fused (ms)"] = plain_steps(cfg, fused=True)
        before = engine_rate(out, "before", args.steps, pool, prerender=0, log_every=1)
        now = engine_rate(out, "now", args.steps, pool, prerender=args.workers)
        every = engine_rate(out, "now-log1", args.steps, pool, prerender=args.workers, log_every=1)
    rows["engine steps/s: on the fly in 1 worker, 1 thread, log every step (before)"] = before
    rows["engine steps/s: prerendered pool, all threads, log every step"] = every
    rows[f"engine steps/s: prerendered pool, all threads, log every {max(args.steps // 40, 1)}th step (now)"] = now
    rows["engine steps/s: plain fused step alone (1000 / ms)"] = 1000 / rows["plain model step, AdamW fused (ms)"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; demo geometry {P.FRAMES}x{P.SIZE}x{P.SIZE}, "
          f"batch {recipe.batch}; engine rows {args.steps} steps over a {pool}-clip pool")
    print("| measurement | value |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.1f} |")
    print(f"| now / before (engine steps/s) | {now / before:.2f}x |")


if __name__ == "__main__":
    main()
