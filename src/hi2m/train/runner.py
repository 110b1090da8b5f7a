"""What ``hi2m pretrain / finetune / evaluate`` do: run directories, the Trainer, export and reports.

A run directory holds::

    config.yaml          the resolved configuration (repeat the run with --config)
    checkpoints/         Lightning checkpoints (last.ckpt for --resume), written atomically
    logs/metrics.csv     CSV log; tb/ TensorBoard events (when tensorboard is installed)
    model/               the exported model: config.json + model.safetensors
    loss_stats.csv       pretraining: L_R / appearance / motion mean, max, min per epoch (Table 10)
    report.txt, metrics.json, predictions.csv   fine-tuning / evaluation results
"""

from __future__ import annotations

import functools
import json
import logging
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from hi2m.data.skipping import collate_skip_bad
from hi2m.io.card import write_model_card
from hi2m.io.weights import load_pretrained, read_weights, save_pretrained
from hi2m.io.files import atomic_write
from hi2m.model.classifier import VideoClassifier
from hi2m.model.state import WarmStart, warm_start
from hi2m.process import preserved
from hi2m.train import data as tdata
from hi2m.train.callbacks import (
    AtomicCheckpointIO,
    EpochAwareDataset,
    EpochSampler,
    Throughput,
)
from hi2m.train.checkpointing import ResumableLoader, StepCheckpoint, newest_checkpoint
from hi2m.train.config import ConfigError, RunConfig, absolute_paths, as_config
from hi2m.train.metrics import (
    ConfusionMatrix,
    DistributedEvalSampler,
    format_report,
    write_predictions_csv,
)
from hi2m.train.modules import FinetuneModule, PretrainModule
from hi2m.train.optim import scaled_lr
from hi2m.train.stalls import GuardedLoader, read_quarantine

log = logging.getLogger("hi2m")
# Lightning's own deprecation chatter and advice that does not apply to these runs; set for the length of a
# run only (see isolated), never at import
QUIET_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*overridden `transfer_batch_to_device`.*",  # ours: tensors only
    r".*overridden `on_after_batch_transfer`.*",  # the module's: device augmentation
    r".*`validation_step` but have no `val_dataloader`.*",
    # a resumed run's own checkpoints (a new run into a directory that holds checkpoints is refused before)
    r"Checkpoint directory .* exists and is not empty.*",
)


def isolated(job):
    """A run function that leaves the process as it found it (:func:`hi2m.process.preserved`: signal
    handlers, threads, RNG streams, logging, warnings filters, cwd, environment), with Lightning's
    irrelevant warnings silenced while it runs."""

    @functools.wraps(job)
    def run(*args, **kwargs):
        with preserved():
            for message in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            return job(*args, **kwargs)

    return run


def _worker_init(worker_id: int, rank: int, seed_workers: bool) -> None:
    """A DataLoader worker ignores SIGINT: Ctrl-C (or a notebook's interrupt, sent to the process group) is the
    main process's to answer, with a checkpoint at the end of the step, and a worker that died of it would
    fail that step. Then Lightning's own per-worker seeding, as it would have added it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if seed_workers:
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id, rank)


# ---- run directory ---------------------------------------------------------------------

def run_dir_for(cfg: RunConfig, command: str) -> Path:
    name = cfg.run.name or f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.run.dir) / name


def _evaluation_dir(run_dir: Path) -> Path:
    """``run_dir``, or beside it ``<name>-evaluate-<time>[-k]`` when it already holds files: evaluating with a
    fine-tuning run's own config (``hi2m evaluate -c runs/ft/config.yaml``) names that run, whose config,
    metrics and predictions an evaluation must not overwrite."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return run_dir
    base = run_dir.with_name(f"{run_dir.name}-evaluate-{time.strftime('%Y%m%d-%H%M%S')}")
    fresh, k = base, 1
    while fresh.exists():
        fresh, k = base.with_name(f"{base.name}-{k}"), k + 1
    log.warning("%s holds a run; this evaluation goes to %s", run_dir, fresh)
    return fresh


# ---- loaders -------------------------------------------------------------------------------

