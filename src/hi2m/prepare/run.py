"""``hi2m data prepare``: raw videos -> face-tracked crops in a layout the ``csv`` adapter reads.

Each clip job (:mod:`hi2m.prepare.sources`) is decoded once, sequentially; the face is found and followed
by :class:`hi2m.infer.track.FaceCrops` -- the detector and tracker of ``hi2m predict`` -- and every frame
with a face becomes a square crop of ``size`` pixels, written to disk as it is made (memory stays flat in
the video's length). Frames without a face are left out of the clip; a clip whose face coverage or
length falls short is not kept, and the report says why.

Output (``DST``)::

    classes.txt                       the class list, one name per line (the csv adapter reads it)
    <split>.csv                       path,label -- what ``data.dataset=csv data.root=DST`` trains on
    manifest-<split>.csv              per clip: label, source file, frame span, face coverage, detector, size
    prepare-report.csv                every source that was not used, with the reason
    clips/<split>/<label>/<id>.mp4    H.264 (or a folder of jpg frames with --format frames)
    .prepare/records/<id>.json        one record per finished job: what makes a rerun resume

Rerunning the same command skips every finished job (kept or failed; ``--retry-failed`` retries the
failed ones) and writes byte-identical manifests.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hi2m.data.boundary import file_boundary
from hi2m.data.errors import DecodeError
from hi2m.infer.detect import Box, iou
from hi2m.infer.frames import SequentialVideo
from hi2m.infer.track import FaceCrops, MultiFaceTracker
from hi2m.io.files import atomic_write
from hi2m.prepare.sources import Job, Problem, collect
from hi2m.progress import Progress

FACE_CHOICES = ("largest", "longest")
FORMATS = ("mp4", "frames")


@dataclass
class PrepareOptions:
    """How clips are cut and cropped (the flags of ``hi2m data prepare``)."""

    size: int = 224  # crop side in pixels
    format: str = "mp4"  # "mp4" (H.264) or "frames" (a folder of jpg per clip)
    fps: float | None = None  # sample the source at about this rate; None: every frame
    frames: int | None = None  # a fixed number of frames per clip, spread evenly over it (DFEW: 16)
    margin: float = 0.25  # crop side = (1 + margin) x the face box's longer side, as in predict
    face: str = "largest"  # which face when there are several: the largest at the start, or the longest track
    detector: str = "auto"  # auto (MTCNN when installed, else Haar), mtcnn, haar
    detect_every: int = 2  # run the detector on every n-th sampled frame
    search: float = 2.5  # detect near the tracked face (face sides; 0: the whole frame)
    min_face_coverage: float = 0.5  # share of the sampled frames that must show the face
    min_frames: int = 8  # fewest frames with a face in a kept clip (at least ``frames`` when that is set)
    time_limit: float = 600.0  # seconds of decoding per source before it is given up (0: none)
    quality: int = 18  # H.264 CRF of mp4 clips (lower: better), or jpg quality 95 for frames

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.face not in FACE_CHOICES:
            raise ValueError(f"face must be one of {FACE_CHOICES}, got {self.face!r}")
        if self.size < 16 or self.detect_every < 1 or self.min_frames < 1:
            raise ValueError("size must be >= 16, detect_every and min_frames >= 1")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if not 0.0 < self.min_face_coverage <= 1.0:
            raise ValueError(f"min_face_coverage must be in (0, 1], got {self.min_face_coverage}")

    @property
    def needed_frames(self) -> int:
        return max(self.min_frames, self.frames or 0)


@dataclass
class Summary:
    """What a run did; ``records`` holds every current job's record (kept and failed)."""

    kept: int = 0
    failed: int = 0
    skipped_done: int = 0
    problems: list[Problem] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> dict[str, int]:
        """Sources not used, counted by kind of reason."""
        kinds = [KIND_NAMES.get(r.get("kind", ""), r.get("kind", "")) for r in self.records if r["status"] != "ok"]
        kinds += [KIND_NAMES.get(p.kind, p.kind) for p in self.problems]
        return {k: kinds.count(k) for k in sorted(set(kinds))}


KIND_NAMES = {"decode": "unreadable", "header": "unreadable", "missing": "missing", "timeout": "too slow to decode",
              "unexpected": "unexpected error", "no_face": "no face", "short": "too short",
              "list": "malformed list row", "label": "label not in the class list", "outside": "path outside the root",
              "not_video": "not a video", "duplicate": "listed twice"}


# ---- one clip ------------------------------------------------------------------------------------------


