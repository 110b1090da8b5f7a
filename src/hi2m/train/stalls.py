"""A data-loading worker that stops answering: name the file, stop, and skip it when the run resumes.

Inside a worker every clip is read under a per-file time limit (``data.decode_time_limit``, see
:mod:`hi2m.data.boundary`), so a slow file is skipped like any unreadable one. That limit is checked
between packets and frames; a read that hangs inside one FFmpeg call (a stalled network mount, a
decoder stuck in a loop) can only be seen from outside, by the DataLoader's ``timeout``
(``data.loader_timeout``). When it fires, :class:`StallGuard` names the file the worker was reading
(each worker records its current index in shared memory, see
:class:`hi2m.train.callbacks.EpochAwareDataset`), appends it to ``<run dir>/quarantine.txt`` and stops
the run with :class:`LoaderStalledError`. Resuming reads that list and skips those files (reported as
``quarantined``), so a requeued run never stalls on the same file again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from torch.utils.data import DataLoader

from hi2m.data.errors import DataError

QUARANTINE = "quarantine.txt"


class LoaderStalledError(DataError):
    """A DataLoader worker did not deliver a batch within ``data.loader_timeout`` seconds."""


def read_quarantine(run_dir: str | Path) -> frozenset[str]:
    """The paths a run has quarantined (empty when it has none)."""
    path = Path(run_dir) / QUARANTINE
    if not path.is_file():
        return frozenset()
    return frozenset(line for line in path.read_text().splitlines() if line.strip())


class StallGuard:
    """Iterates a DataLoader iterator; turns its timeout into :class:`LoaderStalledError` naming the file."""

    def __init__(self, iterator: Iterator[Any], dataset: Any, timeout: float, run_dir: str | Path | None) -> None:
        self.iterator, self.dataset, self.timeout, self.run_dir = iterator, dataset, timeout, run_dir

    def __iter__(self) -> "StallGuard":
        return self

    def __next__(self) -> Any:
        try:
            return next(self.iterator)
        except RuntimeError as err:
            if "timed out" not in str(err):
                raise
            raise LoaderStalledError(self._explain()) from err

    def __len__(self) -> int:
        return len(self.iterator)  # type: ignore[arg-type]

    def stalled_paths(self) -> list[tuple[int, str]]:
        """(worker id, path) of what the workers are reading now: the worker the loader waits for when
        the DataLoader says which one it is, else every busy worker."""
        in_flight = getattr(self.dataset, "in_flight", None)
        if in_flight is None:
            return []
        busy = [(w, int(i)) for w, i in enumerate(in_flight.tolist()) if i >= 0]
        waited = getattr(self.iterator, "_task_info", {}).get(getattr(self.iterator, "_rcvd_idx", None))
        if waited and len(waited) == 1:  # (worker id,) while the task is outstanding (torch's private state)
            busy = [(w, i) for w, i in busy if w == waited[0]] or busy
        return [(w, self.dataset.path_of(i) or f"item {i}") for w, i in busy]

    def _explain(self) -> str:
        stalled = self.stalled_paths()
        where = ", ".join(f"worker {w} reading {p}" for w, p in stalled) or "no file recorded"
        message = f"data loading stalled: no batch for {self.timeout:g} s (data.loader_timeout); {where}."
        if stalled and self.run_dir is not None:
            path = Path(self.run_dir) / QUARANTINE
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.writelines(p + "\n" for _, p in stalled)
            message += (f" Added to {path}: resuming this run (--resume {self.run_dir}) skips "
                        f"{'it' if len(stalled) == 1 else 'them'}.")
        return message


class GuardedLoader(DataLoader):
    """A DataLoader whose iterator is wrapped in :class:`StallGuard` when it has a ``timeout``."""

    def __init__(self, *args, run_dir: str | Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.run_dir = run_dir

    def __iter__(self):
        iterator = super().__iter__()
        if self.timeout and self.num_workers > 0:
            return StallGuard(iterator, self.dataset, self.timeout, self.run_dir)
        return iterator