class Loaders(pl.LightningDataModule):
    """Loaders built once the Trainer knows the world size and rank (our own samplers: training
    order seeded per epoch, evaluation sharded without padding so every clip counts once)."""

    def __init__(self, cfg: RunConfig, train, val=None, test=None):
        super().__init__()
        self.cfg, self.train_set, self.val_set, self.test_set = cfg, train, val, test

    def _loader(self, dataset, train: bool) -> DataLoader:
        t, d = self.trainer, self.cfg.data
        world, rank = (t.world_size, t.global_rank) if t is not None else (1, 0)
        if train:
            sampler = EpochSampler(len(dataset), world, rank, seed=self.cfg.seed, shuffle=True, drop_last=True)
            # the epoch a resumed run starts in: worker processes prefetch the first indices before Lightning calls
            # set_epoch, so the sampler must already be in it. From an end-of-epoch checkpoint that is the next
            # epoch (Lightning restores it as processed, not yet completed); a mid-epoch one also sets it when its
            # loader state is loaded (ResumableLoader)
            sampler.set_epoch(t.fit_loop.epoch_progress.current.processed if t is not None else 0)
        else:
            sampler = DistributedEvalSampler(len(dataset), num_replicas=world, rank=rank)
        workers = int(d.num_workers)
        run_dir = t.default_root_dir if t is not None else None
        seed_workers = os.environ.get("PL_SEED_WORKERS", "0") == "1"  # set by seed_everything(workers=True)
        kwargs = dict(batch_size=d.batch_size, sampler=sampler, drop_last=train, num_workers=workers,
                      worker_init_fn=functools.partial(_worker_init, rank=rank, seed_workers=seed_workers),
                      collate_fn=collate_skip_bad, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                      # its own generator: worker seeding never draws from the global stream (dropout's)
                      generator=torch.Generator().manual_seed(int(self.cfg.seed)),
                      timeout=d.loader_timeout if workers > 0 else 0, run_dir=run_dir)
        excluded = read_quarantine(run_dir) if run_dir is not None else frozenset()
        wrapped = EpochAwareDataset(dataset, workers=workers, excluded=excluded)
        if train and t is not None:
            def progress(trainer=t):
                return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

            return ResumableLoader(wrapped, progress=progress, **kwargs)
        return GuardedLoader(wrapped, **kwargs)

    def train_dataloader(self):
        return self._loader(self.train_set, True)


class LoadersWithVal(Loaders):
    def val_dataloader(self):
        return self._loader(self.val_set, False)


class TestLoaders(Loaders):
    def test_dataloader(self):
        return self._loader(self.test_set, False)


def loaders(cfg: RunConfig, train=None, val=None, test=None) -> Loaders:
    if test is not None:
        return TestLoaders(cfg, None, None, test)
    return (LoadersWithVal if val is not None else Loaders)(cfg, train, val)


