"""Tests of the SynthFace generator (hi2m.data.synthface).

Everything runs on tiny clips (8 frames of 48x48 or 64x64) so the file stays fast
on a 2-core CPU.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from hi2m.labels import DFER_CLASSES
from hi2m.data.synthface import (
    AU_NAMES,
    PART_IDS,
    SynthFaceClips,
    SynthFaceConfig,
    au_vector,
    clip_label,
    ensure_synthface,
    generate_clip,
    load_occlusion,
    load_region_masks,
    load_region_parts,
    sample_spec,
    split_labels,
    write_synthface,
)
from hi2m.data.synthface.params import expression_profile

TINY = dict(num_train=14, num_val=7, num_test=7, num_frames=8, size=48)
CALM = dict(head_motion=0.0, background_motion=0.0, lighting_change=0.0, noise=0.0, occlusion_prob=0.0)
NEUTRAL = DFER_CLASSES.index("Neutral")


def apex(clip) -> int:
    return int(clip.params["apex_frame"])


# --------------------------------------------------------------------------- config, seeds, splits


def test_config_rejects_odd_size_and_unknown_split():
    with pytest.raises(ValueError):
        SynthFaceConfig(size=95)
    with pytest.raises(ValueError):
        generate_clip(SynthFaceConfig(**TINY), "holdout", 0)
    with pytest.raises(IndexError):
        generate_clip(SynthFaceConfig(**TINY), "val", 7)


@pytest.mark.parametrize("frames, size", [(2, 16), (20, 40)])
def test_unusual_clip_shapes(frames, size):
    clip = generate_clip(SynthFaceConfig(num_frames=frames, size=size), "val", 0)
    assert clip.frames.shape == (frames, size, size, 3) and clip.frames.dtype == np.uint8
    assert clip.region_masks.shape == (frames, size, size) and clip.region_masks.any(axis=(1, 2)).all()


def test_generator_import_does_not_load_torch():
    code = "import sys, hi2m.data.synthface as s; s.generate_clip; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # worker processes stay light


def test_same_seed_split_index_gives_identical_clip():
    config = SynthFaceConfig(**TINY)
    first, again = generate_clip(config, "train", 3), generate_clip(config, "train", 3)
    assert np.array_equal(first.frames, again.frames)
    assert np.array_equal(first.region_masks, again.region_masks)
    assert first.params == again.params and first.difficulty == again.difficulty
    other = generate_clip(config, "train", 4)
    assert not np.array_equal(first.frames, other.frames)
    reseeded = generate_clip(SynthFaceConfig(**TINY, seed=1), "train", 3)
    assert not np.array_equal(first.frames, reseeded.frames)


def test_splits_draw_from_different_seeds():
    config = SynthFaceConfig(**TINY)
    for index in range(3):
        clips = [generate_clip(config, split, index) for split in ("train", "val", "test")]
        for a in range(3):
            for b in range(a + 1, 3):
                assert not np.array_equal(clips[a].frames, clips[b].frames)
                assert clips[a].identity["face_width"] != clips[b].identity["face_width"]


@pytest.mark.parametrize("counts", [(1400, 350, 350), (30, 9, 8)])
def test_splits_are_class_balanced(counts):
    config = SynthFaceConfig(num_train=counts[0], num_val=counts[1], num_test=counts[2])
    for split, count in zip(("train", "val", "test"), counts):
        labels = split_labels(config, split)
        assert len(labels) == count
        per_class = np.bincount(labels, minlength=len(DFER_CLASSES))
        assert per_class.max() - per_class.min() <= 1
        assert labels[:14].tolist() != sorted(labels[:14].tolist())  # shuffled, not in class order
    assert clip_label(config, "val", 5) == split_labels(config, "val")[5]


def test_generated_label_matches_plan():
    config = SynthFaceConfig(**TINY)
    labels = split_labels(config, "test")
    assert [generate_clip(config, "test", i).label for i in range(4)] == labels[:4].tolist()


# --------------------------------------------------------------------------- classes are learnable


def softmax_regression(x: np.ndarray, y: np.ndarray, steps: int = 400, lr: float = 1.0) -> tuple[np.ndarray, ...]:
    """Plain gradient-descent multinomial logistic regression."""
    weights, bias = np.zeros((x.shape[1], len(DFER_CLASSES))), np.zeros(len(DFER_CLASSES))
    for _ in range(steps):
        logits = x @ weights + bias  # (N, K)
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        prob[np.arange(len(y)), y] -= 1.0  # gradient of the cross-entropy w.r.t. logits
        weights -= lr * x.T @ prob / len(y)
        bias -= lr * prob.mean(axis=0)
    return weights, bias


def nearest_centroid_accuracy(train_x, train_y, test_x, test_y) -> float:
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    centroids = np.stack([train_x[train_y == c].mean(axis=0) for c in range(len(DFER_CLASSES))])
    pred = np.argmin(((test_x[:, None] - centroids[None]) ** 2).sum(axis=-1), axis=1)
    return float((pred == test_y).mean())


def test_expression_parameters_separate_the_classes():
    config = SynthFaceConfig(num_train=700, num_val=0, num_test=350)
    train_x = np.stack([au_vector(sample_spec(config, "train", i).expression) for i in range(700)])  # (N, A)
    test_x = np.stack([au_vector(sample_spec(config, "test", i).expression) for i in range(350)])
    train_y, test_y = split_labels(config, "train"), split_labels(config, "test")
    assert train_x.shape[1] == len(AU_NAMES)
    weights, bias = softmax_regression(train_x, train_y)
    accuracy = float(((test_x @ weights + bias).argmax(axis=1) == test_y).mean())
    assert accuracy > 0.9
    # classes overlap a little: jitter and leaks make the per-class spread non-zero
    assert train_x[train_y == NEUTRAL].max() > 0.0
    assert train_x[train_y == DFER_CLASSES.index("Happy")].std(axis=0).max() > 0.05


def region_features(clip) -> np.ndarray:
    """Apex-minus-first appearance change inside each expression region (pixels only).

    Per part: change of the share of dark and of bright pixels (relative to the
    part's first-frame median), of the vertical position of the dark pixels and
    of their horizontal spread, all measured relative to the part mask so that
    head motion does not matter.
    """
    gray = clip.frames.astype(np.float32).mean(axis=-1)  # (T, H, W)
    top = apex(clip)
    features = []
    for part in PART_IDS.values():
        first_mask, apex_mask = clip.region_parts[0] == part, clip.region_parts[top] == part  # (H, W)
        ref = float(np.median(gray[0][first_mask]))
        features.append(_part_stats(gray[top], apex_mask, ref) - _part_stats(gray[0], first_mask, ref))
    return np.concatenate(features)


def _part_stats(gray: np.ndarray, mask: np.ndarray, ref: float) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    values = gray[ys, xs]
    dark, bright = values < ref - 40, values > ref + 40
    scale = np.sqrt(mask.sum())
    dark_v = (ys[dark].mean() - ys.mean()) / scale if dark.any() else 0.0
    dark_spread = xs[dark].std() / scale if dark.sum() > 1 else 0.0
    return np.array([dark.mean(), bright.mean(), dark_v, dark_spread])


def test_pixels_inside_region_masks_carry_the_class():
    config = SynthFaceConfig(num_train=140, num_val=0, num_test=70, num_frames=8, size=64)
    train_x = np.stack([region_features(generate_clip(config, "train", i)) for i in range(140)])
    test_x = np.stack([region_features(generate_clip(config, "test", i)) for i in range(70)])
    accuracy = nearest_centroid_accuracy(train_x, split_labels(config, "train"), test_x, split_labels(config, "test"))
    assert accuracy > 0.35  # chance is 1/7 ~ 0.14; all nuisance factors are on


# --------------------------------------------------------------------------- nuisance factors


def test_nuisance_factors_vary_across_clips():
    config = SynthFaceConfig(**{**TINY, "num_train": 28})
    clips = [generate_clip(config, "train", i) for i in range(28)]
    for key in ("face_width", "eye_sep", "skin_tone", "mouth_w"):
        assert np.std([c.identity[key] for c in clips]) > 0
    occluded = np.array([c.difficulty["occluded"] for c in clips], dtype=bool)
    assert 0 < occluded.sum() < len(clips)
    fractions = np.array([c.difficulty["occlusion_fraction"] for c in clips])
    assert fractions[~occluded].max() == 0.0 and fractions[occluded].max() > 0.05
    for key in ("motion_amplitude", "rotation_deg", "noise_sigma", "lighting_change", "intensity", "difficulty_score"):
        assert np.std([c.difficulty[key] for c in clips]) > 0, key
    assert any(c.difficulty["low_intensity"] for c in clips) and not all(c.difficulty["low_intensity"] for c in clips)


def test_knobs_switch_nuisances_off_without_changing_the_person_or_expression():
    busy, calm = SynthFaceConfig(**TINY), SynthFaceConfig(**TINY, **CALM)
    for index in range(6):
        a, b = sample_spec(busy, "train", index), sample_spec(calm, "train", index)
        assert a.identity == b.identity and a.expression == b.expression
        clip = generate_clip(calm, "train", index)
        assert clip.difficulty["motion_amplitude"] == 0.0 and clip.difficulty["rotation_deg"] == 0.0
        assert clip.difficulty["occlusion_fraction"] == 0.0 and clip.difficulty["noise_sigma"] == 0.0
        assert not clip.occlusion.any()


def test_expression_starts_neutral_and_holds_at_the_apex():
    config = SynthFaceConfig(num_frames=16)
    for index in range(10):
        expr = sample_spec(config, "train", index).expression
        profile = expression_profile(expr, 16)  # (T,)
        assert profile[0] == 0.0
        assert np.all(np.diff(profile) >= 0.0)
        assert profile[int(expr["apex_frame"])] == pytest.approx(1.0)


# --------------------------------------------------------------------------- region masks


def test_region_masks_cover_a_minority_of_every_frame():
    config = SynthFaceConfig(**TINY)
    for index in range(7):
        clip = generate_clip(config, "train", index)
        assert clip.region_masks.dtype == bool and clip.region_masks.shape == (8, 48, 48)
        share = clip.region_masks.mean(axis=(1, 2))  # (T,)
        assert share.min() > 0.05 and share.max() < 0.40
        assert set(np.unique(clip.region_parts)) == {0, *PART_IDS.values()}
        assert np.array_equal(clip.region_masks, clip.region_parts > 0)


def test_expression_change_is_concentrated_inside_the_masks():
    config = SynthFaceConfig(num_train=21, num_frames=8, size=64, **CALM)
    inside_share, ratios = [], []
    for index in range(21):
        clip = generate_clip(config, "train", index)
        if clip.label == NEUTRAL:
            continue
        change = np.abs(clip.frames[apex(clip)].astype(np.float32) - clip.frames[0]).mean(axis=-1)  # (H, W)
        mask = clip.region_masks[apex(clip)]
        inside_share.append(change[mask].sum() / change.sum())
        ratios.append(change[mask].mean() / (change[~mask].mean() + 1e-3))
    assert len(ratios) >= 14
    assert np.median(inside_share) > 0.9 and min(inside_share) > 0.7
    assert np.median(ratios) > 20.0


# --------------------------------------------------------------------------- in-memory dataset


def test_in_memory_dataset_items():
    config = SynthFaceConfig(**TINY)
    dataset = SynthFaceClips(config, "val")
    assert len(dataset) == 7
    item = dataset[2]
    clip = generate_clip(config, "val", 2)
    assert item["video"].shape == (3, 8, 48, 48) and item["video"].dtype == torch.float32
    assert 0.0 <= float(item["video"].min()) and float(item["video"].max()) <= 1.0
    assert torch.allclose(item["video"][:, 4], torch.from_numpy(clip.frames[4]).permute(2, 0, 1).float() / 255)
    assert item["label"] == clip.label and item["index"] == 2
    assert item["region_mask"].dtype == torch.bool
    assert torch.equal(item["region_mask"], torch.from_numpy(clip.region_masks))
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["video"].shape == (4, 3, 8, 48, 48)


# --------------------------------------------------------------------------- written dataset


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, SynthFaceConfig]:
    root = tmp_path_factory.mktemp("synthface")
    config = SynthFaceConfig(**TINY)
    assert write_synthface(root, config, workers=2) == root
    return root, config


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])  # (T, H, W, 3)


def test_written_csv_matches_files_and_labels(written):
    root, config = written
    for split in ("train", "val", "test"):
        with open(root / f"{split}.csv") as f:
            assert f.readline().strip() == "path,label"
        rows = read_rows(root / f"{split}.csv")
        assert len(rows) == config.count(split)
        assert rows[1]["path"] == f"videos/{split}/000001.mp4"
        on_disk = {p.relative_to(root).as_posix() for p in (root / "videos" / split).glob("*.mp4")}
        assert on_disk == {r["path"] for r in rows}
        assert [DFER_CLASSES.index(r["label"]) for r in rows] == split_labels(config, split).tolist()
        meta = read_rows(root / "meta" / f"{split}.csv")
        assert [m["path"] for m in meta] == [r["path"] for r in rows]
        assert {"au_mouth_open", "onset", "apex_frame", "occlusion_fraction", "noise_sigma"} <= set(meta[0])
        intensity = generate_clip(config, split, 0).params["intensity"]
        assert float(meta[0]["intensity"]) == pytest.approx(intensity, abs=1e-5)
    marker = json.loads((root / "synthface.json").read_text())
    assert SynthFaceConfig.from_dict(marker["config"]) == config
    assert not list(root.rglob("*.tmp")) and not list((root / "meta").glob(".rows-*"))


def test_written_videos_decode_with_the_right_shape_and_colours(written):
    root, config = written
    for split, index in (("train", 0), ("train", 13), ("val", 3), ("test", 6)):
        frames = decode(root / f"videos/{split}/{index:06d}.mp4")
        assert frames.shape == (8, 48, 48, 3)
        original = generate_clip(config, split, index).frames.astype(np.float32)
        assert np.abs(frames.astype(np.float32) - original).mean() < 12.0


def test_written_masks_round_trip(written):
    root, config = written
    for split, index in (("train", 5), ("test", 2)):
        clip = generate_clip(config, split, index)
        masks = load_region_masks(root, split, index)
        assert masks.dtype == bool and np.array_equal(masks, clip.region_masks)
        assert np.array_equal(load_region_parts(root, split, index), clip.region_parts)
        assert np.array_equal(load_occlusion(root, split, index), clip.occlusion)


def mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_ensure_is_a_no_op_when_up_to_date_and_regenerates_otherwise(tmp_path):
    small = dict(num_train=7, num_val=7, num_test=7, num_frames=8, size=48)
    root = ensure_synthface(tmp_path / "sf", workers=1, **small)
    before = mtimes(root)
    assert len([p for p in before if p.endswith(".mp4")]) == 21
    assert ensure_synthface(root, workers=1, **small) == root
    assert mtimes(root) == before

    stale = root / "videos" / "train" / "stale.mp4"
    stale.write_bytes(b"")
    ensure_synthface(root, workers=1, **{**small, "num_train": 14, "seed": 3})
    assert not stale.exists()
    assert len(list((root / "videos" / "train").glob("*.mp4"))) == 14
    assert json.loads((root / "synthface.json").read_text())["config"]["seed"] == 3

    (root / "synthface.json").unlink()  # a half-written dataset has no marker
    kept = root / "videos" / "val" / "000000.mp4"
    kept.write_bytes(b"broken")
    ensure_synthface(root, workers=1, **{**small, "num_train": 14, "seed": 3})
    assert (root / "synthface.json").exists()
    assert decode(kept).shape == (8, 48, 48, 3)


def test_write_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_synthface(tmp_path, SynthFaceConfig(**TINY), workers=1)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- presets and talking


def test_talking_moves_only_the_mouth_and_leaves_everything_else_as_it_was():
    quiet, talking = SynthFaceConfig(**TINY, **CALM), SynthFaceConfig(**TINY, **CALM, talking=1.0)
    moved = 0
    for index in range(4):
        a, b = generate_clip(quiet, "train", index), generate_clip(talking, "train", index)
        assert sample_spec(quiet, "train", index).identity == sample_spec(talking, "train", index).identity
        mouth = (a.region_parts == PART_IDS["mouth"]) | (b.region_parts == PART_IDS["mouth"])  # (T, H, W)
        # a band around the mouth (antialiased edges, the dark interior) may change; nothing else
        band = torch.nn.functional.max_pool2d(torch.from_numpy(mouth).float()[:, None], 7, 1, 3)[:, 0].numpy() > 0
        diff = np.abs(a.frames.astype(int) - b.frames.astype(int)).max(-1)  # (T, H, W)
        assert diff[~band].max() == 0
        moved += int(diff[band].max() > 20)
        assert b.difficulty["talking"] > 0 and a.difficulty["talking"] == 0
    assert moved >= 3  # the mouth really moves in most clips


def test_presets_mirror_voxceleb2_and_dfew():
    vox = SynthFaceConfig.from_preset("voxceleb2", **TINY)
    dfew = SynthFaceConfig.from_preset("dfew", **TINY)
    assert vox.talking == 1.0 and vox.background_motion == 0.0 and vox.occlusion_prob == 0.0
    assert dfew == SynthFaceConfig(**TINY)  # the DFEW-like preset is the generator's full nuisance
    big = np.mean([generate_clip(vox, "train", i).region_masks.mean() for i in range(6)])
    small = np.mean([generate_clip(dfew, "train", i).region_masks.mean() for i in range(6)])
    assert big > 1.4 * small  # face fills the frame: its regions cover ~1.3^2 more of it
    with pytest.raises(ValueError, match="preset"):
        SynthFaceConfig.from_preset("ferv")
    with pytest.raises(ValueError, match="talking"):
        SynthFaceConfig(talking=2.0)


def test_ensure_synthface_takes_a_preset(tmp_path):
    from hi2m.data.synthface import read_marker

    root = ensure_synthface(tmp_path / "vox", preset="voxceleb2", workers=1, **TINY)
    marker = read_marker(root)
    assert marker["config"]["talking"] == 1.0 and marker["config"]["face_scale"] == 1.3


# --------------------------------------------------------------------------- the unlabelled stream


def test_stream_never_repeats_a_clip_is_deterministic_and_wraps_a_pool():
    from hi2m.data.synthface import SynthFaceStream, generate_stream_clip

    cfg = SynthFaceConfig(**TINY)
    stream = SynthFaceStream(cfg, clips_per_epoch=6)
    seen = {}
    for epoch in range(3):
        stream.set_epoch(epoch)
        for i in range(6):
            item = stream[i]
            assert item["label"] == -1 and item["video"].shape == (3, 8, 48, 48)
            seen[item["index"]] = item["video"]
    assert sorted(seen) == list(range(18))  # 3 epochs, 18 different clips
    hashes = {hash(v.numpy().tobytes()) for v in seen.values()}
    assert len(hashes) == 18
    again = generate_stream_clip(cfg, 7).frames
    np.testing.assert_array_equal(frames_of(seen[7]), again)
    split_clip = generate_clip(cfg, "train", 7).frames
    assert not np.array_equal(split_clip, again)  # the stream is disjoint from the labelled splits
    pooled = SynthFaceStream(cfg, clips_per_epoch=6, pool=4)
    pooled.set_epoch(1)
    assert [pooled[i]["index"] for i in range(6)] == [2, 3, 0, 1, 2, 3]
    labels = [generate_stream_clip(cfg, k).label for k in range(70)]
    assert len(set(labels)) == 7  # a random class per clip: every expression occurs


def test_a_prerendered_pool_gives_the_pixels_of_the_stream():
    """``prerender``: the pool rendered once by spawned processes and read from memory gives every item the
    stream renders on the fly, epoch after epoch (chunks reassembled in order); it needs a finite pool."""
    from hi2m.data.synthface import SynthFaceStream, generate_stream_clip
    from hi2m.data.synthface.render import render_stream_pool

    cfg = SynthFaceConfig(**{**TINY, "num_frames": 4, "size": 16})
    live = SynthFaceStream(cfg, clips_per_epoch=6, pool=5)
    kept = SynthFaceStream(cfg, clips_per_epoch=6, pool=5, prerender=1)
    for epoch in (0, 1, 2):
        live.set_epoch(epoch)
        kept.set_epoch(epoch)
        for i in range(6):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # the pool is read-only: copied, not aliased with a warning
                a, b = live[i], kept[i]
            assert a["index"] == b["index"] and torch.equal(a["video"], b["video"])
    assert not kept.frames.flags.writeable
    parallel = render_stream_pool(cfg, 70, workers=2)  # 2 processes, chunks of 16
    serial = render_stream_pool(cfg, 70, workers=1)
    assert parallel.shape == (70, 4, 16, 16, 3) and np.array_equal(parallel, serial)
    for k in (0, 33, 69):  # frames_only draws the very pixels of the full render (masks and records skipped)
        full = generate_stream_clip(cfg, k)
        assert np.array_equal(parallel[k], full.frames) and full.region_masks is not None
    with pytest.raises(ValueError, match="prerender renders a finite pool"):
        SynthFaceStream(cfg, clips_per_epoch=6, prerender=2)


def frames_of(video: torch.Tensor) -> np.ndarray:
    return (video.permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)


def test_stream_pretraining_through_the_engine_with_workers(tmp_path):
    """``data.dataset: synthface-stream``: the run pretrains on clips rendered in 2 DataLoader workers,
    never the same clip twice (the stream indices of the run's batches are all different)."""
    from hi2m.train.config import DEFAULTS, deep_merge
    from hi2m.train.runner import pretrain

    cfg = deep_merge(DEFAULTS, {
        "model": {"size": "micro", "mask_ratio": 0.75},
        "data": {"dataset": "synthface-stream", "root": str(tmp_path / "unused"), "num_frames": 8, "stride": 1,
                 "image_size": 32, "batch_size": 4, "num_workers": 2,
                 "options": {"clips_per_epoch": 12, "synthface": {"preset": "voxceleb2", "size": 32}}},
        "optim": {"epochs": 2, "warmup_epochs": 0, "base_lr": 1e-3, "lr_scaling": "none"},
        "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "enable_progress_bar": False},
        "run": {"dir": str(tmp_path / "runs"), "name": "stream"},
    })
    import lightning.pytorch as pl

    class Record(pl.Callback):
        indices: list[int] = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.indices += batch["index"].tolist()

    out = pretrain(cfg, extra_callbacks=[Record()])
    assert len(out["epoch_stats"]) == 2 and (out["model_dir"] / "model.safetensors").is_file()
    assert sorted(Record.indices) == list(range(24))  # 2 epochs x 12 clips, every one new
    assert not (tmp_path / "unused").exists()  # nothing written for the data
    bad = deep_merge(cfg, {"data": {"num_frames": 4}, "run": {"name": "bad"}})
    with pytest.raises(ValueError, match="num_frames"):
        pretrain(deep_merge(bad, {"data": {"options": {"synthface": {"num_frames": 8}}}}))


# --------------------------------------------------------------------------- batched drawing

@pytest.mark.parametrize("preset", ["voxceleb2", "dfew"])
def test_a_batch_draws_each_clip_as_it_is_drawn_alone(preset):
    """``render_specs`` draws a batch with one array operation per shape; every clip of it -- frames, part map,
    occluder pixels and difficulty record -- is the clip drawn alone, bit for bit, whatever its neighbours
    (with and without hair or an occluder, different windows and motions)."""
    from hi2m.data.synthface import synthface_config
    from hi2m.data.synthface.render import render_spec, render_specs

    config = synthface_config(preset=preset, num_frames=6, size=32, seed=3, occlusion_prob=0.4)
    specs = [sample_spec(config, "train", k) for k in range(40)]
    hairless = [s for s in specs if not s.identity["has_hair"]][:2]
    occluded = [s for s in specs if s.scene["occluder"]["present"]][:2]
    batch = hairless + occluded + [s for s in specs if s not in hairless + occluded][:7]
    assert len(hairless) == 2 and len(occluded) == 2  # the batch mixes what a clip may switch on or off
    together = render_specs(batch, config)
    for spec, clip in zip(batch, together):
        alone = render_spec(spec, config)
        assert np.array_equal(clip.frames, alone.frames)
        assert np.array_equal(clip.region_parts, alone.region_parts) and clip.region_parts.any()
        assert np.array_equal(clip.occlusion, alone.occlusion)
        assert clip.difficulty == alone.difficulty
    assert len({c.frames.tobytes() for c in together}) == len(batch)
    pool = render_specs(batch, config, frames_only=True)
    assert all(np.array_equal(a.frames, b.frames) and a.region_masks is None for a, b in zip(pool, together))


def test_a_per_clip_constant_meets_arrays_as_a_python_float():
    """``PerClip`` imitates each clip's Python float: float64 among numbers, cast to float32 first when it
    meets a float32 array (numpy's rule for a Python float), float64 with a float64 array."""
    from hi2m.data.synthface.raster import PerClip, larger

    values_a, values_c = [0.123456789, -2.5, 1e-3], [0.7, 0.33333333333, -1.1]
    a, c = PerClip.stack(values_a), PerClip.stack(values_c)
    u = np.random.default_rng(0).standard_normal((3, 2, 4, 5)).astype(np.float32)  # (B, T, h, w)
    batched = {
        "sub_div": (u - (c - 0.13)) / (a * a + 1.0),
        "reflected": 1.0 - (0.5 * a) * u,
        "neg_mul": -c * u,
        "f64": np.arange(3.0).reshape(3, 1, 1, 1) * a,
    }
    for b, (fa, fc) in enumerate(zip(values_a, values_c)):
        alone = {
            "sub_div": (u[b] - (fc - 0.13)) / (fa * fa + 1.0),
            "reflected": 1.0 - (0.5 * fa) * u[b],
            "neg_mul": -fc * u[b],
            "f64": np.float64(b) * fa,
        }
        for name, value in alone.items():
            assert batched[name].dtype == (np.float64 if name == "f64" else np.float32), name
            assert np.array_equal(batched[name][b], np.broadcast_to(value, batched[name][b].shape)), name
    assert np.array_equal(larger(a, 0.1).value.ravel(), [max(x, 0.1) for x in values_a])
    assert larger(0.2, 0.1) == 0.2
