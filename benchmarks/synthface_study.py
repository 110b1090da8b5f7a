"""Does HI2M pretraining pay? A label-efficiency study on SynthFace (the paper's Table 3 idea, with its
Table 2 and Table 9 ablations), sized for 2 CPU cores. The protocol lives in ``hi2m.study.protocol`` (shared
with ``hi2m demo``); this script runs it over seeds, budgets and variants through the training engine (every
pretraining and fine-tuning run is an ``hi2m pretrain`` / ``hi2m finetune`` run directory under --runs) and
writes the table.

The paper's regime, scaled down: plenty of unlabelled face video (SynthFace's ``voxceleb2`` preset: each
pretraining run reads steps x batch distinct clips once), few labelled clips of the same kind (a fixed
pool with up to --budgets max clips per class; budgets are nested), a fixed test split. Geometry, model
and recipes: ``hi2m.study.protocol`` and docs/results-synthface.md.

Rows: random init and HI2M at every budget, fine-tuned and linearly probed (mean-pooled features, the
paper's protocol, and all tokens concatenated); the pretraining variants (baseline tube masking, +HRD,
+HSM, appearance / motion targets) probed at every budget and fine-tuned at the smallest; a logistic
regression on raw pixels (last frame + last-minus-first difference) as the no-learning reference.

    python benchmarks/synthface_study.py                 # 3 seeds; writes docs/results-synthface.md
    python benchmarks/synthface_study.py --quick         # a smoke run in a few minutes
Finished pieces are cached (JSON lines under --cache): an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hi2m.study import protocol as S

NUM_CLASSES = S.NUM_CLASSES
VARIANTS = S.VARIANTS


def cached_clips(cache: Path, name: str, make) -> dict[str, np.ndarray]:
    """``make()`` once, then from ``cache/name.npz`` (plain arrays, no pickle)."""
    path = cache / f"{name}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    out = make()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def train_uar(run_dir: Path, frames: np.ndarray, labels: np.ndarray) -> float:
    """UAR of a fine-tuned run's saved classifier on the clips it was trained on (is it fitting them?)."""
    import torch

    from hi2m.io.weights import load_pretrained

    model = load_pretrained(run_dir / "model")
    with torch.no_grad():
        pred = np.concatenate([model(S.model_input(frames[i:i + 64], model.cfg)).argmax(-1).numpy()
                               for i in range(0, len(frames), 64)])
    return S.uar_war(pred, labels)[0]


def fmt(values: list[float], digits: int = 1) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} +- {sd:.{digits}f}"