def steps_per_epoch(n_train: int, cfg: RunConfig, world: int) -> int:
    t = cfg.trainer
    batches = n_train // (cfg.data.batch_size * world)
    if t.limit_train_batches:
        lim = t.limit_train_batches
        batches = min(batches, int(lim)) if lim >= 1 else int(batches * lim)
    return max(batches // int(t.accumulate_grad_batches), 1)


def resolve_lr(cfg: RunConfig, world: int) -> float:
    """The actual peak lr: base_lr, scaled by total_batch / 256 under ``lr_scaling: linear`` (VideoMAE)."""
    o, t = cfg.optim, cfg.trainer
    total_batch = cfg.data.batch_size * world * int(t.accumulate_grad_batches) * cfg.data.repeats
    return scaled_lr(o.base_lr, total_batch) if o.lr_scaling == "linear" else float(o.base_lr)


# ---- trainer ---------------------------------------------------------------------------------

def build_trainer(cfg: RunConfig, run_dir: Path, monitor: str | None, extra_callbacks=(),
                  resuming: bool = False) -> tuple[pl.Trainer, Any]:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    t = cfg.trainer
    ckpt = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best-epoch{epoch}" if monitor else "epoch{epoch}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode="max",
        save_top_k=1,
        save_last=True,
        every_n_epochs=1,
    )
    # a resumed session logs into logs/resume-<k>/ so the earlier session's logs stay untouched
    version = ""
    if resuming:
        version = f"resume-{len(list((run_dir / 'logs').glob('resume-*'))) + 1}"
    # flushed at every logged step: a killed run keeps the log of every step it trained
    loggers = [CSVLogger(run_dir, name="logs", version=version, flush_logs_every_n_steps=1)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tb", version=version, default_hp_metric=False))
    except ImportError:
        log.info("tensorboard is not installed: CSV logs only")
    trainer = pl.Trainer(
        default_root_dir=run_dir,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        max_epochs=cfg.optim.epochs,
        max_steps=t.max_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.enable_progress_bar,
        enable_model_summary=t.enable_progress_bar,
        deterministic=t.deterministic,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        callbacks=[ckpt, step_checkpoints(cfg, run_dir), Throughput(), *extra_callbacks],
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
    )
    return trainer, ckpt


def step_checkpoints(cfg: RunConfig, run_dir: Path) -> StepCheckpoint:
    t = cfg.trainer
    return StepCheckpoint(run_dir / "checkpoints", every_n_steps=t.checkpoint_every_n_steps,
                          every_n_minutes=t.checkpoint_every_n_minutes, keep=t.keep_checkpoints)


def checkpoints_of(run_dir: Path) -> list[Path]:
    """The checkpoint files a run directory holds (none for a new or empty run)."""
    return list((run_dir / "checkpoints").glob("*.ckpt"))


def auto_resume_dir(cfg: RunConfig, command: str) -> Path | None:
    """``--resume auto``: the run to continue, or None to start one. With ``run.name`` set, that run if it
    has a checkpoint; otherwise the newest ``<command>-*`` run under ``run.dir`` with a checkpoint."""
    if cfg.run.name:
        run_dir = run_dir_for(cfg, command)
        return run_dir if checkpoints_of(run_dir) else None
    runs = [d for d in Path(cfg.run.dir).glob(f"{command}-*") if checkpoints_of(d)]
    return max(runs, key=lambda d: max(c.stat().st_mtime for c in checkpoints_of(d)), default=None)


def check_writable(run_dir: Path) -> None:
    """Fail before training when the run directory cannot take files (read-only, missing permissions)."""
    probe = run_dir / "checkpoints" / ".write-test"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"hi2m")
        probe.unlink()
    except OSError as err:
        raise OSError(f"the run directory {run_dir} is not writable ({err}); choose another run.dir") from err


def check_free_space(run_dir: Path, module: pl.LightningModule, checkpoints: int) -> None:
    """Fail before training when the disk cannot hold ``checkpoints`` checkpoints (fp32 weights and
    AdamW's two moments: 12 bytes per parameter) plus the exported model."""
    import shutil

    need = 12 * sum(p.numel() for p in module.parameters()) * (checkpoints + 1)
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise OSError(f"the disk of {run_dir} has {free / 2**30:.2f} GiB free; this run's checkpoints need about "
                      f"{need / 2**30:.2f} GiB ({checkpoints} kept + the exported model)")


def check_resume_config(run_dir: Path, cfg: RunConfig, force: bool) -> None:
    """Refuse to resume ``run_dir`` with a config that differs from its saved ``config.yaml`` (keys
    listed), unless ``force`` (then a warning); nothing to compare when no config was saved."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    changes = cfg.changes_since(saved_path)
    if changes and not force:
        raise ConfigError(f"refusing to resume {run_dir} with a changed config (pass --force to resume "
                          "anyway): " + "; ".join(changes))
    if changes:
        log.warning("resuming %s with a changed config (--force):\n  %s", run_dir, "\n  ".join(changes))


def _prepare(cfg: RunConfig, command: str, resume: str | Path | None,
             force: bool = False) -> tuple[Path, Path | None]:
    """The run directory and the checkpoint to continue from (None: a new run, whose config.yaml is written)."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if resume is not None and str(resume) == "auto":
        found = auto_resume_dir(cfg, command)
        log.info("--resume auto: %s", f"continuing {found}" if found else "no run to continue; starting one")
        resume = found
    run_dir = Path(resume).absolute() if resume is not None else run_dir_for(cfg, command)
    if resume is None and checkpoints_of(run_dir):
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume {run_dir} (or --resume auto) to "
                              "continue it, or choose another run.name")
    check_writable(run_dir)
    if resume is not None:
        check_resume_config(run_dir, cfg, force)
        return run_dir, newest_checkpoint(run_dir)
    cfg.save(run_dir)
    return run_dir, None


