"""``hi2m demo``: pretrain on unlabelled SynthFace, then few labels: pretrained vs random init."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="a shorter run (about 3 minutes on 2 CPU cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=None,
                        help="labelled clips per class (default 10, the study's smallest budget)")
    parser.add_argument("--workers", type=int, default=1,
                        help="DataLoader workers rendering the unlabelled clips (0: in the main process)")
    parser.add_argument("--scale", choices=["full", "quick", "tiny"], default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from hi2m.train.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed, workers=args.workers, scale=args.scale, budget=args.budget)
    return 0
