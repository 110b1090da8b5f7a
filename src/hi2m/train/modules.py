"""Lightning modules for pretraining and fine-tuning. The models themselves stay pure PyTorch
(``hi2m.model``); this file only wires them to Lightning's loop, logging and checkpoints."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist

from hi2m.analysis import hrd_diagnostics
from hi2m.data.errors import TooManyBadFilesError
from hi2m.data.skipping import SkipTracker
from hi2m.io.files import atomic_write
from hi2m.model import HI2M
from hi2m.model.classifier import VideoClassifier
from hi2m.model.compiled import compile_blocks
from hi2m.train.checkpointing import gather_per_rank, rng_states, set_rng_states
from hi2m.train.config import RunConfig
from hi2m.train.data import pretrain_views
from hi2m.train.metrics import ConfusionMatrix
from hi2m.train.mixup import (
    Mixup,
    label_smoothing_cross_entropy,
    soft_target_cross_entropy,
)
from hi2m.train.optim import (
    GroupRule,
    WarmupCosine,
    build_adamw,
    clip_grad_norm_and_check,
)

log = logging.getLogger("hi2m")


def step_seed(seed: int, step: int, rank: int) -> int:
    """A per-step, per-rank seed: masks and mixup depend only on (seed, step, rank), so a resumed run
    draws exactly what the uninterrupted run drew."""
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729 + 17) % (2**62)


class _Base(pl.LightningModule):
    """Schedule, optimiser, NaN/Inf guard, skipped-clip tracking shared by both tasks."""

    def __init__(self, run_cfg: RunConfig, total_steps: int, warmup_steps: int, lr: float):
        super().__init__()
        self.run_cfg = run_cfg
        o = run_cfg.optim
        self.lr = lr
        self.schedule = WarmupCosine(
            total_steps=max(total_steps, 1),
            warmup_steps=min(warmup_steps, max(total_steps - 1, 0)),
            base_lr=lr,
            min_lr=min(o.min_lr, lr),
        )
        self.max_bad_steps = run_cfg.trainer.max_bad_steps
        self.bad_in_a_row = 0
        self.bad_steps_total = 0
        self.overflow_steps = 0
        self.skips = SkipTracker(max_share=run_cfg.data.max_bad_share)

    def _maybe_compile(self) -> None:
        """``model.compile: true``: torch.compile the blocks and the policy in place (same state dict)."""
        if self.run_cfg.model.compile:
            compile_blocks(self.model)

    # ---- optimiser and schedule ------------------------------------------------------------
    def _optimizer(self, model: torch.nn.Module, layer_decay: float | None = None, rules=()):
        o = self.run_cfg.optim
        # torch's fused AdamW (one kernel over all tensors) where it has one: on the CPU it takes the demo's
        # optimiser step from 5.9 to 1.9 ms (benchmarks/demo_budget.py); the for-loop default elsewhere
        fused = True if self.device.type in ("cpu", "cuda") else None
        return build_adamw(model, lr=self.lr, weight_decay=o.weight_decay, betas=tuple(o.betas),
                           layer_decay=layer_decay, rules=rules, fused=fused)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move only the batch's tensors (Lightning's generic walk over the paths and skip lists cost ~4% of a
        small model's step); nothing to move on the CPU."""
        if device.type == "cpu" or not isinstance(batch, dict):
            return batch if device.type == "cpu" else super().transfer_batch_to_device(batch, device, dataloader_idx)
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _raw_optimizer(self) -> torch.optim.Optimizer:
        opt = self.optimizers()
        return getattr(opt, "optimizer", opt)

    def on_before_optimizer_step(self, optimizer) -> None:
        max_norm = self.run_cfg.optim.clip_grad
        norm, finite = clip_grad_norm_and_check(self.parameters(), max_norm)
        if not finite:  # fp16 overflow (the grad scaler skips the step) or a bad batch: count it, change nothing
            self.overflow_steps += 1
            log.warning("step %d: non-finite gradient norm; the optimiser step is skipped", self.global_step)
            for p in self.parameters():
                p.grad = None  # AdamW leaves parameters without a gradient untouched
        if self._writes_logs():
            self.log("train/grad_norm", norm if finite else float("nan"), on_step=True, on_epoch=False)
            self.log("train/overflow_steps", float(self.overflow_steps), on_step=True, on_epoch=False)

    def _writes_logs(self) -> bool:
        """Whether Lightning writes this step's logged values (every ``trainer.log_every_n_steps`` and at the
        last step). ``self.log`` costs about 1 ms a call, 18 ms a step at the demo's size (benchmarks/
        demo_budget.py), for values that are dropped on every other step: the modules log only here."""
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return bool(getattr(connector, "should_update_logs", True))

    # ---- bad steps ---------------------------------------------------------------------------
    def _all_ok(self, ok: bool) -> bool:
        """True only when every rank's batch is usable (ranks must skip together under DDP)."""
        flag = torch.tensor([1.0 if ok else 0.0], device=self.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def _guard(self, loss: torch.Tensor | None, batch_size: int) -> bool:
        ok = self._all_ok(batch_size > 0 and loss is not None and bool(torch.isfinite(loss).item()))
        if ok:
            self.bad_in_a_row = 0
            return True
        self.bad_in_a_row += 1
        self.bad_steps_total += 1
        what = "an empty batch (every clip failed to decode)" if batch_size == 0 else f"a non-finite loss ({loss})"
        log.warning("step %d: skipping %s [%d in a row]", self.global_step, what, self.bad_in_a_row)
        if self.bad_in_a_row >= self.max_bad_steps:
            raise RuntimeError(
                f"{self.bad_in_a_row} training steps in a row had a NaN/Inf loss or no data (last at step "
                f"{self.global_step}); stopping. The last good checkpoint is intact in the run directory. "
                "Lower the learning rate, enable gradient clipping (optim.clip_grad) or use bf16 instead of fp16."
            )
        return False

    def _track_skips(self, batch: dict[str, Any]) -> int:
        self.skips.update(batch)
        return int(batch.get("size", 0))

    def _record_skipped(self, stage: str, skipped: list[dict[str, Any]]) -> None:
        """Every rank's skipped clips, listed by rank 0 in ``<run dir>/skipped_files.csv``."""
        everyone = [b for part in gather_per_rank(list(skipped)) for b in part]
        if self.trainer.is_global_zero:
            append_skipped(Path(self.trainer.default_root_dir) / "skipped_files.csv", self.current_epoch, stage,
                           everyone)

    def on_train_epoch_end(self) -> None:
        try:
            summary = self.skips.end_epoch()
        except TooManyBadFilesError:  # the run stops: the list goes to the run directory first
            self._record_skipped("train", self.skips.skipped)
            raise
        if self.skips.history and self.skips.history[-1]:
            log.warning(summary)
        self._record_skipped("train", self.skips.history[-1])
        self.log("train/skipped_clips", float(len(self.skips.history[-1]) if self.skips.history else 0),
                 sync_dist=True, reduce_fx="sum")
        self.log("train/bad_steps", float(self.bad_steps_total))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hi2m_counters"] = {
            "bad_steps_total": self.bad_steps_total,
            "overflow_steps": self.overflow_steps,
        }
        # per rank: the random streams (dropout, drop path) and, mid-epoch, what the epoch has gathered so far
        mine = {"rng": rng_states(), "epoch": self._epoch_state() if self._mid_epoch() else None}
        checkpoint["hi2m_ranks"] = gather_per_rank(mine)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("hi2m_counters", {})
        self.bad_steps_total = int(counters.get("bad_steps_total", 0))
        self.overflow_steps = int(counters.get("overflow_steps", 0))
        ranks = checkpoint.get("hi2m_ranks")
        if ranks is not None:
            if len(ranks) != self.trainer.world_size:
                raise RuntimeError(f"the checkpoint was written by {len(ranks)} processes, this run has "
                                   f"{self.trainer.world_size}: its data order and random streams cannot continue")
            mine = ranks[self.global_rank]
            self._pending_rng = mine["rng"]  # applied just before the first step (nothing may draw in between)
            if mine["epoch"] is not None:
                self._load_epoch_state(mine["epoch"])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        pending = getattr(self, "_pending_rng", None)
        if pending is not None:
            set_rng_states(pending)
            self._pending_rng = None
        self.schedule.apply(self._raw_optimizer(), self.global_step)

    def _mid_epoch(self) -> bool:
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed < trainer.num_training_batches

    def _epoch_state(self) -> dict[str, Any]:
        """What this rank has accumulated since the epoch began (restored by a mid-epoch resume)."""
        return {"skips_seen": self.skips.seen, "skips": [dict(b) for b in self.skips.skipped]}

    def _load_epoch_state(self, state: dict[str, Any]) -> None:
        self.skips.seen = int(state["skips_seen"])
        self.skips.skipped = [dict(b) for b in state["skips"]]

    def _generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(
            step_seed(self.run_cfg.seed, self.global_step, self.global_rank)
        )


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k) for k in fields})

    atomic_write(path, write)