# ---- pretraining -----------------------------------------------------------------------

@isolated
def pretrain(cfg: RunConfig, resume: str | Path | None = None, extra_callbacks=(),
             force: bool = False) -> dict[str, Any]:
    """Pretrain HI2M; returns {run_dir, model_dir, epoch_stats}."""
    cfg = absolute_paths(as_config(cfg))
    mcfg = cfg.model_config()
    run_dir, ckpt_path = _prepare(cfg, "pretrain", resume, force)
    train_set = tdata.pretrain_dataset(cfg, mcfg)
    trainer, _ = build_trainer(cfg, run_dir, monitor=None, extra_callbacks=extra_callbacks,
                               resuming=ckpt_path is not None)
    _one_batch_at_least(len(train_set), cfg, trainer)
    module = _module(PretrainModule, cfg, mcfg, len(train_set), trainer)
    if cfg.model.init and ckpt_path is None:
        report = warm_start(module.model, read_weights(cfg.model.init), cfg.model.init)
        _record_warm_start(run_dir, report, trainer)
    check_free_space(run_dir, module, cfg.trainer.keep_checkpoints + 2)
    trainer.fit(module, datamodule=loaders(cfg, train_set), ckpt_path=ckpt_path)
    out = {"run_dir": run_dir, "model_dir": run_dir / "model", "epoch_stats": module.epoch_stats}
    if trainer.is_global_zero:
        save_pretrained(module.model, run_dir / "model", metadata={"epochs": trainer.current_epoch,
                                                                   "steps": trainer.global_step})
        write_model_card(run_dir / "model", module.model, run_dir)
    return out


