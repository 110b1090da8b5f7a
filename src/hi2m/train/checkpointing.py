"""Runs that survive interruption: step checkpoints, exact mid-epoch resume, preemption signals.

- :class:`StepCheckpoint` writes ``checkpoints/step-<global step>.ckpt`` every N steps and/or M minutes
  (atomically, through the trainer's checkpoint IO), keeps the newest k, and on SIGTERM / SIGUSR1 (what
  SLURM sends before it preempts, with ``--signal``) or SIGINT (Ctrl-C, a notebook's "interrupt kernel")
  finishes the current step, writes one more and stops the run by raising :class:`Preempted`; a second
  SIGINT stops at once (:class:`Aborted`, no checkpoint). The CLI exits with :data:`PREEMPTED_EXIT_CODE`
  (SIGINT: :data:`INTERRUPTED_EXIT_CODE`); the Python API raises :class:`hi2m.api.Interrupted`.
- :class:`ResumableLoader` tells Lightning how far into the epoch the run is, so a resumed run skips the
  batches it already trained on (same order: the sampler's order depends only on seed and epoch).
- :func:`rng_states` / :func:`set_rng_states`: every random stream the main process draws from (torch CPU
  and CUDA, numpy, python), stored per rank in each checkpoint.
- :func:`newest_checkpoint` picks what ``--resume`` continues from, skipping (and naming) unreadable files.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist

from hi2m.train.stalls import GuardedLoader

log = logging.getLogger("hi2m")

# sysexits.h EX_TEMPFAIL ("temporary failure, the user is invited to retry"): the run stopped on a
# preemption signal after writing a checkpoint; resubmit the same command with --resume to continue.
PREEMPTED_EXIT_CODE = 75
# 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
INTERRUPTED_EXIT_CODE = 130
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
STEP_PREFIX = "step-"


class Preempted(RuntimeError):
    """Raised out of ``trainer.fit`` after the checkpoint of a stop signal is written. (A RuntimeError, not a
    KeyboardInterrupt even for SIGINT: Lightning answers a KeyboardInterrupt with ``sys.exit(1)``.)"""

    def __init__(self, signum: int, checkpoint: Path, step: int):
        self.signum, self.checkpoint, self.step = signum, checkpoint, step
        self.run_dir = Path(checkpoint).parent.parent
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}")

    @property
    def exit_code(self) -> int:
        return INTERRUPTED_EXIT_CODE if self.signum == signal.SIGINT else PREEMPTED_EXIT_CODE


class Aborted(RuntimeError):
    """A second SIGINT while the first one's step was finishing: the run stops at once, without a checkpoint."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        super().__init__(f"stopped by a second SIGINT before the step finished: no checkpoint was written for it "
                         f"(the newest one in {self.run_dir / 'checkpoints'} is kept)")


# ---- random streams ----------------------------------------------------------------------------

def rng_states() -> dict[str, Any]:
    """Every global random stream of this process, in a form ``torch.load(weights_only=True)`` reads."""
    state = np.random.get_state(legacy=False)
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(state["state"]["key"].astype(np.int64)), "pos": int(state["state"]["pos"]),
                  "has_gauss": int(state["has_gauss"]), "gauss": float(state["gauss"])},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": n["key"].numpy().astype(np.uint32),
                                                               "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def gather_per_rank(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a list of one element outside distributed runs)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, obj)
        return everyone
    return [obj]


# ---- data position -----------------------------------------------------------------------------

