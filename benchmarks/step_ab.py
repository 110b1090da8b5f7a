"""The pretraining step with the reconstruction targets of another checkout, alternated in one process.

    git worktree add /tmp/other 3904c18        # the channel-first targets (tried 2026-12-06, reverted)
    python benchmarks/step_ab.py --old-src /tmp/other/src

Builds the demo's model (protocol MODEL, 8x32x32, batch 16, full HI2M, fused AdamW), checks that the two
``forward_loss`` implementations give the same loss on one draw, then times blocks of 25 steps with this
checkout's targets ("new") and with the other checkout's ``objectives`` + ``HI2M.forward_loss`` ("old"),
alternating, and prints the medians and their ratio (the rest of the model is this checkout's in both).
Measured with this checkout = 3904c18 against 17c614b: 0.947-0.952 (5% off the step), the same loss to 6
digits, but a different demo (seed 0: 33.4 vs 18.6 UAR instead of 38.3 vs 18.6: the float-level change
moved the trajectory), so the change was reverted; see benchmarks/RESULTS.md.
"""
import argparse
import importlib.util
import statistics
import sys
import time

import torch
from pathlib import Path
import hi2m.model.mae as new_mae
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec); sys.modules[name] = m; spec.loader.exec_module(m); return m
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--old-src", type=Path, required=True, help="the other checkout's src folder")
parser.add_argument("--rounds", type=int, default=8)
args = parser.parse_args()
old_obj = load("old_objectives", args.old_src / "hi2m/model/objectives.py")
old_mae = load("old_mae", args.old_src / "hi2m/model/mae.py")
from hi2m.study import protocol as P
from hi2m.train.optim import build_adamw
cfg = P.pretrain_config(P.HI2M_VARIANT, 0, P.Recipe(), Path("/tmp/x"))
torch.manual_seed(0)
model = new_mae.HI2M(cfg.model_config()).train()
opt = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95), fused=True)
x = torch.rand(16, 3, P.FRAMES, P.SIZE, P.SIZE)
new_fl = new_mae.HI2M.forward_loss
def old_fl(self, video, pred, mask):
    saved = new_mae.obj; new_mae.obj = old_obj
    try: return old_mae.HI2M.forward_loss(self, video, pred, mask)
    finally: new_mae.obj = saved
old_mae.obj = old_obj
def steps(n):
    t = time.perf_counter()
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        model(x, generator=g).loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t) / n * 1000
# check the two give close losses
model.eval()
new_mae.HI2M.forward_loss = new_fl; a = model(x, generator=torch.Generator().manual_seed(3)).loss.item()
new_mae.HI2M.forward_loss = old_fl; b = model(x, generator=torch.Generator().manual_seed(3)).loss.item()
print("loss new/old", a, b); model.train()
res = {"new": [], "old": []}
steps(20)
for r in range(args.rounds):
    for name, fl in (("new", new_fl), ("old", old_fl)):
        new_mae.HI2M.forward_loss = fl
        res[name].append(steps(25))
for k, v in res.items(): print(k, "median ms/step %.2f" % statistics.median(v), ["%.1f" % t for t in v])
print("new/old %.3f" % (statistics.median(res["new"]) / statistics.median(res["old"])))
