"""hi2m predict / hi2m.load: windows, face tracking, failure cases, on generated and real face videos."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from _media import astronaut_frames, media, mtcnn_weights, write_video
from hi2m.infer import Box, PredictOptions, Predictor
from hi2m.infer.detect import iou
from hi2m.infer.track import FaceTracker, detect_near, interpolate, square_crop
from hi2m.model import HI2MConfig
from hi2m.model.classifier import VideoClassifier
from hi2m.io.weights import load_pretrained, save_pretrained

T, S = 8, 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = VideoClassifier(HI2MConfig.from_name("micro", num_frames=T, image_size=S))
    with torch.no_grad():  # a head far from uniform, so probability checks mean something
        model.head.weight.normal_(0.0, 1.0)
    return save_pretrained(model, tmp_path_factory.mktemp("model") / "micro")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (42, 64, 64, 3), dtype=np.uint8)
    bright = np.concatenate([np.full((20, 64, 64, 3), 200, np.uint8), np.full((22, 64, 64, 3), 10, np.uint8)])
    face = astronaut_frames(48)
    out = {
        "noise10": write_video(root / "noise10.mp4", noise, fps=10),
        "noise30": write_video(root / "noise30.mp4", noise, fps=30),
        "short": write_video(root / "short.mp4", noise[:5], fps=10),
        "bright_dark": write_video(root / "bright_dark.mp4", bright, fps=10),
        "face": write_video(root / "face.mp4", face, fps=30),
        "face_mpeg4": write_video(root / "face_mpeg4.avi", face, fps=12.5, codec="mpeg4"),
        "face_portrait": write_video(root / "face_portrait.mp4", astronaut_frames(48, 320, 240), fps=24),
        "face_rotated": write_video(root / "face_rotated.mp4", np.rot90(face, k=-1, axes=(1, 2)), fps=30, rotation=90),
        "face_then_blank": write_video(root / "face_then_blank.mp4",
                                       np.concatenate([face[:24], np.zeros_like(face[:40])]), fps=24),
        "gradient": write_video(root / "gradient.mp4", np.broadcast_to(
            np.linspace(0, 255, 64, dtype=np.uint8)[None, None, :, None], (40, 64, 64, 3)).copy(), fps=20),
    }
    bad = root / "broken.mp4"
    bad.write_text("this is not a video\n")
    out["broken"] = bad
    return out


class FixedDetector:
    """Always the same box."""

    def __init__(self, box: Box) -> None:
        self.box = box

    def detect(self, frame: np.ndarray) -> list[Box]:
        return [self.box]


class BrightDetector:
    """A face (fixed box) only in bright frames."""

    def detect(self, frame: np.ndarray) -> list[Box]:
        return [Box(8, 8, 40, 40)] if frame.mean() > 100 else []


# ---- tracking and cropping ---------------------------------------------------------------

def test_iou_against_hand_computed_values():
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 30, 30)) == 0.0
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == pytest.approx(1.0)


def test_tracker_starts_on_largest_face_then_follows_it_by_overlap():
    tracker = FaceTracker(min_iou=0.3, smoothing=0.5, max_missed=1)
    small, large = Box(0, 0, 10, 10), Box(50, 50, 80, 80)
    assert tracker.update([small, large]) == large
    # the other face grows larger, but the tracked one (moved by 2 px) is kept and smoothed
    moved, grown = Box(52, 50, 82, 80), Box(0, 0, 40, 40)
    got = tracker.update([grown, moved])
    assert (got.x0, got.x1) == pytest.approx((51.0, 81.0))  # 0.5 * old + 0.5 * new
    assert tracker.update([]) == got  # one miss: held
    assert tracker.update([]) is None  # second miss: dropped
    assert tracker.update([small]) == small  # re-acquired
    assert tracker.update([large]) == small  # a face elsewhere: the tracked one is held once ...
    assert tracker.update([large]) == large  # ... then the tracker switches to it


def test_interpolate_is_linear_and_halves_the_gap_when_one_side_is_missing():
    a, b = Box(0, 0, 10, 10), Box(10, 20, 30, 40)
    mid = interpolate(a, b, 0.25)
    assert (mid.x0, mid.y0, mid.x1, mid.y1) == pytest.approx((2.5, 5.0, 15.0, 17.5))
    assert interpolate(a, None, 0.4) == a and interpolate(a, None, 0.6) is None
    assert interpolate(None, b, 0.4) is None and interpolate(None, b, 0.6) == b


def test_square_crop_matches_slicing_and_pads_outside_with_black():
    frame = np.arange(60 * 80 * 3, dtype=np.int64).reshape(60, 80, 3).astype(np.uint8)
    # box 16 wide, margin 1.0 -> side 32 around centre (40, 30): rows 14..46, cols 24..56, no resize
    crop = square_crop(frame, Box(32, 22, 48, 38), margin=1.0, size=32)
    np.testing.assert_array_equal(crop, frame[14:46, 24:56])
    # near the corner: the part outside the frame is black
    corner = square_crop(frame, Box(-8, -8, 8, 8), margin=1.0, size=32)  # square (-16..16)
    np.testing.assert_array_equal(corner[16:, 16:], frame[:16, :16])
    assert corner[:16].max() == 0 and corner[:, :16].max() == 0


class BlobDetector:
    """The bounding box of the bright pixels (a detector that only looks at the pixels it gets)."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def detect(self, frame: np.ndarray) -> list[Box]:
        self.shapes.append(frame.shape[:2])
        ys, xs = np.nonzero(frame.max(axis=2) > 128)
        return [Box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)] if len(xs) else []


