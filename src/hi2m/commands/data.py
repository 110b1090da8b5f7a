"""``hi2m data check``: scan a dataset and report problems before a long run (the probe of one clip:
:func:`hi2m.data.check.probe_clip`). ``hi2m data prepare``: raw labelled videos -> face-tracked crops
(:mod:`hi2m.prepare`).

Prints clips per class, unreadable clips (named, with the reason), clips shorter
than the sampling window, frame counts, resolutions and bad split-file lines.
Exit code 0 when clean, 1 when problems are found (unreadable clips, bad lines,
a missing root or split file). Short clips are reported but are not problems
(they are looped or padded) unless ``--fail-on-short`` is given.

Only stdlib imports at module level: ``add_arguments`` runs while building
``hi2m --help``; torch, numpy and PyAV are imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from typing import Any

DATASET_NAMES = ("voxceleb2", "dfew", "ferv39k", "mafw", "csv", "synthetic")
DECODE_MODES = ("open", "window", "full")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = sub.add_parser(
        "check",
        help="scan a dataset and report problems",
        description="Scan a dataset: clips per class, unreadable files, clips shorter than the "
        "window, resolutions. Exit 0 when clean, 1 when problems are found.",
    )
    check.add_argument("name", choices=DATASET_NAMES, help="dataset adapter")
    check.add_argument("root", help="dataset root folder")
    check.add_argument("--split", default=None, help="split (default: the adapter's default)")
    check.add_argument("--fold", type=int, default=None, help="DFEW / MAFW fold 1-5")
    check.add_argument("--list-file", default=None, help="csv adapter: list file (relative to root)")
    check.add_argument("--cache-dir", default=None, help="voxceleb2: where to cache the file index")
    check.add_argument("--num-frames", type=int, default=16, help="frames per window (default 16)")
    check.add_argument("--stride", type=int, default=None, help="frame stride (default: the adapter's)")
    check.add_argument(
        "--decode",
        choices=DECODE_MODES,
        default="window",
        help="open: index only; window: also decode the first window (default); full: decode every frame",
    )
    check.add_argument("--limit", type=int, default=None, help="check only the first N clips")
    check.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    check.add_argument("--fail-on-short", action="store_true", help="count short clips as problems")
    check.add_argument("--show", type=int, default=20, help="list at most N paths per problem kind")
    check.add_argument("--timings", action="store_true", help="also list the five slowest clips")
    check.add_argument("--time-limit", type=float, default=60.0,
                       help="seconds of decoding allowed per clip before it is reported as too slow "
                            "(default 60; 0 = no limit)")
    _add_prepare(sub)


def _add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="raw labelled videos -> face-tracked crops the csv adapter reads",
        description="Find and follow the face in every video (the detector and tracker of hi2m predict), "
        "crop it square, and write clips, a manifest per split, classes.txt and a report naming every "
        "source not used. Rerunning skips finished clips. Exit 0 when every source was used, 1 when "
        "some were not (named in prepare-report.csv), 2 on a usage error.",
    )
    p.add_argument("src", help="a folder of <label>/<video> (or <split>/<label>/<video>), or a list file of "
                              "path,label[,start,end[,split]] rows (start/end in seconds)")
    p.add_argument("--out", required=True, help="output folder (a dataset root for data.dataset=csv)")
    p.add_argument("--root", default=None, help="list file: paths are relative to this (default: its folder); "
                                               "paths outside it are refused")
    p.add_argument("--classes", default=None,
                   help="class names, comma-separated or a file with one per line (default: the sorted folder "
                        "names or labels); a label outside the list is reported, not used")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="a source without splits: hold out this share of each class's videos (all their clips) "
                        "as the test split (seeded; default 0: everything is train)")
    p.add_argument("--size", type=int, default=224, help="crop side in pixels (default 224)")
    p.add_argument("--format", choices=("mp4", "frames"), default="mp4",
                   help="mp4: an H.264 file per clip (default); frames: a folder of jpg per clip")
    p.add_argument("--fps", type=float, default=None, help="sample the videos at about this rate (default: every frame)")
    p.add_argument("--frames", type=int, default=None,
                   help="a fixed number of frames per clip, spread evenly (DFEW's clips: 16)")
    p.add_argument("--margin", type=float, default=0.25, help="crop side = (1 + margin) x face box side (default 0.25)")
    p.add_argument("--face", choices=("largest", "longest"), default="largest",
                   help="with several faces: the largest at the start, followed (default), or the one seen "
                        "longest (decodes the video twice)")
    p.add_argument("--detector", choices=("auto", "mtcnn", "haar"), default="auto",
                   help="face detector (auto: MTCNN when its weights are installed, else Haar)")
    p.add_argument("--detect-every", type=int, default=2, help="detect on every n-th sampled frame (default 2)")
    p.add_argument("--min-face-coverage", type=float, default=0.5,
                   help="share of sampled frames that must show the face (default 0.5)")
    p.add_argument("--min-frames", type=int, default=8, help="fewest frames with a face in a kept clip (default 8)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU cores, at most 4)")
    p.add_argument("--retry-failed", action="store_true", help="retry sources an earlier run could not use")
    p.add_argument("--time-limit", type=float, default=600.0,
                   help="seconds of decoding per video before it is given up (default 600; 0 = none)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-clip lines (failures still named)")


def run_prepare(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from hi2m.prepare.run import PrepareOptions, format_summary, prepare
    from hi2m.prepare.sources import read_classes

    try:
        opts = PrepareOptions(size=args.size, format=args.format, fps=args.fps, frames=args.frames,
                              margin=args.margin, face=args.face, detector=args.detector,
                              detect_every=args.detect_every, min_face_coverage=args.min_face_coverage,
                              min_frames=args.min_frames, time_limit=args.time_limit)
        classes = read_classes(args.classes)
        workers = args.workers or min(4, os.cpu_count() or 1)
        summary = prepare(args.src, args.out, opts, classes=classes, root=args.root, workers=workers,
                          retry_failed=args.retry_failed, quiet=args.quiet, test_fraction=args.test_fraction)
    except (ValueError, FileNotFoundError) as err:
        print(f"hi2m data prepare: error: {err}", file=sys.stderr)
        return 2
    print(format_summary(summary, Path(args.out).absolute()), file=sys.stderr)
    return 1 if summary.failed or summary.problems else 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "data_command", None) == "prepare":
        return run_prepare(args)
    if getattr(args, "data_command", None) != "check":
        print("usage: hi2m data check NAME ROOT [options] | hi2m data prepare SRC --out DST [options]  "
              "(see hi2m data check --help, hi2m data prepare --help)", file=sys.stderr)
        return 2
    from hi2m.data.adapters import build_dataset
    from hi2m.data.errors import DataError
    from hi2m.data.sampling import window_span

    options: dict[str, Any] = {"on_bad_line": "skip", "num_frames": args.num_frames}
    for key in ("fold", "list_file", "cache_dir", "stride"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    try:
        dataset = build_dataset(args.name, args.root, split=args.split, **options)
    except (DataError, ValueError) as err:
        print(f"hi2m data check: cannot build {args.name} dataset:\n{err}", file=sys.stderr)
        return 1
    span = window_span(dataset.num_frames, dataset.stride)
    records = dataset.records[: args.limit] if args.limit else dataset.records
    tasks = [(r.path, dataset.num_frames, dataset.stride, args.decode, args.time_limit) for r in records]
    results = _probe_all(tasks, args.workers)
    report, problems = _report(dataset, records, results, span, args)
    print(report)
    return 1 if problems else 0


def _probe_all(tasks: list[tuple[str, int, int, str, float]], workers: int) -> list[dict[str, Any]]:
    from hi2m.data.check import probe_clip

    if workers <= 1 or len(tasks) < 2:
        return [probe_clip(t) for t in tasks]
    with _pool(workers) as pool:
        return list(pool.imap(probe_clip, tasks, chunksize=8))


def _pool(workers: int, method: str = "forkserver"):
    """A process pool that does not fork this process: a fork of a process with threads (torch's, a
    notebook's) copies locks in whatever state those threads held them, and a fork inherits the caller's
    signal handlers (one that swallows SIGTERM hangs ``Pool.__exit__``). The fork server starts clean once
    and forks workers from itself (benchmarks/pool_start.py: its start cost beside fork and spawn)."""
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["hi2m.data.check", "hi2m.data.video", "hi2m.data.sampling", "av"])
    return ctx.Pool(workers)


def _table(title: tuple[str, str], rows: list[tuple[str, Any]]) -> list[str]:
    width = max([len(title[0])] + [len(r[0]) for r in rows])
    lines = [f"  {title[0]:<{width}}  {title[1]:>7}"]
    lines += [f"  {name:<{width}}  {value:>7}" for name, value in rows]
    return lines


def _listing(items: list[str], show: int) -> list[str]:
    lines = [f"    {item}" for item in items[:show]]
    if len(items) > show:
        lines.append(f"    ... and {len(items) - show} more")
    return lines


def _report(dataset: Any, records: list[Any], results: list[dict[str, Any]], span: int, args: argparse.Namespace) -> tuple[str, int]:
    """The summary text and the number of problems."""
    good = [r for r in results if "error" not in r]
    bad = [r for r in results if "error" in r]
    short = [r for r in good if r["frames"] < span]
    lines = [
        f"hi2m data check: {dataset.name}: {len(records)} clips checked"
        f" (window {dataset.num_frames} frames x stride {dataset.stride} = {span} frames, decode={args.decode})",
        "",
    ]
    per_class = Counter(r.label for r in records)
    class_rows = [
        ("(unlabelled)" if label < 0 else dataset.classes[label], count) for label, count in sorted(per_class.items())
    ]
    lines += _table(("class", "clips"), class_rows + [("total", len(records))]) + [""]
    sizes = Counter(f"{r['size'][0]}x{r['size'][1]}" for r in good)
    lines += _table(("resolution (HxW)", "clips"), sizes.most_common()) + [""]
    if good:
        frames = [r["frames"] for r in good]
        lines.append(f"  frames per clip: min {min(frames)}, median {statistics.median(frames):g}, max {max(frames)}")
        rates = Counter(f"{r['fps']:.3g}" if r["fps"] else "n/a (frames)" for r in good)
        lines.append("  frame rates: " + ", ".join(f"{k} ({v})" for k, v in rates.most_common(5)))
        lines.append("")
    handling = {"loop": "looped", "pad": "padded"}.get(dataset.short, dataset.short)
    lines.append(f"  clips shorter than the window ({span} frames, {handling}): {len(short)}")
    lines += _listing([f"{r['path']} ({r['frames']} frames)" for r in short], args.show)
    kinds = Counter(r.get("kind", "decode") for r in bad)
    by_kind = f" ({', '.join(f'{k} {n}' for k, n in kinds.most_common())})" if bad else ""
    lines.append(f"  unreadable clips: {len(bad)}{by_kind}")
    lines += _listing([f"[{r.get('kind', 'decode')}] {r['error']}" for r in bad], args.show)
    lines.append(f"  bad split-file entries: {len(dataset.bad_lines)}")
    lines += _listing([str(b) for b in dataset.bad_lines], args.show)
    if args.timings and results:
        lines.append("  slowest clips (seconds to open and decode):")
        lines += [f"    {r['seconds']:.3f}  {r['path']}" for r in sorted(results, key=lambda r: -r["seconds"])[:5]]
    problems = len(bad) + len(dataset.bad_lines) + (len(short) if args.fail_on_short else 0)
    lines.append("")
    lines.append(f"result: {'clean' if not problems else f'{problems} problem(s) found'}")
    return "\n".join(lines), problems
