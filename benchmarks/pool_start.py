"""What ``hi2m data check --workers N`` pays for not forking: fork vs forkserver vs spawn pools.

``data check`` used ``multiprocessing.Pool`` (fork). A fork of a process that has run torch (its OpenMP
threads) or a notebook kernel copies locks in whatever state other threads held them, and inherits the
caller's signal handlers -- an inherited handler that swallowed SIGTERM once hung the test suite in
``Pool.__exit__``. The pool now starts from a fork server (``hi2m.commands.data._pool``). This measures
the price: wall seconds for the whole check of the same clips through each start method, alternated
round by round (the machine's load hits all three alike), plus the pool alone (start + one task + stop).

    python benchmarks/pool_start.py [--clips 64] [--workers 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hi2m.commands.data import _pool
from hi2m.data.check import probe_clip
from hi2m.data.writer import index_pattern, write_video


def make_clips(folder: Path, n: int) -> list[tuple[str, int, int, str, float]]:
    """``n`` 64x64 H.264 clips of 40 frames, as ``data check`` tasks (16 frames, stride 2, header decode)."""
    tasks = []
    for i in range(n):
        path = folder / f"{i:04d}.mp4"
        write_video(path, [index_pattern(k + i, 64, 64) for k in range(40)], gop=12)
        tasks.append((str(path), 16, 2, "header", 30.0))
    return tasks


def check(tasks, workers: int, method: str) -> float:
    t0 = time.perf_counter()
    with _pool(workers, method) as pool:
        results = list(pool.imap(probe_clip, tasks, chunksize=8))
    assert all("error" not in r for r in results)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import torch  # what a notebook or the test suite has loaded before it checks data: fork copies it

    torch.ones(64, 64) @ torch.ones(64, 64)  # OpenMP threads started
    methods = ("fork", "forkserver", "spawn")
    with tempfile.TemporaryDirectory() as tmp:
        tasks = make_clips(Path(tmp), args.clips)
        whole = {m: [] for m in methods}
        alone = {m: [] for m in methods}
        for _ in range(args.rounds):
            for m in methods:
                whole[m].append(check(tasks, args.workers, m))
                alone[m].append(check(tasks[:1], args.workers, m))
    base = statistics.median(whole["fork"])
    print(f"data check of {args.clips} clips, {args.workers} workers, median of {args.rounds} rounds (alternated)")
    print(f"{'start method':<12} {'check s':>8} {'vs fork':>8} {'pool alone s':>13}")
    for m in methods:
        w, a = statistics.median(whole[m]), statistics.median(alone[m])
        print(f"{m:<12} {w:8.2f} {w / base:7.2f}x {a:13.2f}")


if __name__ == "__main__":
    main()
