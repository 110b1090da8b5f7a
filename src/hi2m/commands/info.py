"""``hi2m info``: model sizes, parameter counts and FLOPs per pretraining step (no weights needed)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "base"], help="named encoder sizes")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--mask-ratio", type=float, default=0.9)
    parser.add_argument("--hrd-dim", type=int, default=None, help="override the HRD policy width")


def step_flops(cfg) -> tuple[float, float]:
    """(FLOPs of one forward+backward pretraining pass for one clip, the HRD policy's part), counted on
    the meta device (no memory, no compute)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hi2m.model import HI2M

    with torch.device("meta"):
        model = HI2M(cfg)
        video = torch.zeros(1, cfg.in_chans, cfg.num_frames, cfg.image_size, cfg.image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        model(video).loss.backward()
    policy = sum(sum(v.values()) for k, v in counter.get_flop_counts().items() if k.endswith("masker.policy"))
    return float(counter.get_total_flops()), float(policy)


def run(args: argparse.Namespace) -> int:
    from hi2m.model import HI2MConfig
    from hi2m.model.config import ENCODER_SIZES

    print(f"input {args.frames}x{args.image_size}x{args.image_size}, mask ratio {args.mask_ratio}")
    print(f"{'size':6} {'dim':>4} {'depth':>5} {'heads':>5} {'enc M':>6} {'dec M':>6} {'HRD M':>6} "
          f"{'tokens':>6} {'visible':>7} {'GFLOP/clip':>10} {'HRD share':>9}")
    for name in args.sizes:
        if name not in ENCODER_SIZES:
            print(f"unknown size {name!r}; known: {', '.join(ENCODER_SIZES)}")
            return 2
        extra = {} if args.hrd_dim is None else {"hrd_dim": args.hrd_dim}
        cfg = HI2MConfig.from_name(name, num_frames=args.frames, image_size=args.image_size,
                                   mask_ratio=args.mask_ratio, **extra)
        import torch

        from hi2m.model import HI2M

        with torch.device("meta"):
            model = HI2M(cfg)
        count = lambda mod: sum(p.numel() for p in mod.parameters()) / 1e6  # noqa: E731
        enc = count(model.encoder)
        hrd = count(model.masker)
        dec = count(model) - enc - hrd
        flops, policy = step_flops(cfg)
        print(f"{name:6} {cfg.embed_dim:4d} {cfg.depth:5d} {cfg.num_heads:5d} {enc:6.1f} {dec:6.1f} {hrd:6.2f} "
              f"{cfg.num_tokens:6d} {cfg.num_visible:7d} {flops / 1e9:10.1f} {100 * policy / flops:8.1f}%")
    return 0
