"""Does HI2M pretraining pay? A label-efficiency study on SynthFace (the paper's Table 3 idea, with its
Table 2 and Table 9 ablations), sized for 2 CPU cores.

The paper's regime, scaled down: plenty of unlabelled talking-face video (SynthFace's ``voxceleb2``
preset, an endless stream rendered on the fly: pretraining never sees a clip twice), few labelled
in-the-wild clips (the ``dfew`` preset, full nuisance; fixed train pool of 100 clips per class, fixed
test split of 350 clips).

Geometry and why: 8 frames of 32x32, patch 8, tubelet 2 -> 4 x 4 x 4 = 64 tokens. At 32x32 a logistic
regression on raw pixels still reaches ~44% UAR (docs/synthface-today.md), so the expression survives;
patch 8 makes each expression region (eyes, brows, mouth) span one or more tokens of its own; 64 tokens
let a 2-core CPU run thousands of pretraining steps. rho = 0.75 (16 visible tokens; the paper's 0.9 would
leave 6). Encoder 128 wide x 4 deep (4 heads), decoder 64 x 2, HRD policy 32 wide.

Recipes, the same for every row: pretraining AdamW (0.9, 0.95) lr 1.5e-3, wd 0.05, batch 16, warmup then
cosine, HRD with the shipped defaults. Fine-tuning AdamW (0.9, 0.999) lr 1e-3, wd 0.05, layer decay 0.75,
drop path 0.1, label smoothing 0.1, horizontal flips, batch 16, a fixed number of steps whatever the budget,
last step evaluated (no model selection, so the test split never chooses anything). Linear probe: logistic
regression (standardised mean-pooled features of the frozen encoder, C = 1) on the same clips.

    python benchmarks/synthface_study.py                 # 3 seeds; writes docs/results-synthface.md
    python benchmarks/synthface_study.py --quick         # a smoke run in a few minutes
Finished pieces are cached (JSON lines under --cache): an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hrd_dynamics import clip_pool  # noqa: E402

FRAMES, SIZE = 8, 32
MODEL = dict(num_frames=FRAMES, image_size=SIZE, patch_size=8, tubelet_size=2, embed_dim=128, depth=4,
             num_heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=2, hrd_dim=32, hrd_heads=2,
             mask_ratio=0.75)
PRETRAIN_DATA = dict(preset="voxceleb2", num_frames=FRAMES, size=SIZE)
LABELLED_DATA = dict(preset="dfew", num_frames=FRAMES, size=SIZE)
HI2M = dict(mask_type="hrd", hsm=True, target="dual")
VARIANTS = {  # pretraining variants (Table 2 rows, Table 9 targets)
    "HI2M": HI2M,
    "baseline (tube)": dict(mask_type="tube", hsm=False, target="dual"),
    "+HRD": dict(mask_type="hrd", hsm=False, target="dual"),
    "+HSM": dict(mask_type="tube", hsm=True, target="dual"),
    "appearance target": dict(HI2M, target="appearance"),
    "motion target": dict(HI2M, target="motion"),
}
NUM_CLASSES = 7


def normaliser():
    import torch

    from hi2m.model.config import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return lambda video_uint8: (torch.as_tensor(video_uint8).float() / 255 - mean) / std  # (B, C, T, H, W)


class StreamTransform:
    """uint8 (T, H, W, 3) -> normalised float (C, T, H, W); frames are already the model's size."""

    def __call__(self, frames, generator=None):
        return normaliser()(frames.transpose(3, 0, 1, 2)[None])[0]


# ---- pretraining -------------------------------------------------------------------------------------

