"""UAR/WAR confusion matrix, exact DDP evaluation, multi-view aggregation and reports (hi2m.train.metrics)."""

import csv
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hi2m.train import metrics as M
from _dist import free_port, init_gloo

K = 5
ABSENT = 3  # never a ground-truth class in _data (but may be predicted)


def _data(n=200, seed=0):
    """Seeded targets avoiding class ABSENT, noisy predictions, and logits whose argmax is the prediction."""
    g = torch.Generator().manual_seed(seed)
    present = torch.tensor([k for k in range(K) if k != ABSENT])
    targets = present[torch.randint(len(present), (n,), generator=g)]
    noise = torch.randint(K, (n,), generator=g)
    preds = torch.where(torch.rand(n, generator=g) < 0.6, targets, noise)
    logits = torch.randn(n, K, generator=g)
    logits[torch.arange(n), preds] += 10.0
    return preds, targets, logits


def _loop_metrics(preds, targets):
    """UAR, WAR and per-class recall by counting in plain Python."""
    preds, targets = preds.tolist(), targets.tolist()
    recall = {}
    for k in range(K):
        rows = [p for p, t in zip(preds, targets) if t == k]
        if rows:
            recall[k] = sum(p == k for p in rows) / len(rows)
    war = sum(p == t for p, t in zip(preds, targets)) / len(targets)
    return sum(recall.values()) / len(recall), war, recall


def test_uar_war_per_class_against_a_loop():
    preds, targets, logits = _data()
    uar, war, recall = _loop_metrics(preds, targets)
    for outputs in (preds, logits, logits.softmax(1)):  # ids, logits and probabilities give the same counts
        cm = M.ConfusionMatrix(K)
        for lo in range(0, len(targets), 64):  # in batches
            cm.update(outputs[lo:lo + 64], targets[lo:lo + 64])
        r = cm.compute()
        assert r.uar == pytest.approx(uar, rel=1e-12) and r.war == pytest.approx(war, rel=1e-12)
        assert r.absent_classes == [ABSENT] and r.total == len(targets)
        for k in range(K):
            if k == ABSENT:
                assert math.isnan(float(r.per_class_recall[k]))
            else:
                assert float(r.per_class_recall[k]) == pytest.approx(recall[k], rel=1e-12)
        for t in range(K):
            assert int(r.support[t]) == int((targets == t).sum())
            for p in range(K):
                assert int(r.confusion[t, p]) == int(((targets == t) & (preds == p)).sum())
    assert r.uar != pytest.approx(r.war)  # imbalanced classes: UAR and WAR really differ here


def test_normalised_rows_and_dict():
    preds, targets, _ = _data()
    cm = M.ConfusionMatrix(K)
    cm.update(preds, targets)
    r = cm.compute()
    for k in range(K):
        row = r.confusion_normalized[k]
        if k == ABSENT:
            assert row.isnan().all()
        else:
            assert float(row.sum()) == pytest.approx(1.0, abs=1e-12)
            assert float(row[k]) == pytest.approx(float(r.per_class_recall[k]))
    d = r.to_dict()
    assert d["per_class_recall"][ABSENT] is None and d["uar"] == r.uar
    assert d["confusion"] == r.confusion.tolist()


def test_empty_and_invalid_inputs():
    r = M.ConfusionMatrix(K).compute()
    assert math.isnan(r.uar) and math.isnan(r.war) and r.total == 0 and r.absent_classes == list(range(K))
    cm = M.ConfusionMatrix(K)
    with pytest.raises(ValueError):
        cm.update(torch.tensor([0, K]), torch.tensor([0, 1]))  # prediction out of range
    with pytest.raises(ValueError):
        cm.update(torch.tensor([0, 1]), torch.tensor([-1, 1]))  # target out of range
    with pytest.raises(ValueError):
        cm.update(torch.randn(2, K + 1), torch.tensor([0, 1]))  # wrong number of scores
    assert int(cm.counts.sum()) == 0


def test_merge_of_halves_equals_all_at_once():
    preds, targets, _ = _data(n=101)
    whole = M.ConfusionMatrix(K)
    whole.update(preds, targets)
    a, b = M.ConfusionMatrix(K), M.ConfusionMatrix(K)
    a.update(preds[:40], targets[:40])
    b.update(preds[40:], targets[40:])
    merged = a.merge(b).compute()
    assert torch.equal(merged.confusion, whole.compute().confusion)
    assert merged.uar == whole.compute().uar
    with pytest.raises(ValueError):
        a.merge(M.ConfusionMatrix(K + 1))


def test_all_reduce_without_process_group_is_a_noop_once():
    preds, targets, _ = _data(n=30)
    cm = M.ConfusionMatrix(K)
    cm.update(preds, targets)
    before = cm.counts.clone()
    assert cm.all_reduce() is cm and torch.equal(cm.counts, before)
    with pytest.raises(RuntimeError):  # a second reduction would double-count under DDP
        cm.all_reduce()
    cm.reset()
    assert int(cm.counts.sum()) == 0
    cm.all_reduce()


