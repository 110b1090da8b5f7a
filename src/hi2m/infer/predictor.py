"""Expression prediction on whole videos: decode -> detect / track the face -> crop -> sliding windows.

Sampling. The model sees ``cfg.num_frames`` frames ``stride`` source frames apart (default: the stride
that samples the video at about ``sample_fps`` = 7.5 frames per second, i.e. stride 4 at 30 fps, the
DFEW convention the models are fine-tuned with). Windows start every ``hop`` seconds, rounded to
whole sampled frames; one last window is aligned with the end of the video so every frame is
covered. A video with fewer sampled frames than one window gives one window whose frames are
repeated in a loop (``looped = true``).

Faces. Detection runs on every ``detect_every``-th sampled frame; :class:`FaceTracker` follows the
largest face (see :mod:`hi2m.infer.track`) and frames in between get interpolated boxes. A window
is classified when at least ``min_face_coverage`` of its frames have a face (frames without one
borrow the nearest face crop of the window); otherwise it is reported with ``face = false``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from hi2m.data.boundary import file_boundary
from hi2m.data.errors import DecodeError
from hi2m.data.transforms import EvalViews
from hi2m.infer.detect import Box, FaceDetector
from hi2m.infer.detectors import make_detector
from hi2m.infer.frames import SequentialVideo
from hi2m.infer.result import NO_FACE, OK, PARTIAL, Peak, VideoResult, WindowPrediction
from hi2m.infer.track import FaceCrops, FaceTracker, MultiFaceTracker
from hi2m.io.onnx import OnnxRunner
from hi2m.io.weights import load_pretrained
from hi2m.model.classifier import VideoClassifier


@dataclass
class PredictOptions:
    """Settings of :meth:`Predictor.predict` (the CLI flags of ``hi2m predict``)."""

    sample_fps: float = 7.5  # the model sees about this many frames per second ...
    stride: int | None = None  # ... unless a fixed frame stride is given
    hop: float = 1.0  # seconds between window starts
    detect_every: int = 2  # run the detector on every n-th sampled frame
    search: float = 2.5  # while a face is tracked, detect in a window this many face sides wide (0 = whole frame)
    margin: float = 0.25  # square crop side = (1 + margin) x the face box's longer side
    min_face_coverage: float = 0.5  # share of a window's frames that must show a face
    batch_size: int = 4  # windows per model call
    decode_threads: int = 0  # FFmpeg decoder threads (0 = automatic)
    backend: str = "torch"  # "torch" or "onnxruntime" (the exported graph, CPU)
    precision: str = "fp32"  # "fp32" or "bf16" (torch autocast; the torch backend only)
    time_limit: float = 600.0  # seconds of decoding allowed per video (detection and model excluded; 0 = none)
    faces: str = "one"  # "one": the largest face, followed (one timeline); "all": every face, its own id and timeline
    reid_seconds: float = 3.0  # faces "all": a face that leaves and comes back within this keeps its id

    def __post_init__(self) -> None:
        if self.sample_fps <= 0 or self.hop <= 0:
            raise ValueError(f"sample_fps and hop must be > 0, got {self.sample_fps}, {self.hop}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.search != 0 and self.search < 1.5:
            raise ValueError(f"search must be 0 (whole frame) or >= 1.5 face sides, got {self.search}")
        if self.detect_every < 1 or self.batch_size < 1:
            raise ValueError("detect_every and batch_size must be >= 1")
        if not 0.0 < self.min_face_coverage <= 1.0:
            raise ValueError(f"min_face_coverage must be in (0, 1], got {self.min_face_coverage}")
        if self.backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {self.backend!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.time_limit < 0:
            raise ValueError(f"time_limit must be >= 0 seconds (0 = no limit), got {self.time_limit}")
        if self.faces not in ("one", "all"):
            raise ValueError(f"faces must be 'one' or 'all', got {self.faces!r}")
        if self.reid_seconds < 0:
            raise ValueError(f"reid_seconds must be >= 0, got {self.reid_seconds}")
        if self.backend == "onnxruntime" and self.precision != "fp32":
            raise ValueError("the onnxruntime backend runs the fp32 graph: use precision 'fp32'")


@dataclass
class Features:
    """Encoder output for a batch of clips: per-token (B, N, D) and pooled (B, D) features."""

    tokens: torch.Tensor
    pooled: torch.Tensor


class Predictor:
    """A loaded model plus a face detector; see :func:`load`."""

    def __init__(self, model: torch.nn.Module, detector: FaceDetector | str | None = None,
                 options: PredictOptions | None = None, device: str | torch.device = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.cfg = model.cfg
        self.is_classifier = isinstance(model, VideoClassifier)
        self.class_names: tuple[str, ...] = tuple(getattr(model, "class_names", ()))
        self._detector = detector if detector is not None else "auto"
        self.options = options or PredictOptions()
        self._onnx = None  # the ONNX Runtime session of backend "onnxruntime", built on first use
        self._transform = EvalViews(self.cfg.image_size, 1, self.cfg.pixel_mean, self.cfg.pixel_std)
        self.timings: dict[str, float] = defaultdict(float)  # seconds per stage, summed over calls

    @property
    def detector(self) -> FaceDetector:
        """The face detector; one given by name (``auto``: the best installed) is built on first use."""
        if isinstance(self._detector, str):  # OpenCV / MTCNN weights only when a video is processed
            self._detector = make_detector(self._detector, device=str(self.device))
        return self._detector

    @property
    def detector_name(self) -> str:
        return getattr(self.detector, "name", type(self.detector).__name__)

    # ---- model calls ------------------------------------------------------------------------
    def normalise(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 clips (B, T, H, W, 3) -> the model's input (B, C, T, S, S) on its device, through the one
        evaluation transform (:class:`hi2m.data.transforms.EvalViews`: shorter side to S, centre crop,
        normalisation; face crops are already S x S)."""
        return self._transform.batch(frames).to(self.device)

    @torch.inference_mode()
    def classify(self, frames: np.ndarray) -> np.ndarray:
        """Face crops uint8 (B, T, S, S, 3) -> class probabilities (B, K), with the options' backend."""
        if not self.is_classifier:
            raise TypeError("this model is a pretraining model (no classification head): "
                            "predict needs a fine-tuned classifier; extract_features works on both")
        video = self.normalise(frames)  # (B, C, T, S, S)
        if self.options.backend == "onnxruntime":
            if self._onnx is None:  # exported on first use (about a second for `small`)
                if self.device.type != "cpu":
                    raise ValueError("the onnxruntime backend runs on the CPU: use device 'cpu'")

                self._onnx = OnnxRunner(self.model)
            return torch.from_numpy(self._onnx(video.numpy())).softmax(dim=-1).numpy()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.options.precision == "bf16"):
            logits = self.model(video)  # (B, K)
        return logits.float().softmax(dim=-1).cpu().numpy()

    @torch.inference_mode()
    def extract_features(self, clip: np.ndarray | torch.Tensor) -> Features:
        """Encoder features of one clip or a batch.

        ``clip``: uint8 frames (T, H, W, 3) or (B, T, H, W, 3), T = the model's num_frames (frames are
        centre-cropped to a square and resized to the model's input size), or an already normalised
        float tensor (B, C, T, S, S). Returns per-token features (B, N, D) (tokens in time-major order
        over the (T', H', W') grid ``cfg.grid``) and the pooled feature (B, D) the classifier's head
        sees (for a pretraining model: the mean of the encoder's tokens).
        """
        if isinstance(clip, torch.Tensor) and clip.is_floating_point():
            video = clip.to(self.device)
        else:
            video = self.normalise(self._checked(np.asarray(clip)))
        if self.is_classifier:
            tokens, pooled = self.model.forward_features(video)  # (B, N, D), (B, D)
        else:
            tokens = self.model.encoder(video)  # (B, N, D)
            pooled = tokens.mean(dim=1)  # (B, D)
        return Features(tokens=tokens.cpu(), pooled=pooled.cpu())

    def _checked(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) or (B, T, H, W, 3) with the model's T, as (B, T, H, W, 3)."""
        if frames.ndim == 4:
            frames = frames[None]
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames (T, H, W, 3) or (B, T, H, W, 3), got {frames.dtype} {frames.shape}")
        if frames.shape[1] != self.cfg.num_frames:
            raise ValueError(f"the model takes {self.cfg.num_frames} frames per clip, got {frames.shape[1]}")
        return frames

    # ---- videos -------------------------------------------------------------------------------
    def predict(self, path: str | Path, progress: Callable[[float, float | None], None] | None = None) -> VideoResult:
        """Predict expressions over a whole video. Raises :class:`hi2m.data.errors.DecodeError`
        (naming the file, with the original exception as its cause) when it cannot be read or anything
        else fails on it; a video without a face gives status ``no_face``; a video whose decoding breaks
        after some frames gives status ``partial`` with predictions for the frames before the break.
        ``progress(seconds done, duration or None)`` is called after every decoded frame (a
        :class:`hi2m.progress.Progress` redraws at most five times a second)."""
        if not self.is_classifier:
            self.classify(np.zeros((0,)))  # raises the explanatory TypeError
        with file_boundary(path, self.options.time_limit):
            return _VideoRun(self, str(path), progress).result()

    predict_video = predict  # its name before 0.1.0's Python API; the same method


