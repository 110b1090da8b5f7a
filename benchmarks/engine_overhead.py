"""What the training engine costs per step at the demo's scale, against a plain PyTorch loop.

The demo and the SynthFace study train through the engine (Lightning modules, resumable loader, skip
tracking, logging, epoch-end checkpoints). This measures steps per second of the same model, data and
optimiser both ways, in one process, rows alternating:

* ``plain``  - a bare loop: DataLoader -> model -> backward -> AdamW step (the peer);
* ``engine`` - :func:`hi2m.train.runner.pretrain` / :func:`~hi2m.train.runner.finetune` with the demo's
  configs (:mod:`hi2m.study.protocol`), timed by a callback from step ``--skip`` to the last.

    python benchmarks/engine_overhead.py [--steps 200] [--repeats 2]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from hi2m.study import protocol as P


class StepClock(pl.Callback):
    def __init__(self, skip: int):
        self.skip, self.t0, self.t1, self.steps = skip, None, None, 0

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.skip:
            self.t0 = time.perf_counter()
        elif trainer.global_step > self.skip:
            self.t1, self.steps = time.perf_counter(), trainer.global_step - self.skip


def plain_steps_per_s(cfg, task: str, steps: int, skip: int) -> float:
    from hi2m.data.skipping import collate_skip_bad
    from hi2m.model import HI2M
    from hi2m.model.classifier import VideoClassifier
    from hi2m.train import data as tdata
    from hi2m.train.mixup import label_smoothing_cross_entropy
    from hi2m.train.optim import build_adamw

    mcfg = cfg.model_config()
    if task == "pretrain":
        dataset, model = tdata.pretrain_dataset(cfg, mcfg), HI2M(mcfg)
    else:
        dataset, _, _ = tdata.finetune_datasets(cfg, mcfg)
        model = VideoClassifier(mcfg, P.NUM_CLASSES)
    opt = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=tuple(cfg.optim.betas))
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=True, drop_last=True,
                        num_workers=cfg.data.num_workers, collate_fn=collate_skip_bad,
                        persistent_workers=cfg.data.num_workers > 0)
    model.train()
    step, t0 = 0, None
    while step < steps:
        for batch in loader:
            if task == "pretrain":
                loss = model(batch["video"]).loss
            else:
                loss = label_smoothing_cross_entropy(model(batch["video"]), batch["label"], 0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == skip:
                t0 = time.perf_counter()
            if step >= steps:
                break
    return (steps - skip) / (time.perf_counter() - t0)


def engine_steps_per_s(cfg, task: str, skip: int) -> float:
    from hi2m.train.runner import finetune, pretrain

    clock = StepClock(skip)
    if task == "pretrain":
        pretrain(cfg, extra_callbacks=[clock])
    else:
        finetune(cfg, verbose=False, extra_callbacks=[clock])
    return clock.steps / (clock.t1 - clock.t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--skip", type=int, default=20, help="steps before the clock starts (warm-up)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads() - 1))  # as the demo: one core renders the stream
    recipe = P.Recipe(pretrain_steps=args.steps, finetune_steps=args.steps)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for task in ("pretrain", "finetune"):
                out = Path(tmp) / f"{task}{r}"
                if task == "pretrain":
                    cfg = P.pretrain_config(P.HI2M_VARIANT, 0, recipe, out, "engine", workers=1)
                else:
                    cfg = P.finetune_config(None, 300, 0, recipe, out, "engine", pool=2100, test_clips=7)
                torch.manual_seed(0)
                plain = plain_steps_per_s(cfg, task, args.steps, args.skip)
                engine = engine_steps_per_s(cfg, task, args.skip)
                rows.append((task, r, plain, engine))
    print(f"\nsteps/s, demo model ({P.FRAMES}x{P.SIZE}x{P.SIZE}, batch {recipe.batch}), {args.steps} steps, "
          f"clock from step {args.skip}; torch threads {torch.get_num_threads()}\n")
    print("| stage | repeat | plain loop steps/s | engine steps/s | engine / plain |")
    print("|---|---|---|---|---|")
    for task, r, plain, engine in rows:
        print(f"| {task} | {r} | {plain:.2f} | {engine:.2f} | {engine / plain:.2f}x |")


if __name__ == "__main__":
    main()
