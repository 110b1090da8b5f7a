"""hi2m from Python: the same runs as ``hi2m pretrain / finetune / evaluate``, for notebooks and scripts.

    import hi2m

    pre = hi2m.pretrain("configs/cpu_pretrain_synthface.yaml", "optim.epochs=2", run={"name": "pre"})
    ft = hi2m.finetune("configs/cpu_finetune_synthface.yaml", finetune={"pretrained": pre.model_dir})
    ft.metrics["uar"], ft.dir, ft.model_dir
    hi2m.evaluate(ft).metrics                    # its own config's test split; or evaluate(model_dir, config)
    hi2m.load(ft.model_dir).predict("clip.mp4").summary["dominant"]

Each function takes a configuration -- a YAML file's path, a :class:`hi2m.train.config.RunConfig`, a plain
dict of sections, or nothing (the defaults) -- then ``"section.key=value"`` strings, then one keyword per
section (``model={"size": "micro"}``, ``seed=3``), later ones winning. A bad key is the command line's
one-line :class:`ConfigError`, raised. Each returns a :class:`Run`.

A run leaves the process as it found it (signal handlers, threads, random streams, logging, warnings
filters, working directory, environment: :mod:`hi2m.process`), so many runs share one kernel. Interrupting
a training cell (SIGINT: the notebook's stop button, Ctrl-C) finishes the step in flight, writes a step
checkpoint and raises :class:`Interrupted` (a KeyboardInterrupt) whose message says how to continue:
``hi2m.pretrain(..., resume=<run dir>)`` goes on exactly where it stopped. Interrupting twice stops at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hi2m.train.config import ConfigSource, RunConfig

__all__ = ["Interrupted", "Run", "evaluate", "finetune", "pretrain"]


@dataclass
class Run:
    """What a run left: its directory, resolved config, metrics and exported model.

    ``metrics``: fine-tuning and evaluation -- ``metrics.json`` (``uar``, ``war``, ``per_class_recall``,
    ``confusion``...); fold runs -- ``{"uar_mean", "uar_std", "war_mean", "war_std"}`` beside ``folds``;
    pretraining -- the last logged value of every ``train/`` column, ``steps`` and ``epoch_stats`` (Table 10)."""

    command: str
    dir: Path
    config: "RunConfig"
    model_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "finished"  # or "interrupted"
    folds: dict[int, "Run"] = field(default_factory=dict)

    def load(self, **kwargs: Any):
        """The exported model: a :class:`hi2m.infer.Predictor` for a classifier (``kwargs`` go to
        :func:`hi2m.infer.load`), the :class:`hi2m.model.HI2M` model for a pretraining run."""
        if self.model_dir is None or not (Path(self.model_dir) / "config.json").is_file():
            raise FileNotFoundError(f"{self.dir} has no exported model (status: {self.status}; fold runs: "
                                    "load one of run.folds)")
        if self.command == "pretrain":
            from hi2m.io.weights import load_pretrained

            return load_pretrained(self.model_dir, **kwargs)
        from hi2m.infer import load

        return load(self.model_dir, **kwargs)

    def history(self, column: str) -> list[tuple[int, float]]:
        """(step, value) of a logged column (``train/L_R``, ``train/loss``, ``val/uar``...) over every session
        of the run, in step order."""
        from hi2m.train.metrics import logged_column

        return logged_column(self.dir, column)

    def __repr__(self) -> str:
        shown = {k: round(v, 4) for k, v in self.metrics.items() if isinstance(v, float)}
        return f"Run({self.command}, {self.status}, dir={str(self.dir)!r}, metrics={shown})"


class Interrupted(KeyboardInterrupt):
    """A training run stopped by SIGINT (or SIGTERM / SIGUSR1) at a step boundary, its checkpoint written
    (``checkpoint``; None when a second SIGINT stopped it at once). ``run`` is the interrupted :class:`Run`;
    passing it (or its directory) as ``resume=`` continues exactly where it stopped."""

    def __init__(self, run: Run, message: str, checkpoint: Path | None):
        super().__init__(message)
        self.run, self.checkpoint = run, checkpoint


def _config(config: "ConfigSource", overrides: tuple[str, ...], sections: dict[str, Any],
            resume: Any = None) -> "RunConfig":
    from hi2m.train.config import load_config, resume_source

    return load_config(resume_source(config, resume), overrides, **sections)


def _resume_arg(resume: Any) -> Any:
    return resume.dir if isinstance(resume, Run) else resume


def _last_logged(run_dir: Path) -> dict[str, Any]:
    """The last logged value of every ``train/`` column over all of a run's sessions, and the last step."""
    from hi2m.train.metrics import logged_rows

    last: dict[str, Any] = {}
    for row in logged_rows(run_dir):
        last.update({k: float(v) for k, v in row.items() if k.startswith("train/") and v})
        if row.get("step"):
            last["steps"] = max(int(row["step"]) + 1, last.get("steps", 0))
    return last