@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (7, 3), (2, 4), (0, 3), (1, 1), (100, 8)])
def test_shard_indices_cover_every_sample_once(n, world):
    shards = [list(M.shard_indices(n, r, world)) for r in range(world)]
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(n))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    samplers = [M.DistributedEvalSampler(list(range(n)), num_replicas=world, rank=r) for r in range(world)]
    assert [list(s) for s in samplers] == shards and [len(s) for s in samplers] == sizes
    with pytest.raises(ValueError):
        M.shard_indices(n, world, world)


def test_aggregate_views_against_a_loop():
    g = torch.Generator().manual_seed(1)
    clip_of_view = ["c/b.mp4", "c/a.mp4", "c/b.mp4", "c/z.mp4", "c/a.mp4", "c/b.mp4"]  # uneven view counts
    logits = torch.randn(len(clip_of_view), K, generator=g) * 3
    ids, probs = M.aggregate_views(logits, clip_of_view)
    assert ids == ["c/b.mp4", "c/a.mp4", "c/z.mp4"]
    for row, clip in enumerate(ids):
        views = [v for v, c in enumerate(clip_of_view) if c == clip]
        for k in range(K):
            want = 0.0
            for v in views:
                exps = [math.exp(float(x)) for x in logits[v].double()]
                want += exps[k] / sum(exps)
            assert float(probs[row, k]) == pytest.approx(want / len(views), rel=1e-5)
    tensor_ids, tensor_probs = M.aggregate_views(logits, torch.tensor([7, 2, 7, 9, 2, 7]))
    assert tensor_ids.tolist() == [7, 2, 9] and torch.equal(tensor_probs, probs)


def test_format_report_contents():
    preds, targets, _ = _data(n=60)
    cm = M.ConfusionMatrix(K)
    cm.update(preds, targets)
    r = cm.compute()
    names = ["angry", "disgust", "fear", "happy", "neutral"]
    text = M.format_report(r, names)
    assert f"UAR {100 * r.uar:.2f}%" in text and f"WAR {100 * r.war:.2f}%" in text
    assert "absent from targets: happy" in text
    lines = text.splitlines()
    matrix_rows = lines[lines.index("confusion (rows = ground truth, columns = prediction)") + 2:]
    assert len(matrix_rows) == K
    for k, line in enumerate(matrix_rows):
        assert line.split()[0] == names[k]
        assert [int(x) for x in line.split()[1:]] == r.confusion[k].tolist()
    with pytest.raises(ValueError):
        M.format_report(r, names[:-1])


def test_predictions_csv_round_trip(tmp_path):
    names = ["angry", "disgust", "fear", "happy", "neutral"]
    g = torch.Generator().manual_seed(2)
    probs = torch.randn(4, K, generator=g).softmax(1)
    clips = ["a/1.mp4", "b/2.mp4", "c,with comma.mp4", "d/4.mp4"]
    targets = torch.tensor([0, 4, 2, 1])
    path = tmp_path / "out" / "predictions.csv"
    M.write_predictions_csv(path, clips, targets, probs, names)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["clip"] for r in rows] == clips
    for i, r in enumerate(rows):
        assert int(r["target"]) == int(targets[i]) and r["target_name"] == names[int(targets[i])]
        pred = int(probs[i].argmax())
        assert int(r["prediction"]) == pred and r["prediction_name"] == names[pred]
        for k, c in enumerate(names):
            assert float(r[f"prob_{c}"]) == pytest.approx(float(probs[i, k]), abs=1e-6)
    assert os.listdir(path.parent) == ["predictions.csv"]  # no temporary file left behind
    M.write_predictions_csv(path, clips[:1], None, probs[:1], names)  # unlabeled, overwrites
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["target"] == ""
    with pytest.raises(ValueError):
        M.write_predictions_csv(path, clips, targets, probs[:, :2], names)
    assert len(list(csv.DictReader(open(path, newline="")))) == 1  # the failed write left the old file alone


# ---- two gloo processes ---------------------------------------------------------------------------

N_DIST = 23  # not divisible by the world size


def _worker(rank, port, out_dir):
    init_gloo(rank, port)
    try:
        preds, targets, logits = _data(n=N_DIST, seed=3)
        sampler = M.DistributedEvalSampler(N_DIST)  # rank and world from the process group
        idx = torch.tensor(list(sampler))
        cm = M.ConfusionMatrix(K)
        cm.update(logits[idx], targets[idx])
        local = cm.counts.clone()
        cm.all_reduce()
        saved = {"local": local, "counts": cm.counts, "uar": cm.compute().uar}
        torch.save(saved, os.path.join(out_dir, f"r{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_all_reduce_over_two_gloo_ranks_equals_single_process(tmp_path):
    mp.start_processes(_worker, args=(free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    preds, targets, _ = _data(n=N_DIST, seed=3)
    single = M.ConfusionMatrix(K)
    single.update(preds, targets)
    want = single.compute()
    got = [torch.load(tmp_path / f"r{r}.pt", weights_only=True) for r in range(2)]
    assert int(got[0]["local"].sum()) + int(got[1]["local"].sum()) == N_DIST  # each sample counted once
    for g in got:
        assert torch.equal(g["counts"], want.confusion)
        assert g["uar"] == want.uar