def report(rows: list[dict], args, recipe: S.Recipe) -> str:
    def pick(**kw):
        return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

    def cell(kind: str, variant: str, budget: int, key: str = "uar") -> str:
        return fmt([r[key] for r in pick(kind=kind, variant=variant, budget=budget)])

    chance = 100 / NUM_CLASSES
    seeds = sorted({r["seed"] for r in rows})
    b0 = min(args.budgets)
    out = ["# SynthFace study: does HI2M pretraining pay?", "",
           f"`python benchmarks/synthface_study.py {' '.join(sys.argv[1:])}`".rstrip(), "",
           f"Seeds {seeds}; mean +- std over seeds; UAR in %, chance {chance:.1f}. Pretraining: "
           f"{recipe.pretrain_steps} steps x batch {recipe.pre_batch} = {recipe.pretrain_steps * recipe.pre_batch} clip views"
           + (f" of a pool of {args.pool} unlabelled `voxceleb2`-preset clips "
              f"({recipe.pretrain_steps * recipe.pre_batch / args.pool:g} epochs; `hi2m demo`'s recipe)" if args.pool else
              " of as many distinct unlabelled `voxceleb2`-preset clips") + " per run. Labelled: the same preset, "
           f"{S.FRAMES}x{S.SIZE}x{S.SIZE}, budgets {args.budgets} clips per class from one fixed pool, test split of "
           f"{args.test_clips} clips. Fine-tuning: {recipe.finetune_steps} steps at every budget, last step "
           "evaluated (no model selection).", ""]
    if len(seeds) < 3:
        out += [f"**Partial result: {len(seeds)} seed(s) of the 3 the study asks for** (rerun the same command: "
                "finished pieces are cached and skipped).", ""]
    out += ["## Label efficiency (Table 3 idea): test UAR", "",
            "| clips per class | random init, fine-tuned | HI2M, fine-tuned | HI2M - random (fine-tuned) | "
            "random init, probe (mean / tokens) | HI2M, probe (mean / tokens) | raw pixels, logistic regression |",
            "|---|---|---|---|---|---|---|"]
    for b in args.budgets:
        gains = []
        for sd in seeds:
            r = pick(kind="ft", variant="random init", budget=b, seed=sd)
            h = pick(kind="ft", variant="HI2M", budget=b, seed=sd)
            if r and h:
                gains.append(h[0]["uar"] - r[0]["uar"])
        out.append(f"| {b} | {cell('ft', 'random init', b)} | {cell('ft', 'HI2M', b)} | {fmt(gains)} | "
                   f"{cell('probe', 'random init', b)} / {cell('probe-tokens', 'random init', b)} | "
                   f"{cell('probe', 'HI2M', b)} / {cell('probe-tokens', 'HI2M', b)} | {cell('probe', 'raw pixels', b)} |")
    out += ["", "WAR (fine-tuned, random init / HI2M): " + "; ".join(
        f"{b}/class {cell('ft', 'random init', b, 'war')} / {cell('ft', 'HI2M', b, 'war')}" for b in args.budgets),
        "", "Train UAR of the final model (fine-tuned, random init / HI2M): " + "; ".join(
        f"{b}/class {cell('ft', 'random init', b, 'train_uar')} / {cell('ft', 'HI2M', b, 'train_uar')}"
        for b in args.budgets)]
    out += ["", f"## Table 2 and Table 9 on SynthFace: UAR (fine-tuned at {b0} clips per class; probes of "
            "mean-pooled features at every budget)", "",
            f"| pretraining | fine-tuned, {b0}/class | " + " | ".join(f"probe {b}/class" for b in args.budgets) +
            " | HRD region mass / area | Spearman(P, token loss) | Spearman(HSM w, difficulty): "
            "voxceleb2-like / dfew-like | held-out rec. loss |",
            "|---|---|" + "---|" * len(args.budgets) + "---|---|---|---|"]
    for variant in VARIANTS:
        pre = pick(kind="pretrain", variant=variant)
        if not pre:
            continue
        m = [r["meas"] for r in pre]
        out.append(f"| {variant} | {cell('ft', variant, b0)} | " +
                   " | ".join(cell("probe", variant, b) for b in args.budgets) + " | "
                   f"{fmt([x.get('region_ratio', math.nan) for x in m], 2)} | "
                   f"{fmt([x.get('hrd_spearman', math.nan) for x in m], 2)} | "
                   f"{fmt([x['hsm_difficulty_spearman'] for x in m], 2)} / "
                   f"{fmt([x.get('hsm_difficulty_spearman_wild', math.nan) for x in m], 2)} | "
                   f"{fmt([x['rec'] for x in m], 4)} |")
    longer = sorted({r["variant"] for r in rows if re.fullmatch(r"HI2M, \d+ steps", r["variant"])},
                    key=lambda v: int(v.split()[1]))
    if longer:
        bmax = max(args.budgets)
        first = min(r["seed"] for r in rows if r["variant"] in longer)  # the seed the length curve ran on
        out += ["", f"## Longer pretraining (HI2M, seed {first}; the unlabelled pool read for several epochs)", "",
                f"| pretraining steps | fine-tuned {b0}/class | fine-tuned {bmax}/class | " +
                " | ".join(f"probe {b}/class (mean / tokens)" for b in args.budgets) +
                " | HRD region mass / area | held-out rec. loss |", "|---|---|---|" + "---|" * len(args.budgets) + "---|---|"]
        for name, steps in [("HI2M", recipe.pretrain_steps)] + [(v, int(v.split()[1])) for v in longer]:
            def one(kind, b, name=name):
                rs = pick(kind=kind, variant=name, budget=b, seed=first)
                return f"{rs[0]['uar']:.1f}" if rs else "-"
            pre = pick(kind="pretrain", variant=name, seed=first)
            m = pre[0]["meas"] if pre else {}
            out.append(f"| {steps} | {one('ft', b0)} | {one('ft', bmax)} | " +
                       " | ".join(f"{one('probe', b)} / {one('probe-tokens', b)}" for b in args.budgets) +
                       f" | {m.get('region_ratio', math.nan):.2f} | {m.get('rec', math.nan):.4f} |")
    out += ["", "## Learning curves", "", "Pretraining: mean Eq. 1 loss of the training batches by step, HI2M "
            "(seed by seed):", ""]
    for r in pick(kind="pretrain", variant="HI2M"):
        out.append(f"- seed {r['seed']}: " + ", ".join(f"{s}: {v:.3f}" for s, v in r["meas"]["curve"]))
    for b in (b0, max(args.budgets)):
        out += ["", f"Fine-tuning at {b} clips per class: training loss by step (test UAR only at the end):", ""]
        for variant in ("random init", "HI2M"):
            for r in pick(kind="ft", variant=variant, budget=b):
                if len(r["curve"]) > 1:
                    out.append(f"- {variant}, seed {r['seed']}: " + ", ".join(f"{s}: {u:.3f}" for s, u in r["curve"][::4]) +
                               f" (test UAR {r['uar']:.1f}, train UAR {r['train_uar']:.1f})")
    return "\n".join(out) + "\n"


