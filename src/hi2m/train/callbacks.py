"""Lightning plumbing: atomic checkpoints, epoch-aware sampling, throughput on the progress bar."""

from __future__ import annotations

import math
import time
from typing import Any, Iterator

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch.utils.data import Dataset, Sampler, Subset, get_worker_info

from hi2m.io.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed: a crash mid-write leaves the previous
    checkpoint intact. They are read back with ``weights_only=True`` (no arbitrary unpickling)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class EpochSampler(Sampler):
    """Shuffled (or ordered) indices for one rank, as (epoch, index) pairs.

    The order of epoch e depends only on (seed, e), like DistributedSampler, and the epoch travels with
    each index so that a dataset's per-item random stream follows it even inside persistent workers.
    With ``drop_last`` every rank gets the same count (the tail that does not divide is dropped).
    """

    def __init__(self, n: int, world: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True):
        self.n, self.world, self.rank, self.seed = n, world, rank, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, items of this rank already trained on)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_in_epoch(self, epoch: int, items: int) -> None:
        """Resume mid-epoch: the next iteration of ``epoch`` starts after its first ``items`` items."""
        self._skip = (int(epoch), int(items))

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.world
        return math.ceil((self.n - self.rank) / self.world) if self.n > self.rank else 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.drop_last:
            order = order[: len(self) * self.world]
        mine = order[self.rank :: self.world]
        if self._skip is not None and self._skip[0] == self.epoch:
            mine = mine[self._skip[1]:]
        self._skip = None  # one resumed epoch only
        for i in mine:
            yield (self.epoch, i)


class EpochAwareDataset(Dataset):
    """Wraps a dataset so that items are requested as (epoch, index): the underlying ClipDataset's
    ``set_epoch`` is applied in whichever process reads the item.

    Two guards against a file that stalls a worker (see :mod:`hi2m.train.stalls`): with ``workers`` > 0,
    each worker records the index it is reading in shared memory, so a DataLoader timeout can name the
    file; paths in ``excluded`` (the run's quarantine list) are skipped like unreadable clips."""

    def __init__(self, dataset: Dataset, workers: int = 0, excluded: frozenset[str] = frozenset()):
        self.dataset = dataset
        base = dataset
        while isinstance(base, Subset):
            base = base.dataset
        self._base = base
        self.excluded = frozenset(excluded)
        # (workers,) index each worker is reading, -1 when idle; shared with the worker processes
        self.in_flight = torch.full((workers,), -1, dtype=torch.long).share_memory_() if workers > 0 else None

    def __len__(self) -> int:
        return len(self.dataset)

    def path_of(self, index: int) -> str | None:
        """The file behind item ``index`` (None for datasets without files)."""
        ds, i = self.dataset, index
        while isinstance(ds, Subset):
            ds, i = ds.dataset, ds.indices[i]
        records = getattr(ds, "records", None)
        return records[i].path if records is not None else None

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if self.excluded:
            path = self.path_of(index)
            if path in self.excluded:
                return {"error": f"{path}: stalled a data-loading worker in an earlier attempt of this run "
                                 "(listed in quarantine.txt in the run directory)",
                        "kind": "quarantined", "path": path, "index": index}
        worker = get_worker_info() if self.in_flight is not None else None
        if worker is not None:
            self.in_flight[worker.id] = index
        if hasattr(self._base, "set_epoch"):
            self._base.set_epoch(epoch)
        item = self.dataset[index]
        if worker is not None:
            self.in_flight[worker.id] = -1
        return item


class Throughput(pl.Callback):
    """Clips per second over the last logging interval, on the progress bar and in the logs."""

    def __init__(self):
        self._t0: float | None = None
        self._clips = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0, self._clips = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        video = batch.get("video") if isinstance(batch, dict) else None
        if video is not None:
            per_clip = video.shape[1] if video.ndim == 6 else 1  # repeated sampling
            self._clips += int(video.shape[0]) * per_clip * trainer.world_size
        if self._t0 is None or (batch_idx + 1) % max(trainer.log_every_n_steps, 1):
            return
        elapsed = time.perf_counter() - self._t0
        if elapsed > 0 and self._clips:
            pl_module.log("clips_per_s", self._clips / elapsed, prog_bar=True, on_step=True, on_epoch=False)
        self._t0, self._clips = time.perf_counter(), 0