def _metrics_json(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _stopped(command: str, cfg: "RunConfig", stop: Exception, run_dir: Path) -> Interrupted:
    from hi2m.train.checkpointing import Preempted

    run = Run(command, run_dir, cfg, status="interrupted", metrics=_last_logged(run_dir))
    checkpoint = stop.checkpoint if isinstance(stop, Preempted) else None
    message = (f"hi2m.{command}: {stop}. Continue it exactly where it stopped with "
               f"hi2m.{command}(<the same config>, resume={str(run_dir)!r}) (or resume=err.run).")
    return Interrupted(run, message, checkpoint)


def _interruptible(command: str, cfg: "RunConfig", job):
    """Run ``job()``; a stop signal's Preempted / Aborted becomes :class:`Interrupted`."""
    from hi2m.train.checkpointing import Aborted, Preempted

    try:
        return job()
    except (Preempted, Aborted) as stop:
        run_dir = stop.run_dir
        if cfg.finetune.folds and command == "finetune":  # the folds' folder is what resume= takes
            run_dir = run_dir.parent
        raise _stopped(command, cfg, stop, run_dir) from None


def pretrain(config: "ConfigSource" = None, *overrides: str, resume: Any = None, force: bool = False,
             callbacks: tuple = (), **sections: Any) -> Run:
    """Pretrain HI2M (``hi2m pretrain``). ``resume``: a run directory, a :class:`Run` or ``"auto"``
    (``--resume``); with a run directory and no ``config``, that run's ``config.yaml``. ``force``: resume with a
    changed config. ``callbacks``: extra Lightning callbacks. Returns the finished :class:`Run`."""
    from hi2m.train import runner

    resume = _resume_arg(resume)
    cfg = _config(config, overrides, sections, resume)
    out = _interruptible("pretrain", cfg, lambda: runner.pretrain(cfg, resume=resume, extra_callbacks=callbacks,
                                                                   force=force))
    metrics = {**_last_logged(out["run_dir"]), "epoch_stats": out["epoch_stats"]}
    return Run("pretrain", Path(out["run_dir"]), cfg, Path(out["model_dir"]), metrics)


def finetune(config: "ConfigSource" = None, *overrides: str, resume: Any = None, force: bool = False,
             callbacks: tuple = (), verbose: bool = True, **sections: Any) -> Run:
    """Fine-tune or linear-probe (``hi2m finetune``); with ``finetune={"folds": [...]}`` one run per fold
    (``Run.folds``) and their mean / std. ``verbose``: print the test report. Returns the :class:`Run`."""
    import statistics

    from hi2m.train import runner

    resume = _resume_arg(resume)
    cfg = _config(config, overrides, sections, resume)
    out = _interruptible("finetune", cfg, lambda: runner.finetune(cfg, resume=resume, verbose=verbose,
                                                                   force=force, extra_callbacks=callbacks))
    base = Path(out["run_dir"])
    if "results" not in out:
        return Run("finetune", base, cfg, Path(out["model_dir"]), _metrics_json(base))
    folds = {k: Run("finetune", base / f"fold{k}", cfg, base / f"fold{k}" / "model", _metrics_json(base / f"fold{k}"))
             for k in out["results"]}
    metrics: dict[str, Any] = {}
    for key in ("uar", "war"):
        values = [r.metrics[key] for r in folds.values()]
        metrics[f"{key}_mean"] = statistics.mean(values)
        metrics[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return Run("finetune", base, cfg, None, metrics, folds=folds)


def evaluate(model: Any, config: "ConfigSource" = None, *overrides: str, **sections: Any) -> Run:
    """Evaluate an exported classifier (``hi2m evaluate``): ``model`` is its folder or a fine-tuning
    :class:`Run`; without ``config``, a Run's own config (its data, its test split). Returns the evaluation
    :class:`Run` (its ``metrics`` are the test split's; its directory ``run.dir/evaluate-<time>`` unless
    ``run={"name": ...}``)."""
    from hi2m.train import runner

    if isinstance(model, Run):
        if model.model_dir is None:
            raise FileNotFoundError(f"{model.dir} has no exported model (fold runs: evaluate one of run.folds)")
        if config is None:
            config = model.config.replace(run={"name": None})
        model = model.model_dir
    cfg = _config(config, overrides, sections)
    out = runner.evaluate(cfg, model)
    return Run("evaluate", Path(out["run_dir"]), cfg, Path(out["model_dir"]), _metrics_json(out["run_dir"]))
