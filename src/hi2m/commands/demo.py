"""``hi2m demo``: generate SynthFace, pretrain, fine-tune, evaluate, compare with random init."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 2 minutes on 2 CPU cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hrd-lambda", type=float, default=1e-4, help="lambda of Eq. 8 (default 1e-4)")
    parser.add_argument("--workers", type=int, default=1, help="data-loading worker processes")
    parser.add_argument("--scale", choices=["full", "quick", "tiny"], default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from hi2m.train.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed, hrd_lambda=args.hrd_lambda, workers=args.workers,
             scale=args.scale)
    return 0