def prepare_clip(job: Job, opts: PrepareOptions, dst: Path, detector) -> dict[str, Any]:
    """Cut, track and crop one job into ``dst``; returns its record (status ``ok`` or ``failed`` with the
    reason). Never raises for a bad source: whatever fails on it is that job's reason."""
    record: dict[str, Any] = {"id": job.clip_id, "source": job.name, "label": job.label, "split": job.split,
                              "start": job.start, "end": job.end, "detector": getattr(detector, "name", "custom"),
                              "crop_size": opts.size}
    work = dst / ".prepare" / "work" / job.clip_id
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with file_boundary(job.source, opts.time_limit):
            if opts.face == "longest":
                detector = _LongestTrack(_detections(job, opts, detector), getattr(detector, "name", "custom"))
            crops = _track_and_crop(job, opts, detector, work)
            record.update(_finish_clip(crops, job, opts, dst, work))
    except DecodeError as err:
        record.update(status="failed", reason=err.reason, kind=err.kind)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return record


class _Span:
    """The job's span of its source at the sampling rate: iterate for (source frame index, RGB frame);
    ``fps`` is the sampled rate once iteration has started."""

    def __init__(self, job: Job, opts: PrepareOptions):
        self.job, self.opts, self.fps = job, opts, 0.0

    def __iter__(self):
        job = self.job
        with SequentialVideo(job.source) as video:
            stride = max(1, round(video.info.fps / self.opts.fps)) if self.opts.fps else 1
            self.fps = video.info.fps / stride
            for index, t, rgb in video.frames(stride, start=job.start):  # seeks: a late span is not decoded from 0
                if job.end is not None and t >= job.end:
                    break
                if rgb is None or (job.start is not None and t < job.start):
                    continue
                yield index, rgb


