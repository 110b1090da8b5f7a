"""``hi2m predict --live``: rolling predictions from a stream served on 127.0.0.1 in real time, frames dropped
and counted, a clean stop on SIGTERM with the output complete, one line and exit 2 for a bad source."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hi2m.infer.live import LiveSource

HERE = Path(__file__).parent
HI2M = [sys.executable, "-m", "hi2m.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(micro_classifier):
    return micro_classifier


def serve(seconds: float) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "_stream.py"), str(port), str(seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # av.open(listen) binds right after
    return server, port


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def test_live_stream_predicts_within_two_hops_and_stops_cleanly_on_sigterm(model_dir, tmp_path):
    server, port = serve(20.0)
    out = tmp_path / "live.jsonl"
    proc = subprocess.Popen([*HI2M, "predict", "--live", f"tcp://127.0.0.1:{port}", "--model", str(model_dir),
                             "--detector", "haar", "--out", str(out), "--hop", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len([r for r in lines(out) if "time" in r]) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        server.kill()
    assert proc.returncode == 0, err[-2000:]
    records = lines(out)  # every line is whole JSON
    windows, end = records[:-1], records[-1]
    assert len(windows) >= 4 and all("latency_s" in w for w in windows)
    assert end["event"] == "end" and end["reason"] == "signal SIGTERM" and end["windows"] == len(windows)
    assert max(w["latency_s"] for w in windows[1:]) <= 2.0  # two window hops of 1 s
    assert all(w["face"] and w["top"] for w in windows)
    assert isinstance(end["dropped_frames"], int) and end["decoded_frames"] >= end["sampled_frames"] > 0
    assert "Traceback" not in err and "signal SIGTERM" in err


def test_the_queue_drops_the_oldest_frames_and_counts_them():
    source = LiveSource("test", queue_size=3)
    for i in range(10):
        source._put((float(i), 0.0, np.zeros((2, 2, 3), np.uint8)))
    assert source.stats.dropped == 7
    kept = [source.queue.get_nowait()[0] for _ in range(3)]
    assert kept == [7.0, 8.0, 9.0]


def test_a_stream_on_standard_input(model_dir, tmp_path):
    sys.path.insert(0, str(HERE))
    from _media import astronaut_frames, write_video

    clip = write_video(tmp_path / "clip.mp4", astronaut_frames(75), fps=25)  # 3 s
    with open(clip, "rb") as f:
        done = subprocess.run([*HI2M, "predict", "--live", "-", "--model", str(model_dir), "--detector", "haar"],
                              stdin=f, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(x) for x in done.stdout.splitlines()]
    assert records[-1]["event"] == "end" and records[-1]["reason"] == "stream ended"
    assert len(records) >= 2 and records[0]["face"]


@pytest.mark.parametrize("kind", ["nothing listening", "no such camera", "never sends a frame"])
def test_a_bad_source_is_one_line_and_exit_2(model_dir, tmp_path, kind):
    silent = None
    if kind == "nothing listening":
        source = f"tcp://127.0.0.1:{free_port()}"
    elif kind == "no such camera":
        source = "/dev/video97"
    else:  # accepts the connection, sends nothing
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        held = []
        threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
        source = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    try:
        done = subprocess.run([*HI2M, "predict", "--live", source, "--model", str(model_dir), "--detector", "haar",
                               "--stall-seconds", "2"], capture_output=True, text=True, timeout=60)
    finally:
        if silent is not None:
            silent.close()
    assert done.returncode == 2
    errors = [x for x in done.stderr.splitlines() if "error" in x]
    assert len(errors) == 1 and source in errors[0] and "Traceback" not in done.stderr
    assert done.stdout == ""
