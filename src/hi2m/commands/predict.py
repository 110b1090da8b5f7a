"""``hi2m predict VIDEO... --model DIR``: expressions over time for whole videos (see docs/inference.md).

Each video is isolated: whatever fails on one (unreadable, damaged partway, no face, too slow to decode,
or an unexpected error, named with its type) gives that video a ``failed`` / ``no_face`` status with the
reason, and the others run. Results are written as each video finishes (see
:class:`hi2m.infer.result.ResultWriter`), so an interrupted batch keeps every finished result.

Exit codes: 0 every video got predictions (some windows may lack a face); 1 at least one video
failed (unreadable, or no face anywhere) -- the other videos still get their results;
2 usage error (bad option, model directory that cannot be loaded, output that cannot be written).

``--live SOURCE`` (a camera, a stream, ``-``): a JSON line per window as it closes, then an end line; exit 0
after a clean stop (SIGINT / SIGTERM, the stream's end, a stall after frames), 2 when the source cannot be
opened or never sends a frame (one line naming it).
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="*", metavar="VIDEO", help="video files (anything FFmpeg decodes)")
    live = parser.add_argument_group("live (instead of VIDEO files)")
    live.add_argument("--live", default=None, metavar="SOURCE",
                      help="rolling predictions from a camera (/dev/video0, or a name FFmpeg's camera formats take), "
                           "a stream URL FFmpeg reads (rtsp, http, udp, tcp, srt) or - (a stream on standard input): "
                           "a JSON line per window on stdout or --out; SIGINT / SIGTERM stop it cleanly")
    live.add_argument("--reconnect", type=int, default=0, metavar="N",
                      help="reopen a stream that ends or breaks, up to N times (default 0)")
    live.add_argument("--stall-seconds", type=float, default=10.0,
                      help="a source that delivers no frame for this long is given up (default 10)")
    live.add_argument("--queue", type=int, default=8, metavar="FRAMES",
                      help="decoded frames waiting for the model; when full the oldest is dropped and counted "
                           "(default 8)")
    parser.add_argument("--model", required=True, help="fine-tuned model directory (config.json + model.safetensors)")
    parser.add_argument("--format", choices=("json", "jsonl", "csv"), default=None,
                        help="json (with --out the file is rewritten after every video), jsonl (a line per video) "
                             "or csv (rows per video); default: from the --out suffix (.csv, .jsonl), else json. "
                             "Every video's result is written as it finishes")
    parser.add_argument("--out", default=None, help="write the results here instead of stdout")
    parser.add_argument("--annotated", default=None, metavar="PATH",
                        help="write an annotated H.264 .mp4 (a folder when several videos are given)")
    parser.add_argument("--report", default=None, metavar="PATH.html",
                        help="write one self-contained HTML report of every video (plots over time, segments, the "
                             "face where each expression peaked, failures with their reasons); rewritten after "
                             "every video, opens offline in any browser")
    g = parser.add_argument_group("sampling and face tracking")
    g.add_argument("--faces", choices=("one", "all"), default="one",
                   help="one (default): the largest face, followed through the video; all: every face, each with "
                        "an id that stays with it and its own windows (JSON/CSV get a face_id)")
    g.add_argument("--reid-seconds", type=float, default=3.0,
                   help="--faces all: a face that leaves and comes back within this many seconds, near where it "
                        "left and of a similar size, keeps its id (default 3)")
    g.add_argument("--sample-fps", type=float, default=7.5, help="frames per second the model sees (default 7.5)")
    g.add_argument("--stride", type=int, default=None, help="fixed frame stride (overrides --sample-fps)")
    g.add_argument("--hop", type=float, default=1.0, help="seconds between window starts (default 1.0)")
    g.add_argument("--detect-every", type=int, default=2, help="detect faces on every n-th sampled frame (default 2)")
    g.add_argument("--search", type=float, default=2.5,
                   help="while a face is tracked, detect only in a window this many face sides wide "
                        "(the whole frame when the face is not found there; 0 = always the whole frame)")
    g.add_argument("--margin", type=float, default=0.25, help="face crop margin (default 0.25)")
    g.add_argument("--min-face-coverage", type=float, default=0.5,
                   help="share of a window's frames that must show a face (default 0.5)")
    g.add_argument("--batch-size", type=int, default=4, help="windows per model call (default 4)")
    g.add_argument("--detector", choices=("auto", "mtcnn", "haar"), default="auto",
                   help="face detector: auto (default) takes MTCNN when its weights are installed "
                        "(pip install --no-deps facenet-pytorch==2.6.0), else OpenCV's Haar cascade")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="run the model with torch (default) or through ONNX Runtime (CPU; needs the export extra)")
    g.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32 (default) or bf16 autocast (torch backend; fastest on CPUs with bf16 units, "
                        "probabilities within ~1e-2)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no per-video lines on stderr (failures are still named)")
    g.add_argument("--time-limit", type=float, default=600.0,
                   help="seconds of decoding allowed per video before it is given up (detection and the model "
                        "do not count; default 600, 0 = no limit)")


def _say(message: str) -> None:
    print(f"hi2m predict: {message}", file=sys.stderr)


def _progress_callback(bar):
    """A ``progress(seconds done, duration)`` for Predictor.predict that moves ``bar``."""

    def update(done: float, duration: float | None) -> None:
        if duration and duration > 0:
            if bar.total != duration:
                bar.total = duration
            bar.update(min(done, duration))

    return update


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from hi2m.data.errors import DecodeError
    from hi2m.infer.predictor import PredictOptions, Predictor
    from hi2m.infer.result import FAILED, ResultWriter, VideoResult
    from hi2m.model.classifier import VideoClassifier
    from hi2m.io.weights import load_pretrained
    from hi2m.progress import Progress

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        options = PredictOptions(sample_fps=args.sample_fps, stride=args.stride, hop=args.hop,
                                 detect_every=args.detect_every, search=args.search, margin=args.margin,
                                 min_face_coverage=args.min_face_coverage, batch_size=args.batch_size,
                                 backend=args.backend, precision=args.precision, time_limit=args.time_limit,
                                 faces=args.faces, reid_seconds=args.reid_seconds)
        model = load_pretrained(args.model, map_location=args.device)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as err:
        _say(f"error: {err}")
        return EXIT_USAGE
    if not isinstance(model, VideoClassifier):
        _say(f"error: {args.model} holds a pretraining model; predict needs a fine-tuned classifier")
        return EXIT_USAGE
    annotated_dir = None
    if args.annotated and len(args.videos) > 1:
        annotated_dir = Path(args.annotated)
        if annotated_dir.suffix.lower() == ".mp4":
            _say("error: with several videos --annotated must name a folder, not an .mp4 file")
            return EXIT_USAGE

    if bool(args.live) == bool(args.videos):
        _say("error: give VIDEO files or --live SOURCE (one of them)")
        return EXIT_USAGE
    predictor = Predictor(model, detector=args.detector, options=options, device=args.device)
    try:
        name = predictor.detector_name  # builds the detector: --detector mtcnn without weights fails here
        if not args.quiet:
            _say(f"face detector: {name}")
    except FileNotFoundError as err:  # --detector mtcnn without its weights
        _say(f"error: {err}")
        return EXIT_USAGE
    if args.live:
        return _run_live(args, predictor)
    try:
        writer = ResultWriter(output_format(args.format, args.out), args.out, str(args.model), predictor.class_names,
                              face_ids=args.faces == "all")
    except OSError as err:
        _say(f"error: cannot write {args.out} ({err})")
        return EXIT_USAGE
    report = None
    if args.report:
        from hi2m.infer.report import ReportWriter

        try:
            report = ReportWriter(args.report, str(args.model), predictor.class_names)
        except OSError as err:
            writer.close()
            _say(f"error: cannot write the report {args.report} ({err})")
            return EXIT_USAGE
    failed = 0
    bar = Progress(0, unit="s", quiet=args.quiet)  # a bar on a terminal only; one line per video otherwise
    try:
        for i, path in enumerate(args.videos):
            bar.reset(0, f"[{i + 1}/{len(args.videos)}] {Path(path).name}")
            try:  # any failure on this file is a DecodeError naming it
                result = predictor.predict(path, progress=_progress_callback(bar) if bar.tty else None)
            except DecodeError as err:
                result = VideoResult(path=path, status=FAILED, class_names=predictor.class_names, message=str(err))
            bar.clear()
            writer.add(result)
            if report is not None:
                report.add(result)
            failed += not result.ok
            _report(result, args.quiet)
            if args.annotated and result.ok:
                target = annotated_dir / f"{Path(path).stem}.annotated.mp4" if annotated_dir else Path(args.annotated)
                _annotate(result, target)
    finally:
        bar.close()
        writer.close()
    if report is not None and not args.quiet:
        _say(f"report written to {args.report}")
    if failed:
        _say(f"{failed} of {len(args.videos)} videos failed")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _run_live(args: argparse.Namespace, predictor) -> int:
    """``--live``: a JSON line per window as it closes, then one ``{"event": "end", ...}`` line; exit 0 after a
    clean stop (signal, end of stream, stall after frames), 2 when the source cannot be opened or sends nothing."""
    import json
    import signal

    from hi2m.infer.live import LiveError, LiveSource, run_live

    source = LiveSource(args.live, queue_size=args.queue, stall=args.stall_seconds, reconnect=args.reconnect,
                        say=_say)
    try:
        out = open(args.out, "w") if args.out else sys.stdout  # noqa: SIM115 - closed below
    except OSError as err:
        _say(f"error: cannot write {args.out} ({err})")
        return EXIT_USAGE

    def emit(record) -> None:
        out.write(json.dumps(record) + "\n")
        out.flush()

    def stop(signum, frame) -> None:
        source.stats.ended = source.stats.ended or f"signal {signal.Signals(signum).name}"
        source.stop.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            source.start()
            if not args.quiet:
                _say(f"live: {args.live} (face detector {predictor.detector_name}); stop with Ctrl-C or SIGTERM")
            stats = run_live(predictor, source, emit)
        except LiveError as err:
            _say(f"error: {err}")
            return EXIT_USAGE
        emit({"event": "end", "reason": stats.ended, "decoded_frames": stats.decoded,
              "dropped_frames": stats.dropped, "sampled_frames": stats.sampled, "windows": stats.windows,
              "reconnects": stats.reconnects})
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        source.close()
        if out is not sys.stdout:
            out.close()
    _say(f"{args.live}: {stats.ended}; {stats.windows} windows, {stats.dropped} of {stats.decoded} frames dropped")
    return EXIT_OK


def output_format(chosen: str | None, out: str | None) -> str:
    """``--format``, else the one the ``--out`` file's suffix names, else json."""
    if chosen:
        return chosen
    suffix = out.rsplit(".", 1)[-1].lower() if out and "." in out else ""
    return suffix if suffix in ("csv", "jsonl") else "json"


def _report(result, quiet: bool = False) -> None:
    note = f" ({result.message})" if result.message else ""
    if result.ok and quiet:
        return
    if result.ok:
        summary = result.summary
        _say(f"{result.path}: {result.status}, dominant {summary['dominant']} over "
             f"{summary['windows_with_face']} windows{note}")
    else:
        _say(f"{result.path}: FAILED [{result.status}] {result.message}")


def _annotate(result, target) -> None:
    """Draw the annotated video; a failure here is reported and does not stop the batch."""
    from hi2m.data.boundary import file_boundary
    from hi2m.data.errors import DecodeError
    from hi2m.infer.annotate import write_annotated

    try:
        with file_boundary(result.path):
            write_annotated(result, target)
    except (DecodeError, OSError) as err:
        _say(f"{result.path}: annotated video not written ({err})")
        return
    _say(f"{result.path}: annotated video written to {target}")
