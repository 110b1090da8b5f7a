"""``hi2m predict --report``: one self-contained HTML page, read back by headless Chromium: it renders, its
plots hold the predicted values, user-controlled names stay text, nothing is loaded from anywhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from _media import astronaut_frames, write_video
from hi2m.infer.result import WindowPrediction
from hi2m.io.weights import save_pretrained
from hi2m.model import HI2MConfig
from hi2m.model.classifier import VideoClassifier

EVIL = "<img src=x onerror=alert(1)>"
CLASSES = ("calm", 'say "cheese"', EVIL, "überrascht")


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One predict run over: a face video named with markup, a video whose face leaves halfway, a broken
    file; a model whose class names carry markup, quotes and non-ASCII letters."""
    from hi2m.cli import main

    root = tmp_path_factory.mktemp("report")
    torch.manual_seed(0)
    model = VideoClassifier(HI2MConfig.from_name("micro", num_frames=8, image_size=32), num_classes=4,
                            class_names=CLASSES)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 1.0)
    model_dir = save_pretrained(model, root / "model <b>x</b>")
    face = astronaut_frames(60)
    videos = [write_video(root / f"{EVIL}.mp4", face, fps=24),
              write_video(root / "half 'face' ü.mp4", np.concatenate([face[:36], np.zeros_like(face[:36])]), fps=24)]
    broken = root / "broken.mp4"
    broken.write_text("not a video\n")
    out, report = root / "out.json", root / "report.html"
    rc = main(["predict", *map(str, videos), str(broken), "--model", str(model_dir), "--out", str(out),
               "--report", str(report), "--hop", "0.5", "--quiet"])
    return {"rc": rc, "json": json.loads(out.read_text()), "report": report, "videos": videos, "broken": broken}


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Elements:
    p = Elements()
    p.feed(text)
    return p


def plotted(elements: Elements) -> list[dict[str, list[tuple[float, float]]]]:
    """Per plot (in page order): class -> [(seconds, probability)] read back from the SVG's polylines."""
    plots: list[dict[str, list[tuple[float, float]]]] = []
    geometry = {}
    for tag, attrs in elements.tags:
        if tag == "svg" and attrs.get("class") == "plot":
            geometry = {k: float(attrs[f"data-{k}"]) for k in ("y0", "h", "x0", "w", "duration")}
            plots.append({})
        elif tag == "polyline" and attrs.get("class") == "series":
            g = geometry
            pts = [tuple(map(float, p.split(","))) for p in attrs["points"].split()]
            plots[-1].setdefault(attrs["data-class"], []).extend(
                ((x - g["x0"]) / g["w"] * g["duration"], (g["y0"] - y) / g["h"]) for x, y in pts)
    return plots


def test_the_report_holds_every_video_and_the_predicted_values(run):
    assert run["rc"] == 1  # the broken file
    text = run["report"].read_text(encoding="utf-8")
    elements = parse(text)
    videos = run["json"]["videos"]
    assert [v["status"] for v in videos] == ["ok", "partial", "failed"]
    plots = plotted(elements)
    assert len(plots) == 2  # the failed video has no plot
    for video, plot in zip(videos[:2], plots):
        faced = [w for w in video["windows"] if w["face"]]
        assert set(plot) == set(CLASSES)
        for name in CLASSES:
            want = [((w["start_time"] + w["end_time"]) / 2, w["probs"][name]) for w in faced]
            got = plot[name]
            assert len(got) == len(want)
            np.testing.assert_allclose(np.array(got), np.array(want), atol=0.02)  # 2-decimal pixel coordinates
    # the partial video's face leaves: its plot breaks there (one polyline per class before the gap)
    assert sum(1 for t, a in elements.tags if t == "polyline") == 4 + 4
    segments = [t for t, a in elements.tags if t == "tr" and a.get("class") == "segment"]
    assert len(segments) >= 2
    # a thumbnail of the face for every class that rose above chance somewhere (1 / 4 here)
    peaks = [a["data-class"] for t, a in elements.tags if t == "figure" and a.get("class") == "peak"]
    above = [{c for c in CLASSES if max(w["probs"][c] for w in v["windows"] if w["face"]) >= 0.25}
             for v in videos[:2]]
    assert sorted(peaks) == sorted([c for s in above for c in s]) and peaks
    images = [a["src"] for t, a in elements.tags if t == "img"]
    assert images and all(src.startswith("data:image/jpeg;base64,") for src in images)
    # the failure is listed with its reason; names are text
    body = "".join(elements.text)
    assert "broken.mp4" in body and videos[2]["message"][:40] in body
    assert f"{EVIL}.mp4" in body and 'say "cheese"' in body and "überrascht" in body
    assert not any(t == "img" and a.get("src") == "x" for t, a in elements.tags)
    assert not any(t == "script" for t, a in elements.tags)
    assert "default-src 'none'" in text  # the page may load nothing
    assert re.search(r"(src|href)=\"(https?:)?//", text) is None


