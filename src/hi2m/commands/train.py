"""``hi2m pretrain``, ``hi2m finetune`` and ``hi2m evaluate``: YAML config + key=value overrides."""

from __future__ import annotations

import argparse
import sys

EPILOG = """overrides: any config key as section.key=value (YAML values), e.g.
  optim.base_lr=1.5e-4 trainer.devices=2 trainer.precision=bf16-mixed model.hsm=false
  model.mask_type=tube model.hrd_lambda=1e-3 data.root=/data/DFEW data.options.fold=2
See configs/ for the paper's recipes and docs/training.md for every key."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--config", "-c", help="YAML config (configs/...); defaults fill the rest")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its newest readable checkpoint, exactly where it "
                             "stopped (mid-epoch too); 'auto': the run named by run.name (or the newest run under "
                             "run.dir) if it has a checkpoint, else start one -- an sbatch script can be resubmitted "
                             "unchanged")
    parser.add_argument("--force", action="store_true",
                        help="resume even though the config differs from the run's saved config.yaml")


add_finetune_arguments = add_pretrain_arguments


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--model", required=True, metavar="DIR", help="an exported classifier (run dir/model)")


def load_args_config(args: argparse.Namespace):
    """The run configuration of a training command's arguments (raises ``ConfigError``, one line)."""
    from hi2m.train.config import ConfigError, load_config, resume_source

    resume = getattr(args, "resume", None)
    if resume == "auto" and not args.config:
        raise ConfigError("--resume auto needs --config (the run it starts, or finds, is the config's)")
    return load_config(resume_source(args.config, resume, "--resume"), args.overrides)


def config_error(args: argparse.Namespace, err: Exception) -> int:
    """Print a configuration error as one line and return the usage exit code (2)."""
    print(f"hi2m {getattr(args, 'command', '')}: error: {err}", file=sys.stderr)
    return 2


def _setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _run(args: argparse.Namespace, job) -> int:
    """Load the config (a bad one: one line, exit 2), then run ``job(cfg)``; a preemption signal ends it
    with PREEMPTED_EXIT_CODE after its checkpoint (SIGINT: INTERRUPTED_EXIT_CODE)."""
    from hi2m.train.config import ConfigError

    try:
        cfg = load_args_config(args)
    except ConfigError as err:
        return config_error(args, err)
    _setup_logging()
    from hi2m.train.checkpointing import INTERRUPTED_EXIT_CODE, Aborted, Preempted

    from hi2m.data.errors import DataError
    from hi2m.model.state import CheckpointMismatch

    try:
        job(cfg)
    except (ConfigError, CheckpointMismatch, FileNotFoundError) as err:  # the user's input: one line, exit 2
        return config_error(args, err)
    except DataError as err:  # a dataset that cannot be read (layout, split file, too many bad clips): named
        print(f"hi2m {getattr(args, 'command', '')}: error: {err}", file=sys.stderr)
        return 1
    except Preempted as stop:
        how = "resubmit" if stop.exit_code != INTERRUPTED_EXIT_CODE else "continue"
        print(f"hi2m: {stop} (exit code {stop.exit_code}: {how} with --resume {stop.run_dir} to continue)", flush=True)
        return stop.exit_code
    except Aborted as stop:
        print(f"hi2m: {stop}", flush=True)
        return INTERRUPTED_EXIT_CODE
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    def job(cfg):
        from hi2m.train.runner import pretrain

        out = pretrain(cfg, resume=args.resume, force=args.force)
        print(f"run directory: {out['run_dir']}\nexported model: {out['model_dir']}")

    return _run(args, job)


def run_finetune(args: argparse.Namespace) -> int:
    def job(cfg):
        from hi2m.train.runner import finetune

        out = finetune(cfg, resume=args.resume, force=args.force)
        print(f"run directory: {out['run_dir']}")

    return _run(args, job)


def run_evaluate(args: argparse.Namespace) -> int:
    def job(cfg):
        from hi2m.train.runner import evaluate

        evaluate(cfg, args.model)

    return _run(args, job)
