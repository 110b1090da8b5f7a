"""Does the loader keep up? End-to-end pretraining clips/s against the model step alone.

Generates VoxCeleb2-like files in a temporary folder (``<root>/dev/mp4/idNNNNN/<video>/NNNNN.mp4``,
224x224 H.264, 25 fps, 6-10 s of moving textured blobs -- the decoder's work does not depend on
faces), then measures, in one process with the same model (full HI2M: HRD + HSM + dual target) and
the same optimiser:

* ``step only``: the training step on a batch already in memory (the ceiling);
* ``end to end, W workers``: the run's own loader (``pretrain_dataset`` + the ``Loaders`` data
  module: decode the window, fixed VoxCeleb2 crop, multi-scale crop, normalise, collate) feeding
  the same step, for each W in ``--workers``;
* ``decode CPU-s / clip``: CPU seconds one worker spends per clip (``dataset[i]`` in this process,
  one thread), so a user can size ``num_workers`` per GPU: workers >= clips/s needed x CPU-s / clip.

Each row also runs with ``repeats`` R > 1 when ``--repeats`` lists it (R windows per decoded file,
repeated sampling; the batch then holds batch_size x R clips).

    .venv/bin/python benchmarks/pretrain_throughput.py [--size tiny] [--workers 0 1 2] [--steps 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_files(root: Path, n: int, seed: int) -> None:
    """n VoxCeleb2-layout H.264 files, 224x224, 25 fps, 6-10 s."""
    from decode import synthetic_frames

    from hi2m.data.writer import write_video

    rng = np.random.default_rng(seed)
    for i in range(n):
        seconds = float(rng.uniform(6, 10))
        folder = root / "dev" / "mp4" / f"id{i // 4:05d}" / f"video{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / "00001.mp4", synthetic_frames(int(seconds * 25), 224, seed + i), fps=25)


def main() -> None:
    import torch

    from hi2m.train.config import load_config
    from hi2m.train.data import pretrain_dataset, pretrain_views
    from hi2m.train.optim import build_adamw
    from hi2m.train.runner import Loaders

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--repeats", nargs="+", type=int, default=[1])
    parser.add_argument("--augment", nargs="+", default=["worker"], choices=["worker", "device"],
                        help="data.augment of the end-to-end rows (device: the step applies PretrainViews.apply)")
    parser.add_argument("--batch", type=int, default=4, help="clips per step (per decode with repeats)")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per row (after 2 warm-up steps)")
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the step (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    with tempfile.TemporaryDirectory(prefix="hi2m-throughput-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        make_files(root, args.files, args.seed)
        print(f"{args.files} files generated in {time.perf_counter() - t0:.0f} s; torch {torch.__version__}, "
              f"{threads} threads for the step; model {args.size}, full HI2M")

        def config(workers: int, repeats: int, augment: str = "worker") -> dict:
            return load_config(None, [
                "data.dataset=voxceleb2", f"data.root={root}", "data.train_split=dev", "data.crop_box=[0,32,160,192]",
                f"data.batch_size={args.batch}", f"data.num_workers={workers}", f"data.repeats={repeats}",
                f"data.augment={augment}", f"model.size={args.size}", "model.mask_type=hrd", f"seed={args.seed}",
            ])

        from hi2m.model import HI2M

        cfg = config(0, 1)
        torch.manual_seed(args.seed)
        model = HI2M(cfg.model_config()).train()
        opt = build_adamw(model, lr=1e-4, weight_decay=0.05)
        gen = torch.Generator().manual_seed(args.seed)

        def step(video: torch.Tensor) -> None:
            out = model(video, generator=gen)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()

        # decode CPU-seconds per clip: the worker's job, one thread, in this process
        torch.set_num_threads(1)
        dataset = pretrain_dataset(cfg, model.cfg)
        cpu = []
        for i in range(min(len(dataset), 16)):
            c0 = time.process_time()
            item = dataset[i]
            cpu.append(time.process_time() - c0)
        torch.set_num_threads(threads)
        sample = item["video"]  # (C, T, H, W)
        per_clip = statistics.median(cpu)

        rows = []
        for repeats in args.repeats:
            clips = args.batch * repeats
            batch = torch.stack([sample] * clips)  # (B*R, C, T, H, W)
            for _ in range(2):
                step(batch)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(batch)
            ceiling = args.steps * clips / (time.perf_counter() - t0)
            rows.append(("step only", repeats, ceiling, ceiling))
            for workers, augment in [(w, a) for a in args.augment for w in args.workers]:
                cfg = config(workers, repeats, augment)
                dataset = pretrain_dataset(cfg, model.cfg)
                loader = Loaders(cfg, dataset)._loader(dataset, True)
                views = pretrain_views(cfg, model.cfg)

                def endless(loader=loader):  # epochs back to back (persistent workers stay up)
                    while True:
                        yield from loader

                def train_on(batch, views=views) -> None:
                    video = batch["video"]
                    if "box" in batch:  # the device half of the augmentation, as PretrainModule does it
                        video = views.apply(video.flatten(0, video.ndim - 5), batch["box"].reshape(-1, 4))
                    step(video.flatten(0, 1) if video.ndim == 6 else video)

                it = endless()
                for _ in range(2):
                    train_on(next(it))
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    train_on(next(it))
                rate = args.steps * clips / (time.perf_counter() - t0)
                rows.append((f"end to end, {workers} workers, {augment}", repeats, rate, ceiling))
                del it, loader

    print(f"decode + crop + transforms: {per_clip:.3f} CPU-s per clip (median of {len(cpu)}, one thread)")
    header = f"{'loader':34} {'repeats':>7} {'clips/s':>8} {'of step-only':>12}"
    print(header)
    print("-" * len(header))
    for name, repeats, rate, ceiling in rows:
        print(f"{name:34} {repeats:7d} {rate:8.2f} {100 * rate / ceiling:11.0f}%")


if __name__ == "__main__":
    main()