def test_detect_near_maps_the_search_window_back_to_the_frame():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[100:200, 220:320] = 255  # a 100 x 100 "face"
    det = BlobDetector()
    found = detect_near(det, frame, Box(210, 95, 310, 195), context=2.5, face_px=40)
    assert det.shapes[-1][0] < 110  # the detector saw a shrunk window (250 px * 0.4), not the frame
    assert len(found) == 1 and iou(found[0], Box(220, 100, 320, 200)) > 0.95
    # a tracked box at the border: the window is clipped to the frame, no enlargement of small faces
    found = detect_near(det, frame, Box(360, 150, 390, 180), context=2.5, face_px=64)  # window x 337..400
    assert det.shapes[-1] == (76, 63) and found == []  # clipped at the right edge; the blob is outside


def test_search_window_finds_the_same_faces_as_whole_frames(model_dir):
    import hi2m
    from hi2m.infer.mtcnn import MTCNNFaceDetector

    class Recording(MTCNNFaceDetector):
        def detect(self, frame):
            self.shapes.append(frame.shape[:2])
            return super().detect(frame)

    runs = {}
    for search in (0.0, 2.5):
        det = Recording(weights_dir=mtcnn_weights())
        det.shapes = []
        r = hi2m.load(model_dir, detector=det, search=search).predict(media("single_face.mp4"))
        runs[search] = (r, det.shapes)
    (full, full_shapes), (near, near_shapes) = runs[0.0], runs[2.5]
    assert all(s == (360, 640) for s in full_shapes)
    assert sum(s[0] * s[1] < 360 * 640 / 8 for s in near_shapes) >= len(near_shapes) - 2  # windows, not frames
    pairs = [(a, b) for (_, a), (_, b) in zip(full.frame_boxes, near.frame_boxes)]
    assert all(a is not None and b is not None for a, b in pairs)
    assert min(iou(a, b) for a, b in pairs) > 0.8


# ---- windows ---------------------------------------------------------------------------------

def _predictor(model_dir, detector, **options) -> Predictor:
    return Predictor(load_pretrained(model_dir), detector, PredictOptions(**options))


def test_window_layout_times_and_tail_window(model_dir, videos):
    p = _predictor(model_dir, FixedDetector(Box(8, 8, 40, 40)), stride=1, hop=0.4, detect_every=3)
    r = p.predict(videos["noise10"])  # 42 frames at 10 fps, window 8 frames, hop 4
    starts = [w.start_frame for w in r.windows]
    assert starts == [0, 4, 8, 12, 16, 20, 24, 28, 32, 34]  # + the tail window aligned to the end
    for w in r.windows:
        assert w.end_frame == w.start_frame + T - 1
        assert w.start_time == pytest.approx(w.start_frame / 10, abs=1e-6)
        assert w.end_time == pytest.approx((w.end_frame + 1) / 10, abs=1e-6)
        assert w.face and np.sum(w.probs) == pytest.approx(1.0, abs=1e-5)
    assert r.status == "ok" and r.summary["windows_with_face"] == 10


