"""Evaluation metrics for expression recognition: UAR / WAR from a confusion matrix, exact under DDP.

- UAR (unweighted average recall): mean over classes of recall = correct / support, the headline metric
  on imbalanced DFER benchmarks (DFEW, FERV39k, MAFW).
- WAR (weighted average recall): plain accuracy = trace / total.

Exactness under DDP: shard the evaluation set with :func:`shard_indices` / :class:`DistributedEvalSampler`
(every sample on exactly one rank, no padding), accumulate a :class:`ConfusionMatrix` per rank, then call
``all_reduce()`` once. torch's ``DistributedSampler`` pads by repeating samples, which would count some
clips twice.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import Sampler


@dataclass
class ClassificationResult:
    """What :meth:`ConfusionMatrix.compute` returns. Tensors are on the CPU.

    ``uar`` averages ``per_class_recall`` over the classes present in the targets only; the absent ones
    (recall NaN, row of ``confusion_normalized`` NaN) are listed in ``absent_classes``.
    ``uar`` / ``war`` are NaN when nothing was counted.
    """

    uar: float
    war: float
    per_class_recall: torch.Tensor  # (K,) float64, NaN for absent classes
    confusion: torch.Tensor  # (K, K) int64, rows = ground truth, columns = prediction
    confusion_normalized: torch.Tensor  # (K, K) float64, each present row sums to 1
    support: torch.Tensor  # (K,) int64, samples per ground-truth class
    total: int
    absent_classes: list[int] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """K."""
        return int(self.support.numel())

    def to_dict(self) -> dict:
        """Plain Python values (NaN -> None) for JSON logs."""

        def clean(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "uar": clean(self.uar),
            "war": clean(self.war),
            "per_class_recall": [clean(float(r)) for r in self.per_class_recall],
            "confusion": self.confusion.tolist(),
            "support": self.support.tolist(),
            "total": self.total,
            "absent_classes": list(self.absent_classes),
        }


class ConfusionMatrix:
    """Counts (ground truth, prediction) pairs; ``compute()`` gives UAR, WAR and friends.

    ``update(outputs, targets)`` takes predicted class ids (B,) or scores (B, K) -- logits or
    probabilities, argmax is taken -- and integer targets (B,).
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)  # (K, K)
        self._reduced = False

    def reset(self) -> None:
        """Zero the counts (and allow another ``all_reduce``)."""
        self.counts.zero_()
        self._reduced = False

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: ``outputs`` (B,) class ids or (B, K) scores, ``targets`` (B,) class ids."""
        preds = self._to_predictions(outputs).to(self.counts.device)  # (B,)
        targets = targets.detach().reshape(-1).to(self.counts.device)  # (B,)
        if targets.is_floating_point() or preds.shape != targets.shape:
            got = f"{targets.dtype} {tuple(targets.shape)}"
            raise ValueError(f"need integer targets, one per prediction, got {got}")
        K = self.num_classes
        for what, ids in (("targets", targets), ("predictions", preds)):
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= K):
                span = f"[{int(ids.min())}, {int(ids.max())}]"
                raise ValueError(f"{what} must lie in [0, {K}), got range {span}")
        flat = targets.long() * K + preds.long()  # (B,) row-major cell index
        self.counts += torch.bincount(flat, minlength=K * K).reshape(K, K)

    def _to_predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """(B, K) scores -> argmax (B,); (B,) ids pass through."""
        outputs = outputs.detach()
        if outputs.ndim == 2:
            if outputs.shape[1] != self.num_classes:
                raise ValueError(f"scores have {outputs.shape[1]} columns, expected {self.num_classes}")
            return outputs.argmax(dim=1)  # (B,)
        if outputs.ndim == 1 and not outputs.is_floating_point():
            return outputs
        got = f"{outputs.dtype} {tuple(outputs.shape)}"
        raise ValueError(f"outputs must be (B,) integer ids or (B, K) scores, got {got}")

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (e.g. two evaluation loaders); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.counts += other.counts.to(self.counts.device)
        return self

    def all_reduce(self, group: dist.ProcessGroup | None = None) -> ConfusionMatrix:
        """Sum the counts over all ranks (no-op without an initialised process group); returns self.

        Call it once, after the last ``update``: a second call would count everything again and raises
        (``reset()`` re-arms it). With NCCL the counts travel through the current CUDA device.
        """
        if self._reduced:
            raise RuntimeError("all_reduce() was already called on these counts; reset() first")
        self._reduced = True
        if not (dist.is_available() and dist.is_initialized()):
            return self
        buffer = self.counts
        if "nccl" in str(dist.get_backend(group)) and buffer.device.type != "cuda":
            buffer = buffer.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=group)
        self.counts.copy_(buffer)
        return self

    def compute(self) -> ClassificationResult:
        """UAR, WAR, per-class recall and the (normalised) confusion matrix from the counts so far."""
        counts = self.counts.cpu()  # (K, K)
        support = counts.sum(dim=1)  # (K,)
        total = int(support.sum())
        present = support > 0  # (K,)
        normalized = counts.double() / support.double().unsqueeze(1)  # (K, K), NaN rows where support = 0
        recall = counts.diagonal().double() / support.double()  # (K,), NaN where support = 0
        uar = float(recall[present].mean()) if bool(present.any()) else math.nan
        war = float(counts.trace()) / total if total else math.nan
        return ClassificationResult(
            uar=uar,
            war=war,
            per_class_recall=recall,
            confusion=counts.clone(),
            confusion_normalized=normalized,
            support=support,
            total=total,
            absent_classes=[int(k) for k in torch.nonzero(~present).flatten()],
        )


# ---- sharding the evaluation set ---------------------------------------------------------------


def shard_indices(n: int, rank: int, world: int) -> range:
    """The evaluation samples of one rank: ``rank, rank + world, rank + 2*world, ...`` below ``n``.

    Every index in ``0..n-1`` goes to exactly one rank -- no padding, no duplicates -- so per-rank counts
    summed over ranks are exact. Shard sizes differ by at most one (ranks beyond ``n`` get nothing).
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return range(rank, n, world)