def _track_and_crop(job: Job, opts: PrepareOptions, detector, work: Path) -> dict[str, Any]:
    """Every sampled frame through FaceCrops; crops with a face go to ``work`` as jpg (in order)."""
    import cv2

    faces = FaceCrops(detector, opts.size, opts.margin, opts.detect_every,
                      0.0 if isinstance(detector, _LongestTrack) else opts.search)
    indices: list[int] = []  # source frame index per sampled frame
    kept: list[int] = []  # source frame index per written crop

    def save(resolved):
        for k, _boxes, crops in resolved:
            crop = crops.get(0)  # the one tracked face
            if crop is not None:
                cv2.imwrite(str(work / f"{len(kept):06d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
                kept.append(indices[k])

    span = _Span(job, opts)
    for index, rgb in span:
        indices.append(index)
        save(faces.push(rgb))
    save(faces.finish())
    return {"sampled": len(indices), "kept": kept, "fps": span.fps}


def _finish_clip(crops: dict[str, Any], job: Job, opts: PrepareOptions, dst: Path, work: Path) -> dict[str, Any]:
    """Check coverage and length, pick the output frames and move them into place (atomically)."""
    sampled, kept = crops["sampled"], crops["kept"]
    coverage = len(kept) / sampled if sampled else 0.0
    if sampled == 0:
        raise DecodeError(job.source, "too short: no frame in the requested span", kind="short")
    if not kept:
        raise DecodeError(job.source, f"no face: none found in {sampled} sampled frames", kind="no_face")
    if coverage < opts.min_face_coverage:
        raise DecodeError(job.source, f"face coverage too low: a face in {100 * coverage:.0f}% of {sampled} "
                                      f"sampled frames (needs {100 * opts.min_face_coverage:.0f}%)", kind="no_face")
    if len(kept) < opts.needed_frames:
        raise DecodeError(job.source, f"too short: {len(kept)} frames with a face, needs {opts.needed_frames}",
                          kind="short")
    pick = list(range(len(kept)))
    if opts.frames:  # spread evenly from the first to the last frame, DFEW's fixed-length clips
        pick = [int(round(x)) for x in np.linspace(0, len(kept) - 1, opts.frames)]
    rel = Path("clips") / job.split / job.label / (job.clip_id + (".mp4" if opts.format == "mp4" else ""))
    target = dst / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    files = [work / f"{i:06d}.jpg" for i in pick]
    if opts.format == "frames":
        folder = work / "out"
        folder.mkdir()
        for n, f in enumerate(files, start=1):
            shutil.copyfile(f, folder / f"{n:05d}.jpg")
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
    else:
        import cv2

        from hi2m.data.writer import write_video

        frames = (cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files)
        fps = crops["fps"] if not opts.frames else max(1.0, crops["fps"] * len(pick) / len(kept))
        atomic_write(target, lambda tmp: write_video(tmp, frames, fps=fps, options={"crf": str(opts.quality)},
                                                     container_format="mp4"))
    return {"status": "ok", "reason": "", "clip": rel.as_posix(), "start_frame": kept[pick[0]],
            "end_frame": kept[pick[-1]], "frames": len(pick), "face_coverage": round(coverage, 4),
            "fps": round(crops["fps"], 3)}


# ---- --face longest: choose the track first, then replay it -------------------------------------------


def _detections(job: Job, opts: PrepareOptions, detector) -> list[list[Box]]:
    """Pass 1: the detector's boxes on the frames FaceCrops will ask about (every ``detect_every``-th
    sampled frame and the last one), whole frames."""
    found: list[list[Box]] = []
    last = None
    n = 0
    for n, (_, rgb) in enumerate(_Span(job, opts), start=1):
        last = rgb
        if (n - 1) % opts.detect_every == 0:
            found.append(detector.detect(rgb))
            last = None
    if last is not None:
        found.append(detector.detect(last))
    return found


class _LongestTrack:
    """Pass 2 of ``--face longest``: answers FaceCrops' detection calls, in order, with the box of the face
    seen on the most detection frames. The faces are linked by ``predict --faces all``'s tracker
    (:class:`MultiFaceTracker`, unsmoothed: the detections themselves; a gap of up to two frames bridged)."""

    def __init__(self, detections: list[list[Box]], name: str, min_iou: float = 0.3, max_gap: int = 2):
        self.name = name
        tracker = MultiFaceTracker(min_iou=min_iou, smoothing=0.0, max_missed=0, reid_steps=max_gap)
        tracks: dict[int, dict[int, Box]] = {}  # face id -> {call: its detection}
        for call, boxes in enumerate(detections):
            for face, box in tracker.step(boxes).items():
                tracks.setdefault(face, {})[call] = box
        chosen = max(tracks.values(), key=lambda t: (len(t), sum(b.area for b in t.values())), default=None)
        self.boxes = chosen or {}
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Box]:
        box = self.boxes.get(self.calls)
        self.calls += 1
        return [box] if box is not None else []


# ---- the run ---------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(detector_name: str) -> None:
    import cv2
    import torch

    torch.set_num_threads(1)  # the processes are the parallelism
    cv2.setNumThreads(1)
    _WORKER["detector"] = _make_detector(detector_name)


def _make_detector(name: str):
    from hi2m.infer.detectors import make_detector

    return make_detector(name, device="cpu")


def _run_job(job: Job, opts: PrepareOptions, dst: Path) -> dict[str, Any]:
    return prepare_clip(job, opts, dst, _WORKER["detector"])


def prepare(src: str | os.PathLike[str], dst: str | os.PathLike[str], opts: PrepareOptions | None = None,
            classes: list[str] | None = None, root: str | os.PathLike[str] | None = None, workers: int = 1,
            retry_failed: bool = False, quiet: bool = False, detector=None, stream=None,
            test_fraction: float = 0.0) -> Summary:
    """Prepare every clip job of ``src`` into ``dst`` (see the module docstring); returns the summary.
    ``detector``: an object with ``detect(frame)`` used in this process instead of ``opts.detector``
    (tests); ``workers`` > 1 runs jobs in that many processes; ``test_fraction``: hold out that share of
    each class's videos as the ``test`` split when the source names no splits."""
    opts = opts or PrepareOptions()
    dst = Path(dst).absolute()
    jobs, problems, classes = collect(src, classes, root, test_fraction, exclude=dst)
    records_dir = dst / ".prepare" / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    _same_options(dst, opts, detector)
    summary = Summary(problems=problems, classes=classes)
    stream = stream or sys.stderr
    bar = Progress(0, "prepare", unit="clips", stream=stream, quiet=quiet)

    done: dict[str, dict[str, Any]] = {}
    todo: list[Job] = []
    seen: set[str] = set()
    for job in jobs:
        if job.clip_id in seen:
            problems.append(Problem(job.where or str(job.source), "the same clip is listed twice (kept once)",
                                    "duplicate"))
            continue
        seen.add(job.clip_id)
        record = _read_record(records_dir / f"{job.clip_id}.json")
        finished = record is not None and (
            (record["status"] == "ok" and (dst / record["clip"]).exists()) or
            (record["status"] == "failed" and not retry_failed))
        if finished:
            done[job.clip_id] = record
        else:
            todo.append(job)
    summary.skipped_done = len(done)
    if done:
        failed_before = sum(r["status"] == "failed" for r in done.values())
        bar.line(f"hi2m data prepare: {len(done)} clips finished by an earlier run are skipped"
                 + (f" ({failed_before} of them failed; --retry-failed retries those)" if failed_before else ""))
    if todo:
        from hi2m.infer.detectors import detector_name

        name = getattr(detector, "name", None) or detector_name(opts.detector)
        bar.line(f"hi2m data prepare: {len(todo)} clips from {len(set(j.source for j in todo))} videos, "
                 f"{workers} worker(s), detector {name}, face {opts.face}, {opts.size}px {opts.format}")
    bar.reset(len(todo), "prepare")

    def finished(i: int, job: Job, record: dict[str, Any]) -> None:
        atomic_write(records_dir / f"{job.clip_id}.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(record, sort_keys=True) + "\n"))
        done[job.clip_id] = record
        if record["status"] == "ok":
            bar.line(f"[{i}/{len(todo)}] {job.name}: kept {record['frames']} frames, face in "
                     f"{100 * record['face_coverage']:.0f}%")
        else:
            bar.line(f"[{i}/{len(todo)}] {job.name}: not used, {record['reason']}", always=True)
        bar.update(i)

    if workers <= 1 or detector is not None or len(todo) <= 1:
        det = detector or (_make_detector(opts.detector) if todo else None)
        for i, job in enumerate(todo, start=1):
            finished(i, job, prepare_clip(job, opts, dst, det))
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # FFmpeg and OpenMP state do not survive fork
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(opts.detector,)) as pool:
            futures = {pool.submit(_run_job, job, opts, dst): job for job in todo}
            for i, future in enumerate(as_completed(futures), start=1):
                finished(i, futures[future], future.result())
    bar.close()

    summary.records = [done[job_id] for job_id in sorted(done) if job_id in seen]
    summary.kept = sum(r["status"] == "ok" for r in summary.records)
    summary.failed = sum(r["status"] != "ok" for r in summary.records)
    write_outputs(dst, summary)
    return summary


def _same_options(dst: Path, opts: PrepareOptions, detector) -> None:
    """The options that shape the clips are kept in ``.prepare/options.json``; a rerun into the same folder
    with other ones would mix two kinds of clips, so it is refused naming what differs."""
    from hi2m.infer.detectors import detector_name

    current = {k: v for k, v in asdict(opts).items() if k != "time_limit"}
    current["detector"] = getattr(detector, "name", None) or detector_name(opts.detector)
    path = dst / ".prepare" / "options.json"
    saved = _read_record(path)
    if saved is not None and saved != current:
        diff = ", ".join(f"{k}: {saved.get(k)!r} before, {current.get(k)!r} now" for k in sorted(set(saved) | set(current))
                         if saved.get(k) != current.get(k))
        raise ValueError(f"{dst} holds clips prepared with other options ({diff}); use another --out, or the "
                         "same options to continue it")
    if saved is None:
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(current, sort_keys=True) + "\n"))


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # a half-written record cannot exist (atomic writes); an unreadable one is redone