def test_stride_follows_sample_fps(model_dir, videos):
    r = _predictor(model_dir, FixedDetector(Box(8, 8, 40, 40)), sample_fps=7.5).predict(videos["noise30"])
    assert r.settings["stride"] == 4  # 30 fps / 7.5
    assert all(w.end_frame - w.start_frame == (T - 1) * 4 for w in r.windows)


def test_window_probabilities_equal_the_model_on_independently_cut_crops(model_dir, videos):
    from hi2m.data.video import open_clip_source

    # box 25.6 wide centred at (32, 32): margin 0.25 gives a 32 px square at rows/cols 16..48, no resize
    p = _predictor(model_dir, FixedDetector(Box(19.2, 19.2, 44.8, 44.8)), stride=1, hop=0.4, detect_every=2)
    r = p.predict(videos["noise10"])
    model = load_pretrained(model_dir)
    with open_clip_source(videos["noise10"]) as src:
        for w in (r.windows[0], r.windows[-1]):
            frames = src.read(np.arange(w.start_frame, w.end_frame + 1))[:, 16:48, 16:48]  # (T, 32, 32, 3)
            x = torch.from_numpy(frames).float().div(255).permute(3, 0, 1, 2)[None]  # (1, C, T, H, W)
            mean, std = torch.tensor(model.cfg.pixel_mean), torch.tensor(model.cfg.pixel_std)
            x = (x - mean.view(1, 3, 1, 1, 1)) / std.view(1, 3, 1, 1, 1)
            with torch.no_grad():
                expected = model(x).softmax(-1)[0].numpy()
            np.testing.assert_allclose(w.probs, expected, atol=1e-5)
            assert w.top == model.class_names[int(expected.argmax())]
    mean_probs = np.mean([w.probs for w in r.windows], axis=0)
    np.testing.assert_allclose(list(r.summary["mean_probs"].values()), mean_probs, atol=1e-4)


def test_short_clip_is_looped_into_one_window(model_dir, videos):
    r = _predictor(model_dir, FixedDetector(Box(8, 8, 40, 40)), stride=1).predict(videos["short"])
    assert len(r.windows) == 1 and r.windows[0].looped and r.windows[0].face
    assert (r.windows[0].start_frame, r.windows[0].end_frame) == (0, 4)
    assert "shorter than one window" in r.message and r.ok


def test_windows_without_a_face_are_reported_as_such(model_dir, videos):
    p = _predictor(model_dir, BrightDetector(), stride=1, hop=0.4, detect_every=1)
    r = p.predict(videos["bright_dark"])  # frames 0-19 bright, 20-41 dark
    assert r.status == "partial"
    for w in r.windows:
        # frames 0..19 have a face; frame 20 keeps it (one missed detection is bridged)
        frames = np.arange(w.start_frame, w.end_frame + 1)
        assert w.face_coverage == pytest.approx(np.mean(frames <= 20))
        assert w.face == (w.face_coverage >= 0.5)
        assert (w.probs is None) == (not w.face)
    assert r.windows[0].face and not r.windows[-1].face
    assert r.summary["windows_with_face"] == sum(w.face for w in r.windows) < len(r.windows)


def test_extract_features_match_forward_features(model_dir, videos):
    import hi2m

    p = hi2m.load(model_dir)
    frames = np.random.default_rng(1).integers(0, 255, (2, T, S, S, 3), dtype=np.uint8)
    feats = p.extract_features(frames)
    cfg = p.cfg
    assert feats.tokens.shape == (2, cfg.num_tokens, cfg.embed_dim) and feats.pooled.shape == (2, cfg.embed_dim)
    x = torch.from_numpy(frames).float().div(255).permute(0, 4, 1, 2, 3)
    x = (x - torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1, 1)) / torch.tensor(cfg.pixel_std).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        tokens, pooled = load_pretrained(model_dir).forward_features(x)
    torch.testing.assert_close(feats.tokens, tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats.pooled, pooled, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="takes 8 frames"):
        p.extract_features(frames[:, :5])