class DistributedEvalSampler(Sampler[int]):
    """Sampler over :func:`shard_indices`: each sample on exactly one rank, in dataset order.

    Ranks may get different numbers of batches, so run evaluation on the unwrapped model
    (``ddp_model.module``): a DDP forward can issue collectives (buffer broadcast) and would then hang.
    ``num_replicas`` / ``rank`` default to the initialised process group, else to a single process.
    """

    def __init__(
        self, data: Sequence | int, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        initialised = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialised else 1
        if rank is None:
            rank = dist.get_rank() if initialised else 0
        self.num_replicas, self.rank = num_replicas, rank
        self.n = data if isinstance(data, int) else len(data)
        self.indices = shard_indices(self.n, self.rank, self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# ---- multi-view testing -------------------------------------------------------------------------


def aggregate_views(
    logits: torch.Tensor, clip_ids: torch.Tensor | Sequence[Hashable]
) -> tuple[torch.Tensor | list, torch.Tensor]:
    """Average the softmax of every view of a clip (K temporal x M spatial views per clip).

    logits (V, K) for V views in any order, clip_ids (V,) naming the clip of each view (ints, strings,
    paths) -> (unique clip ids in order of first appearance, probs (N_clips, K) float32 on the CPU). Unique
    ids come back as a tensor when ``clip_ids`` is one, else as a list. Under DDP, gather all views of a clip
    on one rank first (shard the evaluation set by clip, not by view).
    """
    tensor_ids = isinstance(clip_ids, torch.Tensor)
    ids = clip_ids.tolist() if tensor_ids else list(clip_ids)
    if logits.ndim != 2 or len(ids) != logits.shape[0]:
        raise ValueError(f"need logits (V, K) and V clip ids, got {tuple(logits.shape)} and {len(ids)}")
    position: dict[Hashable, int] = {}
    for clip in ids:
        position.setdefault(clip, len(position))
    index = torch.tensor([position[c] for c in ids], dtype=torch.long)  # (V,)
    probs = F.softmax(logits.detach().float().cpu(), dim=1)  # (V, K)
    sums = torch.zeros(len(position), logits.shape[1]).index_add_(0, index, probs)  # (N, K)
    views = torch.bincount(index, minlength=len(position)).unsqueeze(1)  # (N, 1)
    unique = list(position)
    if tensor_ids:
        unique = torch.tensor(unique, dtype=clip_ids.dtype)
    return unique, sums / views


# ---- reporting ------------------------------------------------------------------------------------


def _percent(x: float) -> str:
    """'61.23%' or 'n/a' for NaN."""
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def format_report(result: ClassificationResult, class_names: Sequence[str]) -> str:
    """A text table: UAR/WAR, per-class support and recall, and the confusion matrix with class names."""
    if len(class_names) != result.num_classes:
        raise ValueError(f"{len(class_names)} class names for {result.num_classes} classes")
    names = [str(c) for c in class_names]
    absent = ", ".join(names[k] for k in result.absent_classes) or "none"
    lines = [
        f"UAR {_percent(result.uar)}  WAR {_percent(result.war)}  "
        f"(N = {result.total}; UAR over {result.num_classes - len(result.absent_classes)} of "
        f"{result.num_classes} classes; absent from targets: {absent})",
        "",
    ]
    label_w = max(len("class"), *(len(n) for n in names))
    lines.append(f"{'class':<{label_w}}  {'support':>7}  {'recall':>7}")
    for k, name in enumerate(names):
        recall = _percent(float(result.per_class_recall[k]))
        lines.append(f"{name:<{label_w}}  {int(result.support[k]):>7}  {recall:>7}")
    lines += ["", "confusion (rows = ground truth, columns = prediction)"]
    cell_w = max(max(len(n) for n in names), len(str(int(result.confusion.max()) if result.total else 0)))
    lines.append(" " * label_w + "  " + " ".join(f"{n:>{cell_w}}" for n in names))
    for k, name in enumerate(names):
        row = " ".join(f"{int(c):>{cell_w}}" for c in result.confusion[k])
        lines.append(f"{name:<{label_w}}  {row}")
    return "\n".join(lines)


def write_predictions_csv(
    path: str | os.PathLike,
    clip_ids: Sequence,
    targets: torch.Tensor | Sequence[int] | None,
    probs: torch.Tensor,
    class_names: Sequence[str],
) -> None:
    """One row per clip: ``clip, target, target_name, prediction, prediction_name, prob_<class>...``.

    ``target`` / ``prediction`` are class indices (``target`` empty when ``targets`` is None); probabilities
    use 6 decimals. Written to a temporary file in the same folder, then moved into place with
    ``os.replace``, so a reader never sees a half-written file.
    """
    probs = probs.detach().float().cpu()  # (N, K)
    if isinstance(clip_ids, torch.Tensor):
        clip_ids = clip_ids.tolist()
    if probs.ndim != 2 or probs.shape != (len(clip_ids), len(class_names)):
        want = f"{len(clip_ids)} clips x {len(class_names)} classes"
        raise ValueError(f"probs {tuple(probs.shape)} do not match {want}")
    target_list = None if targets is None else [int(t) for t in targets]
    if target_list is not None and len(target_list) != len(clip_ids):
        raise ValueError(f"{len(target_list)} targets for {len(clip_ids)} clips")
    preds = probs.argmax(dim=1).tolist()  # (N,)
    header = ["clip", "target", "target_name", "prediction", "prediction_name"]
    header += [f"prob_{c}" for c in class_names]
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".predictions-", suffix=".csv.tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for i, clip in enumerate(clip_ids):
                t = "" if target_list is None else target_list[i]
                t_name = "" if target_list is None else class_names[t]
                row = [str(clip), t, t_name, preds[i], class_names[preds[i]]]
                writer.writerow(row + [f"{float(p):.6f}" for p in probs[i]])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---- a run's logged rows ---------------------------------------------------------------------------------

def logged_rows(run_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Every row of a run's CSV logs (``logs/metrics.csv`` and each resumed session's ``logs/resume-*/``),
    sessions in order."""
    rows: list[dict[str, str]] = []
    for log in sorted((Path(run_dir) / "logs").glob("**/metrics.csv")):
        with open(log, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def logged_column(run_dir: str | os.PathLike, column: str) -> list[tuple[int, float]]:
    """(step, value) of one logged column, in step order, one value per step (a later session's wins)."""
    values = {int(r["step"]): float(r[column]) for r in logged_rows(run_dir) if r.get(column)}
    return sorted(values.items())