def _record_warm_start(run_dir: Path, report: WarmStart, trainer: pl.Trainer) -> None:
    """Say what a warm start loaded, kept new and left out; every name goes to ``warm_start.json``."""
    if trainer.is_global_zero:
        print(f"weights from {report.summary()}; names in {run_dir / 'warm_start.json'}", flush=True)
        atomic_write(run_dir / "warm_start.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(report.to_dict(), indent=1) + "\n"))


def _one_batch_at_least(n_train: int, cfg: RunConfig, trainer: pl.Trainer) -> None:
    """The loaders drop a last partial batch: a training split smaller than one batch would train nothing."""
    if n_train < cfg.data.batch_size * trainer.world_size:
        raise ConfigError(f"data.batch_size: the training split has {n_train} clips, fewer than one batch of "
                          f"{cfg.data.batch_size} x {trainer.world_size} device(s) -- nothing would be trained; "
                          "lower data.batch_size")


def _module(cls, cfg, mcfg, n_train: int, trainer: pl.Trainer, **kw):
    spe = steps_per_epoch(n_train, cfg, trainer.world_size)
    total = cfg.trainer.max_steps if cfg.trainer.max_steps > 0 else spe * cfg.optim.epochs
    warmup = int(round(cfg.optim.warmup_epochs * spe))
    return cls(cfg, mcfg, total_steps=total, warmup_steps=warmup, lr=resolve_lr(cfg, trainer.world_size), **kw)


# ---- fine-tuning and evaluation ----------------------------------------------------------

def _class_names(dataset) -> tuple[str, ...]:
    base = dataset
    while hasattr(base, "dataset"):
        base = base.dataset
    return tuple(getattr(base, "classes"))


@isolated
def finetune(cfg: RunConfig, resume: str | Path | None = None, verbose: bool = True,
             force: bool = False, extra_callbacks=()) -> dict[str, Any]:
    """Fine-tune (or linear-probe) on one split; with ``finetune.folds``, one run per fold and a summary."""
    cfg = absolute_paths(as_config(cfg))
    folds = cfg.finetune.folds
    if folds:
        return _finetune_folds(cfg, folds, resume, force)

    run_dir, ckpt_path = _prepare(cfg, "finetune", resume, force)
    f = cfg.finetune
    mcfg = cfg.model_config(drop_path=0.0 if f.linear_probe else f.drop_path)
    train_set, val_set, val_how = tdata.finetune_datasets(cfg, mcfg)
    if f.select == "val" and val_set is None:
        raise ConfigError("finetune.select is 'val' but there is no validation set: set data.val_fraction "
                         "(carved from train) or data.val_split, or use finetune.select=last")
    names = _class_names(train_set)
    trainer, ckpt_cb = build_trainer(cfg, run_dir, monitor="val/uar" if f.select == "val" else None,
                                     extra_callbacks=extra_callbacks, resuming=ckpt_path is not None)
    _one_batch_at_least(len(train_set), cfg, trainer)
    module = _module(FinetuneModule, cfg, mcfg, len(train_set), trainer, num_classes=len(names), class_names=names)
    check_free_space(run_dir, module, cfg.trainer.keep_checkpoints + 3)
    notes = []
    if f.pretrained and ckpt_path is None:
        report = module.model.load_encoder(read_weights(f.pretrained), f.pretrained)
        _record_warm_start(run_dir, report, trainer)
        notes.append(f"encoder initialised from {report.summary()}")
    else:
        notes.append("encoder from random initialisation" if not f.pretrained else "resumed")
    trainer.fit(module, datamodule=loaders(cfg, train_set, val_set), ckpt_path=ckpt_path)

    if f.select == "val" and ckpt_cb.best_model_path:
        state = AtomicCheckpointIO().load_checkpoint(ckpt_cb.best_model_path)
        module.load_state_dict(state["state_dict"])
        selected = f"best validation UAR ({float(ckpt_cb.best_model_score):.4f}, {Path(ckpt_cb.best_model_path).name}); validation: {val_how}"
    else:
        selected = f"last epoch ({trainer.current_epoch}); the test split was not used for selection"
    if trainer.is_global_zero:
        save_pretrained(module.model, run_dir / "model", metadata={"selected": selected})
    test_set = tdata.eval_dataset(cfg, mcfg, cfg.data.test_split)
    result = _test(trainer, module, cfg, test_set, run_dir, header=notes + [f"model selection: {selected}"],
                   verbose=verbose)
    if trainer.is_global_zero:  # after the test: the card carries its numbers

        write_model_card(run_dir / "model", module.model, run_dir, selected=selected)
    return {"run_dir": run_dir, "model_dir": run_dir / "model", "result": result, "selected": selected}


def _test(trainer: pl.Trainer, module, cfg, test_set, run_dir: Path, header: list[str], verbose: bool = True):
    trainer.test(module, datamodule=loaders(cfg, test=test_set), verbose=False)
    result = module.last_result
    if trainer.is_global_zero:
        names = module.model.class_names
        report = "\n".join(header + [f"test split: {cfg.data.test_split} ({result.total} clips, "
                                     f"{cfg.data.temporal_views}x{cfg.data.spatial_views} views)",
                                     format_report(result, names)])
        (run_dir / "report.txt").write_text(report + "\n")
        (run_dir / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        preds = sorted(module.predictions)
        write_predictions_csv(run_dir / "predictions.csv", [p[0] for p in preds], [p[1] for p in preds],
                              torch.tensor([p[2] for p in preds]), names)
        if verbose:
            print(report)
    return result


def folds_base_dir(cfg: RunConfig, resume: str | Path | None) -> Path:
    """The folder that holds ``fold<k>/`` runs: ``--resume DIR`` names it; ``--resume auto`` finds
    ``run.dir/run.name`` or, without a name, the newest ``finetune-*`` folder holding fold runs; else
    a new one (``run.name`` or a timestamp)."""
    if resume is not None and str(resume) != "auto":
        base = Path(resume).absolute()
        if not base.is_dir():
            raise FileNotFoundError(f"--resume {base}: no such run folder")
        return base
    if resume is not None and not cfg.run.name:
        found = [d for d in Path(cfg.run.dir).glob("finetune-*") if list(d.glob("fold*/config.yaml"))]
        if found:
            return max(found, key=lambda d: d.stat().st_mtime)
    return run_dir_for(cfg, "finetune")


def _fold_finished(fold_dir: Path):
    """A fold run that got to its test: its result rebuilt from the saved confusion matrix, else None."""
    metrics, model = fold_dir / "metrics.json", fold_dir / "model" / "config.json"
    if not (metrics.is_file() and model.is_file()):
        return None

    confusion = torch.tensor(json.loads(metrics.read_text())["confusion"], dtype=torch.long)  # (K, K)
    matrix = ConfusionMatrix(confusion.shape[0])
    matrix.counts = confusion
    return matrix.compute()


def _finetune_folds(cfg: RunConfig, folds: list[int], resume: str | Path | None = None,
                    force: bool = False) -> dict[str, Any]:
    """One fine-tuning run per fold under one folder, and the mean / std summary. Resuming (``resume``
    a folder or ``auto``) keeps the folds that finished (their saved test result), continues the one
    that was interrupted from its checkpoint and runs the rest."""
    base = folds_base_dir(cfg, resume)
    if resume is None and any(checkpoints_of(base / f"fold{k}") for k in folds):
        raise FileExistsError(f"{base} already holds fold runs; pass --resume {base} (or --resume auto) to "
                              "continue them, or choose another run.name")
    if resume is not None:
        check_resume_config(base, cfg, force)
    cfg.save(base)
    results = {}
    for k in folds:
        fold_dir = base / f"fold{k}"
        fold_cfg = cfg.replace(finetune={"folds": None}, run={"dir": str(base.parent), "name": f"{base.name}/fold{k}"},
                               data={"options": {**cfg.data.options, "fold": int(k)}})
        done = _fold_finished(fold_dir) if resume is not None else None
        if done is not None:
            log.info("fold %s finished earlier: its saved test result is used (%s)", k, fold_dir / "metrics.json")
            results[int(k)] = done
        elif resume is not None and checkpoints_of(fold_dir):
            results[int(k)] = finetune(fold_cfg, resume=fold_dir, force=force)["result"]
        else:
            results[int(k)] = finetune(fold_cfg)["result"]
    lines = [f"{'fold':>4} {'UAR':>7} {'WAR':>7}"]
    lines += [f"{k:>4} {100 * r.uar:7.2f} {100 * r.war:7.2f}" for k, r in results.items()]
    if len(results) > 1:
        uars, wars = [100 * r.uar for r in results.values()], [100 * r.war for r in results.values()]
        lines.append(f"mean {statistics.mean(uars):7.2f} {statistics.mean(wars):7.2f}")
        lines.append(f" std {statistics.stdev(uars):7.2f} {statistics.stdev(wars):7.2f}")
    summary = "\n".join(lines)
    (base / "folds.txt").write_text(summary + "\n")
    print(summary)
    return {"run_dir": base, "results": results, "summary": summary}


@isolated
def evaluate(cfg: RunConfig, model_dir: str | Path) -> dict[str, Any]:
    """Evaluate an exported classifier on ``data.test_split`` with multi-view testing; returns {run_dir,
    model_dir, result}."""
    cfg = absolute_paths(as_config(cfg))
    model_dir = Path(model_dir).absolute()
    model = load_pretrained(model_dir)
    if not isinstance(model, VideoClassifier):
        raise ValueError(f"{model_dir} holds a pretraining model; evaluate needs a fine-tuned classifier")
    run_dir = _evaluation_dir(run_dir_for(cfg, "evaluate"))
    cfg.save(run_dir)
    cfg = cfg.replace(data={"num_frames": model.cfg.num_frames, "image_size": model.cfg.image_size})
    test_set = tdata.eval_dataset(cfg, model.cfg, cfg.data.test_split)
    trainer, _ = build_trainer(cfg, run_dir, monitor=None)
    module = _module(FinetuneModule, cfg, model.cfg, 1, trainer, num_classes=model.num_classes,
                     class_names=model.class_names)
    module.model = model
    result = _test(trainer, module, cfg, test_set, run_dir, header=[f"model: {model_dir}"])
    return {"run_dir": run_dir, "model_dir": model_dir, "result": result}