def test_import_hi2m_does_not_import_torch():
    code = "import sys, hi2m; assert callable(hi2m.load); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- real faces (each built-in detector) --------------------------------------------------

@pytest.fixture(scope="module", params=["haar", "mtcnn"])
def haar(model_dir, request) -> Predictor:
    """A predictor with Haar, then with MTCNN (weights from the facenet-pytorch wheel; skipped offline)."""
    import hi2m
    from hi2m.infer.mtcnn import MTCNNFaceDetector

    detector = "haar" if request.param == "haar" else MTCNNFaceDetector(weights_dir=mtcnn_weights())
    return hi2m.load(model_dir, detector=detector)


@pytest.mark.parametrize("name", ["face", "face_mpeg4", "face_portrait"])
def test_generated_face_videos_in_any_codec_and_orientation(haar, videos, name):
    r = haar.predict(videos[name])
    assert r.status == "ok", r.message
    assert r.summary["frame_face_coverage"] > 0.9
    # the astronaut's face is in the upper middle of every frame
    boxes = [b for _, b in r.frame_boxes if b is not None]
    cx = np.mean([b.center[0] for b in boxes]) / r.info["width"]
    assert 0.3 < cx < 0.7


def test_rotated_video_is_turned_upright(haar, videos):
    upright, rotated = haar.predict(videos["face"]), haar.predict(videos["face_rotated"])
    assert rotated.info["rotation"] == 90
    assert (rotated.info["width"], rotated.info["height"]) == (upright.info["width"], upright.info["height"])
    assert rotated.status == "ok"
    for (_, a), (_, b) in zip(upright.frame_boxes, rotated.frame_boxes):
        assert iou(a, b) > 0.7


def test_face_then_blank_frames(haar, videos):
    r = haar.predict(videos["face_then_blank"])  # 1 s of face, then 1.7 s black
    assert r.status == "partial"
    assert r.windows[0].face and not r.windows[-1].face


@pytest.mark.parametrize("name", ["gradient", "noise10"])
def test_generated_video_without_face(haar, videos, name):
    r = haar.predict(videos[name])
    assert r.status == "no_face" and not r.ok
    assert all(w.probs is None for w in r.windows) and r.summary["dominant"] is None


@pytest.mark.parametrize("name,expected", [("single_face.mp4", "ok"), ("no_face.mp4", "no_face"),
                                           ("carphone_pristine.mp4", None)])
def test_real_videos(haar, name, expected):
    r = haar.predict(media(name))
    if expected:
        assert r.status == expected, r.message
    else:
        assert r.summary["windows_with_face"] >= 1
    assert r.info["duration"] and r.windows[-1].end_time == pytest.approx(r.info["duration"], abs=0.5)


@pytest.mark.parametrize("name,face_first", [("face_noface.mov", True), ("noface_face.mov", False)])
def test_real_hevc_videos_with_face_in_part(haar, name, face_first):
    r = haar.predict(media(name))
    assert r.info["codec"] == "hevc"
    assert r.status == "partial"
    assert r.windows[0].face == face_first and r.windows[-1].face != face_first


# ---- the command ---------------------------------------------------------------------------

def test_cli_reports_every_video_and_exit_code_1_on_failures(model_dir, videos, tmp_path, capsys):
    from hi2m.cli import main

    out = tmp_path / "out.json"
    rc = main(["predict", str(videos["face"]), str(videos["broken"]), str(videos["gradient"]),
               "--model", str(model_dir), "--out", str(out)])
    assert rc == 1
    data = json.loads(out.read_text())
    statuses = [v["status"] for v in data["videos"]]
    assert statuses == ["ok", "failed", "no_face"]
    assert str(videos["broken"]) in data["videos"][1]["message"]
    err = capsys.readouterr().err
    assert f"{videos['broken']}: FAILED [failed]" in err and "2 of 3 videos failed" in err
    assert data["videos"][0]["summary"]["dominant"] in data["class_names"]


