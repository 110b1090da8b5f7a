"""A run leaves the process as it found it.

hi2m's runs are called from notebooks, test suites and other programs, not only from a fresh ``hi2m``
process. Training sets process-wide state on the way (Lightning installs signal handlers and seeds every
random stream, the demo lowers torch's thread count, the CLI configures logging), and state left behind
changes what the caller does next: a SIGTERM handler that swallows the signal, inherited by a forked pool
worker, hangs ``Pool.__exit__`` forever. :func:`preserved` snapshots what a run may touch and puts it back
on the way out, whatever way that is (return, exception, interrupt):

- the handler of every signal (main thread only: handlers cannot be set from other threads);
- torch's intra-op thread count, default dtype, deterministic-algorithm and cuDNN flags, float32 matmul
  precision and grad mode;
- the global random streams (python, numpy, torch CPU, and CUDA where it is initialised);
- the root logger's and every existing logger's level, handlers, ``propagate`` and ``disabled``;
- the warnings filters, the working directory and the environment variables.

Loggers that a module creates when it is first imported during a run are left as their import made them,
as any import would; :class:`ProcessState` compares only what existed before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator


def _signals() -> list[signal.Signals]:
    """Signals whose handler Python can read and set (SIGKILL and SIGSTOP cannot be caught)."""
    out = []
    for s in signal.valid_signals():
        if s in (signal.SIGKILL, signal.SIGSTOP) or not isinstance(s, signal.Signals):
            continue
        out.append(s)
    return out


def _logger_state(logger: logging.Logger) -> tuple:
    return (logger.level, tuple(logger.handlers), logger.propagate, logger.disabled)


def _torch_state() -> dict[str, Any]:
    """torch's process-wide settings, only if torch is already imported (a snapshot never imports it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    out = {
        "num_threads": torch.get_num_threads(),
        "default_dtype": torch.get_default_dtype(),
        "deterministic": (torch.are_deterministic_algorithms_enabled(),
                          torch.is_deterministic_algorithms_warn_only_enabled()),
        "cudnn": (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "grad_enabled": torch.is_grad_enabled(),
    }
    return out


def _rng_state() -> dict[str, Any]:
    out: dict[str, Any] = {"python": random.getstate()}
    np = sys.modules.get("numpy")
    if np is not None:
        out["numpy"] = np.random.get_state()
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _same_rng(a: Any, b: Any) -> bool:
    """Equality for RNG states, which hold tensors and numpy arrays."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same_rng(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_rng(a[k], b[k]) for k in a)
    if hasattr(a, "shape"):  # a tensor or an array
        return bool((a == b).all())
    return a == b


@dataclass
class ProcessState:
    """What :func:`preserved` puts back; :meth:`capture` reads it, :meth:`differences` names what changed."""

    signals: dict[int, Any] = field(default_factory=dict)
    torch: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    loggers: dict[str, tuple] = field(default_factory=dict)
    warnings_filters: list = field(default_factory=list)
    cwd: str = ""
    environ: dict[str, str] = field(default_factory=dict)

    @classmethod
    def capture(cls) -> "ProcessState":
        manager = logging.Logger.manager
        loggers = {"": _logger_state(logging.getLogger())}
        loggers.update({name: _logger_state(lg) for name, lg in list(manager.loggerDict.items())
                        if isinstance(lg, logging.Logger)})
        return cls(signals={int(s): signal.getsignal(s) for s in _signals()}, torch=_torch_state(), rng=_rng_state(),
                   loggers=loggers, warnings_filters=list(warnings.filters), cwd=os.getcwd(),
                   environ=dict(os.environ))

    def differences(self, other: "ProcessState") -> list[str]:
        """One line per setting that differs in ``other`` (empty: the same process state)."""
        out = []
        for s, h in self.signals.items():
            if other.signals.get(s) != h:
                out.append(f"signal {signal.Signals(s).name}: {h!r} -> {other.signals.get(s)!r}")
        for k, v in self.torch.items():
            if other.torch.get(k) != v:
                out.append(f"torch {k}: {v!r} -> {other.torch.get(k)!r}")
        for k, v in self.rng.items():
            if k not in other.rng or not _same_rng(v, other.rng[k]):
                out.append(f"random stream {k} changed")
        for name, v in self.loggers.items():
            if other.loggers.get(name) != v:
                out.append(f"logger {name or 'root'}: {v!r} -> {other.loggers.get(name)!r}")
        if self.warnings_filters != other.warnings_filters:
            out.append(f"warnings filters: {len(self.warnings_filters)} -> {len(other.warnings_filters)} entries")
        if self.cwd != other.cwd:
            out.append(f"working directory: {self.cwd} -> {other.cwd}")
        for k in sorted(set(self.environ) | set(other.environ)):
            if self.environ.get(k) != other.environ.get(k):
                out.append(f"environment {k}: {self.environ.get(k)!r} -> {other.environ.get(k)!r}")
        return out

    def restore(self) -> None:
        """Put every captured setting back (signal handlers only from the main thread)."""
        if threading.current_thread() is threading.main_thread():
            for s, h in self.signals.items():
                if h is not None and signal.getsignal(s) != h:  # None: set outside Python, cannot be put back
                    with contextlib.suppress(OSError, ValueError):
                        signal.signal(s, h)
        torch = sys.modules.get("torch")
        if torch is not None and self.torch:
            t = self.torch
            if torch.get_num_threads() != t["num_threads"]:
                torch.set_num_threads(t["num_threads"])
            torch.set_default_dtype(t["default_dtype"])
            torch.use_deterministic_algorithms(t["deterministic"][0], warn_only=t["deterministic"][1])
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = t["cudnn"]
            torch.set_float32_matmul_precision(t["matmul_precision"])
            torch.set_grad_enabled(t["grad_enabled"])
        random.setstate(self.rng["python"])
        if "numpy" in self.rng:
            sys.modules["numpy"].random.set_state(self.rng["numpy"])
        if "torch" in self.rng:
            torch.set_rng_state(self.rng["torch"])
        if "cuda" in self.rng:
            torch.cuda.set_rng_state_all(self.rng["cuda"])
        manager = logging.Logger.manager
        for name, (level, handlers, propagate, disabled) in self.loggers.items():
            lg = logging.getLogger() if name == "" else manager.loggerDict.get(name)
            if not isinstance(lg, logging.Logger):
                continue
            lg.setLevel(level)
            lg.handlers[:] = list(handlers)
            lg.propagate, lg.disabled = propagate, disabled
        warnings.filters[:] = self.warnings_filters
        mutated = getattr(warnings, "_filters_mutated", None)  # the module's cache of the filter list
        if mutated is not None:
            mutated()
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        for k in set(os.environ) - set(self.environ):
            del os.environ[k]
        for k, v in self.environ.items():
            if os.environ.get(k) != v:
                os.environ[k] = v


@contextlib.contextmanager
def preserved() -> Iterator[ProcessState]:
    """Run the body, then put the process state back as :class:`ProcessState` captured it before.

    Lightning answers a KeyboardInterrupt inside ``fit`` / ``test`` with ``sys.exit(1)`` (and leaves SIGINT
    ignored); a ``SystemExit`` raised while a KeyboardInterrupt was being handled is turned back into the
    KeyboardInterrupt, so a notebook cell is interrupted, not its kernel asked to exit."""
    before = ProcessState.capture()
    try:
        yield before
    except SystemExit as stop:
        interrupt = stop.__context__
        if isinstance(interrupt, KeyboardInterrupt):
            raise interrupt from None
        raise
    finally:
        before.restore()
