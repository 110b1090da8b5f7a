"""Bad input: odd clips load, broken clips are skipped and reported, nothing else is lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

av = pytest.importorskip("av")

from hi2m.data.adapters import build_dataset  # noqa: E402
from hi2m.data.dataset import ClipDataset, ClipRecord  # noqa: E402
from hi2m.data.errors import TooManyBadFilesError  # noqa: E402
from hi2m.data.skipping import SkipTracker, collate_skip_bad  # noqa: E402
from hi2m.data.transforms import VOXCELEB2_CROP_BOX, finetune_transform, pretrain_transform  # noqa: E402
from hi2m.data.writer import index_pattern, write_frame_folder, write_video  # noqa: E402

OUT = 24  # every clip is resized to OUT x OUT so a batch can be stacked


def hevc_encoder() -> str | None:
    for name in ("libx265", "hevc"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    return None


def pattern(n: int, h: int = 32, w: int = 32) -> list[np.ndarray]:
    return [index_pattern(i, h, w) for i in range(n)]


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    """A csv dataset mixing unusual-but-valid clips with broken ones."""
    root = tmp_path_factory.mktemp("mixed")
    good: dict[str, str] = {}
    write_video(root / "h264.mp4", pattern(20), gop=12)
    good["h264.mp4"] = "Happy"
    write_video(root / "short3.mp4", pattern(3))
    good["short3.mp4"] = "Sad"
    write_video(root / "odd.avi", [np.full((97, 161, 3), 40 * i, np.uint8) for i in range(5)], codec="mpeg4")
    good["odd.avi"] = "Neutral"
    write_video(root / "gray.mkv", [np.full((32, 32), 30 * i, np.uint8) for i in range(6)], codec="ffv1", pix_fmt="gray")
    good["gray.mkv"] = "Angry"
    write_frame_folder(root / "frames", pattern(7))
    good["frames"] = "Surprise"
    bad = {"empty.mp4": "Fear", "notes.mp4": "Fear", "truncated.mp4": "Disgust"}
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("not a video, just text\n" * 10)
    full = write_video(root / "full.mp4", pattern(30), gop=12).read_bytes()
    (root / "truncated.mp4").write_bytes(full[: len(full) // 2])
    order = ["h264.mp4", "empty.mp4", "short3.mp4", "odd.avi", "notes.mp4", "gray.mkv", "truncated.mp4", "frames"]
    labels = {**good, **bad}
    (root / "all.csv").write_text("path,label\n" + "".join(f"{p},{labels[p]}\n" for p in order))
    return root, [str(root / p) for p in order if p in good], [str(root / p) for p in order if p in bad]


def make_dataset(root: Path, **options) -> ClipDataset:
    options.setdefault("transform", finetune_transform(OUT, train=False))
    return build_dataset("csv", root, list_file="all.csv", num_frames=8, stride=1, train=True, seed=0, **options)


def test_one_batch_keeps_every_good_clip_and_reports_exactly_the_bad_ones(mixed_root):
    root, good, bad = mixed_root
    ds = make_dataset(root)
    batch = next(iter(DataLoader(ds, batch_size=len(ds), collate_fn=collate_skip_bad)))
    assert batch["size"] == len(good)
    assert batch["video"].shape == (len(good), 3, 8, OUT, OUT)
    assert batch["path"] == good
    assert sorted(s["path"] for s in batch["skipped"]) == sorted(bad)
    for skipped in batch["skipped"]:
        assert skipped["path"] in skipped["error"]  # the message names the file
    assert batch["label"].tolist() == [0, 1, 2, 3, 4]


def test_worker_processes_report_skips_and_tracker_summarises(mixed_root):
    root, good, bad = mixed_root
    ds = make_dataset(root)
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_skip_bad)
    tracker = SkipTracker(max_share=0.5)
    seen_paths: list[str] = []
    for batch in loader:
        tracker.update(batch)
        seen_paths += batch.get("path", [])
    assert sorted(seen_paths) == sorted(good)
    summary = tracker.end_epoch()
    assert f"skipped {len(bad)} of {len(good) + len(bad)} clips" in summary
    assert all(path in summary for path in bad)
    assert not any(path in summary for path in good)
    assert tracker.end_epoch(10) == "epoch 1: all 10 clips decoded"  # counters reset per epoch


def test_tracker_raises_above_the_allowed_share(mixed_root):
    root, good, bad = mixed_root
    ds = make_dataset(root)
    tracker = SkipTracker()  # default: 1%
    for batch in DataLoader(ds, batch_size=4, collate_fn=collate_skip_bad):
        tracker.update(batch)
    with pytest.raises(TooManyBadFilesError) as info:
        tracker.end_epoch()
    assert "3 of 8" in str(info.value) and all(path in str(info.value) for path in bad)


def test_tracker_with_epoch_size_fails_early():
    tracker = SkipTracker(max_share=0.01, epoch_size=100)
    tracker.update({"size": 7, "skipped": [{"path": "a.mp4", "error": "a.mp4: bad", "index": 0}]})
    with pytest.raises(TooManyBadFilesError, match="a.mp4"):
        tracker.update({"size": 7, "skipped": [{"path": "b.mp4", "error": "b.mp4: bad", "index": 1}]})


def test_all_bad_batch_has_only_size_and_skipped(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"")
    ds = ClipDataset([ClipRecord(str(tmp_path / "x.mp4"), 0)], num_frames=4, stride=1)
    batch = collate_skip_bad([ds[0]])
    assert batch["size"] == 0 and "video" not in batch
    assert batch["skipped"][0]["path"] == str(tmp_path / "x.mp4")
    assert "0 bytes" in batch["skipped"][0]["error"]


def test_three_frame_clip_is_looped_and_grayscale_becomes_rgb(mixed_root):
    root, good, _ = mixed_root
    ds = make_dataset(root, transform=None)
    position = {Path(r.path).name: i for i, r in enumerate(ds.records)}
    short = ds[position["short3.mp4"]]
    assert short["video"].shape == (3, 8, 32, 32)
    frames = short["video"]
    assert torch.allclose(frames[:, 0], frames[:, 3], atol=2 / 255) and torch.allclose(frames[:, 1], frames[:, 4], atol=2 / 255)
    assert not torch.allclose(frames[:, 0], frames[:, 1], atol=2 / 255)
    gray = ds[position["gray.mkv"]]["video"]
    assert gray.shape[0] == 3 and torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_odd_size_clip_with_a_fixed_crop_box_is_skipped_with_the_reason(mixed_root):
    root, _, _ = mixed_root
    ds = ClipDataset([ClipRecord(str(root / "odd.avi"), 2)], num_frames=4, stride=1, transform=pretrain_transform(16, crop_box=VOXCELEB2_CROP_BOX))
    item = ds[0]
    assert item["path"] == str(root / "odd.avi")
    assert "97x161" in item["error"] and "odd.avi" in item["error"]


def test_hevc_clip_decodes_exact_frames(tmp_path):
    encoder = hevc_encoder()
    if encoder is None:
        pytest.skip("PyAV's FFmpeg build has no HEVC encoder (libx265/hevc): cannot write a test file")
    path = write_video(tmp_path / "hevc.mp4", pattern(40), codec=encoder, gop=12)
    ds = ClipDataset([ClipRecord(str(path), 1)], num_frames=5, stride=3, train=False, num_windows=2)
    video = ds[0]["video"]  # (K, C, T, H, W)
    assert video.shape == (2, 3, 5, 32, 32)
    from hi2m.data.writer import read_index_pattern

    last = [read_index_pattern((video[1, :, t].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for t in range(5)]
    assert last == [27, 30, 33, 36, 39]  # the second eval window ends on the last frame
