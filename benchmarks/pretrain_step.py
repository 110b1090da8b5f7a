"""One pretraining step (forward, backward, AdamW) of hi2m against transformers' VideoMAEForPreTraining.

    python benchmarks/pretrain_step.py [--sizes small base] [--batch 2] [--precision fp32 bf16]

Rows per encoder size and precision, all built with the same encoder/decoder sizes and run in one
process, alternating step by step so that machine noise hits every model alike:
  transformers  VideoMAEForPreTraining, tube masking, normalised-pixel target (the peer)
  hi2m-tube     hi2m with tube masking, dual target, HSM (HRD off)
  hi2m          the full method: HRD + HSM + dual target
  hi2m-dec0.5   the full method with decoder masking (model.decoder_mask_ratio 0.5, VideoMAE V2)
Columns: median step time, clips/s, activation memory saved for backward (CPU) or peak CUDA memory,
FLOPs per step (forward + backward, torch's FLOP counter) and the share of the machine's matmul ceiling
(FLOPs / (time * measured matmul rate)); the ratios compare each hi2m row with transformers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
from torch.utils.flop_counter import FlopCounterMode

from hi2m.model import HI2M, HI2MConfig
from hi2m.model.masking import tube_visible


def matmul_rate(dtype: torch.dtype, device: str, n: int = 2048, reps: int = 6) -> float:
    """Measured dense matmul FLOP/s for this dtype (best of reps)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class SavedActivations:
    """Bytes of tensors autograd saves for backward (unique storages): activation memory, device-independent."""

    def __init__(self):
        self.seen: dict[int, int] = {}

    def pack(self, t: torch.Tensor):
        try:
            self.seen.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        except RuntimeError:
            pass
        return t

    @property
    def megabytes(self) -> float:
        return sum(self.seen.values()) / 2**20


def build_pair(size: str, frames: int, image: int, device: str):
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    base = HI2MConfig.from_name(size, num_frames=frames, image_size=image, mask_ratio=0.9)
    hf_cfg = VideoMAEConfig(
        image_size=image, num_frames=frames, patch_size=16, tubelet_size=2, hidden_size=base.embed_dim,
        num_hidden_layers=base.depth, num_attention_heads=base.num_heads, intermediate_size=4 * base.embed_dim,
        decoder_hidden_size=base.decoder_dim, decoder_num_hidden_layers=base.decoder_depth,
        decoder_num_attention_heads=base.decoder_heads, decoder_intermediate_size=4 * base.decoder_dim,
        norm_pix_loss=True, use_mean_pooling=False,
    )
    models = {
        "transformers": VideoMAEForPreTraining(hf_cfg),
        "hi2m-tube": HI2M(base.replace(mask_type="tube")),
        "hi2m": HI2M(base.replace(mask_type="hrd")),
        # VideoMAE V2's decoder masking: the decoder reconstructs half of the masked tokens
        "hi2m-dec0.5": HI2M(base.replace(mask_type="hrd", decoder_mask_ratio=0.5)),
    }
    return base, {k: m.to(device).train() for k, m in models.items()}


def make_step(name, model, video, cfg, device, precision, fused=False):
    # the same optimiser for every model (fused AdamW unless --no-fused), so only the models differ
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=fused)
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def forward():
        with autocast:
            if name == "transformers":
                mask = torch.ones(video.shape[0], cfg.num_tokens, dtype=torch.bool, device=device)
                mask.scatter_(1, tube_visible(video.shape[0], cfg.grid, cfg.mask_ratio, gen, device), False)
                return model(video.transpose(1, 2), bool_masked_pos=mask).loss  # (B, T, C, H, W) input
            return model(video, generator=gen).loss

    def step():
        loss = forward()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return forward, step


def flops_and_memory(forward) -> tuple[float, float, float]:
    """(total FLOPs fwd+bwd, FLOPs of the HRD policy, saved-activation MB) of one step."""
    saved = SavedActivations()
    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
        forward().backward()
    by_module = counter.get_flop_counts()
    policy = sum(sum(v.values()) for k, v in by_module.items() if k.endswith("masker.policy"))
    return counter.get_total_flops(), policy, saved.megabytes


def bench(size, precision, args, device):
    cfg, models = build_pair(size, args.frames, args.image, device)
    g = torch.Generator().manual_seed(0)
    video = torch.randn(args.batch, 3, args.frames, args.image, args.image, generator=g).to(device)
    steps = {k: make_step(k, m, video, cfg, device, precision, args.fused) for k, m in models.items()}
    stats = {}
    for name, (forward, _) in steps.items():
        flops, policy, mem = flops_and_memory(forward)
        models[name].zero_grad(set_to_none=True)
        stats[name] = dict(flops=flops, policy=policy, mem=mem, times=[])
    if device == "cuda":
        for name in steps:
            torch.cuda.reset_peak_memory_stats()
            steps[name][1]()
            torch.cuda.synchronize()
            stats[name]["mem"] = torch.cuda.max_memory_allocated() / 2**20
    for name, times in alternate({k: v[1] for k, v in steps.items()}, args.warmup, args.steps, device).items():
        stats[name]["times"] = times
    return cfg, stats


def alternate(steps: dict, warmup: int, timed: int, device: str) -> dict[str, list[float]]:
    """Seconds of each of ``timed`` calls per step function, the functions alternated call by call (after
    ``warmup`` untimed rounds) so that machine noise hits every model alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + timed):
        for name, step in steps.items():
            _sync(device)
            t = time.perf_counter()
            step()
            _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["small", "base"])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--image", type=int, default=160)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-fused", dest="fused", action="store_false", help="plain for-loop AdamW for every model")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    rates = {p: matmul_rate(torch.float32 if p == "fp32" else torch.bfloat16, device) for p in args.precision}
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} input={args.frames}x{args.image}x{args.image} "
          f"rho=0.9 steps={args.steps} (median) AdamW fused={args.fused} torch={torch.__version__}")
    print("matmul ceiling: " + ", ".join(f"{p} {r / 1e9:.0f} GFLOP/s" for p, r in rates.items()))
    header = (f"{'size':6} {'prec':5} {'model':13} {'step s':>7} {'clips/s':>8} {'act MB':>8} {'GFLOP':>7} "
              f"{'ceiling':>8} {'HRD FLOP':>8} {'time vs tf':>10} {'mem vs tf':>9}")
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        for prec in args.precision:
            cfg, stats = bench(size, prec, args, device)
            ref = stats["transformers"]
            ref_t = statistics.median(ref["times"])
            for name, s in stats.items():
                t = statistics.median(s["times"])
                share = s["flops"] / (t * rates[prec])
                hrd = f"{100 * s['policy'] / s['flops']:.1f}%" if s["policy"] else "-"
                print(f"{size:6} {prec:5} {name:13} {t:7.3f} {args.batch / t:8.2f} {s['mem']:8.0f} "
                      f"{s['flops'] / 1e9:7.0f} {100 * share:7.0f}% {hrd:>8} {t / ref_t:9.2f}x {s['mem'] / ref['mem']:8.2f}x")
    print("time vs tf < 1 means hi2m is faster than transformers; HRD FLOP is the policy's share of the hi2m step.")


if __name__ == "__main__":
    main()