MANIFEST_COLUMNS = ("path", "label", "source", "start_frame", "end_frame", "frames", "face_coverage", "fps",
                    "detector", "crop_size")


def write_outputs(dst: Path, summary: Summary) -> None:
    """classes.txt, <split>.csv, manifest-<split>.csv and prepare-report.csv from the records (sorted, so a
    rerun writes the same bytes)."""
    import csv
    import io

    def write_csv(path: Path, header: tuple[str, ...], rows: list[list[Any]]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))

    atomic_write(dst / "classes.txt", lambda tmp: Path(tmp).write_text("".join(c + "\n" for c in summary.classes)))
    kept = sorted((r for r in summary.records if r["status"] == "ok"), key=lambda r: r["clip"])
    for split in sorted({r["split"] for r in kept} | {"train"}):
        rows = [r for r in kept if r["split"] == split]
        write_csv(dst / f"{split}.csv", ("path", "label"), [[r["clip"], r["label"]] for r in rows])
        write_csv(dst / f"manifest-{split}.csv", MANIFEST_COLUMNS,
                  [[r["clip"], r["label"], r["source"], r["start_frame"], r["end_frame"], r["frames"],
                    f"{r['face_coverage']:.4f}", r["fps"], r["detector"], r["crop_size"]] for r in rows])
    report = sorted([[p.where, p.reason] for p in summary.problems] +
                    [[r["source"], r["reason"]] for r in summary.records if r["status"] != "ok"])
    write_csv(dst / "prepare-report.csv", ("source", "reason"), report)


def format_summary(summary: Summary, dst: Path) -> str:
    lines = [f"hi2m data prepare: {summary.kept} clips kept in {dst} ({len(summary.classes)} classes: "
             f"{', '.join(summary.classes)}); {summary.skipped_done} were finished before this run"]
    if summary.failed or summary.problems:
        reasons = ", ".join(f"{k}: {v}" for k, v in summary.reasons.items())
        lines.append(f"hi2m data prepare: {summary.failed + len(summary.problems)} sources not used ({reasons}); "
                     f"each named with its reason in {dst / 'prepare-report.csv'}")
    lines.append(f"hi2m data prepare: train on it with data.dataset=csv data.root={dst}")
    return "\n".join(lines)
