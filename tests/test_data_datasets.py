"""Dataset adapters on small fake trees laid out like the official releases."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hi2m.data.adapters import DATASETS, build_dataset
from hi2m.data.errors import LayoutError, SplitFileError
from hi2m.labels import DFER_CLASSES
from hi2m.data.transforms import finetune_transform
from hi2m.data.writer import index_pattern, read_index_pattern, write_frame_folder, write_video

SIZE = 32


def frames(n: int, size: int = SIZE) -> list[np.ndarray]:
    return [index_pattern(i, size, size) for i in range(n)]


# ----------------------------------------------------------------------------- fake trees


def make_dfew(root: Path, rows: list[str], clips: dict[str, int], split: str = "train", fold: int = 1) -> Path:
    split_dir = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / f"set_{fold}.csv").write_text("video_name,label\n" + "\n".join(rows) + "\n")
    for clip_id, n in clips.items():
        write_frame_folder(root / "Clip" / "clip_224x224" / clip_id, frames(n), name=clip_id + "_{:05d}")
    return root


def make_ferv39k(root: Path, rows: list[str], clips: dict[str, int], split: str = "train") -> Path:
    setup = root / "4_setups" / "All_scenes"
    setup.mkdir(parents=True, exist_ok=True)
    (setup / f"{split}_All.csv").write_text("\n".join(rows) + "\n")
    for rel, n in clips.items():
        write_frame_folder(root / "2_ClipsforFaceCrop" / rel, frames(n))
    return root


def make_voxceleb2(root: Path, layout: dict[str, int]) -> Path:
    for rel, n in layout.items():
        write_video(root / "dev" / "mp4" / rel, frames(n, 32), gop=12)
    return root


def make_mafw(root: Path, rows: list[str], clips: dict[str, int], split: str = "train", fold: int = 1,
              sets: str = "Train & Test Set", as_video: tuple[str, ...] = ()) -> Path:
    """MAFW's release: split files under '<sets>/single/no_caption/set_<fold>/', frame folders under
    data/frames/<id>/ (or, for the ids in ``as_video``, videos data/clips/<id>.mp4)."""
    split_dir = root / sets / "single" / "no_caption" / f"set_{fold}"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / f"{split}.txt").write_text("\n".join(rows) + "\n")
    for clip_id, n in clips.items():
        if clip_id in as_video:
            write_video(root / "data" / "clips" / f"{clip_id}.mp4", frames(n), gop=4)
        else:
            write_frame_folder(root / "data" / "frames" / clip_id, frames(n))
    return root


@pytest.fixture
def dfew_root(tmp_path):
    rows = ["1,1", "00002,5", "3,7"]
    return make_dfew(tmp_path / "DFEW", rows, {"00001": 20, "00002": 12, "00003": 3})


# ----------------------------------------------------------------------------- DFEW


def test_dfew_labels_ids_and_items(dfew_root):
    ds = build_dataset("dfew", dfew_root, split="train", fold=1, num_frames=4, stride=2, seed=0)
    assert len(ds) == 3 and ds.stride == 2 and ds.train
    assert ds.labels == [0, 4, 6]  # labels 1, 5, 7 -> Happy, Surprise, Fear
    assert [DFER_CLASSES[i] for i in ds.labels] == ["Happy", "Surprise", "Fear"]
    assert ds.records[1].path.endswith(os.path.join("clip_224x224", "00002"))
    item = ds[0]
    assert set(item) == {"video", "label", "index", "path"}
    assert item["video"].shape == (3, 4, SIZE, SIZE) and item["video"].dtype == torch.float32
    # the decoded frames are consecutive at the requested stride
    codes = [read_index_pattern((item["video"][:, t].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for t in range(4)]
    assert np.all(np.diff(codes) == 2)


def test_dfew_short_clip_is_looped_not_a_crash(dfew_root):
    ds = build_dataset("dfew", dfew_root, split="train", num_frames=8, stride=1, train=False, num_windows=1)
    item = ds[2]  # 3 frames, window of 8
    video = item["video"][0]  # (C, T, H, W)
    codes = [read_index_pattern((video[:, t].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for t in range(8)]
    assert codes == [0, 1, 2, 0, 1, 2, 0, 1]


def test_dfew_default_stride_and_eval_windows(dfew_root):
    ds = build_dataset("dfew", dfew_root, split="train", num_frames=2, train=False, num_windows=3)
    assert ds.stride == 4 and not ds.train
    assert ds[0]["video"].shape == (3, 3, 2, SIZE, SIZE)  # (K, C, T, H, W)


def test_dfew_missing_root_and_split_file_name_the_path(tmp_path, dfew_root):
    with pytest.raises(LayoutError, match="nowhere") as info:
        build_dataset("dfew", tmp_path / "nowhere")
    assert "EmoLabel_DataSplit" in str(info.value)  # the expected layout is shown
    with pytest.raises(LayoutError, match=r"set_3\.csv"):
        build_dataset("dfew", dfew_root, split="train", fold=3)
    with pytest.raises(ValueError, match="fold"):
        build_dataset("dfew", dfew_root, fold=6)


def test_dfew_missing_frame_folder_names_csv_and_line(tmp_path):
    root = make_dfew(tmp_path / "DFEW", ["1,1", "2,2"], {"00001": 5})
    with pytest.raises(SplitFileError) as info:
        build_dataset("dfew", root)
    assert "set_1.csv:3:" in str(info.value) and "00002" in str(info.value)


def test_dfew_bad_label_and_malformed_line_error_or_skip(tmp_path, capsys):
    root = make_dfew(tmp_path / "DFEW", ["1,1", "2,9", "garbage line", "3,3"], {"00001": 5, "00002": 5, "00003": 5})
    with pytest.raises(SplitFileError, match=r"set_1\.csv:3: unknown label '9'"):
        build_dataset("dfew", root)
    ds = build_dataset("dfew", root, on_bad_line="skip")
    assert ds.labels == [0, 2]
    assert [(b.line, "unknown label" in b.reason) for b in ds.bad_lines] == [(3, True), (4, False)]
    err = capsys.readouterr().err
    assert "skipped 2 bad entries" in err and "set_1.csv:3" in err and "set_1.csv:4" in err


# ----------------------------------------------------------------------------- MAFW


def test_mafw_eleven_classes_folds_and_items(tmp_path):
    from hi2m.labels import MAFW_CLASSES

    rows = ["00019.mp4 anger", "00020.mp4 Disappointment", "00021.mp4 contempt"]
    root = make_mafw(tmp_path / "MAFW", rows, {"00019": 12, "00020": 9, "00021": 5}, fold=3)
    ds = build_dataset("mafw", root, split="train", fold=3, num_frames=4, stride=2, seed=0)
    assert len(MAFW_CLASSES) == 11 and ds.classes == MAFW_CLASSES
    assert ds.labels == [0, 10, 7] and ds.stride == 2 and ds.train
    item = ds[1]
    assert item["label"] == 10 and item["video"].shape == (3, 4, SIZE, SIZE)
    assert build_dataset("mafw", root, split="train", fold=3).stride == 4  # the default stride
    # the clips as videos (data/clips/<id>.mp4), and the split folder renamed without spaces
    video_root = make_mafw(tmp_path / "M2", ["00001.mp4 happiness"], {"00001": 10}, sets="Train_Test_Set",
                           as_video=("00001",))
    ds = build_dataset("mafw", video_root, split="train", num_frames=4, stride=1, train=False, num_windows=1)
    assert ds.labels == [3] and ds[0]["video"].shape == (1, 3, 4, SIZE, SIZE)
    assert ds.records[0].path.endswith("data/clips/00001.mp4")


def test_mafw_bad_lines_and_missing_files_are_named(tmp_path, capsys):
    root = make_mafw(tmp_path / "MAFW", ["00001.mp4 anger", "00002.mp4 contentment", "one-field",
                                         "00003.mp4 fear"], {"00001": 6, "00003": 6})
    with pytest.raises(SplitFileError, match=r"train\.txt:2: unknown label 'contentment'"):
        build_dataset("mafw", root)
    ds = build_dataset("mafw", root, on_bad_line="skip")
    assert ds.labels == [0, 2]
    err = capsys.readouterr().err
    assert "train.txt:3" in err and "'<clip file> <label>'" in err
    with pytest.raises(LayoutError, match="set_2") as info:
        build_dataset("mafw", root, fold=2)
    assert "no_caption" in str(info.value)  # the expected layout is shown
    with pytest.raises(ValueError, match="fold must be 1-5"):
        build_dataset("mafw", root, fold=6)
    (root / "Train & Test Set" / "single" / "no_caption" / "set_1" / "test.txt").write_text("00009.mp4 anger\n")
    with pytest.raises(SplitFileError, match=r"test\.txt:1: clip .*00009.* is missing"):
        build_dataset("mafw", root, split="test")


# ----------------------------------------------------------------------------- FERV39K


def test_ferv39k_split_file_and_default_stride(tmp_path):
    rows = ["Interview/Happy/0118 Happy", "Daily Life/Sad/0007 Sad", "Interview/Fear/0001 fear"]
    clips = {"Interview/Happy/0118": 6, "Daily Life/Sad/0007": 4, "Interview/Fear/0001": 5}
    root = make_ferv39k(tmp_path / "FERV39K", rows, clips)
    ds = build_dataset("ferv39k", root, split="train", num_frames=4)
    assert ds.stride == 1
    assert ds.labels == [0, 1, 6]
    assert ds[1]["video"].shape == (3, 4, SIZE, SIZE)


def test_ferv39k_unknown_label_and_missing_folder(tmp_path):
    root = make_ferv39k(tmp_path / "F", ["A/Happy/1 Happy", "A/Sad/2 Contempt"], {"A/Happy/1": 4, "A/Sad/2": 4})
    with pytest.raises(SplitFileError, match=r"train_All\.csv:2: unknown label 'Contempt'"):
        build_dataset("ferv39k", root)
    root2 = make_ferv39k(tmp_path / "G", ["A/Happy/1 Happy", "A/Sad/2 Sad"], {"A/Happy/1": 4}, split="test")
    with pytest.raises(SplitFileError, match=r"test_All\.csv:2: frame folder .*A/Sad/2 is missing"):
        build_dataset("ferv39k", root2, split="test")
    with pytest.raises(LayoutError, match="train_All.csv"):
        build_dataset("ferv39k", root2, split="train")


# ----------------------------------------------------------------------------- VoxCeleb2


def test_voxceleb2_scan_cache_and_invalidation(tmp_path):
    root = make_voxceleb2(tmp_path / "vox", {"id001/vidA/00001.mp4": 10, "id001/vidA/00002.mp4": 10, "id002/vidB/00001.mp4": 10})
    cache = tmp_path / "cache"
    first = build_dataset("voxceleb2", root, cache_dir=cache, num_frames=4, stride=2)
    assert first.index_origin == "scan" and len(first) == 3
    assert first.labels == [-1, -1, -1] and first.train and first.stride == 2
    cached = list(cache.glob("*.json"))
    assert len(cached) == 1 and len(json.loads(cached[0].read_text())["files"]) == 3
    again = build_dataset("voxceleb2", root, cache_dir=cache)
    assert again.index_origin == "cache" and [r.path for r in again.records] == [r.path for r in first.records]
    assert again.stride == 4  # VoxCeleb2 default
    write_video(root / "dev" / "mp4" / "id003" / "vidC" / "00001.mp4", frames(10), gop=12)
    grown = build_dataset("voxceleb2", root, cache_dir=cache)
    assert grown.index_origin == "scan" and len(grown) == 4
    item = grown[3]
    assert item["label"] == -1 and item["video"].shape == (3, 16, 32, 32)


def test_voxceleb2_default_cache_lives_next_to_the_data(tmp_path):
    root = make_voxceleb2(tmp_path / "vox", {"id001/v/00001.mp4": 5})
    build_dataset("voxceleb2", root)
    assert (root / "dev" / ".hi2m-index-voxceleb2-dev.json").is_file()
    assert build_dataset("voxceleb2", root).index_origin == "cache"


def test_voxceleb2_missing_layout(tmp_path):
    (tmp_path / "vox").mkdir()
    with pytest.raises(LayoutError, match=r"dev/mp4") as info:
        build_dataset("voxceleb2", tmp_path / "vox")
    assert "<speaker id>" in str(info.value)


# ----------------------------------------------------------------------------- csv / folders


def test_csv_list_file_with_header_names_indices_and_spaces(tmp_path):
    root = tmp_path / "data"
    write_video(root / "clips" / "a.mp4", frames(8), gop=12)
    write_frame_folder(root / "clips" / "b dir", frames(5))
    write_video(root / "clips" / "c.mp4", frames(8), gop=12)
    (root / "train.csv").write_text("path,label\nclips/a.mp4,Happy\nclips/b dir,3\n")
    (root / "val.txt").write_text("clips/c.mp4 angry\nclips/b dir Disgust\n")
    train = build_dataset("csv", root, split="train", num_frames=4, stride=1)
    assert train.labels == [0, 3] and train.train
    val = build_dataset("csv", root, split="val", num_frames=4, stride=1)
    assert val.labels == [3, 5] and not val.train
    assert val[1]["video"].shape == (2, 3, 4, SIZE, SIZE)  # eval: K=2 windows by default


def test_csv_folder_layout(tmp_path):
    root = tmp_path / "folders"
    write_video(root / "Happy" / "x.mp4", frames(6), gop=12)
    write_frame_folder(root / "Sad" / "y", frames(6))
    ds = build_dataset("csv", root, num_frames=2, stride=1)
    assert sorted(ds.labels) == [0, 1]
    (root / "Bored").mkdir()
    with pytest.raises(SplitFileError, match="Bored"):
        build_dataset("csv", root)


def test_csv_bad_lines_are_counted_in_skip_mode(tmp_path, capsys):
    root = tmp_path / "d"
    write_video(root / "a.mp4", frames(4), gop=12)
    (root / "train.csv").write_text("a.mp4,Happy\na.mp4,Bored\nonlyonefield\nmissing.mp4,Sad\n")
    with pytest.raises(SplitFileError, match=r"train\.csv:2: unknown label 'Bored'"):
        build_dataset("csv", root, split="train")
    ds = build_dataset("csv", root, split="train", on_bad_line="skip")
    assert len(ds) == 1 and [b.line for b in ds.bad_lines] == [2, 3, 4]
    assert "missing.mp4" in str(ds.bad_lines[2])
    assert "skipped 3 bad entries" in capsys.readouterr().err


def test_csv_missing_split_names_the_layouts(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(LayoutError) as info:
        build_dataset("csv", tmp_path / "d", split="train")
    assert str(tmp_path / "d" / "train") in str(info.value) and "<split>.csv" in str(info.value)


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_calls_ensure_synthface_then_reads_the_csv(tmp_path, monkeypatch):
    calls = []

    def fake_ensure(root, **config):
        root = Path(root)
        calls.append(config)
        if not (root / "train.csv").exists():
            write_video(root / "videos" / "train" / "000001.mp4", frames(10), gop=12)
            write_video(root / "videos" / "train" / "000002.mp4", frames(10), gop=12)
            (root / "train.csv").write_text("path,label\nvideos/train/000001.mp4,Happy\nvideos/train/000002.mp4,Fear\n")
        return root

    module = types.ModuleType("hi2m.data.synthface")
    module.ensure_synthface = fake_ensure
    monkeypatch.setitem(sys.modules, "hi2m.data.synthface", module)
    ds = build_dataset("synthetic", tmp_path / "sf", split="train", synthface={"num_train": 2}, num_frames=4, stride=2)
    assert calls == [{"num_train": 2}]
    assert ds.labels == [0, 6] and ds.train
    assert ds[1]["video"].shape == (3, 4, SIZE, SIZE)
    with pytest.raises(LayoutError, match="test.csv"):
        build_dataset("synthetic", tmp_path / "sf", split="test")


# ----------------------------------------------------------------------------- options


def test_repeated_sampling_gives_r_windows_from_one_item(dfew_root):
    ds = build_dataset("dfew", dfew_root, num_frames=2, stride=1, repeats=4, seed=1)
    video = ds[0]["video"]
    assert video.shape == (4, 3, 2, SIZE, SIZE)
    firsts = {
        read_index_pattern((video[r, :, 0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for r in range(4)
    }
    assert len(firsts) > 1


def test_seeded_items_are_reproducible_and_change_with_epoch(dfew_root):
    ds = build_dataset("dfew", dfew_root, num_frames=4, stride=1, seed=5, transform=finetune_transform(24, train=True))
    a, b = ds[0]["video"], ds[0]["video"]
    assert a.shape == (3, 4, 24, 24) and torch.equal(a, b)
    changed = False
    for epoch in range(1, 6):
        ds.set_epoch(epoch)
        changed |= not torch.equal(ds[0]["video"], a)
    assert changed


def test_unknown_dataset_name_lists_the_registry(tmp_path):
    with pytest.raises(ValueError) as info:
        build_dataset("kinetics", tmp_path)
    for name in ("voxceleb2", "dfew", "ferv39k", "csv", "synthetic"):
        assert name in str(info.value) and name in DATASETS
