"""``hi2m visualize RUN_DIR_OR_MODEL``: PNG figures of a run (see hi2m.viz.run and docs/inference.md)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="RUN_DIR_OR_MODEL", help="a run directory or a model directory")
    parser.add_argument("--out", default=None, help="output folder (default <run dir>/figures)")
    parser.add_argument("--video", nargs="+", default=[], help="clips for the HRD / HSM figures (pretraining models)")
    parser.add_argument("--num-clips", type=int, default=6, help="clips taken from the run's dataset (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the visible-token draw")


def run(args: argparse.Namespace) -> int:
    from hi2m.data.errors import DataError
    from hi2m.viz.run import visualize

    try:
        written, notes = visualize(args.target, args.out, args.video, args.num_clips, args.seed)
    except (FileNotFoundError, ValueError, DataError) as err:
        print(f"hi2m visualize: error: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"hi2m visualize: note: {note}", file=sys.stderr)
    for path in written:
        print(path)
    return 0 if written else 1