def append_loss_stats(path: Path, stats: list[dict[str, float]]) -> None:
    """Write ``stats`` (per-epoch rows) into the CSV at ``path``, replacing rows of those epochs and later ones
    (a resumed run rewrites what an interrupted session may have left), atomically."""
    if not stats:
        return
    rows = [r for r in _read_csv(path) if float(r["epoch"]) < stats[0]["epoch"]]
    _write_csv(path, list(stats[0].keys()), rows + stats)


SKIPPED_FIELDS = ["epoch", "stage", "path", "kind", "error"]


def append_skipped(path: Path, epoch: int, stage: str, skipped: list[dict[str, Any]]) -> None:
    """Record the clips skipped in ``stage`` (train / validation / test) of ``epoch`` in the CSV at ``path``
    (``<run dir>/skipped_files.csv``), replacing rows of that stage from this epoch on (a resumed run
    rewrites what an interrupted session left), atomically. Written even when nothing was skipped."""
    rows = [r for r in _read_csv(path) if not (r["stage"] == stage and int(r["epoch"]) >= epoch)]
    rows += [{"epoch": epoch, "stage": stage, "path": b["path"], "kind": b.get("kind", "decode"),
              "error": b["error"]} for b in skipped]
    _write_csv(path, SKIPPED_FIELDS, rows)


