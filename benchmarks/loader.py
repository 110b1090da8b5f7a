"""Can the data path feed a GPU node? Worker CPU time per training view at the VoxCeleb2 recipe.

    python benchmarks/loader.py                       # all stages, ~3 min on 2 cores
    python benchmarks/loader.py --gpu-check runs/gpu_check.json   # also: cores for that measured step rate

Stages (each prints a table):

1. ``worker``: one DataLoader worker's CPU seconds per training view through the run's own
   ``hi2m.train.data.pretrain_dataset`` (decode, sample, augment, collate), one thread, for
   ``data.repeats`` 1 / 2 / 4 x ``data.augment`` worker / device, on 224x224 25 fps H.264 files written here
   (VoxCeleb2's frame size and rate; 16 frames at stride 4, the 160x160 crop box, multi-scale crop to 160).
   Beside it the bytes per view a worker sends (float32 vs uint8) and the device side's cost: CPU seconds per
   view of ``PretrainViews.apply`` on a batch (on this CPU; on CUDA too when there is one).
2. ``cores``: the worker cores one GPU needs at 1,000 / 2,500 / 5,000 clips/s (and at the step rate of a
   ``gpu_check.json``), from stage 1's rates.
3. ``memory``: a forked worker's private memory after it reads every record of a 1.09M-clip VoxCeleb2-sized
   dataset, for the record list as Python objects (as before) and as a ``RecordTable`` (flat buffers).

Rates are CPU time (``time.process_time``) of the reading process, so other jobs on a shared machine
disturb them less than wall time would; ratios between rows of one run are what to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FRAME = 224  # VoxCeleb2's frame side
RECIPE = {"num_frames": 16, "stride": 4, "image_size": 160, "crop_box": [0, 32, 160, 192]}


def write_voxceleb2(root: Path, clips: int, seconds: float, seed: int = 0) -> Path:
    """``clips`` files in VoxCeleb2's layout (``<root>/dev/mp4/<id>/<video>/<n>.mp4``): 224x224, 25 fps,
    H.264 at the writer's defaults; a textured background that drifts, plus sensor-like noise, so the
    encoder spends bits on every frame as it does on real footage. Returns the split folder."""
    from hi2m.data.writer import write_video

    rng = np.random.default_rng(seed)
    n = int(25 * seconds)
    for i in range(clips):
        path = root / "dev" / "mp4" / f"id{i:05d}" / "v0" / "00001.mp4"
        if path.exists():
            continue
        base = rng.integers(0, 256, size=(FRAME // 4 + n, FRAME // 4 + n, 3), dtype=np.uint8)
        base = base.repeat(4, 0).repeat(4, 1)  # 4-pixel texture, room to drift
        frames = np.empty((n, FRAME, FRAME, 3), dtype=np.uint8)
        for t in range(n):
            frame = base[t:t + FRAME, 2 * t:2 * t + FRAME].astype(np.int16)
            frame += rng.integers(-6, 7, size=frame.shape, dtype=np.int16)  # (H, W, 3)
            frames[t] = np.clip(frame, 0, 255)
        write_video(path, frames)
    return root / "dev" / "mp4"


def recipe_config(root: Path, repeats: int, augment: str, cache: Path):
    from hi2m.train.config import load_config

    return load_config(None, model={"size": "base"}, data={
        "dataset": "voxceleb2", "root": str(root), "train_split": "dev", "repeats": repeats, "augment": augment,
        "options": {"cache_dir": str(cache)}, **RECIPE})


def worker_rate(cfg, items: int) -> dict[str, float]:
    """Views per CPU-second of one worker (one thread) through the run's pretraining dataset and collate."""
    from hi2m.data.skipping import collate_skip_bad
    from hi2m.train.data import pretrain_dataset

    ds = pretrain_dataset(cfg, cfg.model_config())
    order = np.random.default_rng(1).permutation(len(ds))
    batch, views, nbytes = [], 0, 0
    ds[int(order[0])]  # warm: imports, page cache
    cpu0 = time.process_time()
    for k in range(items):
        batch.append(ds[int(order[k % len(ds)])])
        if len(batch) == 4 or k == items - 1:
            out = collate_skip_bad(batch)
            video = out["video"]
            views += video.shape[0] * (video.shape[1] if video.ndim == 6 else 1)
            nbytes += video.numel() * video.element_size()
            batch = []
    cpu = time.process_time() - cpu0
    return {"views_per_cpu_s": views / cpu, "bytes_per_view": nbytes / views}