def test_segments_merge_windows_of_one_top_class_and_break_at_a_missing_face():
    from hi2m.infer.report import segments

    def w(i, top, face=True):
        probs = [0.7, 0.3] if top == "a" else [0.2, 0.8]
        return WindowPrediction(i, i, i + 1, float(i), i + 1.0, face, 1.0 if face else 0.0,
                                probs=probs if face else None, top=top if face else None)

    got = segments([w(0, "a"), w(1, "a"), w(2, "b"), w(3, "b", face=False), w(4, "b"), w(5, "a")])
    assert [(s["start"], s["end"], s["top"], s["windows"]) for s in got] == [
        (0.0, 2.0, "a", 2), (2.0, 3.0, "b", 1), (4.0, 5.0, "b", 1), (5.0, 6.0, "a", 1)]
    assert got[0]["mean_prob"] == pytest.approx(0.7)


@pytest.mark.skipif(chromium() is None, reason="needs Chromium (CI installs the Debian package chromium)")
def test_chromium_renders_the_report_without_errors_and_runs_nothing(run, tmp_path):
    """Headless Chromium opens the file: the DOM it builds has the plots and the names as text (no element
    made from a name), its console reports nothing (no blocked load, no script error), a screenshot is drawn."""
    browser = chromium()
    url = run["report"].resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    elements = parse(dom.stdout)
    assert sum(1 for t, a in elements.tags if t == "svg" and a.get("class") == "plot") == 2
    assert not any(t == "img" and a.get("src") == "x" for t, a in elements.tags)  # the name stayed text
    assert EVIL in "".join(elements.text)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Refused to" in line]
    assert console == []
    shot = tmp_path / "report.png"
    done = subprocess.run([browser, *flags, "--window-size=1000,1400", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.stat().st_size > 10_000


def test_a_report_that_cannot_be_written_is_a_usage_error(run, tmp_path, capsys):
    from hi2m.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = main(["predict", str(run["broken"]), "--model", str(Path(run["videos"][0]).parent / "model <b>x</b>"),
               "--report", str(blocker / "report.html"), "--quiet"])
    assert rc == 2 and "cannot write the report" in capsys.readouterr().err


def test_a_ten_minute_video_gives_a_small_report():
    """600 windows (10 minutes at the default 1 s hop), 7 classes, a thumbnail per class: far under 5 MB."""
    from hi2m.infer.report import render
    from hi2m.infer.result import Peak, VideoResult

    rng = np.random.default_rng(0)
    names = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
    windows = []
    for i in range(600):
        p = rng.dirichlet(np.ones(7))
        windows.append(WindowPrediction(i, 30 * i, 30 * i + 60, float(i), i + 2.0, True, 1.0, probs=list(p),
                                        top=names[int(np.argmax(p))]))
    peaks = {(0, n): Peak(0.9, 0, 1.0, rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)) for n in names}
    result = VideoResult("long.mp4", "ok", names, windows, info={"duration": 601.0, "fps": 30.0}, peaks=peaks)
    size = len(render([result], "model", names).encode())
    assert size < 1_000_000, size
