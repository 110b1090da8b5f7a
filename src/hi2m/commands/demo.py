"""``hi2m demo``: pretrain on unlabelled SynthFace, then fine-tune on labelled clips: pretrained vs random init,
through the training engine (see hi2m.study.demo)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--quick", action="store_true",
                        help="a shorter run (2.5 minutes on 2 idle CPU cores, the full demo 5): 1,200 pretraining "
                             "steps of 32 clips instead of 3,000, 600 fine-tuning steps instead of 1,000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=None,
                        help="labelled clips per class of the comparison (default 300, where the study finds "
                             "the largest effect)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes rendering the unlabelled clips before pretraining (default: one per core; "
                             "0 or 1: in this process)")
    parser.add_argument("--scale", choices=["full", "quick", "tiny"], default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from hi2m.study.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed, workers=args.workers, scale=args.scale, budget=args.budget)
    return 0
