"""Would two one-thread processes use a 2-core CPU better than one two-thread process at the demo's size?

At 8x32x32 with the micro model, two torch threads split small kernels; two processes with one thread each
do not split anything. This measures the three places the demo could use that, each against what it does
now, alternated within one run:

1. the plain pretraining step (forward, backward, fused AdamW; protocol MODEL, the full method): one process,
   2 threads, batch 32 vs two processes, 1 thread, batch 16 each -- alone, and with gloo DDP averaging the
   gradients (the same 32 clips a step);
2. the engine's pretraining (``hi2m.train.runner.pretrain`` on a prerendered pool, as ``hi2m demo`` runs it):
   batch 32 in this process vs ``trainer.strategy=ddp_fork`` on 2 CPU devices of 16 clips, the same optimiser
   steps, timed from the call to its return (start-up included);
3. the demo's two fine-tunes (random init, 300 clips per class): one after the other with 2 threads vs both at
   once in two forked processes of 1 thread (a fork may only run one thread after this process ran OpenMP).

    python benchmarks/two_processes.py [--views 19200] [--ft-steps 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from step_scaling import make_step  # noqa: E402

from hi2m.data.synthface.dataset import rendered_pool  # noqa: E402
from hi2m.study import protocol as P  # noqa: E402
from hi2m.train.optim import build_adamw  # noqa: E402
from hi2m.train.runner import finetune, pretrain  # noqa: E402


def _step_worker(rank: int, ddp: bool, steps: int, port: int, out) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model, x, _ = make_step(16)  # x: (16, C, T, H, W)
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp else model  # DDP: gradients averaged
    opt = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95), fused=True)

    def step(i: int) -> None:
        net(x, generator=torch.Generator().manual_seed(i)).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(5):
        step(i)
    dist.barrier()
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    dist.barrier()
    if rank == 0:
        out.put((time.perf_counter() - t) / steps)
    dist.destroy_process_group()


def plain_steps(steps: int, rounds: int) -> dict[str, list[float]]:
    """Clips per second of the plain step: one process at batch 32, two at 16 each (alone, and DDP)."""
    _, _, one = make_step(32)
    ctx = multiprocessing.get_context("fork")
    rates: dict[str, list[float]] = {"1 process x 2 threads, batch 32": [],
                                     "2 processes x 1 thread, batch 16 each, no gradient exchange": [],
                                     "2 processes x 1 thread, batch 16 each, DDP (gloo)": []}
    for r in range(rounds):
        for i in range(5):
            one(i)
        t = time.perf_counter()
        for i in range(steps):
            one(i)
        rates["1 process x 2 threads, batch 32"].append(32 * steps / (time.perf_counter() - t))
        for k, ddp in enumerate((False, True)):
            out = ctx.SimpleQueue()
            procs = [ctx.Process(target=_step_worker, args=(rank, ddp, steps, 29500 + 2 * r + k, out))
                     for rank in range(2)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            name = list(rates)[1 + k]
            rates[name].append(32 / out.get())
    return rates


def engine_pretraining(out: Path, views: int, rounds: int) -> dict[str, list[float]]:
    """Clip views per second of the engine's pretraining, one process vs 2-device ddp_fork."""
    steps = views // 32
    recipe = P.Recipe(pretrain_steps=steps, pretrain_batch=32)
    rates: dict[str, list[float]] = {"this process, 2 threads, batch 32": [],
                                     "ddp_fork, 2 CPU devices x 16 clips": []}
    workers = os.cpu_count() or 1
    first = P.pretrain_config(P.HI2M_VARIANT, 0, recipe, out, "pool", pool=views // 2, prerender=workers)
    rendered_pool(P.stream_config(first), views // 2, workers)  # rendered before the clock: every run reads it
    for r in range(rounds):
        for name in rates if r % 2 == 0 else reversed(list(rates)):
            cfg = P.pretrain_config(P.HI2M_VARIANT, 0, recipe, out, f"pre-{len(rates[name])}-{name[:4]}",
                                    pool=views // 2, prerender=workers)
            if name.startswith("ddp"):  # the same optimiser steps and schedule, half the batch on each device
                cfg = dataclasses.replace(
                    cfg, data=dataclasses.replace(cfg.data, batch_size=16),
                    trainer=dataclasses.replace(cfg.trainer, devices=2, strategy="ddp_fork", accelerator="cpu"))
            t = time.perf_counter()
            pretrain(cfg)
            rates[name].append(views / (time.perf_counter() - t))
    return rates


def _finetune(out: Path, name: str, steps: int, threads: int) -> None:
    torch.set_num_threads(threads)
    cfg = P.finetune_config(None, 300, 0, P.Recipe(finetune_steps=steps), out, name, 300 * P.NUM_CLASSES, 210)
    finetune(cfg, verbose=False)


def fine_tunes(out: Path, steps: int, rounds: int) -> dict[str, list[float]]:
    """Seconds for two fine-tunes: in turn with 2 threads vs at once in two 1-thread forks."""
    P.render_clips(P.LABELLED, "train", 300 * P.NUM_CLASSES, 2)  # cached: the forks inherit the clips
    P.render_clips(P.LABELLED, "test", 210, 2)
    seconds: dict[str, list[float]] = {"in turn, 2 threads": [], "at once, 2 forks x 1 thread": []}
    for r in range(rounds):
        for name in seconds if r % 2 == 0 else reversed(list(seconds)):
            t = time.perf_counter()
            if name.startswith("in turn"):
                for k in range(2):
                    _finetune(out, f"ft-turn-{r}-{k}", steps, 2)
            else:
                with multiprocessing.get_context("fork").Pool(2) as pool:
                    pool.starmap(_finetune, [(out, f"ft-fork-{r}-{k}", steps, 1) for k in range(2)])
            seconds[name].append(time.perf_counter() - t)
    return seconds


def _row(name: str, values: list[float], reference: float, fmt: str = ".0f") -> str:
    return f"| {name} | {' / '.join(format(v, fmt) for v in values)} | {max(values) / reference:.2f}x |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=19200, help="clip views per engine pretraining run")
    parser.add_argument("--ft-steps", type=int, default=300, help="steps of each fine-tune")
    parser.add_argument("--steps", type=int, default=40, help="plain steps per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    import logging

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    plain = plain_steps(args.steps, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_pretraining(Path(tmp), args.views, args.rounds)
        ft = fine_tunes(Path(tmp), args.ft_steps, args.rounds)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores; demo geometry {P.FRAMES}x{P.SIZE}x{P.SIZE}, "
          f"{args.rounds} alternated rounds (values per round; ratios of the best)\n")
    print("| plain step | clips/s | vs 1 process |\n|---|---|---|")
    ref = max(plain["1 process x 2 threads, batch 32"])
    print("\n".join(_row(k, v, ref) for k, v in plain.items()))
    print(f"\n| engine pretraining, {args.views} clip views (start-up included) | clip views/s | vs 1 process |")
    print("|---|---|---|")
    ref = max(engine["this process, 2 threads, batch 32"])
    print("\n".join(_row(k, v, ref) for k, v in engine.items()))
    print(f"\n| two fine-tunes of {args.ft_steps} steps | seconds | time vs in turn |\n|---|---|---|")
    ref = min(ft["in turn, 2 threads"])
    print("\n".join(f"| {k} | {' / '.join(f'{s:.1f}' for s in v)} | {min(v) / ref:.2f}x |" for k, v in ft.items()))


if __name__ == "__main__":
    main()
