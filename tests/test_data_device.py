"""The data path for GPU nodes: pretraining augmentation on the training device from uint8 worker items,
odd frame sizes as named skips, and the engine giving the same run either way."""

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hi2m.data.dataset import ClipDataset, ClipRecord
from hi2m.data.skipping import collate_skip_bad
from hi2m.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VOXCELEB2_CROP_BOX,
    Compose,
    FixedCrop,
    MultiScaleCrop,
    Normalize,
    ToClipTensor,
    ToFloat,
    pretrain_transform,
)
from test_train_engine import StopAfterFirstEpoch, synth_root, tiny_cfg  # noqa: F401 (a fixture)


def frames(t=6, h=224, w=224, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def reference_view(clip: np.ndarray, box, crop_box, size: int) -> torch.Tensor:
    """One view computed the plain way, in float64: fixed crop, box crop, antialiased bilinear, normalise."""
    top, left, bottom, right = crop_box
    x = torch.from_numpy(clip[:, top:bottom, left:right]).double() / 255  # (T, Hb, Wb, 3)
    y, xo, h, w = box
    x = x[:, y:y + h, xo:xo + w].permute(0, 3, 1, 2)  # (T, 3, h, w)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=(h > size or w > size))
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return ((x - mean) / std).permute(1, 0, 2, 3)  # (C, T, size, size)


def test_device_views_equal_the_worker_views_and_a_float64_reference():
    clip = frames()
    worker = pretrain_transform(112, crop_box=VOXCELEB2_CROP_BOX)
    device = pretrain_transform(112, crop_box=VOXCELEB2_CROP_BOX, on_device=True)
    classic = Compose([ToClipTensor(), FixedCrop(VOXCELEB2_CROP_BOX), ToFloat(), MultiScaleCrop(112), Normalize()])
    drawn = [device(clip, torch.Generator().manual_seed(s)) for s in range(24)]
    uint8 = torch.stack([v for v, _ in drawn])  # (24, C, T, 160, 160)
    boxes = torch.stack([b for _, b in drawn])  # (24, 4)
    assert uint8.dtype == torch.uint8 and uint8.shape == (24, 3, 6, 160, 160)
    assert len({tuple(b[2:].tolist()) for b in boxes}) >= 5  # several box sizes in one batch (grouped apply)
    batched = device.apply(uint8, boxes)  # (24, C, T, 112, 112)
    for s in range(24):
        one = worker(clip, torch.Generator().manual_seed(s))
        assert torch.equal(batched[s], one)  # the same numbers, batched or one by one
        assert torch.equal(one, classic(clip, torch.Generator().manual_seed(s)))  # and as the plain transforms
        ref = reference_view(clip, boxes[s].tolist(), VOXCELEB2_CROP_BOX, 112)
        torch.testing.assert_close(one.double(), ref, rtol=0, atol=1e-4)  # a uint8 step is 0.017 here


def test_both_halves_draw_the_same_random_stream():
    clip = frames(4, 64, 64)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    pretrain_transform(32)(clip, g1)
    pretrain_transform(32, on_device=True)(clip, g2)
    assert torch.equal(torch.rand(8, generator=g1), torch.rand(8, generator=g2))


def test_a_box_that_does_not_fit_is_refused_with_its_numbers():
    views = pretrain_transform(32, on_device=True)
    with pytest.raises(ValueError, match=r"crop box \(10, 0, 60, 60\) does not fit 64x64"):
        views.apply(torch.zeros(1, 3, 2, 64, 64, dtype=torch.uint8), torch.tensor([[10, 0, 60, 60]]))


def _write_clip(path, h, w, n=12):
    from hi2m.data.writer import write_video

    write_video(path, frames(n, h, w))
    return str(path)


def test_uint8_items_and_an_odd_frame_size_is_a_named_skip(tmp_path):
    paths = [_write_clip(tmp_path / f"a{i}.mp4", 48, 48) for i in range(3)] + [_write_clip(tmp_path / "odd.mp4", 64, 48)]
    ds = ClipDataset([ClipRecord(p) for p in paths], num_frames=4, stride=2, repeats=2, seed=0,
                     transform=pretrain_transform(32, on_device=True))
    items = [ds[i] for i in range(len(ds))]
    assert items[0]["video"].dtype == torch.uint8 and items[0]["video"].shape == (2, 3, 4, 48, 48)
    assert items[0]["box"].shape == (2, 4) and items[0]["box"].dtype == torch.int64
    batch = collate_skip_bad(items)
    assert batch["size"] == 3 and batch["video"].shape == (3, 2, 3, 4, 48, 48) and batch["box"].shape == (3, 2, 4)
    assert [(b["path"], b["kind"]) for b in batch["skipped"]] == [(paths[3], "size")]
    assert "64x48 (HxW) in a batch of 48x48" in batch["skipped"][0]["error"]
    # a clip smaller than the crop box is a named transform skip, on the device path as on the worker path
    boxed = ClipDataset([ClipRecord(paths[0])], num_frames=4, stride=2, seed=0,
                        transform=pretrain_transform(32, crop_box=(0, 0, 56, 56), on_device=True))
    bad = boxed[0]
    assert bad["kind"] == "transform" and bad["path"] == paths[0] and "does not fit a 48x48" in bad["error"]


def _losses(log_dir):
    with open(log_dir / "metrics.csv") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_pretraining_with_device_augmentation_is_the_same_run(synth_root, tmp_path):  # noqa: F811
    """uint8 items through a worker, augmented in the module's on_after_batch_transfer, interrupted after an
    epoch and resumed == the worker-augmented run without interruption: every logged loss, every weight."""
    from safetensors.torch import load_file

    from hi2m.train.config import load_config
    from hi2m.train.runner import pretrain

    common = {"repeats": 2, "num_workers": 1, "crop_scales": [1.0, 0.875, 0.75]}
    pretrain(tiny_cfg(synth_root, tmp_path, run={"name": "worker"}, data={**common, "augment": "worker"}))
    cut = tiny_cfg(synth_root, tmp_path, run={"name": "device"}, data={**common, "augment": "device"})
    pretrain(cut, extra_callbacks=[StopAfterFirstEpoch()])
    pretrain(load_config(tmp_path / "device" / "config.yaml"), resume=tmp_path / "device")
    worker = _losses(tmp_path / "worker" / "logs")
    device = _losses(tmp_path / "device" / "logs") + _losses(tmp_path / "device" / "logs" / "resume-1")
    assert len(worker) >= 12 and device == worker
    a = load_file(str(tmp_path / "worker" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "device" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- compact records ----------------------------------------------------------------------------------


def test_record_table_round_trips_paths_labels_and_slices():
    from hi2m.data.records import ClipRecord, RecordTable

    records = [ClipRecord("/d/VoxCeleb2/dev/mp4/id1/a/00001.mp4", -1), ClipRecord("/d/VoxCeleb2/dev/mp4/id1/b/2.mp4", 3),
               ClipRecord("/d/VoxCeleb2/dev/mp4/idé/ü/3.mp4", 0), ClipRecord("/d/other/x.mp4", 6)]
    table = RecordTable.of(records)
    assert list(table) == records and len(table) == 4 and table[-1] == records[-1]
    assert table[1:3] == records[1:3] and table.labels.tolist() == [-1, 3, 0, 6]
    assert table.prefix == "/d/" and RecordTable.of(table) is table
    with pytest.raises(IndexError, match="record 4 of 4"):
        table[4]
    with pytest.raises(ValueError, match="2 paths but 1 labels"):
        RecordTable(["a", "b"], [1])
    ds = ClipDataset(records, num_frames=2, stride=1)
    assert ds.labels == [-1, 3, 0, 6] and isinstance(ds.records, RecordTable)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc")
def test_a_forked_worker_reading_every_record_shares_the_table():
    """The reason for the table: a forked worker that reads every record of a Python list copies its pages
    (reference counts are written); reading the table's buffers copies nothing."""
    import multiprocessing as mp

    from hi2m.data.records import ClipRecord, RecordTable

    def growth(records) -> float:
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_read_all, args=(records, queue))
        proc.start()
        mb = queue.get(timeout=120)
        proc.join()
        return mb

    tails = [f"id{i // 180:05d}/v{i // 8:07d}/{i % 8:05d}.mp4" for i in range(150_000)]
    objects = [ClipRecord("/data/VoxCeleb2/dev/mp4/" + t) for t in tails]
    as_list = growth(objects)
    del objects
    as_table = growth(RecordTable(tails, prefix="/data/VoxCeleb2/dev/mp4/"))
    assert as_list > 10  # ~25 MB here: the measurement sees the copy-on-write it is meant to catch
    assert as_table < 2


def _private_mb() -> float:
    with open("/proc/self/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean:", "Private_Dirty:"))) / 1024


def _read_all(records, queue) -> None:
    before = _private_mb()
    total = sum(len(records[i].path) for i in range(len(records)))
    queue.put(_private_mb() - before if total else -1.0)