class _Timeline:
    """One face's sliding windows (the whole video's single face, or one track of ``faces="all"``)."""

    def __init__(self, face: int | None, first: int) -> None:
        self.face = face  # None: the one-face mode (no id in the output)
        self.crops: dict[int, np.ndarray] = {}  # k -> (S, S, 3) crop, released once no window needs it
        self.boxes: dict[int, Box] = {}  # k -> box, every sampled frame where this face is
        self.first = first  # the first k with this face
        self.next_start = first  # k of the next window's first frame
        self.last_seen = first  # the last k with this face
        self.closed = False  # forgotten by the tracker: its windows are done, its crops released
        self.last_window: WindowPrediction | None = None


class _VideoRun:
    """The state of one video's pass (see the module docstring for the algorithm)."""

    def __init__(self, predictor: Predictor, path: str,
                 progress: Callable[[float, float | None], None] | None = None) -> None:
        self.p = predictor
        self.progress = progress
        self.opts = predictor.options
        self.path = path
        self.T = predictor.cfg.num_frames
        self.size = predictor.cfg.image_size
        self.frame_index: list[int] = []  # per sampled frame k: source frame index
        self.frame_time: list[float] = []  # per k: seconds
        self.timelines: dict[int, _Timeline] = {}  # face id -> its windows' state
        if self.opts.faces == "one":  # one face, the whole video long, found or not
            self.timelines[0] = _Timeline(None, 0)
        self.windows: list[WindowPrediction] = []
        self.queue: list[tuple[WindowPrediction, np.ndarray]] = []
        self.peaks: dict[tuple[int, str], Peak] = {}  # (face, class) -> where it peaked, with the face there
        self.resolved = 0  # sampled frames with their boxes and crops known
        self.batch_size = self.opts.batch_size  # windows per model call
        self.on_window: Callable[[WindowPrediction], None] | None = None  # each window once it is final

    # -- the pass ------------------------------------------------------------------------------
    def result(self) -> VideoResult:
        timings = self.p.timings
        with SequentialVideo(self.path, threads=self.opts.decode_threads) as video:
            fps = video.info.fps
            self._start(fps, self.opts.stride or max(1, round(fps / self.opts.sample_fps)))
            frames = video.frames(self.stride)
            index, self.broken = -1, None
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(frames, None)
                except DecodeError as err:
                    if not self.frame_index:
                        raise
                    self.broken = err  # keep what was decoded before the break
                    item = None
                timings["decode"] += time.perf_counter() - t0
                if item is None:
                    break
                timings["frames"] += 1
                index, t, rgb = item
                if rgb is not None:
                    self._add_sampled(index, t, rgb)
                if self.progress is not None:
                    self.progress(t, video.info.duration)
            info = video.info.to_dict()
            info["decoded_frames"] = index + 1
            info["rotation"] = video.rotation
        self._finish()
        return self._result(info, fps)

    def _start(self, fps: float, stride: int) -> None:
        """Sampling of a source at ``fps`` frames per second, every ``stride``-th frame; the face pipeline."""
        self.stride, self.frame_duration = stride, 1.0 / fps
        self.hop = max(1, round(self.opts.hop * fps / stride))  # in sampled frames
        self.faces = FaceCrops(self.p.detector, self.size, self.opts.margin, self.opts.detect_every,
                               self.opts.search, tracker=self._tracker(fps), timings=self.p.timings)

    def _tracker(self, fps: float):
        if self.opts.faces == "one":
            return FaceTracker()
        per_step = self.stride * self.opts.detect_every / fps  # seconds between detection frames
        return MultiFaceTracker(reid_steps=math.ceil(self.opts.reid_seconds / per_step))

    def _add_sampled(self, index: int, t: float, rgb: np.ndarray) -> None:
        self.frame_index.append(index)
        self.frame_time.append(t)
        self._take(self.faces.push(rgb))

    def _take(self, resolved: list[tuple[int, dict[int, Box], dict[int, np.ndarray]]]) -> None:
        """Store the boxes and crops of newly resolved sampled frames, then classify the windows they complete."""
        for k, boxes, crops in resolved:
            for face, box in boxes.items():
                line = self.timelines.get(face)
                if line is None:  # a new face: its windows start where it appears
                    line = self.timelines[face] = _Timeline(face, k)
                line.boxes[k], line.crops[k], line.last_seen = box, crops[face], k
        self.resolved += len(resolved)
        if resolved:
            for line in self.timelines.values():
                if not line.closed:
                    self._emit_windows(line)
            known = getattr(self.faces.tracker, "boxes", None)  # MultiFaceTracker: live and recently lost faces
            if known is not None:  # a face the tracker forgot will not come back under its id: finish it now,
                for face, line in self.timelines.items():  # so memory stays flat however many faces pass by
                    if not line.closed and face not in known:
                        self._close(line)

    def _emit_windows(self, line: _Timeline) -> None:
        # in the one-face mode windows run to the video's end, face or not; a face of "all" has windows while
        # it is there (a window may reach past its last frame: the frames without it count against coverage)
        while line.next_start + self.T <= self.resolved and (line.face is None or line.next_start <= line.last_seen):
            self._window(line, list(range(line.next_start, line.next_start + self.T)))
            line.next_start += self.hop
        keep_from = min(line.next_start, self.resolved - self.T)  # the last T stay for the tail window
        for k in [k for k in line.crops if k < keep_from]:
            del line.crops[k]

    def _finish(self) -> None:
        self._take(self.faces.finish())
        for line in self.timelines.values():
            if not line.closed:
                self._close(line)
        self._flush()

    def _close(self, line: _Timeline) -> None:
        """The last windows of a face (at the end of the video, or once the tracker forgot it)."""
        n = len(self.frame_index)
        if n < self.T:  # shorter than one window: loop its frames
            self._window(line, [j % n for j in range(self.T)], looped=True)
        else:
            self._emit_windows(line)
            end = n - 1 if line.face is None else line.last_seen
            last = line.last_window
            if last is None or last.end_frame < self.frame_index[end]:
                first = max(0, min(end - self.T + 1, n - self.T))
                self._window(line, list(range(first, first + self.T)))  # the tail window, aligned with the end
        line.closed = True
        line.crops = {}

    def _window(self, line: _Timeline, ks: list[int], looped: bool = False) -> None:
        has = [line.crops.get(k) is not None for k in ks]
        coverage = float(np.mean(has))
        first, last = min(ks), max(ks)
        w = WindowPrediction(
            index=len(self.windows), start_frame=self.frame_index[first], end_frame=self.frame_index[last],
            start_time=self.frame_time[first], end_time=self.frame_time[last] + self.frame_duration,
            face=coverage >= self.opts.min_face_coverage, face_coverage=coverage, looped=looped,
            face_id=line.face,
        )
        self.windows.append(w)
        line.last_window = w
        if not w.face:
            if self.on_window is not None:
                self.on_window(w)
            return
        with_face = [i for i, h in enumerate(has) if h]
        clip = []
        for i, k in enumerate(ks):  # a frame without a face borrows the nearest face crop
            src = k if has[i] else ks[min(with_face, key=lambda j: abs(j - i))]
            clip.append(line.crops[src])
        self.queue.append((w, np.stack(clip)))  # (T, S, S, 3)
        if len(self.queue) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self.queue:
            return
        t0 = time.perf_counter()
        probs = self.p.classify(np.stack([clip for _, clip in self.queue]))  # (B, K)
        self.p.timings["model"] += time.perf_counter() - t0
        for (w, clip), pr in zip(self.queue, probs):
            w.probs = [float(v) for v in pr]
            w.top = self.p.class_names[int(np.argmax(pr))]
            for name, prob in zip(self.p.class_names, w.probs):  # K crops per face, whatever the video's length
                key = (w.face_id or 0, name)
                if key not in self.peaks or prob > self.peaks[key].prob:
                    self.peaks[key] = Peak(prob, w.index, (w.start_time + w.end_time) / 2, clip[len(clip) // 2].copy())
            if self.on_window is not None:
                self.on_window(w)
        self.queue = []

    def _result(self, info: dict[str, Any], fps: float) -> VideoResult:
        self.windows.sort(key=lambda w: (w.start_frame, -1 if w.face_id is None else w.face_id))
        order = {w.index: i for i, w in enumerate(self.windows)}  # indices in the output's order
        for w in self.windows:
            w.index = order[w.index]
        for peak in self.peaks.values():
            peak.window = order[peak.window]
        n_face = sum(w.face for w in self.windows)
        faces = sorted(f for f, line in self.timelines.items() if line.face is not None)
        if n_face == 0:
            status = NO_FACE
            message = (f"no face found: {len(self.frame_index)} sampled frames, detector run on every "
                       f"{self.opts.detect_every}. sampled frame; no prediction")
            if faces:
                message = (f"{len(faces)} face track(s), none long enough for a window of {self.T} sampled "
                           f"frames with a face in {self.opts.min_face_coverage:.0%} of them; no prediction")
        elif n_face < len(self.windows):
            status = PARTIAL
            message = f"{len(self.windows) - n_face} of {len(self.windows)} windows without a face (face = false)"
        else:
            status, message = OK, ""
        if self.broken is not None and n_face:
            status = PARTIAL
            message = (message + "; " if message else "") + (
                f"decoding broke after frame {self.frame_index[-1]} ({self.broken.reason}): "
                "predictions cover the frames before it")
        elif self.broken is not None:
            message += f"; decoding broke after frame {self.frame_index[-1]} ({self.broken.reason})"
        if self.windows and self.windows[0].looped:
            message = (message + "; " if message else "") + (
                f"video shorter than one window ({len(self.frame_index)} of {self.T} sampled frames): frames looped")
        settings = asdict(self.p.options)
        settings.update(detector=self.p.detector_name, stride=self.stride, hop_frames=self.hop * self.stride,
                        window_frames=self.T, window_seconds=round(((self.T - 1) * self.stride + 1) / fps, 3))
        boxes = {}  # per face, over the sampled frames from its first to its last (the whole video with one face)
        for f, line in self.timelines.items():
            ks = range(len(self.frame_index)) if line.face is None else range(line.first, line.last_seen + 1)
            boxes[f] = [(self.frame_index[k], line.boxes.get(k)) for k in ks]
        one = self.timelines.get(0)
        coverage = (len(one.boxes) / len(self.frame_index) if one is not None and self.frame_index else 0.0)
        if self.opts.faces == "all" and self.frame_index:
            with_any = set().union(*(line.boxes for line in self.timelines.values())) if self.timelines else set()
            coverage = len(with_any) / len(self.frame_index)
        return VideoResult(
            path=self.path, status=status, class_names=self.p.class_names, windows=self.windows, message=message,
            info=info, frame_coverage=coverage, settings=settings, face_boxes=boxes, peaks=self.peaks,
            faces=faces if self.opts.faces == "all" else None,
        )


def load(model_dir: str | Path, detector: FaceDetector | str = "auto", device: str = "cpu", **options: Any) -> Predictor:
    """Load an hi2m model directory (``config.json`` + ``model.safetensors``) as a :class:`Predictor`.

    ``options`` are :class:`PredictOptions` fields (``hop``, ``detect_every``...); ``detector`` a
    built-in detector's name (``auto``: the best installed, ``mtcnn``, ``haar``) or any object with
    ``detect(rgb_frame) -> list[Box]``.
    """
    return Predictor(load_pretrained(model_dir, map_location=device), detector, PredictOptions(**options), device)
