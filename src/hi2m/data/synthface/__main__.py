"""``python -m hi2m.data.synthface ROOT [--num-train N ...]``: generate SynthFace on disk.

Does nothing when ROOT already holds a complete dataset with the same config.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from hi2m.data.synthface.config import SynthFaceConfig
from hi2m.data.synthface.storage import ensure_synthface


def build_parser() -> argparse.ArgumentParser:
    """One ``--option`` per SynthFaceConfig field (except version), plus --workers."""
    parser = argparse.ArgumentParser(prog="python -m hi2m.data.synthface", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="output folder (created if missing)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    for f in dataclasses.fields(SynthFaceConfig):
        if f.name == "version":
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, type=type(f.default), default=f.default, help=f"default {f.default}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    root, workers = args.pop("root"), args.pop("workers")
    start = time.perf_counter()
    path = ensure_synthface(root, workers=workers, **args)
    print(f"SynthFace ready at {path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
