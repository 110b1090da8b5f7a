"""``hi2m predict --faces all``: every face tracked with an id that stays with it, each with its own windows."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from _media import astronaut_frames, write_video
from hi2m.infer.detect import Box
from hi2m.infer.track import MultiFaceTracker

FPS, SECONDS = 24, 8


def shifted(box: Box, dx: float = 0.0, dy: float = 0.0, grow: float = 0.0) -> Box:
    return Box(box.x0 + dx - grow, box.y0 + dy - grow, box.x1 + dx + grow, box.y1 + dy + grow)


def test_tracker_keeps_ids_through_motion_a_short_absence_and_a_new_face():
    tracker = MultiFaceTracker(max_missed=1, reid_steps=3)
    left, right = Box(10, 10, 60, 60), Box(200, 10, 250, 60)
    assert tracker.step([right, left]) == {0: left, 1: right}  # new faces: ids left to right
    got = tracker.step([shifted(right, 4), shifted(left, 3)])
    assert got[0].x0 == pytest.approx(10 + 0.6 * 3) and got[1].x0 == pytest.approx(200 + 0.6 * 4)
    # the right face leaves: held once, then lost (not returned) ...
    assert set(tracker.step([shifted(left, 3)])) == {0, 1}
    assert set(tracker.step([shifted(left, 3)])) == {0}
    # ... a new face appears far away: a new id, not the lost one
    third = Box(400, 100, 440, 140)
    assert set(tracker.step([shifted(left, 3), third])) == {0, 2}
    # the right face comes back near where it left, within reid_steps: its own id again
    back = tracker.step([shifted(left, 3), shifted(right, 10), third])
    assert set(back) == {0, 1, 2} and back[1].x0 == pytest.approx(210)
    # a fast move (no overlap with the old box, within one box side): the same face, not a new one
    jump = tracker.step([shifted(left, 45), shifted(right, 10), third])
    assert set(jump) == {0, 1, 2} and jump[0].x0 > 40


def test_a_face_gone_longer_than_reid_steps_gets_a_new_id_and_ids_never_swap():
    tracker = MultiFaceTracker(max_missed=0, reid_steps=2)
    a, b = Box(0, 0, 40, 40), Box(60, 0, 100, 40)
    tracker.step([a, b])
    for _ in range(3):  # b gone for 3 detection frames > 2
        tracker.step([a])
    assert tracker.step([a, b]) == {0: a, 2: b}
    # two faces close together moving in step: each keeps its own id
    for dx in range(1, 6):
        got = tracker.step([shifted(b, dx), shifted(a, dx)])
        assert got[0].x0 < got[2].x0


@pytest.fixture(scope="module")
def model_dir(micro_classifier):
    return micro_classifier


def people_video(path, people: int, absent: tuple[int, float, float] | None = None):
    """``people`` moving real faces side by side (320x240 panels), ``absent = (person, from s, to s)``: that
    person's panel is empty for that time."""
    n = FPS * SECONDS
    panels = [astronaut_frames(n, seed=p) for p in range(people)]
    if absent is not None:
        person, t0, t1 = absent
        panels[person][int(t0 * FPS):int(t1 * FPS)] = 0
    return write_video(path, np.concatenate(panels, axis=2), fps=FPS)


def test_two_people_one_leaving_for_two_seconds_keep_two_ids_the_whole_video(model_dir, tmp_path):
    import hi2m

    video = people_video(tmp_path / "two.mp4", 2, absent=(1, 3.0, 5.0))
    predictor = hi2m.load(model_dir, detector="haar", faces="all", hop=0.5)
    r = predictor.predict(video)
    assert r.faces == [0, 1]
    for face, panel in ((0, (0, 320)), (1, (320, 640))):
        seen = [(i, b) for i, b in r.face_boxes[face] if b is not None]
        # each face is where its person is, never in the other panel (no swap)
        assert all(panel[0] <= b.center[0] < panel[1] for _, b in seen)
        times = [i / FPS for i, _ in seen]
        assert times[0] < 0.5 and times[-1] > SECONDS - 0.5  # the whole video long
        windows = r.windows_of(face)
        assert windows[0].start_time < 0.5 and windows[-1].end_time > SECONDS - 0.5
        assert all(w.face_id == face for w in windows)
    gone = [i / FPS for i, b in r.face_boxes[1] if b is None]
    assert gone and 2.7 < min(gone) and max(gone) < 5.3  # absent only while the panel was empty
    assert any(not w.face for w in r.windows_of(1)) and all(w.face for w in r.windows_of(0))
    d = r.to_dict()
    assert [f["face_id"] for f in d["faces"]] == [0, 1] and all("face_id" in w for w in d["windows"])
    # with re-identification shorter than the absence, the returning person is a new face (2), not face 0
    short = hi2m.load(model_dir, detector="haar", faces="all", hop=0.5, reid_seconds=0.5).predict(video)
    assert short.faces == [0, 1, 2]
    late = [b for _, b in short.face_boxes[2] if b is not None]
    assert late and all(b.center[0] >= 320 for b in late)
    # face 1 of that run left for good at 3 s: its timeline was closed there (windows end with its last frame)
    assert short.windows_of(1)[-1].end_time < 4.5 and short.windows_of(2)[0].start_time > 4.5


def test_three_people_three_ids_through_the_command(model_dir, tmp_path):
    from hi2m.cli import main

    video = people_video(tmp_path / "three.mp4", 3)
    out, table, annotated = tmp_path / "out.json", tmp_path / "out.csv", tmp_path / "annotated.mp4"
    report = tmp_path / "report.html"
    assert main(["predict", str(video), "--model", str(model_dir), "--faces", "all", "--detector", "haar",
                 "--out", str(out), "--annotated", str(annotated), "--report", str(report), "--quiet"]) == 0
    page = report.read_text()
    assert page.count('class="face"') == 3 and page.count('class="plot"') == 3
    d = json.loads(out.read_text())["videos"][0]
    assert [f["face_id"] for f in d["faces"]] == [0, 1, 2]
    assert {w["face_id"] for w in d["windows"]} == {0, 1, 2}
    assert main(["predict", str(video), "--model", str(model_dir), "--faces", "all", "--detector", "haar",
                 "--out", str(table), "--quiet"]) == 0
    rows = list(csv.DictReader(table.open()))
    assert {r["face_id"] for r in rows if r["row"] == "window"} == {"0", "1", "2"}
    assert [r["face_id"] for r in rows if r["row"] == "summary"] == ["", "0", "1", "2"]
    import av

    with av.open(str(annotated)) as container:
        assert container.streams.video[0].frames >= FPS * SECONDS - 1


def test_a_face_too_briefly_in_view_for_a_window_is_reported_not_dropped(model_dir, tmp_path):
    import hi2m

    n = FPS * 4
    left = astronaut_frames(n, seed=0)
    right = np.zeros_like(left)
    right[FPS:FPS + 6] = astronaut_frames(6, seed=1)  # the second person for a quarter of a second
    video = write_video(tmp_path / "glimpse.mp4", np.concatenate([left, right], axis=2), fps=FPS)
    r = hi2m.load(model_dir, detector="haar", faces="all", detect_every=1).predict(video)
    assert r.faces == [0, 1]
    glimpse = r.face_summary(1)
    assert glimpse["windows_with_face"] == 0 and glimpse["windows"] >= 1
    assert "too short for a window of 8 frames" in glimpse["note"]
    assert "note" not in r.face_summary(0) and r.status == "partial"
