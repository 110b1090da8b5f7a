"""The demo's claim over seeds: ``hi2m demo``'s protocol (``hi2m.study.demo.run_demo``) run once per seed,
and the mean +- std of what its report shows (fine-tuned HI2M against random init at 300 clips per class,
the probes, HRD and HSM), with each seed's row and its seconds.

Each seed changes the model's init, masks and data order and the unlabelled pool (stream seed 1000 + seed);
the labelled pool and test split are the same for every seed (as in the study). Both inits are fine-tuned
with one recipe.

    python benchmarks/demo_seeds.py [--seeds 0 1 2] [--scale full] [--out runs/demo-seeds]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from hi2m.study.demo import run_demo


def fmt(values: list[float], digits: int = 1) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale", choices=["full", "quick"], default="full")
    parser.add_argument("--out", type=Path, default=Path("runs/demo-seeds"))
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        folder = args.out / f"{args.scale}-seed{seed}"
        done = folder / "demo.json"
        result = json.loads(done.read_text()) if done.is_file() else run_demo(folder, seed=seed, scale=args.scale)
        budget = str(result["budgets_per_class"][0])
        ft, pre = result["finetune"][budget], result["pretraining"]
        rows.append({"seed": seed, "hi2m": ft["HI2M"]["uar"], "random": ft["random init"]["uar"],
                     "gain": ft["HI2M"]["uar"] - ft["random init"]["uar"],
                     "probe_mean": result["probe"]["HI2M, mean"]["uar"],
                     "probe_mean_random": result["probe"]["random init, mean"]["uar"],
                     "probe_tokens": result["probe"]["HI2M, tokens"]["uar"], "pixels": result["probe"]["raw pixels"]["uar"],
                     "hrd": pre["region_ratio"], "hsm_wild": pre["hsm_difficulty_spearman_wild"],
                     "seconds": result["seconds"], "steps": pre["steps"], "budget": budget})
    first = rows[0]
    print(f"hi2m demo --scale {args.scale}: {first['steps']} pretraining steps; fine-tuned at {first['budget']} clips per "
          f"class; seeds {args.seeds}; UAR in % (chance 14.3)\n")
    cols = [("seed", "seed"), ("HI2M, fine-tuned", "hi2m"), ("random init, fine-tuned", "random"),
            ("gain", "gain"), ("probe mean, HI2M / random", None), ("probe tokens, HI2M", "probe_tokens"),
            ("raw pixels", "pixels"), ("HRD mass / area", "hrd"), ("HSM Spearman, wild", "hsm_wild"),
            ("seconds", "seconds")]
    print("| " + " | ".join(c for c, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [str(r["seed"]), f"{r['hi2m']:.1f}", f"{r['random']:.1f}", f"{r['gain']:+.1f}",
                 f"{r['probe_mean']:.1f} / {r['probe_mean_random']:.1f}", f"{r['probe_tokens']:.1f}", f"{r['pixels']:.1f}",
                 f"{r['hrd']:.2f}", f"{r['hsm_wild']:.2f}", f"{r['seconds']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    keys = ["hi2m", "random", "gain", None, "probe_tokens", "pixels", "hrd", "hsm_wild", "seconds"]
    summary = ["mean +- std"]
    for k in keys:
        if k is None:
            summary.append(f"{fmt([r['probe_mean'] for r in rows])} / {fmt([r['probe_mean_random'] for r in rows])}")
        else:
            summary.append(fmt([r[k] for r in rows], 2 if k in ("hrd", "hsm_wild") else 0 if k == "seconds" else 1))
    print("| " + " | ".join(summary) + " |")


if __name__ == "__main__":
    main()
