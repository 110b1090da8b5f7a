"""A dataset's clip list in a few flat numpy buffers instead of a million Python objects.

A DataLoader worker is a forked copy of the training process. Reading a Python object in it writes the
object's reference count, so every page of a list of :class:`ClipRecord` that a worker touches becomes its
own copy: over an epoch of VoxCeleb2's 1.09M clips that was ~200 MB per worker (``benchmarks/loader.py``).
:class:`RecordTable` keeps the same list as four objects -- one byte buffer of UTF-8 paths (after a common
prefix), their offsets, the labels -- which workers read without writing, so the pages stay shared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, overload

import numpy as np


@dataclass(frozen=True)
class ClipRecord:
    """One clip of a dataset: a video file or frame folder, and its label (-1 = none)."""

    path: str
    label: int = -1


class RecordTable(Sequence[ClipRecord]):
    """An immutable sequence of :class:`ClipRecord` stored as ``prefix`` + one UTF-8 buffer of path tails,
    ``(n + 1,)`` int64 offsets into it and ``(n,)`` int64 labels. ``table[i]`` builds the record on demand.

    Args:
        paths: the clip paths, as given (``prefix`` is prepended to each).
        labels: one per path (default: -1, unlabelled).
        prefix: a string every stored path starts with (e.g. a dataset folder and a separator); None: the
            paths' longest common prefix.
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[int] | np.ndarray | None = None,
                 prefix: str | None = None) -> None:
        paths = list(paths) if not isinstance(paths, list) else paths
        if prefix is None:
            prefix = os.path.commonprefix([min(paths), max(paths)]) if paths else ""
            tails = [p[len(prefix):] for p in paths]
        else:
            tails = paths
        encoded = [t.encode("utf-8", "surrogateescape") for t in tails]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))  # (n,)
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)  # (n + 1,)
        np.cumsum(lengths, out=self.offsets[1:])
        self.blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)  # (total bytes,)
        self.prefix = prefix
        if labels is None:
            self.labels = np.full(len(encoded), -1, dtype=np.int64)  # (n,)
        else:
            self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)  # (n,)
            if len(self.labels) != len(encoded):
                raise ValueError(f"{len(encoded)} paths but {len(self.labels)} labels")
        self.labels.setflags(write=False)
        self.offsets.setflags(write=False)

    @classmethod
    def of(cls, records: Iterable[ClipRecord] | RecordTable) -> RecordTable:
        """A table of ``records`` (a table is returned as it is)."""
        if isinstance(records, RecordTable):
            return records
        records = list(records)
        return cls([r.path for r in records], [r.label for r in records])

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> str:
        """The path of clip ``index``."""
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.prefix + self.blob[start:end].tobytes().decode("utf-8", "surrogateescape")

    @overload
    def __getitem__(self, index: int) -> ClipRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[ClipRecord]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"record {index} of {n}")
        i %= n
        return ClipRecord(self.path(i), int(self.labels[i]))

    def __iter__(self) -> Iterator[ClipRecord]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"RecordTable({len(self)} clips, {self.blob.nbytes} path bytes, prefix={self.prefix!r})"