def test_cli_says_which_detector_and_auto_takes_mtcnn_when_installed(model_dir, videos, tmp_path, capsys,
                                                                     monkeypatch):
    from hi2m.cli import main

    out = tmp_path / "r.json"
    monkeypatch.setenv("HI2M_MTCNN_WEIGHTS", str(mtcnn_weights()))
    assert main(["predict", str(videos["face"]), "--model", str(model_dir), "--out", str(out)]) == 0
    assert "face detector: mtcnn" in capsys.readouterr().err
    assert json.loads(out.read_text())["videos"][0]["settings"]["detector"] == "mtcnn"
    assert main(["predict", str(videos["face"]), "--model", str(model_dir), "--out", str(out),
                 "--detector", "haar"]) == 0
    assert "face detector: haar" in capsys.readouterr().err
    assert json.loads(out.read_text())["videos"][0]["settings"]["detector"] == "haar"
    # without the weights: auto falls back to Haar, --detector mtcnn is a usage error naming the fix
    monkeypatch.delenv("HI2M_MTCNN_WEIGHTS")
    monkeypatch.setattr("hi2m.infer.mtcnn.find_weights", lambda: None)
    assert main(["predict", str(videos["face"]), "--model", str(model_dir), "--out", str(out)]) == 0
    assert "face detector: haar" in capsys.readouterr().err
    assert main(["predict", str(videos["face"]), "--model", str(model_dir), "--detector", "mtcnn"]) == 2
    assert "pip install --no-deps" in capsys.readouterr().err


def test_backends_and_precisions_agree_with_torch_fp32(model_dir):
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (3, T, 32, 32, 3), dtype=np.uint8)  # (B, T, S, S, 3)
    model = load_pretrained(model_dir)
    ref = Predictor(model).classify(crops)  # (B, K)
    ort = Predictor(model, options=PredictOptions(backend="onnxruntime")).classify(crops)
    bf16 = Predictor(model, options=PredictOptions(precision="bf16")).classify(crops)
    np.testing.assert_allclose(ort, ref, atol=1e-5)
    np.testing.assert_allclose(bf16, ref, atol=2e-2)
    assert np.abs(bf16 - ref).max() > 0  # bf16 did run in bf16
    for bad in ({"backend": "tensorrt"}, {"precision": "fp8"}, {"backend": "onnxruntime", "precision": "bf16"}):
        with pytest.raises(ValueError):
            PredictOptions(**bad)


def test_cli_onnxruntime_backend_gives_the_torch_result(model_dir, videos, tmp_path):
    from hi2m.cli import main

    runs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.json"
        assert main(["predict", str(videos["face"]), "--model", str(model_dir), "--out", str(out),
                     "--detector", "haar", "--backend", backend]) == 0
        runs[backend] = json.loads(out.read_text())["videos"][0]
    assert runs["onnxruntime"]["settings"]["backend"] == "onnxruntime"
    probs = {k: np.array([list(w["probs"].values()) for w in v["windows"]]) for k, v in runs.items()}
    np.testing.assert_allclose(probs["onnxruntime"], probs["torch"], atol=1e-5)


def test_cli_exit_codes_0_and_2(model_dir, videos, tmp_path):
    from hi2m.cli import main

    assert main(["predict", str(videos["face"]), "--model", str(model_dir), "--out", str(tmp_path / "a.json")]) == 0
    assert main(["predict", str(videos["face"]), "--model", str(tmp_path / "missing")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(videos["face"])])  # --model missing: argparse usage error
    assert exc.value.code == 2


def test_cli_csv_rows_match_json(model_dir, videos, tmp_path):
    from hi2m.cli import main

    main(["predict", str(videos["face_then_blank"]), "--model", str(model_dir), "--out", str(tmp_path / "r.json")])
    main(["predict", str(videos["face_then_blank"]), "--model", str(model_dir), "--format", "csv",
          "--out", str(tmp_path / "r.csv")])
    video = json.loads((tmp_path / "r.json").read_text())["videos"][0]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    windows = [r for r in rows if r["row"] == "window"]
    assert len(windows) == len(video["windows"])
    for row, w in zip(windows, video["windows"]):
        assert int(row["face"]) == int(w["face"]) and row["top"] == (w["top"] or "")
        if w["face"]:
            assert float(row["prob_Happy"]) == pytest.approx(w["probs"]["Happy"], abs=1e-5)
    (summary,) = [r for r in rows if r["row"] == "summary"]
    assert summary["top"] == video["summary"]["dominant"] and summary["status"] == "partial"


