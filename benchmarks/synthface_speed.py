"""SynthFace generation speed: render only vs render + encode, 1 vs N workers.

Usage::

    python benchmarks/synthface_speed.py [--clips 300] [--size 96] [--frames 16] [--workers 2]

Prints, per setting, wall-clock clips/s, CPU seconds per clip (this process plus
its worker processes, a number that other load on the machine disturbs less) and
the projected wall time for a default-sized dataset (1400/350/350 = 2100 clips)
and for 3000 clips. Files go to a temporary directory that is removed after.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

from hi2m.data.synthface import SynthFaceConfig, generate_clip, write_synthface
from hi2m.data.synthface.storage import encode_mp4, save_masks

Row = tuple[str, int, float, float]  # name, clips, wall seconds, CPU seconds


def config_for(clips: int, size: int, frames: int) -> SynthFaceConfig:
    """A config whose three splits hold ``clips`` clips in total (70/15/15)."""
    num_val = num_test = clips * 15 // 100
    return SynthFaceConfig(
        num_train=clips - 2 * num_val, num_val=num_val, num_test=num_test, size=size, num_frames=frames
    )


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(name: str, clips: int, work: Callable[[], None]) -> Row:
    """Run ``work`` once and return its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    work()
    return name, clips, time.perf_counter() - wall, cpu_seconds() - cpu


def render_only(config: SynthFaceConfig, clips: int) -> None:
    """Render ``clips`` train clips in this process (no files)."""
    for i in range(clips):
        generate_clip(config, "train", i)


def render_encode(config: SynthFaceConfig, clips: int, folder: Path) -> None:
    """Render, encode and save masks for ``clips`` clips in this process."""
    folder.mkdir()
    for i in range(clips):
        clip = generate_clip(config, "train", i)
        encode_mp4(folder / f"{i:06d}.mp4", clip.frames, config.fps)
        save_masks(folder / f"{i:06d}.npz", clip)


def print_table(rows: list[Row], header: str) -> None:
    """One line per setting."""
    print(header)
    columns = ("clips", "wall s", "clips/s", "CPU ms/clip", "2100 clips", "3000 clips")
    widths = (5, 7, 8, 12, 11, 11)
    print(f"{'setting':34s} " + " ".join(f"{c:>{w}s}" for c, w in zip(columns, widths)))
    for name, count, wall, cpu in rows:
        rate = count / wall
        print(
            f"{name:34s} {count:5d} {wall:7.2f} {rate:8.1f} {1000 * cpu / count:12.1f} "
            f"{2100 / rate:9.1f} s {3000 / rate:9.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = config_for(args.clips, args.size, args.frames)
    generate_clip(config, "train", 0)  # warm up imports and caches
    load_before = os.getloadavg()[0]
    sub = max(1, args.clips // 3)  # single-process peers on a third of the clips
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        rows = [
            measure("render only, 1 process", sub, lambda: render_only(config, sub)),
            measure("render + mp4 + masks, 1 process", sub, lambda: render_encode(config, sub, tmp_path / "enc")),
            measure("write_synthface, workers=1", args.clips, lambda: write_synthface(tmp_path / "w1", config, 1)),
            measure(
                f"write_synthface, workers={args.workers}",
                args.clips,
                lambda: write_synthface(tmp_path / "wn", config, args.workers),
            ),
        ]
        videos = list((tmp_path / "wn" / "videos").rglob("*.mp4"))
        mean_kib = sum(p.stat().st_size for p in videos) / max(1, len(videos)) / 1024
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    header = (
        f"SynthFace {args.frames}x{args.size}x{args.size}: {cpus} usable CPUs, load average "
        f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after, mean mp4 {mean_kib:.1f} KiB"
    )
    print_table(rows, header)


if __name__ == "__main__":
    main()
