"""Why the SynthFace study's numbers moved when it moved to the engine: the fine-tuning sampler.

The study's old plain loop (``hi2m.train.study`` at commit 252a633, before the move) drew every fine-tuning
batch *with replacement* from the labelled budget; the engine reads the budget in shuffled epochs, each clip
once per epoch. This runs the old loop twice on the same seed -- as it was, and with only the batch draw
replaced by epoch permutations -- for random init and (``--pretrained``) for an encoder the old loop
pretrains, at 300 labelled clips per class, and prints the table. The old code is read from git history, so
the script needs a git checkout.

    python benchmarks/sampler_check.py --seeds 0 1            # random init (about 2 min a row)
    python benchmarks/sampler_check.py --seeds 0 --pretrained  # also the pretrained encoder (+4 min)
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

OLD = "252a633"  # the last commit with the plain loop


def old_study():
    """The old ``hi2m.train.study`` module, loaded from git history."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", f"{OLD}:src/hi2m/train/study.py"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_study.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_study", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_study"] = module
    spec.loader.exec_module(module)
    return module


class EpochDraws:
    """Stands in for the old loop's ``numpy.random.Generator``: ``integers(0, n, k)`` returns the next k items
    of shuffled epochs over range(n) (every item once per epoch) instead of k draws with replacement."""

    def __init__(self, seed, make_rng):
        self.rng, self.queue = make_rng(seed), []

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        out = []
        while len(out) < size:
            if not self.queue:
                self.queue = list(self.rng.permutation(high))
            out.append(self.queue.pop())
        return np.asarray(out)

    def random(self, size: int) -> np.ndarray:
        return self.rng.random(size)


def finetune(S, state, train, test, idx, seed: int, epochs: bool) -> tuple[float, float]:
    real = np.random.default_rng
    if epochs:
        S.np.random.default_rng = lambda s=None: EpochDraws(s, real)
    try:
        _, r = S.finetune_clips(state, train, test, idx, seed, S.Recipe())
    finally:
        S.np.random.default_rng = real
    return r["uar"], r["train_uar"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--pretrained", action="store_true", help="also pretrain with the old loop and fine-tune that")
    args = ap.parse_args()
    torch.set_num_threads(2)
    S = old_study()
    train = S.render_clips(S.LABELLED, "train", args.budget * S.NUM_CLASSES)
    test = S.render_clips(S.LABELLED, "test", 350)
    idx = S.budget_indices(train["label"], args.budget)
    rows = []
    for seed in args.seeds:
        inits = [("random init", None)]
        if args.pretrained:
            model, _ = S.pretrain_stream(S.HI2M_VARIANT, seed, S.Recipe(), clips=S.stream_clips(24000))
            inits.append(("HI2M (old-loop pretraining)", {k: v.detach().clone() for k, v in model.state_dict().items()}))
        for name, state in inits:
            with_replacement = finetune(S, state, train, test, idx, seed, epochs=False)
            in_epochs = finetune(S, state, train, test, idx, seed, epochs=True)
            rows.append((seed, name, with_replacement, in_epochs))
            print(f"seed {seed} {name}: with replacement {with_replacement[0]:.1f}, epochs {in_epochs[0]:.1f}", flush=True)
    print(f"\nold loop ({OLD}), {args.budget} clips per class, 1000 steps, test UAR (train UAR)\n")
    print("| seed | encoder | batches drawn with replacement (the old loop) | shuffled epochs (the engine's sampler) |")
    print("|---|---|---|---|")
    for seed, name, (u1, t1), (u2, t2) in rows:
        print(f"| {seed} | {name} | {u1:.1f} ({t1:.1f}) | {u2:.1f} ({t2:.1f}) |")


if __name__ == "__main__":
    main()