def decode_floor(cfg, items: int) -> float:
    """Views per CPU-second if a worker did nothing but open each file, index it and decode the reference
    frames (no RGB conversion, no copies, no augmentation) up to the last frame its windows need: a ceiling
    that no change to the worker's Python side can pass, short of decoding fewer or smaller frames."""
    import av

    from hi2m.data.video import VideoFileSource
    from hi2m.train.data import pretrain_dataset

    ds = pretrain_dataset(cfg, cfg.model_config())
    order = np.random.default_rng(1).permutation(len(ds))
    cpu0, views = time.process_time(), 0
    for k in range(items):
        index = int(order[k % len(ds)])
        with VideoFileSource(ds.records[index].path) as source:  # opens and indexes the file
            windows = ds.windows(source.num_frames, ds._generator(index))
        last = max(int(np.max(w)) for w in windows)
        with av.open(ds.records[index].path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            stream.codec_context.skip_frame = "NONREF"  # even wanted non-reference frames: a lower bound
            for n, _ in enumerate(container.decode(stream)):
                if n >= last:
                    break
        views += len(windows)
    return views / (time.process_time() - cpu0)


def device_cost(cfg, device: str, views: int = 64, rounds: int = 3) -> float:
    """Seconds per view of ``PretrainViews.apply`` on ``device`` for a batch of ``views`` uint8 crop-box views
    (best of ``rounds``; CPU time on the CPU, synchronised wall time on CUDA)."""
    from hi2m.train.data import pretrain_views

    cfg.data.augment = "device"
    views_fn = pretrain_views(cfg, cfg.model_config())
    g = torch.Generator().manual_seed(0)
    clip = np.random.default_rng(0).integers(0, 256, (16, FRAME, FRAME, 3), dtype=np.uint8)
    drawn = [views_fn(clip, g) for _ in range(views)]
    video = torch.stack([v for v, _ in drawn]).to(device)  # (N, C, T, 160, 160) uint8
    boxes = torch.stack([b for _, b in drawn]).to(device)  # (N, 4)
    best = math.inf
    for _ in range(rounds + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            views_fn.apply(video, boxes)
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        else:
            t0 = time.process_time()
            views_fn.apply(video, boxes)
            best = min(best, time.process_time() - t0)
    return best / views


# ---- memory -----------------------------------------------------------------------------------------


def private_mb() -> float:
    """This process's private (unshared) resident memory in MB, from /proc/self/smaps_rollup."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Private_Clean:", "Private_Dirty:"):
                fields[parts[0]] = int(parts[1])
    return sum(fields.values()) / 1024


def _touch_all(records, queue) -> None:
    before = private_mb()
    n = 0
    for i in range(len(records)):
        n += len(records[i].path)  # what a worker does for each item it reads (path, label)
    queue.put((before, private_mb(), n))


def forked_growth(records) -> tuple[float, float]:
    """(private MB of a freshly forked worker, its growth after reading every record)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_touch_all, args=(records, queue))
    proc.start()
    before, after, _ = queue.get()
    proc.join()
    return before, after - before


def voxceleb2_like_paths(n: int, prefix: str) -> list[str]:
    """``n`` relative paths shaped like VoxCeleb2's (``id01234/abcDEF12345/00042.mp4``)."""
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"))
    videos = ["".join(rng.choice(letters, 11)) for _ in range(n // 8 + 1)]
    return [f"id{(i // 180):05d}/{videos[i // 8]}/{i % 8 + 1:05d}.mp4" for i in range(n)]


def stage_memory(n: int) -> list[tuple[str, float, float, float]]:
    from hi2m.data.records import ClipRecord, RecordTable

    prefix = "/data/VoxCeleb2/dev/mp4/"
    tails = voxceleb2_like_paths(n, prefix)
    rows = []
    t0 = time.perf_counter()
    objects = [ClipRecord(prefix + t, -1) for t in tails]
    build = time.perf_counter() - t0
    rows.append(("Python list of ClipRecord", build, *forked_growth(objects)))
    del objects
    t0 = time.perf_counter()
    table = RecordTable(tails, prefix=prefix)
    build = time.perf_counter() - t0
    rows.append(("RecordTable (flat buffers)", build, *forked_growth(table)))
    return rows


# ---- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=24, help="files written for the worker stage")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each file (VoxCeleb2: ~8 s)")
    parser.add_argument("--items", type=int, default=48, help="items read per row of the worker stage")
    parser.add_argument("--records", type=int, default=1_090_000, help="records of the memory stage")
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--gpu-check", type=Path, help="a gpu_check.json: also the cores for its step rates")
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a temporary folder)")
    parser.add_argument("--stages", nargs="+", default=["worker", "cores", "memory"])
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker's setting
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hi2m-loader-"))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, 1 thread; files in {work}")

    rates: dict[tuple[int, str], dict[str, float]] = {}
    if "worker" in args.stages or "cores" in args.stages:
        folder = write_voxceleb2(work / "voxceleb2", args.clips, args.seconds)
        size = sum(p.stat().st_size for p in folder.rglob("*.mp4")) / args.clips
        print(f"\n## worker: {args.clips} files of {args.seconds:g} s, 224x224 25 fps H.264 "
              f"({size * 8 / args.seconds / 1000:.0f} kbit/s); {args.items} items per row")
        print(f"{'repeats':>7} {'augment':>8} {'views/CPU-s':>12} {'vs worker r1':>12} {'KB per view':>12} {'dtype':>8}")
        for repeats in args.repeats:
            for augment in ("worker", "device"):
                cfg = recipe_config(work / "voxceleb2", repeats, augment, work / "cache")
                rates[(repeats, augment)] = r = worker_rate(cfg, args.items)
                base = rates.get((args.repeats[0], "worker"), r)["views_per_cpu_s"]
                dtype = "uint8" if augment == "device" else "float32"
                print(f"{repeats:>7} {augment:>8} {r['views_per_cpu_s']:>12.1f} {r['views_per_cpu_s'] / base:>11.2f}x "
                      f"{r['bytes_per_view'] / 1024:>12.0f} {dtype:>8}", flush=True)
        for repeats in args.repeats:
            floor = decode_floor(recipe_config(work / "voxceleb2", repeats, "device", work / "cache"), args.items)
            print(f"{repeats:>7} {'decode only':>8} {floor:>12.1f}   (open, index, decode reference frames: the ceiling)")
        cfg = recipe_config(work / "voxceleb2", 1, "device", work / "cache")
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        print("\ndevice side (PretrainViews.apply, batch of 64 views):")
        for dev in devices:
            cost = device_cost(cfg, dev)
            print(f"  {dev}: {cost * 1e3:.3f} ms per view ({1 / cost:,.0f} views/s)")

    if "cores" in args.stages and rates:
        steps = {f"{n:,} clips/s": float(n) for n in (1000, 2500, 5000)}
        if args.gpu_check and args.gpu_check.is_file():
            stages = json.loads(args.gpu_check.read_text()).get("stages", {})
            for row, value in stages.get("data", {}).get("workers_needed", {}).items():
                steps[f"gpu_check {row}"] = float(value["clips_per_s"])
        best = max(args.repeats)
        print(f"\n## cores: worker cores per GPU at a step rate of N views/s (repeats {best})")
        print(f"{'step rate':>28} {'worker aug':>11} {'device aug':>11}")
        for name, rate in steps.items():
            w, d = (rate / rates[(best, a)]["views_per_cpu_s"] for a in ("worker", "device"))
            print(f"{name:>28} {w:>11.1f} {d:>11.1f}")

    if "memory" in args.stages:
        print(f"\n## memory: a forked worker reads all {args.records:,} records (private MB)")
        print(f"{'records as':>28} {'build s':>8} {'fresh worker':>13} {'growth':>8}")
        for name, build, fresh, growth in stage_memory(args.records):
            print(f"{name:>28} {build:>8.2f} {fresh:>13.1f} {growth:>8.1f}")


if __name__ == "__main__":
    main()
