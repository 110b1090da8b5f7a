"""Does ``hi2m predict --faces all`` keep memory flat in the video's length? Peak RSS against the one-face
default, for a short and a long video of two people side by side.

    python benchmarks/faces_memory.py --minutes 0.5 10

Writes a video of two moving real faces (scikit-image's astronaut, 320x240 each, 25 fps, one of them away for
2 s every 20 s) of each length, then runs the installed ``hi2m predict`` on it in a fresh process per row
(``--faces one`` and ``--faces all``, Haar, a tiny random-weight classifier: the model's size is not what is
measured) and prints wall seconds, peak RSS (GNU time's ``%M``) and the faces and windows found.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def write_people(path: Path, minutes: float, fps: int = 25) -> Path:
    import av

    from _media import astronaut_frames

    loop = np.concatenate([astronaut_frames(20 * fps, seed=0), astronaut_frames(20 * fps, seed=1)], axis=2)
    loop[8 * fps:10 * fps, :, 320:] = 0  # the second person away for 2 s of every 20
    n = int(minutes * 60 * fps)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 640, 240, "yuv420p"
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def main() -> None:
    import torch

    from hi2m.io.weights import save_pretrained
    from hi2m.model import HI2MConfig
    from hi2m.model.classifier import VideoClassifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[0.5, 10.0])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hi2m-faces-"))
    torch.manual_seed(0)
    model = save_pretrained(VideoClassifier(HI2MConfig.from_name("micro", num_frames=16, image_size=64)),
                            work / "model")
    hi2m = Path(sys.executable).parent / "hi2m"
    print(f"{'minutes':>7} {'faces':>5} {'wall s':>7} {'peak RSS MB':>11} {'face ids':>8} {'windows':>8}")
    for minutes in args.minutes:
        video = write_people(work / f"people-{minutes:g}.mp4", minutes)
        for faces in ("one", "all"):
            out = work / f"out-{minutes:g}-{faces}.json"
            t0 = time.perf_counter()
            # GNU time's %M: the peak RSS of hi2m itself (a forked child's ru_maxrss would count this process's
            # memory from before the exec)
            done = subprocess.run(["/usr/bin/time", "-f", "%M", str(hi2m), "predict", str(video), "--model", str(model),
                                   "--detector", "haar", "--faces", faces, "--out", str(out), "--quiet"],
                                  check=True, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            peak = int(done.stderr.strip().splitlines()[-1])  # KB
            d = json.loads(out.read_text())["videos"][0]
            ids = len(d.get("faces", [])) or 1
            print(f"{minutes:>7g} {faces:>5} {wall:>7.1f} {peak / 1024:>11.0f} {ids:>8} {len(d['windows']):>8}",
                  flush=True)


if __name__ == "__main__":
    main()
