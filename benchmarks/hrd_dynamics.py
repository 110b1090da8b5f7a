"""HRD learning dynamics: does the policy learn where reconstruction is hard, without collapsing, and
without wrecking reconstruction? (issue "Hard Region Discovery that visibly learns")

A small HI2M (the demo's encoder: 128 wide x 4 deep, decoder 64 x 2, policy 32 wide) pretrains on
in-memory SynthFace clips (16 x 64 x 64, patch 16: 128 tokens, rho 0.75, batch 16, AdamW lr 1.5e-3 with
20 warmup steps then cosine) for --steps steps, once per (setting, seed). Every setting is measured on
held-out test clips at the end:

  KL      KL(P || uniform) = log N - H(P), nats (0 for a uniform policy; the "entropy gap")
  rho_s   Spearman(P, per-token reconstruction loss under *uniform random* masking), mean over clips
  region  P-mass on the expression regions / their area share (1 = what uniform masking gives)
  overlap share of tokens two independent visible-set draws have in common (0.25 uniform, 1 collapsed)
  rec     held-out reconstruction loss under uniform random masking, relative to tube masking's
  reg/rest  that per-token loss on the expression-region tokens / on the others (coverage-weighted):
          is reconstruction hard where the expression is? (--preset voxceleb2 / dfew / the demo's data)

Settings: the issue's grid (advantage none / mean / zscore x policy lr scale 1 / 10 x head init zero /
xavier, no entropy bonus), entropy-bonus rows, and tube masking as the comparison run. Each finished run
is appended to a JSON-lines file, so an interrupted benchmark continues where it stopped.

    python benchmarks/hrd_dynamics.py                    # everything, 3 seeds, prints the table
    python benchmarks/hrd_dynamics.py --grid default     # the shipped default (mean) vs Eq. 7 as written vs tube
    python benchmarks/hrd_dynamics.py --grid default --preset voxceleb2   # ... on VoxCeleb2-like clips
    python benchmarks/hrd_dynamics.py --quick            # 150 steps, 1 seed, a few settings
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import time
from pathlib import Path

import numpy as np

MODEL = dict(embed_dim=128, depth=4, num_heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=2,
             hrd_dim=32, hrd_heads=2, mask_ratio=0.75, num_frames=16, image_size=64, patch_size=16)
# the demo's SynthFace (milder nuisance than the generator's defaults), or a preset (--preset)
SYNTH = dict(num_frames=16, size=64, head_motion=0.3, background_motion=0.3, occlusion_prob=0.15, noise=4.0,
             low_intensity_share=0.1)
PRESETS = {"demo": SYNTH, "voxceleb2": dict(preset="voxceleb2", num_frames=16, size=64),
           "dfew": dict(preset="dfew", num_frames=16, size=64)}
LR, BATCH, WARMUP = 1.5e-3, 16, 20


def setting(adv="none", lr=1.0, init="zero", beta=0.0, mask="hrd") -> dict:
    return dict(hrd_advantage=adv, lr_scale=lr, hrd_head_init=init, hrd_entropy=beta, mask_type=mask)


def grids() -> dict[str, dict[str, dict]]:
    main = {f"{adv} lr{lr:g} {init}": setting(adv, lr, init)
            for adv in ("none", "mean", "zscore") for lr in (1.0, 10.0) for init in ("zero", "xavier")}
    guard = {f"{adv} lr{lr:g} zero beta{beta:g}": setting(adv, lr, "zero", beta)
             for adv, lr, beta in (("mean", 1.0, 0.1), ("mean", 10.0, 0.1), ("zscore", 1.0, 0.3),
                                   ("zscore", 1.0, 1.0), ("zscore", 10.0, 1.0))}
    tube = {"tube (no HRD)": setting(mask="tube")}
    default = {"none lr1 zero": main["none lr1 zero"], "mean lr1 zero": main["mean lr1 zero"], **tube}
    presets = {**default, "mean lr1 zero beta0.02": setting("mean", 1.0, "zero", 0.02), **tube}
    return {"main": {**main, **tube}, "guard": {**guard, **tube}, "all": {**main, **guard, **tube},
            "presets": presets,
            "default": default, "quick": {"none lr1 zero": main["none lr1 zero"],
                                          "mean lr1 zero": main["mean lr1 zero"], **tube}}


# ---- data ---------------------------------------------------------------------------------------

def clip_pool(cache: Path, split: str, count: int, synth: dict = SYNTH) -> dict[str, np.ndarray]:
    """SynthFace clips rendered once (``hi2m.study.protocol.render_clips``) and cached as uint8 arrays: video
    (n, C, T, H, W), region (n, T, H, W), label (n,), difficulty (n,) (the clip's difficulty_score)."""
    import zlib

    from hi2m.study.protocol import render_clips

    key = zlib.crc32(json.dumps(synth, sort_keys=True).encode())
    path = cache / f"synthface-{split}-{count}-{key:08x}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            if "label" in f.files:
                return {k: f[k] for k in f.files}
    out = render_clips(synth, split, count)
    out["video"] = out.pop("frames").transpose(0, 4, 1, 2, 3)  # (n, T, H, W, C) -> (n, C, T, H, W)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


# ---- one run --------------------------------------------------------------------------------------

def run_one(job: dict) -> dict:
    import torch

    from hi2m.analysis import region_share, spearman_rows, token_coverage, uniform_token_losses
    from hi2m.model import HI2M, HI2MConfig
    from hi2m.model.hrd import sample_without_replacement
    from hi2m.train.optim import GroupRule, WarmupCosine, build_adamw

    torch.set_num_threads(job["threads"])
    s, seed, steps = job["setting"], job["seed"], job["steps"]
    train, test = job["train"], job["test"]
    torch.manual_seed(seed)
    cfg = HI2MConfig.from_name("micro", **MODEL, mask_type=s["mask_type"], hrd_advantage=s["hrd_advantage"],
                               hrd_head_init=s["hrd_head_init"], hrd_entropy=s["hrd_entropy"])
    model = HI2M(cfg)
    opt = build_adamw(model, lr=LR, weight_decay=0.05, betas=(0.9, 0.95),
                      rules=(GroupRule("masker.policy.", "hrd", lr_scale=s["lr_scale"]),))
    sched = WarmupCosine(total_steps=steps, warmup_steps=WARMUP, base_lr=LR, min_lr=1e-5)
    mean = torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(cfg.pixel_std).view(1, 3, 1, 1, 1)

    def batch(arr, idx):
        return (torch.from_numpy(arr[idx]).float() / 255 - mean) / std  # (B, C, T, H, W)

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    order = rng.permutation(len(train["video"]))
    pos = 0
    for step in range(steps):
        if pos + BATCH > len(order):
            order, pos = rng.permutation(len(train["video"])), 0
        idx = np.sort(order[pos:pos + BATCH])
        pos += BATCH
        sched.apply(opt, step)
        out = model(batch(train["video"], idx), generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0

    # held-out measurements
    model.eval()
    N, n_vis = cfg.num_tokens, cfg.num_visible
    res = {k: [] for k in ("kl", "spearman", "region", "overlap", "rec", "loss_region", "loss_rest")}
    egen = torch.Generator().manual_seed(10_000 + seed)
    with torch.no_grad():
        for start in range(0, len(test["video"]), 16):
            sl = slice(start, start + 16)
            video = batch(test["video"], np.arange(len(test["video"]))[sl])
            B = video.shape[0]
            tok, count = uniform_token_losses(model, video, job["eval_draws"], egen)  # (B, N) each
            res["rec"].append(float(((tok * count).sum(1) / count.sum(1)).sum()))
            cover = token_coverage(torch.from_numpy(test["region"][sl]), cfg.patch_size, cfg.tubelet_size)  # (B, N)
            res["loss_region"].append(float(((tok * cover).sum(1) / cover.sum(1)).sum()))
            res["loss_rest"].append(float(((tok * (1 - cover)).sum(1) / (1 - cover).sum(1)).sum()))
            if cfg.mask_type == "hrd":
                _, mask = model.draw_mask(video, egen)
                lp = mask.log_probs  # (B, N)
                seen = count.min(1).values > 0
                rows = spearman_rows(lp[seen], tok[seen])
                res["spearman"].append(float(rows.sum()) * B / max(int(seen.sum()), 1))
                res["kl"].append(float((math.log(N) + (lp.exp() * lp).sum(-1)).sum()))
                h, a = region_share(model, video, torch.from_numpy(test["region"][sl]))
                res["region"].append(float((h / a).sum()))
                v1 = sample_without_replacement(lp, n_vis, egen)
                v2 = sample_without_replacement(lp, n_vis, egen)
                in1 = torch.zeros(B, N, dtype=torch.bool).scatter_(1, v1, True)
                res["overlap"].append(float(in1.gather(1, v2).float().mean(1).sum()))
    n = len(test["video"])
    out = {k: (sum(v) / n if v else float("nan")) for k, v in res.items()}
    out.update(name=job["name"], seed=seed, steps=steps, train_s=train_s)
    return out


# ---- the same question without an MAE: a free policy against a fixed loss map, for many steps ------

def toy_run(advantage: str, beta: float, steps: int, checkpoints: tuple[int, ...], seed: int = 0) -> list[dict]:
    """A linear policy over 64 orthonormal token features (it can express any logits), trained by Adam
    (lr 0.01, constant) on L_HRD alone against a fixed loss map (0.8-1.2 per token, an eighth of the tokens
    x 1.5, 10% noise per draw), 32 mask draws per step, 16 visible of 64. Returns the diagnostics at
    ``checkpoints``: does P keep concentrating (collapse to a fixed top-k: overlap -> 1) or level off?"""
    import torch

    from hi2m.model import objectives as obj
    from hi2m.analysis import hrd_diagnostics
    from hi2m.model.hrd import importance_distribution, sample_without_replacement

    n, k, b = 64, 16, 32
    g = torch.Generator().manual_seed(seed)
    expected = (0.8 + 0.4 * torch.rand(n, generator=g, dtype=torch.float64))  # (n,)
    hard = torch.zeros(n, dtype=torch.bool)
    hard[torch.randperm(n, generator=g)[: n // 8]] = True
    expected = expected * torch.where(hard, 1.5, 1.0)
    features = torch.linalg.qr(torch.randn(n, n, generator=g))[0]  # (n, n)
    head = torch.nn.Linear(n, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    rows = []
    for step in range(1, steps + 1):
        log_p = importance_distribution(head(features).squeeze(-1)[None].expand(b, n), 1e-3)  # (b, n)
        visible = sample_without_replacement(log_p, k, g)  # (b, k)
        masked = torch.ones(b, n, dtype=torch.bool).scatter_(1, visible, False)
        noisy = (expected[None] * (1 + 0.1 * torch.randn(b, n, generator=g, dtype=torch.float64))).float()
        loss = obj.hrd_objective(log_p, noisy, masked, advantage=advantage, entropy_weight=beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            idx = torch.argsort(masked.int(), dim=1, descending=True, stable=True)[:, : n - k]  # masked tokens
            d = hrd_diagnostics(log_p.detach(), idx, noisy.gather(1, idx), k, g)
            rows.append(dict(step=step, hard_mass=float(log_p[0].detach().exp()[hard].sum()), **d))
    return rows


def toy_table(steps: int = 6000) -> str:
    checkpoints = tuple(c for c in (300, 1000, 3000, 6000, 12000) if c <= steps)
    lines = ["| advantage | beta | " + " | ".join(f"step {c}: KL / overlap / hard mass" for c in checkpoints) + " |",
             "|" + "---|" * (2 + len(checkpoints))]
    for adv, beta in (("none", 0.0), ("mean", 0.0), ("mean", 0.03), ("zscore", 0.0), ("zscore", 0.3)):
        rows = toy_run(adv, beta, steps, checkpoints)
        cells = [f"{r['kl_uniform']:.2f} / {r['overlap']:.2f} / {r['hard_mass']:.2f}" for r in rows]
        lines.append(f"| {adv} | {beta:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- table ----------------------------------------------------------------------------------------

def fmt(values: list[float], digits: int = 2) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    m = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.{digits}f} +- {sd:.{digits}f}"


def table(rows: list[dict], names: list[str]) -> str:
    tube = [r["rec"] for r in rows if r["name"] == "tube (no HRD)"]
    tube_rec = statistics.mean(tube) if tube else float("nan")
    head = ("| setting | seeds | KL(P||U) nats | Spearman(P, loss) | region mass / area | overlap | "
            "held-out rec. loss | rec. / tube | loss region / rest |")
    lines = [head, "|" + "---|" * 9]
    for name in names:
        rs = [r for r in rows if r["name"] == name]
        if not rs:
            continue
        lines.append(f"| {name} | {len(rs)} | {fmt([r['kl'] for r in rs], 3)} | {fmt([r['spearman'] for r in rs])} | "
                     f"{fmt([r['region'] for r in rs])} | {fmt([r['overlap'] for r in rs])} | "
                     f"{fmt([r['rec'] for r in rs], 4)} | {fmt([r['rec'] / tube_rec for r in rs], 3)} | "
                     f"{fmt([r.get('loss_region', math.nan) / r.get('loss_rest', math.nan) for r in rs], 3)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", choices=sorted(grids()), default="all")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-clips", type=int, default=2000)
    ap.add_argument("--test-clips", type=int, default=64)
    ap.add_argument("--eval-draws", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each when > 1)")
    ap.add_argument("--cache", default="runs/bench-cache")
    ap.add_argument("--results", default=None, help="JSON-lines file of finished runs (default: under --cache)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                    help="SynthFace data: the demo's (default), or the voxceleb2 / dfew preset")
    ap.add_argument("--quick", action="store_true", help="150 steps, seed 0, the quick grid")
    ap.add_argument("--toy", type=int, default=0, metavar="STEPS",
                    help="only the MAE-free toy: a free policy on a fixed loss map for STEPS steps (e.g. 6000)")
    args = ap.parse_args()
    if args.toy:
        print("HRD on a fixed loss map (64 tokens, 16 visible, hard eighth x1.5; uniform: KL 0, overlap 0.25, "
              "hard mass 0.125)\n")
        print(toy_table(args.toy))
        return
    if args.quick:
        args.steps, args.seeds, args.grid, args.train_clips, args.test_clips = 150, [0], "quick", 400, 32
    cache = Path(args.cache)
    tag = "" if args.preset == "demo" else f"-{args.preset}"
    results = Path(args.results or cache / f"hrd_dynamics-{args.steps}{tag}.jsonl")
    done = []
    if results.is_file():
        done = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    grid = grids()[args.grid]
    t0 = time.perf_counter()
    train = clip_pool(cache, "train", args.train_clips, PRESETS[args.preset])
    test = clip_pool(cache, "test", args.test_clips, PRESETS[args.preset])
    print(f"clips ready in {time.perf_counter() - t0:.0f}s: {len(train['video'])} train, {len(test['video'])} held-out")
    have = {(r["name"], r["seed"]) for r in done}
    jobs = [dict(name=n, setting=s, seed=seed, steps=args.steps, train=train, test=test,
                 eval_draws=args.eval_draws, threads=1 if args.jobs > 1 else 2)
            for seed in args.seeds for n, s in grid.items() if (n, seed) not in have]
    print(f"{len(jobs)} runs to do ({len(have)} already in {results})", flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    with ctx.Pool(args.jobs) if args.jobs > 1 else _Serial() as pool:
        for r in pool.imap_unordered(run_one, jobs):
            done.append(r)
            with open(results, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"  {r['name']:28} seed {r['seed']}: KL {r['kl']:.3f} Spearman {r['spearman']:.2f} "
                  f"region {r['region']:.2f} overlap {r['overlap']:.2f} rec {r['rec']:.4f} "
                  f"({r['train_s']:.0f}s)", flush=True)
    rows = [r for r in done if r["name"] in grid and r["seed"] in args.seeds and r["steps"] == args.steps]
    print(f"\nHRD dynamics on SynthFace '{args.preset}', {args.steps} steps, seeds {args.seeds}, mean +- std "
          f"(N = 128 tokens, rho 0.75: a uniform policy has KL 0, overlap 0.25, region 1.00)\n")
    print(table(rows, list(grid)))


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap_unordered(self, fn, jobs):
        return map(fn, jobs)


if __name__ == "__main__":
    main()