class ResumableLoader(GuardedLoader):
    """A DataLoader over an :class:`hi2m.train.callbacks.EpochSampler` that Lightning can checkpoint:
    its state is (epoch, batches trained in that epoch), read from ``progress()``; loading it makes the
    sampler skip those batches' items the next time that epoch is iterated."""

    def __init__(self, *args, progress: Callable[[], tuple[int, int]], **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.progress()
        return {"epoch": int(epoch), "batches_done": int(batches), "batch_size": int(self.batch_size)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["batch_size"]) != int(self.batch_size):
            raise ValueError(f"the checkpoint was written with data.batch_size {state['batch_size']}, this run has "
                             f"{self.batch_size}: the position in the epoch cannot be restored")
        # the epoch too, at once: with worker processes Lightning's first iter() of a resumed run prefetches
        # indices before it calls set_epoch, and that iteration must already be the resumed epoch's
        self.sampler.set_epoch(int(state["epoch"]))
        self.sampler.skip_in_epoch(int(state["epoch"]), int(state["batches_done"]) * int(self.batch_size))


# ---- which checkpoint to resume from ----------------------------------------------------------------

def verify_records(path: Path) -> None:
    """Check every record of a checkpoint (torch's zip format) against the CRC-32 stored with it; raises
    ValueError naming the first damaged record. Reads the whole file (0.35 s per GB on this project's CPU
    machine, half of a torch.load); a file written without checksums (all zero) is let through."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if infos and all(info.CRC == 0 for info in infos):
            return
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"record {bad} does not match its checksum (the file is damaged)")


def read_step(path: Path) -> int:
    """The global step stored in a checkpoint (its small header only); raises if the file is not a
    readable checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(ckpt["global_step"])


def newest_checkpoint(run_dir: Path) -> Path:
    """The readable, undamaged checkpoint of ``run_dir/checkpoints`` with the highest global step (ties:
    the newest file). Unreadable or damaged ones (truncated, corrupt, a record failing its CRC) are
    named in a warning and passed over. Only the candidates from the top down to the first good one are
    read in full."""
    folder = Path(run_dir) / "checkpoints"
    candidates = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    if not candidates:
        raise FileNotFoundError(f"cannot resume: no checkpoint in {folder} (a run writes one at the end of each "
                                "epoch and every trainer.checkpoint_every_n_steps / _minutes)")
    readable, broken = [], []
    for path in candidates:
        try:
            readable.append((read_step(path), path.stat().st_mtime, path))
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported and skipped
            broken.append(f"{path} ({type(err).__name__}: {err})")
    chosen = None
    for step, _, path in sorted(readable, reverse=True):
        try:
            verify_records(path)
        except Exception as err:  # noqa: BLE001 - a damaged file is reported and skipped
            broken.append(f"{path} ({type(err).__name__}: {err})")
            continue
        chosen = (step, path)
        break
    for b in broken:
        log.warning("resume: skipping an unreadable checkpoint: %s", b)
    if chosen is None:
        raise RuntimeError("cannot resume: every checkpoint in " + str(folder) + " is unreadable:\n  " + "\n  ".join(broken))
    step, path = chosen
    log.info("resume: continuing from %s (global step %d)", path, step)
    return path


# ---- the callback -------------------------------------------------------------------------------

class StepCheckpoint(pl.Callback):
    """Checkpoint every ``every_n_steps`` optimiser steps and/or every ``every_n_minutes`` of training,
    keep the newest ``keep`` step checkpoints, and turn SIGTERM / SIGUSR1 into checkpoint-and-stop.

    Ranks decide together: rank 0's clock and any rank's signal are shared before each decision, so every
    rank enters ``save_checkpoint`` (a collective) at the same step.
    """

    def __init__(self, folder: Path, every_n_steps: int = 0, every_n_minutes: float = 0.0, keep: int = 2,
                 signals: tuple[int, ...] = PREEMPTION_SIGNALS):
        self.folder, self.every_n_steps, self.every_s = Path(folder), int(every_n_steps), 60.0 * float(every_n_minutes)
        self.keep, self.signals = int(keep), signals
        self.received: int | None = None
        self._stop: Preempted | None = None
        self._previous: dict[int, Any] = {}
        self._last_save = time.monotonic()
        self.save_seconds: list[float] = []

    # signals: our handler only records the signal; the step in flight finishes first
    def _handler(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:  # Ctrl-C again: the user will not wait
            raise Aborted(self.folder.parent)
        if self.received is None:
            again = " (SIGINT again: stop now, without it)" if signum == signal.SIGINT else ""
            log.warning("received %s: finishing this step, then checkpoint and stop%s", signal.Signals(signum).name,
                        again)
        self.received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_save = time.monotonic()
        self.received, self._stop = None, None
        # Replaces Lightning's handlers (installed just before this hook), which would stop a run on SIGTERM
        # without a checkpoint of where it is, and answer SIGINT with sys.exit.
        try:
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handler)
        except ValueError:  # not the main thread (e.g. some notebook runners): no signal handling
            log.warning("preemption signals are not handled outside the main thread")

    def _restore_handlers(self) -> None:
        """Give the signals back to the handlers found at ``on_train_start`` (Lightning's, which Lightning's
        own teardown then replaces by the caller's). Called before Lightning's teardown: afterwards, putting
        Lightning's handler back would leave it installed in the caller's process (it swallows SIGTERM)."""
        for s, h in self._previous.items():
            if signal.getsignal(s) == self._handler:
                signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handlers()

    def _decide(self, trainer: pl.Trainer) -> tuple[bool, int | None]:
        """(save now?, the preemption signal received by any rank, or None), the same on every rank."""
        step_due = self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0  # same on every rank
        time_due = self.every_s > 0 and time.monotonic() - self._last_save >= self.every_s
        signum = float(self.received or 0)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            t = torch.tensor([float(time_due)], device=trainer.strategy.root_device)
            dist.broadcast(t, src=0)  # rank 0's clock decides
            s = torch.tensor([signum], device=trainer.strategy.root_device)
            dist.all_reduce(s, op=dist.ReduceOp.MAX)  # any rank's signal stops every rank
            time_due, signum = bool(t.item()), float(s.item())
        return step_due or time_due or signum > 0, (int(signum) or None)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.fit_loop._should_accumulate():  # mid-accumulation: no optimiser step was taken
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch-end checkpoint follows at once; a pending signal is handled at the next step
        save, signum = self._decide(trainer)
        if not save:
            return
        path = self.folder / f"{STEP_PREFIX}{trainer.global_step:09d}.ckpt"
        t0 = time.perf_counter()
        trainer.save_checkpoint(path)
        self.save_seconds.append(time.perf_counter() - t0)
        self._last_save = time.monotonic()
        if trainer.is_global_zero:
            self._prune()
        if signum is not None:  # stop before the next step, once this step's metrics are logged
            self._stop = Preempted(signum, path, trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        if self._stop is not None:
            raise self._stop

    def _prune(self) -> None:
        steps = sorted(self.folder.glob(f"{STEP_PREFIX}*.ckpt"))
        for old in steps[: max(len(steps) - self.keep, 0)]:
            old.unlink(missing_ok=True)
