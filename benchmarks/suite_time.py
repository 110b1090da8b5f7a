"""How long the test suite takes: the way the README runs it (pytest-xdist, one worker per core, each file on
one worker, one torch thread per worker on 2 cores) against one process running every test in turn, in the
same invocation, alternated. Each row is the wall clock of a whole ``pytest -q`` from this checkout, and
the slowest tests of each run beside it.

    python benchmarks/suite_time.py [--rounds 1] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {"serial (-n 0, 2 threads)": ["-n", "0"], "README (-n auto --dist loadfile)": []}


def run(args: list[str]) -> tuple[float, str, list[str]]:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=5", *args],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    summary = next((ln for ln in reversed(proc.stdout.splitlines()) if " passed" in ln or " failed" in ln), "?")
    slow = [ln for ln in proc.stdout.splitlines() if re.match(r"^\d+\.\d+s (call|setup)", ln)]
    return seconds, summary.strip("= "), slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(args.rounds):
        for name, flags in (MODES.items() if r % 2 == 0 else reversed(MODES.items())):
            seconds, summary, slow = run([*flags, *args.extra])
            rows[name].append(seconds)
            print(f"round {r}, {name}: {seconds:.0f} s ({summary}); slowest: " + "; ".join(slow[:3]), flush=True)
    base = min(rows[next(iter(MODES))])
    print("\n| mode | wall s (best of rounds) | vs serial |\n|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {min(values):.0f} | {min(values) / base:.2f}x |")


if __name__ == "__main__":
    main()