def pretrain(variant: str, seed: int, steps: int, batch: int, workers: int, probe_clips: dict,
             wild_clips: dict) -> dict:
    """Pretrain one variant on the unlabelled stream; returns its encoder weights and its HRD / HSM
    measurements on held-out clips like the pretraining data (``probe_clips``) and HSM's also on
    in-the-wild clips (``wild_clips``, the ``dfew`` preset, where the difficulty record varies most)."""
    import torch
    from torch.utils.data import DataLoader

    from hi2m.analysis import region_share, spearman_rows, uniform_token_losses
    from hi2m.data.synthface import SynthFaceStream, synthface_config
    from hi2m.model import HI2M, HI2MConfig
    from hi2m.objectives import hsm_weights
    from hi2m.train.callbacks import EpochAwareDataset
    from hi2m.train.optim import GroupRule, WarmupCosine, build_adamw

    torch.manual_seed(seed)
    cfg = HI2MConfig.from_name("micro", **MODEL, **VARIANTS[variant])
    model = HI2M(cfg)
    opt = build_adamw(model, lr=1.5e-3, weight_decay=0.05, betas=(0.9, 0.95),
                      rules=(GroupRule("masker.policy.", "hrd", lr_scale=1.0),))
    sched = WarmupCosine(total_steps=steps, warmup_steps=max(steps // 20, 1), base_lr=1.5e-3, min_lr=1e-5)
    stream = SynthFaceStream(synthface_config(seed=1000 + seed, **PRETRAIN_DATA), clips_per_epoch=steps * batch,
                             transform=StreamTransform())
    loader = DataLoader(EpochAwareDataset(stream), batch_size=batch, num_workers=workers, shuffle=False,
                        persistent_workers=False)
    gen = torch.Generator().manual_seed(seed)
    curve, t0 = [], time.perf_counter()
    for step, item in enumerate(loader):
        sched.apply(opt, step)
        out = model(item["video"], generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        if step % max(steps // 20, 1) == 0 or step == steps - 1:
            curve.append((step, float(out.sample_loss.mean())))
    seconds = time.perf_counter() - t0

    model.eval()
    norm = normaliser()
    video = norm(probe_clips["video"])  # (B, C, T, H, W) held-out stream-like clips
    egen = torch.Generator().manual_seed(99)
    def hsm_vs_difficulty(clips: dict) -> float:
        """Spearman(HSM weight, difficulty_score) over one batch of held-out clips."""
        with torch.no_grad():
            w = hsm_weights(model(norm(clips["video"]), generator=egen).sample_loss)  # (B,)
        return float(spearman_rows(w[None].double(), torch.from_numpy(clips["difficulty"])[None]))

    with torch.no_grad():
        tok, _ = uniform_token_losses(model, video, 8, egen)  # (B, N)
    meas = {"rec": float(tok.mean()), "pretrain_s": seconds, "curve": curve,
            "hsm_difficulty_spearman": hsm_vs_difficulty(probe_clips),
            "hsm_difficulty_spearman_wild": hsm_vs_difficulty({k: v[:64] for k, v in wild_clips.items()})}
    if cfg.mask_type == "hrd":
        from hi2m.analysis import importance

        p = importance(model, video)  # (B, N)
        h, a = region_share(model, video, torch.from_numpy(probe_clips["region"]))
        meas.update(region_ratio=float((h / a).mean()),
                    hrd_spearman=float(spearman_rows(p.double(), tok.double()).mean()))
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()}, "meas": meas}


# ---- fine-tuning and probing -----------------------------------------------------------------------

def uar_war(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    recalls = [float((pred[target == c] == c).mean()) for c in range(NUM_CLASSES) if (target == c).any()]
    return 100 * float(np.mean(recalls)), 100 * float((pred == target).mean())


def budget_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` clips of every class (nested: a larger budget contains the smaller)."""
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)]))


def finetune(state: dict | None, train: dict, test: dict, idx: np.ndarray, seed: int, steps: int,
             batch: int = 16, eval_every: int = 0) -> dict:
    import torch

    from hi2m.model import HI2MConfig
    from hi2m.model.classifier import VideoClassifier
    from hi2m.train.mixup import label_smoothing_cross_entropy
    from hi2m.train.optim import WarmupCosine, build_adamw

    torch.manual_seed(seed)
    cfg = HI2MConfig.from_name("micro", **MODEL, drop_path=0.1)
    model = VideoClassifier(cfg, NUM_CLASSES)
    if state is not None:
        model.load_encoder(state)
    opt = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999), layer_decay=0.75)
    sched = WarmupCosine(total_steps=steps, warmup_steps=steps // 10, base_lr=1e-3, min_lr=1e-6)
    norm = normaliser()
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(train["label"])
    curve = []
    for step in range(steps):
        model.train()
        pick = idx[rng.integers(0, len(idx), batch)]
        video = norm(train["video"][pick])
        flip = torch.from_numpy(rng.random(batch) < 0.5)
        video = torch.where(flip.view(-1, 1, 1, 1, 1), video.flip(-1), video)
        sched.apply(opt, step)
        loss = label_smoothing_cross_entropy(model(video), labels[pick], 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            curve.append((step + 1, evaluate(model, test)[0]))
    uar, war = evaluate(model, test)
    train_uar, _ = evaluate(model, {k: v[idx] for k, v in train.items()})
    return {"uar": uar, "war": war, "train_uar": train_uar, "curve": curve + [(steps, uar)]}


def evaluate(model, data: dict) -> tuple[float, float]:
    import torch

    norm = normaliser()
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(data["label"]), 64):
            preds.append(model(norm(data["video"][i:i + 64])).argmax(-1).numpy())
    return uar_war(np.concatenate(preds), data["label"])


def features(state: dict | None, data: dict, seed: int) -> np.ndarray:
    """Mean-pooled tokens of the frozen encoder (with its pretrained final norm)."""
    import torch

    from hi2m.model import HI2MConfig
    from hi2m.model.vit import VideoEncoder

    torch.manual_seed(seed)
    encoder = VideoEncoder(HI2MConfig.from_name("micro", **MODEL))
    if state is not None:
        encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    encoder.eval()
    norm = normaliser()
    with torch.no_grad():
        return np.concatenate([encoder(norm(data["video"][i:i + 64])).mean(1).numpy()
                               for i in range(0, len(data["label"]), 64)])


def probe(train_feats: np.ndarray, train_labels: np.ndarray, test_feats: np.ndarray, test_labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(train_feats, train_labels)
    return uar_war(clf.predict(test_feats), test_labels)


# ---- the study -----------------------------------------------------------------------------------

def fmt(values: list[float], digits: int = 1) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} +- {sd:.{digits}f}"


def report(rows: list[dict], args) -> str:
    def pick(**kw):
        return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

    chance = 100 / NUM_CLASSES
    seeds = sorted({r["seed"] for r in rows})
    out = [f"# SynthFace study: does HI2M pretraining pay?", "",
           f"`python benchmarks/synthface_study.py {' '.join(sys.argv[1:])}`".rstrip(), "",
           f"Seeds {seeds}; mean +- std over seeds. Pretraining: {args.pretrain_steps} steps x batch {args.batch} "
           f"on the endless `voxceleb2`-preset stream ({args.pretrain_steps * args.batch} clips, none seen twice). "
           f"Labelled data: the `dfew` preset, {FRAMES}x{SIZE}x{SIZE}, test split of {args.test_clips} clips. "
           f"Fine-tuning: {args.finetune_steps} steps, last step evaluated. Chance: {chance:.1f} UAR.", ""]
    if len(seeds) < 3:
        out += [f"**Partial result: {len(seeds)} seed(s) of the 3 the study asks for** (rerun the same command: "
                "finished pieces are cached and skipped).", ""]
    out += [
           "## Label efficiency (Table 3 idea): UAR / WAR on the test split", "",
           "| clips per class | random init, fine-tuned | HI2M, linear probe | HI2M, fine-tuned | random init, linear probe |",
           "|---|---|---|---|---|"]
    for b in args.budgets:
        cells = []
        for kind, variant in (("ft", "random init"), ("probe", "HI2M"), ("ft", "HI2M"), ("probe", "random init")):
            rs = pick(kind=kind, variant=variant, budget=b)
            cells.append(f"{fmt([r['uar'] for r in rs])} / {fmt([r['war'] for r in rs])}")
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    b0 = min(args.budgets)
    out += ["", f"## Table 2 and Table 9 on SynthFace ({b0} clips per class): UAR", "",
            "| pretraining | linear probe | fine-tuned | HRD region mass / area | Spearman(P, token loss) | "
            "Spearman(HSM w, difficulty): voxceleb2-like / dfew-like clips | held-out rec. loss |",
            "|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        pre = pick(kind="pretrain", variant=variant)
        if not pre:
            continue
        m = [r["meas"] for r in pre]
        out.append(f"| {variant} | {fmt([r['uar'] for r in pick(kind='probe', variant=variant, budget=b0)])} | "
                   f"{fmt([r['uar'] for r in pick(kind='ft', variant=variant, budget=b0)])} | "
                   f"{fmt([x.get('region_ratio', math.nan) for x in m], 2)} | "
                   f"{fmt([x.get('hrd_spearman', math.nan) for x in m], 2)} | "
                   f"{fmt([x['hsm_difficulty_spearman'] for x in m], 2)} / "
                   f"{fmt([x.get('hsm_difficulty_spearman_wild', math.nan) for x in m], 2)} | "
                   f"{fmt([x['rec'] for x in m], 4)} |")
    out += ["", "## Learning curves", "", "Pretraining L_R (train batches) by step, HI2M, first seed:", ""]
    pre = pick(kind="pretrain", variant="HI2M")
    if pre:
        out.append(" ".join(f"{s}: {v:.3f}" for s, v in pre[0]["meas"]["curve"]))
    out += ["", f"Fine-tuning test UAR by step ({b0} clips per class, first seed; curves only, never used to select):", ""]
    for variant in ("random init", "HI2M"):
        rs = pick(kind="ft", variant=variant, budget=b0)
        if rs:
            out.append(f"- {variant}: " + ", ".join(f"{s}: {u:.1f}" for s, u in rs[0]["curve"]) +
                       f" (train UAR at the end {rs[0]['train_uar']:.1f})")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budgets", type=int, nargs="+", default=[10, 30, 100], help="labelled clips per class")
    ap.add_argument("--pretrain-steps", type=int, default=3000)
    ap.add_argument("--finetune-steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--test-clips", type=int, default=350)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers rendering the stream")
    ap.add_argument("--cache", default="runs/bench-cache")
    ap.add_argument("--out", default="docs/results-synthface.md")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, short schedules, 2 variants")
    ap.add_argument("--report-only", action="store_true", help="compute nothing: the report of what is cached")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.budgets, args.pretrain_steps, args.finetune_steps = [0], [10], 150, 100
        args.variants, args.test_clips, args.out = ["HI2M", "baseline (tube)"], 70, None
    import torch

    torch.set_num_threads(2)
    cache = Path(args.cache)
    tag = f"{args.pretrain_steps}-{args.finetune_steps}-{args.batch}-{args.test_clips}"
    results = cache / f"synthface_study-{tag}.jsonl"
    rows = [json.loads(x) for x in results.read_text().splitlines()] if results.is_file() else []
    have = {(r["kind"], r["variant"], r.get("budget"), r["seed"]) for r in rows}

    def record(row: dict) -> None:
        rows.append(row)
        results.parent.mkdir(parents=True, exist_ok=True)
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")

    if args.report_only:
        done = sorted({r["seed"] for r in rows if r["seed"] in args.seeds})
        args.seeds = [sd for sd in done if sum(r["seed"] == sd for r in rows) >= 1]
    t0 = time.perf_counter()
    say = lambda msg: print(f"[{time.perf_counter() - t0:7.0f}s] {msg}", flush=True)  # noqa: E731
    train = clip_pool(cache, "train", 100 * NUM_CLASSES, LABELLED_DATA)
    test = clip_pool(cache, "test", args.test_clips, LABELLED_DATA)
    probe_clips = clip_pool(cache, "val", 64, PRETRAIN_DATA)  # held-out clips like the pretraining data
    say(f"labelled clips ready: {len(train['label'])} train pool, {len(test['label'])} test")
    for seed in [] if args.report_only else args.seeds:
        for variant in ["random init"] + args.variants:
            budgets = args.budgets if variant in ("random init", "HI2M") else [min(args.budgets)]
            needed = {(k, variant, b, seed) for k in ("ft", "probe") for b in budgets}
            if variant != "random init":
                needed.add(("pretrain", variant, None, seed))
            if needed <= have:
                continue
            state = None
            if variant != "random init":
                say(f"seed {seed}: pretraining {variant} ({args.pretrain_steps} steps)")
                res = pretrain(variant, seed, args.pretrain_steps, args.batch, args.workers, probe_clips, test)
                state = res["state"]
                if ("pretrain", variant, None, seed) not in have:
                    record({"kind": "pretrain", "variant": variant, "budget": None, "seed": seed, "meas": res["meas"]})
                say(f"  {json.dumps({k: v for k, v in res['meas'].items() if k != 'curve'})}")
            feats_train, feats_test = features(state, train, seed), features(state, test, seed)
            for b in budgets:
                idx = budget_indices(train["label"], b)
                if ("probe", variant, b, seed) not in have:
                    uar, war = probe(feats_train[idx], train["label"][idx], feats_test, test["label"])
                    record({"kind": "probe", "variant": variant, "budget": b, "seed": seed, "uar": uar, "war": war})
                    say(f"  probe {variant} {b}/class: UAR {uar:.1f} WAR {war:.1f}")
                if ("ft", variant, b, seed) not in have:
                    r = finetune(state, train, test, idx, seed, args.finetune_steps,
                                 eval_every=args.finetune_steps // 6 if b == min(args.budgets) else 0)
                    record({"kind": "ft", "variant": variant, "budget": b, "seed": seed, **r})
                    say(f"  fine-tune {variant} {b}/class: UAR {r['uar']:.1f} WAR {r['war']:.1f} "
                        f"(train UAR {r['train_uar']:.1f})")
    text = report([r for r in rows if r["seed"] in args.seeds], args)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
        say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
