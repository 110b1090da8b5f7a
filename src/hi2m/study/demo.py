"""``hi2m demo``: does HI2M pretraining pay? One seed of the SynthFace study, through the training engine.

1. pretrain a small HI2M (HRD + HSM + dual target) on unlabelled talking-face clips (SynthFace's
   ``voxceleb2`` preset) rendered on the fly, never the same clip twice -- ``hi2m pretrain``'s engine;
2. fine-tune on ``budget`` labelled clips per class (default 300, where the 3-seed study finds the
   effect) from the pretrained encoder and from random initialisation -- ``hi2m finetune``'s engine --
   and, in the full demo, the same at 10 clips per class, where the study finds nothing yet; linear
   probes of the frozen features and a logistic regression on raw pixels beside them;
3. measure HRD (its importance mass on the expression regions against their area) and HSM (its weight
   against SynthFace's per-clip difficulty record) on held-out clips, with the saved model;
4. every stage leaves an ordinary run directory under ``--out`` (``config.yaml``, ``model/`` with its
   card, logs, ``metrics.json``) that ``hi2m evaluate``, ``visualize``, ``export`` and ``--resume``
   accept; the report, ``demo.json`` and figures go beside them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import numpy as np

from hi2m.analysis import importance
from hi2m.data.synthface.dataset import rendered_pool
from hi2m.io.weights import load_pretrained
from hi2m.labels import DFER_CLASSES
from hi2m.process import preserved
from hi2m.study import protocol as P
from hi2m.train.runner import finetune, pretrain
from hi2m.viz.figures import confusion_figure, hrd_figure
from hi2m.viz.plots import learning_curves_figure

# pretraining / fine-tuning steps, labelled clips per class, pool and test sizes; "tiny" is for the tests only.
# "pool": the unlabelled clips, rendered once (by every core) and read for pretrain_steps * batch / pool epochs
# -- the length curve of docs/results-synthface.md: 6,000 steps over 24,000 clips took the fine-tuned model from
# 24.9 to 43.1 UAR at 300 per class, where 1,500 steps over fresh clips stopped. Full scale pretrains those
# 96,000 clip views in 3,000 steps of 32 (3 seeds at 300 per class: gain +26.1 +- 5.8 UAR against +20.6 +- 1.2
# in 6,000 steps of 16, docs/results-synthface.md; 0.70-0.88x the time per clip, benchmarks/RESULTS.md).
# "few": a second, smaller budget fine-tuned for "few_steps" (the study finds little at 10 per class, so only
# the tiny scale keeps one, for the tests); "probe": labelled clips per class of the linear probes.
SCALES: dict[str, dict[str, Any]] = {
    "full": dict(pretrain_steps=3000, pretrain_batch=32, pool=24000, finetune_steps=1000, budget=300, few=None,
                 probe=10, test=350, held_out=64, batch=16),
    # quick: fine-tuning needs ~400 steps before its loss leaves ln 7 (measured: 300 steps left both models at
    # chance, 13.3 vs 13.3; 600 steps gave 22.9 vs 12.9, seed 0). Pretraining: the same 38,400 clip views as
    # 2,400 steps of 16, in 1,200 steps of 32 (synthface_study.py, 3 seeds at this scale: gain +16.2 +- 4.1 UAR,
    # every seed >= +12.4, against +12.2 +- 4.0 with one seed at +8.1; no slower; benchmarks/RESULTS.md)
    "quick": dict(pretrain_steps=1200, pretrain_batch=32, pool=9600, finetune_steps=600, budget=300, few=None,
                  probe=10, test=210, held_out=32, batch=16),
    "tiny": dict(pretrain_steps=4, pool=32, finetune_steps=4, budget=3, few=1, few_steps=4, probe=1, test=14,
                 held_out=4, batch=4),
}
STUDY_RESULTS = "docs/results-synthface.md"


class Progress(pl.Callback):
    """A progress line every ``every`` optimiser steps: the stage, the step and the logged ``column``."""

    def __init__(self, say: Callable[[str], None], stage: str, steps: int, column: str, label: str):
        self.say, self.stage, self.steps, self.column, self.label = say, stage, steps, column, label
        self.every = max(steps // 5, 1)
        self.window: list[float] = []
        self._last = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        value = trainer.callback_metrics.get(self.column)
        if value is not None and value is not self._last:  # a newly logged value (every log_every_n_steps)
            self.window.append(float(value))
            self._last = value
        step = trainer.global_step
        if step % self.every == 0 and self.window:
            self.say(f"{self.stage} step {step}/{self.steps}: {self.label} {np.mean(self.window):.4f}")
            self.window = []


def run_demo(out: str | Path = "runs/demo", quick: bool = False, seed: int = 0, workers: int | None = None,
             scale: str | None = None, budget: int | None = None) -> dict[str, Any]:
    """Run the demo; returns the measured numbers (also written to ``out/demo.json``). ``budget``:
    labelled clips per class of the main comparison (default 300); ``workers``: processes rendering the
    unlabelled pool (None: one per core; 0 or 1: this process). Leaves the process as it found it."""
    with preserved():
        return _run_demo(out, quick, seed, workers, scale, budget)


def _run_demo(out: str | Path, quick: bool, seed: int, workers: int | None, scale: str | None,
              budget: int | None) -> dict[str, Any]:
    import logging

    import torch


    for name in ("lightning.pytorch", "lightning.fabric"):  # the demo prints its own progress lines
        logging.getLogger(name).setLevel(logging.WARNING)

    scale = scale or ("quick" if quick else "full")
    s = dict(SCALES[scale])
    if budget is not None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1 labelled clip per class, got {budget}")
        s["budget"] = int(budget)
    budgets = [s["budget"]] + ([s["few"]] if s["few"] and s["few"] < s["budget"] else [])
    out = Path(out).absolute()  # relative to where the command starts; every path below derives from it
    if (out / "demo.json").exists():
        raise FileExistsError(f"{out} already holds a demo run; choose another --out or delete it")
    recipe = P.Recipe(pretrain_steps=s["pretrain_steps"], finetune_steps=s["finetune_steps"], batch=s["batch"],
                      pretrain_batch=s.get("pretrain_batch"), pretrain_lr=s.get("pretrain_lr", P.Recipe.pretrain_lr))
    pool_labelled = max(budgets) * P.NUM_CLASSES
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", flush=True)

    n_clips, pool = recipe.pretrain_steps * recipe.pre_batch, s["pool"]
    workers = max(1, os.cpu_count() or 1) if workers is None else max(1, workers)  # 0 and 1: in this process
    seconds: dict[str, float] = {}
    say(f"1/4 rendering {pool} unlabelled talking-face clips ({P.FRAMES}x{P.SIZE}x{P.SIZE}) in {workers} process(es)")
    t = time.perf_counter()
    pre_cfg = P.pretrain_config(P.HI2M_VARIANT, seed, recipe, out, "pretrain", pool=pool, prerender=workers)
    rendered_pool(P.stream_config(pre_cfg), pool, workers)  # kept: the pretraining run reads this very array
    seconds["render unlabelled pool"] = time.perf_counter() - t
    say(f"    pretraining HI2M (HRD + HSM + dual target) for {recipe.pretrain_steps} steps of {recipe.pre_batch}: "
        f"{n_clips} clip views, {n_clips / pool:g} epochs of the pool -> {out / 'pretrain'}")
    t = time.perf_counter()
    pretrained = pretrain(pre_cfg, extra_callbacks=[Progress(say, "pretraining", recipe.pretrain_steps,
                                                             "train/L_R", "reconstruction loss")])
    seconds["pretrain"] = time.perf_counter() - t
    model_dir = pretrained["model_dir"]
    model = load_pretrained(model_dir)

    steps = {b: recipe.finetune_steps if b == s["budget"] else s["few_steps"] for b in budgets}
    say("2/4 fine-tuning on " + " and ".join(f"{b} labelled clips per class ({steps[b]} steps)" for b in budgets) +
        ", from the pretrained encoder and from random init")
    t = time.perf_counter()
    train = P.render_clips(P.LABELLED, "train", pool_labelled, workers)  # kept: the fine-tuning runs read these
    test = P.render_clips(P.LABELLED, "test", s["test"], workers)
    seconds["render labelled pool and test split"] = time.perf_counter() - t
    t = time.perf_counter()
    finetuned: dict[int, dict[str, dict[str, Any]]] = {}
    for b in budgets:
        finetuned[b] = {}
        for name, init, slug in (("HI2M", model_dir, "pretrained"), ("random init", None, "random-init")):
            cfg = P.finetune_config(init, b, seed, replace(recipe, finetune_steps=steps[b]), out,
                                    f"finetune-{slug}-{b}", pool_labelled, s["test"])
            run = finetune(cfg, verbose=False, extra_callbacks=[
                Progress(lambda m, n=name, b=b: say(f"  {b}/class, {n}: {m}"), "fine-tuning", steps[b],
                         "train/loss", "training loss")])
            finetuned[b][name] = {**P.metrics_of(run["run_dir"]), "run_dir": str(run["run_dir"]),
                                  "curve": P.logged_curve(run["run_dir"], "train/loss")}
            say(f"  {b}/class, {name}: test UAR {finetuned[b][name]['uar']:.1f}, WAR {finetuned[b][name]['war']:.1f}")
    seconds["fine-tune (both inits, with their tests)"] = time.perf_counter() - t

    t = time.perf_counter()
    probe_budget = min(s["probe"], s["budget"])
    say(f"3/4 linear probes of frozen features at {probe_budget} clips per class; HRD and HSM on held-out clips")
    idx = P.budget_indices(train["label"], probe_budget)
    probes = {}
    state = model.state_dict()
    for name, st in (("HI2M", state), ("random init", None)):
        f_train = P.encoder_features(st, {"frames": train["frames"][idx]}, seed, recipe)
        f_test = P.encoder_features(st, test, seed, recipe)
        for feat in ("mean", "tokens"):
            probes[f"{name}, {feat}"] = P.linear_probe(f_train[feat], train["label"][idx], f_test[feat], test["label"])
    pixels_train = P.pixel_features({"frames": train["frames"][idx]})
    probes["raw pixels"] = P.linear_probe(pixels_train, train["label"][idx], P.pixel_features(test), test["label"])
    held_out = P.render_clips(P.UNLABELLED, "val", s["held_out"])
    wild = P.render_clips(P.WILD, "val", s["held_out"])
    meas = P.pretrain_measurements(model, held_out, wild)
    seconds["probes, HRD and HSM measurements"] = time.perf_counter() - t

    say("4/4 figures and report")
    t = time.perf_counter()
    pre_curve = P.logged_curve(pretrained["run_dir"], "train/L_R")
    figures = _figures(out, model, held_out, pre_curve, finetuned[s["budget"]])
    seconds["figures"] = time.perf_counter() - t
    pretraining = {"steps": recipe.pretrain_steps, "batch": recipe.pre_batch, "clip_views": n_clips, "pool": pool,
                   "epochs": n_clips / pool}
    report = format_demo(finetuned, steps, probes, meas, probe_budget, len(test["label"]), pretraining, seconds)
    say("done")
    print(report)
    results = {
        "budgets_per_class": budgets,
        "test_clips": len(test["label"]),
        "chance_uar": 100 / P.NUM_CLASSES,
        "finetune": {str(b): {k: {m: v[m] for m in ("uar", "war", "run_dir", "curve")} for k, v in runs.items()}
                     for b, runs in finetuned.items()},
        "finetune_steps": {str(b): n for b, n in steps.items()},
        "probe_budget_per_class": probe_budget,
        "probe": {k: {"uar": u, "war": w} for k, (u, w) in probes.items()},
        "pretraining": {**pretraining, "clips": n_clips, "run_dir": str(pretrained["run_dir"]),
                        "curve": pre_curve, **meas},
        "seconds": time.perf_counter() - t0,
        "stage_seconds": seconds,
        "figures": [str(f) for f in figures],
    }
    (out / "demo_report.txt").write_text(report + "\n")
    (out / "demo.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _figures(out: Path, model, held_out: dict[str, np.ndarray], pre_curve, finetuned: dict[str, dict]) -> list[Path]:
    import torch


    fig_dir = out / "figures"
    video = P.model_input(held_out["frames"][:1], model.cfg)  # (1, C, T, H, W)
    probs = importance(model, video)  # (1, N)
    with torch.no_grad():
        _, mask = model.draw_mask(video, torch.Generator().manual_seed(0))
    grid = model.cfg.grid
    frames = torch.from_numpy(held_out["frames"][0]).permute(3, 0, 1, 2).float() / 255  # (C, T, H, W)
    paths = [
        hrd_figure(frames, probs[0].view(grid), (~mask.bool_masked[0]).view(grid), fig_dir / "hrd_map.png",
                   region=torch.from_numpy(held_out["region"][0]), title="HRD importance on a held-out talking-face clip"),
        learning_curves_figure(pre_curve, {k: v["curve"] for k, v in finetuned.items()}, None,
                               fig_dir / "learning_curves.png", ylabel="training loss"),
    ]
    for name, res in finetuned.items():
        slug = "pretrained" if name == "HI2M" else "random_init"
        paths.append(confusion_figure(torch.tensor(res["confusion"]), DFER_CLASSES[:P.NUM_CLASSES],
                                      fig_dir / f"confusion_{slug}.png", f"{name}, fine-tuned"))
    return paths


def format_demo(finetuned: dict[int, dict[str, dict]], steps: dict[int, int], probes: dict[str, tuple[float, float]],
                meas: dict[str, float], probe_budget: int, n_test: int, pretraining: dict[str, Any],
                seconds: dict[str, float]) -> str:
    """The demo's report: how long it pretrained, fine-tuning at each budget measured in this run (both inits
    with one recipe), the probes, what HRD and HSM learned, and where the seconds went."""
    chance = 100 / P.NUM_CLASSES
    budgets = sorted(finetuned, reverse=True)
    head = "".join(f" {f'{b}/class UAR':>14} {'WAR':>6}" for b in budgets)
    p = pretraining
    lines = ["", f"Pretraining: {p['steps']} steps of {p['batch']} clips = {p['clip_views']} clip views of a pool of "
             f"{p['pool']} unlabelled clips ({p['epochs']:g} epochs)",
             "Fine-tuning: the same recipe from both inits (AdamW, layer decay, label smoothing, flips; last step tested)",
             f"SynthFace, test split of {n_test} clips (chance: UAR = WAR = {chance:.1f}%); every number below "
             "was measured in this run", f"{'':36}{head}", "-" * (36 + 22 * len(budgets))]
    for name in ("HI2M", "random init"):
        label = f"fine-tuned, {'HI2M-pretrained' if name == 'HI2M' else name}"
        lines.append(f"{label:36}" + "".join(f" {finetuned[b][name]['uar']:14.1f} {finetuned[b][name]['war']:6.1f}"
                                             for b in budgets))
    lines.append(f"{'(fine-tuning steps)':36}" + "".join(f" {steps[b]:>21}" for b in budgets))
    gains = ", ".join(f"{finetuned[b]['HI2M']['uar'] - finetuned[b]['random init']['uar']:+.1f} UAR points at "
                      f"{b} clips per class" for b in budgets)
    lines += [f"pretraining gain (fine-tuned, HI2M - random init): {gains}", "",
              f"linear probes at {probe_budget} clips per class{'':8} {'UAR':>6} {'WAR':>6}"]
    lines += [f"  {name:40} {u:6.1f} {w:6.1f}" for name, (u, w) in probes.items()]
    lines += [
        "(probe features: mean = mean-pooled tokens, the paper's protocol; tokens = all tokens concatenated;",
        " raw pixels = last frame and last-minus-first difference, no learning)",
        "",
        f"HRD: {100 * meas['region_mass']:.1f}% of the importance mass P lies on the expression regions, which "
        f"cover {100 * meas['region_area']:.1f}% of the clip ({meas['region_ratio']:.2f}x their share; uniform "
        "masking: 1x);",
        f"     Spearman(P, per-token reconstruction loss) = {meas['hrd_spearman']:.2f} on held-out clips",
        f"HSM: Spearman(sample weight, SynthFace difficulty record) = {meas['hsm_difficulty_spearman']:.2f} on "
        f"talking-face clips, {meas['hsm_difficulty_spearman_wild']:.2f} on in-the-wild clips",
        f"One seed; the 3-seed study with every budget (10, 30, 100, 300 clips per class) and the Table 2 / 9 "
        f"ablations: {STUDY_RESULTS} (benchmarks/synthface_study.py).",
        "",
        "seconds: " + ", ".join(f"{name} {sec:.0f}" for name, sec in seconds.items()),
    ]
    return "\n".join(lines)
