"""Fuzzed input never stops a run or loses a result.

A few hundred damaged copies of the real face clips (``_fuzz.make_corpus``: byte flips, zeroed runs,
truncation, duplicated and swapped chunks, damaged headers, trailing garbage, a zero-byte and a text
file; fixed seeds) go through every path that reads a file: the training dataset, ``hi2m data check``,
a 2-epoch training run and a multi-video ``hi2m predict``. No exception may escape, every file gets a
status, the run completes and names what it skipped, and predict keeps every good video's result.
Rerun with another corpus: ``HI2M_FUZZ_SEED=7 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")

from _fuzz import make_corpus  # noqa: E402
from _media import media  # noqa: E402

from hi2m.data.boundary import check_time, file_boundary, paused  # noqa: E402
from hi2m.data.dataset import ClipDataset, ClipRecord  # noqa: E402
from hi2m.data.errors import DecodeError  # noqa: E402
from hi2m.data.transforms import finetune_transform  # noqa: E402

SEED = int(os.environ.get("HI2M_FUZZ_SEED", "0"))
KINDS = {"decode", "missing", "header", "timeout", "transform", "unexpected"}
HI2M = str(Path(sys.executable).with_name("hi2m"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """About 250 mutants: 100 of each short H.264 clip, 40 of the HEVC .mov, an empty and a text file."""
    out = tmp_path_factory.mktemp("fuzz")
    mutants = make_corpus([media("single_face.mp4"), media("no_face.mp4")], out, 100, seed=SEED)
    hevc = make_corpus([media("face_noface.mov")], out / "mov", 40, seed=SEED + 1)[:-2]
    return out, mutants[:-2] + hevc + mutants[-2:]  # the zero-byte and the text file last


def dataset_over(paths, **options) -> ClipDataset:
    options.setdefault("transform", finetune_transform(24, train=False))
    return ClipDataset([ClipRecord(str(p), 0) for p in paths], num_frames=8, stride=2, train=True, seed=0, **options)


# ---- the boundary ----------------------------------------------------------------------------------

def test_boundary_turns_any_exception_into_a_decode_error_naming_the_file():
    with pytest.raises(DecodeError) as info:
        with file_boundary("clip.mp4"):
            raise AttributeError("'NoneType' object has no attribute 'thread_count'")
    err = info.value
    assert err.path == "clip.mp4" and err.kind == "unexpected"
    assert "AttributeError" in str(err) and "thread_count" in str(err)  # a programming error stays visible
    assert isinstance(err.__cause__, AttributeError)
    original = DecodeError("x.mp4", "bad data", kind="header")
    with pytest.raises(DecodeError) as info:
        with file_boundary("clip.mp4"):
            raise original
    assert info.value is original
    with pytest.raises(KeyboardInterrupt):
        with file_boundary("clip.mp4"):
            raise KeyboardInterrupt


def test_an_unexpected_error_inside_the_reader_becomes_the_files_marker(tmp_path, monkeypatch):
    import hi2m.data.dataset as dataset_module

    def broken(path, threads=1):
        raise AttributeError("stream.codec_context is None")

    monkeypatch.setattr(dataset_module, "open_clip_source", broken)
    item = dataset_over([tmp_path / "a.mp4"])[0]
    assert item["kind"] == "unexpected" and "AttributeError" in item["error"] and str(tmp_path / "a.mp4") in item["error"]


def test_time_limit_counts_decoding_only():
    with file_boundary("slow.mp4", time_limit=0.2):
        with paused():
            time.sleep(0.3)  # the consumer's time: not counted
        check_time()
        time.sleep(0.25)
        with pytest.raises(DecodeError) as info:
            check_time()
    assert info.value.kind == "timeout" and "0.2 s" in str(info.value)


def test_a_clip_over_its_time_limit_is_skipped_as_timeout():
    item = dataset_over([media("single_face.mp4")], time_limit=1e-6)[0]
    assert item["kind"] == "timeout" and "time limit" in item["error"]
    assert "video" in dataset_over([media("single_face.mp4")], time_limit=60)[0]


def test_absurd_frame_size_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.y4m"  # a valid YUV4MPEG2 header declaring 12000 x 12000 frames (432 MB each in RGB)
    bomb.write_bytes(b"YUV4MPEG2 W12000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    item = dataset_over([bomb])[0]
    assert item["kind"] == "header" and "12000x12000" in item["error"] and "144.0 Mpx" in item["error"]


# ---- the corpus through every path ---------------------------------------------------------------

def test_fuzz_corpus_through_the_dataset(corpus):
    _, mutants = corpus
    ds = dataset_over([m.path for m in mutants])
    kinds: Counter = Counter()
    for i, m in enumerate(mutants):
        item = ds[i]  # must not raise
        if "error" in item:
            assert item["kind"] in KINDS and str(m.path) in item["error"], item
            kinds[item["kind"]] += 1
        else:
            assert item["video"].shape == (3, 8, 24, 24) and torch.isfinite(item["video"]).all()
            kinds["ok"] += 1
    assert sum(kinds.values()) == len(mutants)
    assert kinds["ok"] > 20 and sum(v for k, v in kinds.items() if k != "ok") > 20, kinds
    assert ds[len(mutants) - 1]["kind"] == "decode" and ds[len(mutants) - 2]["kind"] == "decode"  # text, empty


def test_fuzz_corpus_through_data_check(corpus, tmp_path):
    root, mutants = corpus
    (root / "list.csv").write_text("path,label\n" + "".join(f"{m.path.relative_to(root)},Happy\n" for m in mutants))
    proc = subprocess.run([HI2M, "data", "check", "csv", str(root), "--list-file", "list.csv", "--num-frames", "8",
                           "--stride", "2", "--show", "1000", "--workers", "2"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stdout.splitlines()
    unreadable = next(line for line in lines if "unreadable clips:" in line)
    n_bad = int(unreadable.split(":")[1].split()[0])
    named = [m for m in mutants if f"] {m.path}:" in proc.stdout]
    assert len(named) == n_bad > 0  # every refused file named once, with its reason kind
    total = next(line for line in lines if line.split()[:1] == ["total"])
    assert int(total.split()[1]) == len(mutants)


def test_fuzz_corpus_through_two_training_epochs(corpus, tmp_path):
    from hi2m.train.config import DEFAULTS, deep_merge
    from hi2m.train.runner import pretrain

    root, mutants = corpus
    chosen = mutants[:94] + mutants[-2:]  # 96 files: batches of 8 cover every file each epoch
    (root / "train.csv").write_text("path,label\n" + "".join(f"{m.path.relative_to(root)},Happy\n" for m in chosen))
    cfg = deep_merge(DEFAULTS, {
        "model": {"size": "micro", "mask_ratio": 0.75},
        "data": {"dataset": "csv", "root": str(root), "options": {"list_file": "train.csv"}, "num_frames": 8,
                 "stride": 2, "image_size": 32, "batch_size": 8, "num_workers": 2, "max_bad_share": 0.9},
        "optim": {"epochs": 2, "warmup_epochs": 1, "base_lr": 1e-3, "lr_scaling": "none"},
        "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "enable_progress_bar": False,
                    "max_bad_steps": 100},
        "run": {"dir": str(tmp_path), "name": "fuzz"},
    })
    result = pretrain(cfg)
    assert len(result["epoch_stats"]) == 2  # both epochs completed
    with open(tmp_path / "fuzz" / "skipped_files.csv") as f:
        rows = list(csv.DictReader(f))
    by_epoch = Counter(r["epoch"] for r in rows)
    assert set(by_epoch) == {"0", "1"} and all(n > 0 for n in by_epoch.values())
    for r in rows:
        assert r["stage"] == "train" and r["kind"] in KINDS and r["path"] in r["error"]
    for epoch in ("0", "1"):  # the zero-byte and the text file are bad in every epoch
        named = {r["path"] for r in rows if r["epoch"] == epoch}
        assert {str(mutants[-1].path), str(mutants[-2].path)} <= named


def test_fuzz_corpus_through_predict(corpus, tmp_path):
    from hi2m.model import HI2MConfig
    from hi2m.model.classifier import VideoClassifier
    from hi2m.io.weights import save_pretrained

    _, mutants = corpus
    model_dir = save_pretrained(VideoClassifier(HI2MConfig.from_name("micro", num_frames=8, image_size=32)),
                                tmp_path / "model")
    good = [media("single_face.mp4"), media("WolfgangLanger_Pexels.mp4")]
    damaged = [m.path for m in mutants if m.source == "single_face.mp4"][::6] + [mutants[-2].path, mutants[-1].path]
    videos = [good[0], *damaged, good[1]]
    out = tmp_path / "r.csv"
    proc = subprocess.run([HI2M, "predict", *map(str, videos), "--model", str(model_dir), "--format", "csv",
                           "--out", str(out), "--detector", "haar", "--sample-fps", "5"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 1  # the empty and the text file at least failed
    with open(out) as f:
        summary = {r["video"]: r for r in csv.DictReader(f) if r["row"] == "summary"}
    assert set(summary) == {str(v) for v in videos}  # every video has a status
    for v in good:
        assert summary[str(v)]["status"] in ("ok", "partial")
    for v in (mutants[-2].path, mutants[-1].path):
        assert summary[str(v)]["status"] == "failed" and str(v) in summary[str(v)]["message"]
    statuses = Counter(r["status"] for r in summary.values())
    assert set(statuses) <= {"ok", "partial", "no_face", "failed"}


# ---- results kept as they finish; stalled workers named ----------------------------------------------

def test_predict_results_are_on_disk_as_each_video_finishes(tmp_path):
    import json

    from hi2m.infer.result import FAILED, OK, ResultWriter, VideoResult, WindowPrediction

    names = ("Happy", "Sad")
    done = VideoResult(path="a.mp4", status=OK, class_names=names, windows=[
        WindowPrediction(0, 0, 15, 0.0, 2.0, True, 1.0, probs=[0.7, 0.3], top="Happy")])
    bad = VideoResult(path="b.mp4", status=FAILED, class_names=names, message="b.mp4: unexpected KeyError: 'x'")
    for fmt in ("json", "jsonl", "csv"):
        out = tmp_path / f"r.{fmt}"
        writer = ResultWriter(fmt, str(out), "model", names)
        writer.add(done)
        text = out.read_text()  # before the next video and before close(): the first result is there
        if fmt == "json":
            assert [v["path"] for v in json.loads(text)["videos"]] == ["a.mp4"]
        elif fmt == "jsonl":
            assert json.loads(text.splitlines()[0])["summary"]["dominant"] == "Happy"
        else:
            assert "a.mp4,ok,summary" in text
        writer.add(bad)
        writer.close()
        assert "unexpected KeyError" in out.read_text() and "failed" in out.read_text()


class _Sleepy(torch.utils.data.Dataset):
    """Item 3 stalls its worker (as a read hanging inside FFmpeg would)."""

    def __init__(self):
        self.records = [ClipRecord(f"clip{i}.mp4", 0) for i in range(8)]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        if i == 3:
            time.sleep(60)
        return {"video": torch.zeros(2), "label": 0, "index": i, "path": self.records[i].path}


def test_a_stalled_worker_is_named_quarantined_and_skipped_on_resume(tmp_path):
    from hi2m.data.skipping import collate_skip_bad
    from hi2m.train.callbacks import EpochAwareDataset
    from hi2m.train.stalls import GuardedLoader, LoaderStalledError, read_quarantine

    def loader(excluded=frozenset()):
        return GuardedLoader(EpochAwareDataset(_Sleepy(), workers=1, excluded=excluded), batch_size=2,
                             num_workers=1, timeout=2.0, collate_fn=collate_skip_bad, run_dir=tmp_path)

    with pytest.raises(LoaderStalledError) as info:
        list(loader())
    assert "worker 0 reading clip3.mp4" in str(info.value) and "quarantine.txt" in str(info.value)
    assert read_quarantine(tmp_path) == {"clip3.mp4"}
    batches = list(loader(read_quarantine(tmp_path)))  # the resumed run: skipped, reported, no stall
    skipped = [s for b in batches for s in b["skipped"]]
    assert [s["path"] for s in skipped] == ["clip3.mp4"] and sum(b["size"] for b in batches) == 7