def test_cli_annotated_video(model_dir, videos, tmp_path):
    from hi2m.cli import main
    from hi2m.data.video import open_clip_source

    target = tmp_path / "annotated.mp4"
    rc = main(["predict", str(videos["face"]), "--model", str(model_dir), "--annotated", str(target),
               "--out", str(tmp_path / "r.json")])
    assert rc == 0
    result = json.loads((tmp_path / "r.json").read_text())["videos"][0]
    with open_clip_source(target) as ann, open_clip_source(videos["face"]) as src:
        assert ann.num_frames == src.num_frames and ann.size == src.size
        a, s = ann.read([10]).astype(int)[0], src.read([10]).astype(int)[0]
    diff = np.abs(a - s).sum(-1)  # (H, W)
    assert (diff > 60).mean() > 0.005  # drawn box, text and bars
    assert result["status"] == "ok"


def test_current_window_bridges_gaps_between_windows():
    from hi2m.infer.annotate import current_window
    from hi2m.infer.result import WindowPrediction

    ws = [WindowPrediction(0, 0, 28, 0.0, 1.0, True, 1.0, probs=[1.0], top="a"),
          WindowPrediction(1, 32, 60, 1.0, 2.0, True, 1.0, probs=[1.0], top="b"),
          WindowPrediction(2, 64, 92, 2.0, 3.0, False, 0.0)]
    assert current_window(ws, 10).index == 0 and current_window(ws, 45).index == 1
    assert current_window(ws, 30) is None and current_window(ws, 30, reach=32).index == 0  # gap: nearest centre
    assert current_window(ws, 80, reach=32).index == 1  # a window without a face is never shown


def test_progress_reaches_the_video_length_and_quiet_silences_stderr(model_dir, videos, tmp_path, capsys):
    from hi2m.cli import main

    seen = []
    result = _predictor(model_dir, FixedDetector(Box(8, 8, 40, 40))).predict(
        videos["face"], progress=lambda done, total: seen.append((done, total)))
    times = [d for d, _ in seen]
    assert times == sorted(times) and len(seen) == result.info["decoded_frames"]
    duration = seen[-1][1]
    assert duration and abs(times[-1] + 1 / result.info["fps"] - duration) < 0.1  # the last frame ends the video
    assert main(["predict", str(videos["face"]), str(videos["broken"]), "--model", str(model_dir),
                 "--out", str(tmp_path / "q.json"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "face detector" not in err and ": ok" not in err  # quiet: no progress, no per-video lines ...
    assert f"{videos['broken']}: FAILED" in err  # ... but a failure is still named


def test_progress_bar_text_rate_and_eta():
    import io

    from hi2m.progress import Progress, clock

    assert clock(0) == "0:00" and clock(75) == "1:15" and clock(3725) == "1:02:05"
    stream = io.StringIO()
    bar = Progress(600, "long.mp4", unit="s", stream=stream, tty=True, min_interval=0)
    bar.start -= 10  # 10 s elapsed
    bar.update(150)  # 150 s of video in 10 s: 15x real time, 450 s left -> 30 s
    text = stream.getvalue()
    assert "long.mp4" in text and "2:30 / 10:00" in text and "15.0x real time" in text and "ETA 0:30" in text
    assert "#" * 6 + "." * 18 in text  # a quarter of 24
    plain = io.StringIO()
    bar = Progress(10, "clips", stream=plain, tty=False)
    bar.update(5)
    bar.line("one line per item")
    assert plain.getvalue() == "one line per item\n"  # no bar when stderr is not a terminal
    quiet = io.StringIO()
    bar = Progress(10, stream=quiet, tty=True, quiet=True)
    bar.update(5)
    bar.line("hidden")
    bar.line("a failure", always=True)
    assert quiet.getvalue() == "a failure\n"