MARKER = "<!-- everything below this line is written by hand and kept when the tables above are regenerated -->"


def write_report(path: str, text: str) -> None:
    """Write the generated tables, keeping the hand-written reading of them (after MARKER) if any."""
    out = Path(path)
    kept = ""
    if out.is_file() and MARKER in out.read_text():
        kept = out.read_text().split(MARKER, 1)[1]
    out.write_text(text + "\n" + MARKER + kept if kept else text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budgets", type=int, nargs="+", default=[10, 30, 100, 300], help="labelled clips per class")
    ap.add_argument("--pretrain-steps", type=int, default=S.Recipe.pretrain_steps)
    ap.add_argument("--finetune-steps", type=int, default=S.Recipe.finetune_steps)
    ap.add_argument("--batch", type=int, default=S.Recipe.batch)
    ap.add_argument("--pretrain-batch", type=int, default=None, help="clips per pretraining step (default: --batch)")
    ap.add_argument("--pretrain-lr", type=float, default=S.Recipe.pretrain_lr)
    ap.add_argument("--test-clips", type=int, default=350)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--length-curve", type=int, nargs="*", default=[], metavar="STEPS",
                    help="also pretrain HI2M (first seed) for these step counts, reading the unlabelled pool for as "
                         "many epochs as needed, and probe / fine-tune each (does longer pretraining change it?)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (two studies of disjoint seeds can "
                    "share a 2-core machine with 1 each)")
    ap.add_argument("--cache", default="runs/bench-cache")
    ap.add_argument("--runs", default="runs/study", help="where the engine's run directories go")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers rendering the unlabelled stream")
    ap.add_argument("--pool", type=int, default=None,
                    help="unlabelled clips, rendered once by every core and read for pretrain-steps x batch / pool "
                         "epochs (hi2m demo's recipe: --pretrain-steps 3000 --pretrain-batch 32 --pool 24000); "
                         "default: pretrain-steps x batch clips rendered on the fly in --workers and read once")
    ap.add_argument("--out", default="docs/results-synthface.md")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, short schedules, 2 variants")
    ap.add_argument("--report-only", action="store_true", help="compute nothing: the report of what is cached")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.budgets, args.pretrain_steps, args.finetune_steps = [0], [10, 30], 150, 100
        args.variants, args.test_clips, args.out = ["HI2M", "baseline (tube)"], 70, None
    import torch

    torch.set_num_threads(args.threads)
    recipe = S.Recipe(pretrain_steps=args.pretrain_steps, finetune_steps=args.finetune_steps, batch=args.batch,
                      pretrain_batch=args.pretrain_batch, pretrain_lr=args.pretrain_lr)
    cache = Path(args.cache)
    tag = f"engine-{args.pretrain_steps}-{args.finetune_steps}-{args.batch}-{args.test_clips}"
    if args.pool:
        tag += f"-pool{args.pool}"
    if args.pretrain_batch or args.pretrain_lr != S.Recipe.pretrain_lr:
        tag += f"-pb{recipe.pre_batch}-plr{args.pretrain_lr:g}"
    results = cache / f"synthface_study-{tag}.jsonl"
    rows = [json.loads(x) for x in results.read_text().splitlines()] if results.is_file() else []
    have = {(r["kind"], r["variant"], r.get("budget"), r["seed"]) for r in rows}

    def record(row: dict) -> None:
        rows.append(row)
        have.add((row["kind"], row["variant"], row.get("budget"), row["seed"]))
        results.parent.mkdir(parents=True, exist_ok=True)
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")

    if args.report_only:
        args.seeds = sorted({r["seed"] for r in rows if r["seed"] in args.seeds})
        text = report([r for r in rows if r["seed"] in args.seeds], args, recipe)
        print(text)
        if args.out:
            write_report(args.out, text)
        return
    t0 = time.perf_counter()
    say = lambda msg: print(f"[{time.perf_counter() - t0:7.0f}s] {msg}", flush=True)  # noqa: E731
    key = json.dumps([S.LABELLED, S.UNLABELLED, S.WILD], sort_keys=True)
    import zlib

    key = f"{zlib.crc32(key.encode()):08x}"
    pool_size = max(args.budgets) * NUM_CLASSES
    train = cached_clips(cache, f"study-train-{pool_size}-{key}", lambda: S.render_clips(S.LABELLED, "train", pool_size))
    test = cached_clips(cache, f"study-test-{args.test_clips}-{key}",
                        lambda: S.render_clips(S.LABELLED, "test", args.test_clips))
    held_out = cached_clips(cache, f"study-val-64-{key}", lambda: S.render_clips(S.UNLABELLED, "val", 64))
    wild = cached_clips(cache, f"study-wild-64-{key}", lambda: S.render_clips(S.WILD, "val", 64))
    n_stream = args.pool or recipe.pretrain_steps * recipe.pre_batch
    prerender = (os.cpu_count() or 1) if args.pool else 0
    runs = Path(args.runs).absolute()
    import logging

    from hi2m.io.weights import load_pretrained
    from hi2m.train.runner import finetune, pretrain

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    say(f"labelled clips ready: pool {len(train['label'])}, test {len(test['label'])}")
    if not all(("probe", "raw pixels", b, sd) in have for b in args.budgets for sd in args.seeds):
        px_train, px_test = S.pixel_features(train), S.pixel_features(test)
        for b in args.budgets:
            idx = S.budget_indices(train["label"], b)
            uar, war = S.linear_probe(px_train[idx], train["label"][idx], px_test, test["label"])
            for sd in args.seeds:  # deterministic: the same for every seed
                if ("probe", "raw pixels", b, sd) not in have:
                    record({"kind": "probe", "variant": "raw pixels", "budget": b, "seed": sd, "uar": uar, "war": war})
            say(f"raw-pixel logistic regression {b}/class: UAR {uar:.1f}")

    def slug(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

    def run_probes_and_finetunes(variant: str, model_dir, seed: int, ft_budgets) -> None:
        state = load_pretrained(model_dir).state_dict() if model_dir else None
        f_train, f_test = S.encoder_features(state, train, seed, recipe), S.encoder_features(state, test, seed, recipe)
        for b in args.budgets:
            idx = S.budget_indices(train["label"], b)
            for kind, feat in (("probe", "mean"), ("probe-tokens", "tokens")):
                if (kind, variant, b, seed) not in have:
                    uar, war = S.linear_probe(f_train[feat][idx], train["label"][idx], f_test[feat], test["label"],
                                              recipe.probe_c)
                    record({"kind": kind, "variant": variant, "budget": b, "seed": seed, "uar": uar, "war": war})
                    say(f"  {kind} {variant} {b}/class: UAR {uar:.1f} WAR {war:.1f}")
        for b in ft_budgets:
            if ("ft", variant, b, seed) not in have:
                idx = S.budget_indices(train["label"], b)
                cfg = S.finetune_config(model_dir, b, seed, recipe, runs, f"seed{seed}/ft-{slug(variant)}-{b}",
                                        pool_size, args.test_clips)
                run_dir = finetune(cfg, verbose=False)["run_dir"]
                r = S.metrics_of(run_dir)
                r = {"uar": r["uar"], "war": r["war"], "curve": S.logged_curve(run_dir, "train/loss"),
                     "train_uar": train_uar(run_dir, train["frames"][idx], train["label"][idx]),
                     "run_dir": str(run_dir)}
                record({"kind": "ft", "variant": variant, "budget": b, "seed": seed, **r})
                say(f"  fine-tune {variant} {b}/class: UAR {r['uar']:.1f} WAR {r['war']:.1f} "
                    f"(train UAR {r['train_uar']:.1f})")

    def pretrain_variant(name: str, variant: dict, seed: int, steps: int):
        longer = dataclasses.replace(recipe, pretrain_steps=steps)
        cfg = S.pretrain_config(variant, seed, longer, runs, f"seed{seed}/pre-{slug(name)}", args.workers,
                                pool=n_stream, prerender=prerender)
        model_dir = Path(cfg.run.dir) / cfg.run.name / "model"
        if ("pretrain", name, None, seed) in have and (model_dir / "model.safetensors").is_file():
            return model_dir
        t = time.perf_counter()
        threads = torch.get_num_threads()
        if not prerender:
            torch.set_num_threads(max(1, threads - args.workers))  # the rendering workers need cores of their own
        try:
            out = pretrain(cfg)
        finally:
            torch.set_num_threads(threads)
        meas = {**S.pretrain_measurements(load_pretrained(out["model_dir"]), held_out, wild),
                "curve": S.logged_curve(out["run_dir"], "train/L_R"), "pretrain_s": time.perf_counter() - t}
        if ("pretrain", name, None, seed) not in have:
            record({"kind": "pretrain", "variant": name, "budget": None, "seed": seed, "meas": meas})
        say(f"  {json.dumps({k: round(v, 4) for k, v in meas.items() if k != 'curve'})}")
        return out["model_dir"]

    for seed in args.seeds:
        for variant in ["random init"] + args.variants:
            ft_budgets = args.budgets if variant in ("random init", "HI2M") else [min(args.budgets)]
            needed = {("probe", variant, b, seed) for b in args.budgets}
            needed |= {("probe-tokens", variant, b, seed) for b in args.budgets}
            needed |= {("ft", variant, b, seed) for b in ft_budgets}
            if variant != "random init":
                needed.add(("pretrain", variant, None, seed))
            if needed <= have:
                continue
            model_dir = None
            if variant != "random init":
                say(f"seed {seed}: pretraining {variant} ({recipe.pretrain_steps} steps)")
                model_dir = pretrain_variant(variant, VARIANTS[variant], seed, recipe.pretrain_steps)
            run_probes_and_finetunes(variant, model_dir, seed, ft_budgets)
    for steps in args.length_curve:
        name, seed = f"HI2M, {steps} steps", args.seeds[0]
        needed = {("probe", name, b, seed) for b in args.budgets} | {("probe-tokens", name, b, seed) for b in args.budgets}
        needed |= {("ft", name, b, seed) for b in (min(args.budgets), max(args.budgets))} | {("pretrain", name, None, seed)}
        if needed <= have:
            continue
        say(f"length curve: pretraining HI2M for {steps} steps ({steps / recipe.pretrain_steps:.1f} epochs "
            f"over the {n_stream} unlabelled clips)")
        model_dir = pretrain_variant(name, VARIANTS["HI2M"], seed, steps)
        run_probes_and_finetunes(name, model_dir, seed, (min(args.budgets), max(args.budgets)))
    text = report([r for r in rows if r["seed"] in args.seeds], args, recipe)
    print("\n" + text)
    if args.out:
        write_report(args.out, text)
        say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