class PretrainModule(_Base):
    """HI2M pretraining (Eq. 8) with per-step and per-epoch statistics (Table 10)."""

    def __init__(self, run_cfg: RunConfig, model_cfg, total_steps: int, warmup_steps: int, lr: float):
        super().__init__(run_cfg, total_steps, warmup_steps, lr)
        self.model = HI2M(model_cfg)
        self._maybe_compile()
        self._views = None  # the device half of the augmentation, built on the first batch that needs it
        self._epoch_rows: list[torch.Tensor] = []
        self._epoch_hrd: list[dict[str, float]] = []
        self.epoch_stats: list[dict[str, float]] = []

    def configure_optimizers(self):
        o = self.run_cfg.optim
        policy = GroupRule("masker.policy.", "hrd", lr_scale=o.hrd_lr_scale, weight_decay=o.hrd_weight_decay)
        return self._optimizer(self.model, rules=(policy,))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augmentation left to the device (``data.augment``): uint8 frames + crop boxes -> normalised views,
        batched on the training device (:meth:`hi2m.data.transforms.PretrainViews.apply`)."""
        if isinstance(batch, dict) and "box" in batch and batch.get("size", 0) > 0:
            if self._views is None:
                self._views = pretrain_views(self.run_cfg, self.model.cfg)
            video = batch["video"]  # uint8 (B, C, T, H, W) or (B, R, C, T, H, W)
            lead = video.shape[: video.ndim - 4]
            views = self._views.apply(video.flatten(0, len(lead) - 1), batch["box"].reshape(-1, 4))
            batch["video"] = views.reshape(*lead, *views.shape[1:])  # float, same leading axes
        return batch

    def training_step(self, batch: dict[str, Any], batch_idx: int):
        size = self._track_skips(batch)
        out = None
        if size > 0:
            video = batch["video"]
            if video.ndim == 6:  # repeated sampling: (B, R, C, T, H, W) -> (B*R, C, T, H, W)
                video = video.flatten(0, 1)
            out = self.model(video, generator=self._generator())
        if not self._guard(None if out is None else out.loss, size):
            return None
        self._log_step(out, video.shape[0])
        self._last_hsm = (out.sample_loss.detach().cpu(), out.weights.detach().cpu())
        parts = [out.sample_loss]
        if out.sample_loss_appearance is not None:
            parts += [out.sample_loss_appearance, out.sample_loss_motion]
        self._epoch_rows.append(torch.stack(parts, 1).float().cpu())  # (B, 1 or 3)
        return out.loss

    def _log_step(self, out, batch_size: int) -> None:
        if not self._writes_logs():
            return
        logs = {
            "train/loss": out.loss.detach(),
            "train/loss_hsm": out.loss_hsm.detach(),
            "train/L_R": out.sample_loss.mean(),
            "train/hsm_w_mean": out.weights.mean(),
            "train/hsm_w_max": out.weights.max(),
            "train/hsm_w_std": out.weights.std(unbiased=False),
            "train/lr": torch.tensor(self._raw_optimizer().param_groups[0]["lr"]),
        }
        if out.sample_loss_appearance is not None:
            logs["train/L_R_appearance"] = out.sample_loss_appearance.mean()
            logs["train/L_R_motion"] = out.sample_loss_motion.mean()
        if out.loss_hrd is not None:
            logs["train/loss_hrd"] = out.loss_hrd.detach()
            hrd_lrs = [g["lr"] for g in self._raw_optimizer().param_groups if g["name"].startswith("hrd_")]
            if hrd_lrs:
                logs["train/lr_hrd"] = torch.tensor(hrd_lrs[0])  # alpha of Eq. 5 at this step
            diag = self._hrd_diagnostics(out)  # on the steps whose logs are written, as before
            self._epoch_hrd.append(diag)
            logs.update({f"train/hrd_{k}": torch.tensor(v) for k, v in diag.items()})
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=batch_size)
        self.log("loss", out.loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=batch_size)

    def _hrd_diagnostics(self, out) -> dict[str, float]:
        """Entropy, KL to uniform, Spearman(P, token loss), loss CV, visible-set overlap (hi2m.analysis);
        the overlap's two extra draws use their own generator, so the run's random streams are untouched."""
        gen = torch.Generator(device=self.device).manual_seed(
            step_seed(self.run_cfg.seed, self.global_step, self.global_rank) ^ 0x5EED)
        return hrd_diagnostics(out.mask.log_probs, out.mask.masked, out.token_loss, out.mask.visible.shape[1], gen)

    def _epoch_state(self) -> dict[str, Any]:
        rows = torch.cat(self._epoch_rows) if self._epoch_rows else torch.zeros(0, 0)
        return {**super()._epoch_state(), "rows": rows, "hrd": [dict(d) for d in self._epoch_hrd]}

    def _load_epoch_state(self, state: dict[str, Any]) -> None:
        super()._load_epoch_state(state)
        self._epoch_rows = [state["rows"]] if state["rows"].numel() else []
        self._epoch_hrd = [dict(d) for d in state["hrd"]]

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        hrd, self._epoch_hrd = self._epoch_hrd, []
        rows = torch.cat(self._epoch_rows) if self._epoch_rows else torch.zeros(0, 3)
        self._epoch_rows = []
        rows = self._gather_rows(rows)
        if rows.numel() == 0:
            return
        names = ["L_R", "L_appearance", "L_motion"][: rows.shape[1]]
        stats = {"epoch": float(self.current_epoch)}
        for j, name in enumerate(names):
            col = rows[:, j]
            stats.update({f"{name}_mean": float(col.mean()), f"{name}_max": float(col.max()), f"{name}_min": float(col.min())})
        if hrd:  # this rank's logged steps; the policy is the same on every rank
            stats.update({f"hrd_{k}": sum(d[k] for d in hrd) / len(hrd) for k in hrd[0]})
        self.epoch_stats.append(stats)
        if self.trainer.is_global_zero:  # at once: a run killed later keeps every finished epoch's row
            append_loss_stats(Path(self.trainer.default_root_dir) / "loss_stats.csv", [stats])
        self.log_dict({f"epoch/{k}": v for k, v in stats.items() if k != "epoch"}, rank_zero_only=True)

    def on_train_end(self) -> None:
        """Check that data-parallel ranks hold the same weights, and record each rank's last HSM batch
        (its per-clip L_R and weights w) in ``<run dir>/ranks.json``."""
        checksum = float(sum(p.detach().double().sum() for p in self.model.parameters()))
        losses, weights = getattr(self, "_last_hsm", (torch.zeros(0), torch.zeros(0)))
        mine = {"rank": self.global_rank, "param_checksum": checksum, "sample_loss": losses.tolist(),
                "hsm_weights": weights.tolist(), "global_step": self.global_step}
        everyone = [mine]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine)
        if self.global_rank == 0:
            import json

            Path(self.trainer.default_root_dir, "ranks.json").write_text(json.dumps(everyone, indent=1) + "\n")
        sums = [e["param_checksum"] for e in everyone]
        if max(sums) - min(sums) > 1e-6 * max(1.0, abs(sums[0])):
            raise RuntimeError(f"data-parallel ranks ended with different weights (checksums {sums})")

    def _gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Per-clip losses of every rank (ranks can hold different counts)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return rows
        n = torch.tensor([rows.shape[0]], device=self.device)
        counts = self.all_gather(n).flatten().tolist()
        width = rows.shape[1] if rows.numel() else 3
        padded = torch.zeros(int(max(counts)), width, device=self.device)
        padded[: rows.shape[0]] = rows.to(self.device)
        gathered = self.all_gather(padded)  # (world, max, width)
        return torch.cat([gathered[r, : int(c)] for r, c in enumerate(counts)]).cpu()


class FinetuneModule(_Base):
    """Expression classification: full fine-tuning (layer decay, drop path, mixup, label smoothing) or
    linear probing; validation/test with multi-view softmax averaging and UAR/WAR."""

    def __init__(self, run_cfg: RunConfig, model_cfg, total_steps: int, warmup_steps: int, lr: float,
                 num_classes: int, class_names: tuple[str, ...]):
        super().__init__(run_cfg, total_steps, warmup_steps, lr)
        f = run_cfg.finetune
        self.model = VideoClassifier(model_cfg, num_classes, class_names, linear_probe=f.linear_probe,
                                     head_dropout=f.head_dropout)
        self._maybe_compile()
        mixing = not f.linear_probe and (f.mixup > 0 or f.cutmix > 0) and f.mixup_prob > 0
        self.mixup = Mixup(f.mixup, f.cutmix, prob=f.mixup_prob, label_smoothing=f.label_smoothing,
                           num_classes=num_classes) if mixing else None
        self.label_smoothing = f.label_smoothing
        self.confusion = ConfusionMatrix(num_classes)
        self.eval_skips = SkipTracker(max_share=1.0)
        self.predictions: list[tuple[str, int, list[float]]] = []
        self.last_result = None

    def configure_optimizers(self):
        f, o = self.run_cfg.finetune, self.run_cfg.optim
        return self._optimizer(self.model, layer_decay=None if f.linear_probe else o.layer_decay)

    def training_step(self, batch: dict[str, Any], batch_idx: int):
        size = self._track_skips(batch)
        loss = None
        if size > 0:
            video, labels = batch["video"], batch["label"]
            if self.mixup is not None:
                video, soft = self.mixup(video, labels, generator=torch.Generator().manual_seed(
                    step_seed(self.run_cfg.seed, self.global_step, self.global_rank)))
                loss = soft_target_cross_entropy(self.model(video), soft)
            else:
                loss = label_smoothing_cross_entropy(self.model(video), labels, self.label_smoothing)
        if not self._guard(loss, size):
            return None
        if self._writes_logs():
            self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
            self.log("train/lr", self._raw_optimizer().param_groups[-1]["lr"], on_step=True, on_epoch=False)
        return loss

    # ---- evaluation ------------------------------------------------------------------------
    def clip_probs(self, video: torch.Tensor) -> torch.Tensor:
        """(B, [K, [M,]] C, T, H, W) -> softmax averaged over the K x M views (B, num_classes)."""
        B = video.shape[0]
        views = video.reshape(-1, *video.shape[-4:])  # (B*V, C, T, H, W)
        probs = torch.softmax(self.model(views).float(), dim=-1)  # (B*V, K)
        return probs.view(B, -1, probs.shape[-1]).mean(1)

    def _eval_step(self, batch: dict[str, Any]) -> None:
        self.eval_skips.update(batch)
        if batch.get("size", 0) == 0:
            return
        probs = self.clip_probs(batch["video"])
        self.confusion.update(probs, batch["label"])
        for path, y, p in zip(batch["path"], batch["label"].tolist(), probs.cpu().tolist()):
            self.predictions.append((path, int(y), p))

    def _start_eval(self) -> None:
        self.confusion.reset()
        self.predictions = []

    def _end_eval(self, stage: str):
        """Sum the confusion counts over ranks, collect every rank's predictions, name skipped clips."""
        result = self.confusion.all_reduce().compute()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            everyone: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, self.predictions)
            self.predictions = [p for part in everyone for p in part]
        summary = self.eval_skips.end_epoch()
        if self.eval_skips.history[-1]:
            log.warning("%s: %s", stage, summary)
        self._record_skipped(stage, self.eval_skips.history[-1])
        self.last_result = result
        return result

    def on_validation_epoch_start(self) -> None:
        self._start_eval()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        result = self._end_eval("validation")
        if not math.isnan(result.uar):
            # identical on every rank after the all-reduce, so no further sync is needed
            self.log_dict({"val/uar": result.uar, "val/war": result.war}, prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self._start_eval()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")
