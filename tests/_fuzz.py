"""Damaged copies of real clips: what disks, partial downloads and bad encoders produce.

:func:`make_corpus` writes ``n`` mutations of each source file into a folder, deterministically for a
seed, and returns one :class:`Mutant` per file (its path and what was done to it). Rerun with another
seed to explore more::

    python -c "import sys; sys.path.insert(0, 'tests'); import _fuzz; print(_fuzz.make_corpus(...))"

``benchmarks/fuzz_corpus.py`` runs such a corpus through every reading path and prints the counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

MUTATIONS = ("flip", "zero_run", "truncate", "duplicate", "header", "shuffle_chunks", "tail_garbage")


@dataclass(frozen=True)
class Mutant:
    path: Path
    source: str
    kind: str  # a name from MUTATIONS, or "empty" / "text"


def _flip(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.choice((1, 4, 16, 64, 256))):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)


def _zero_run(data: bytearray, rng: random.Random) -> None:
    n = rng.choice((16, 256, 4096, 32768))
    i = rng.randrange(max(len(data) - n, 1))
    data[i:i + n] = bytes(min(n, len(data) - i))


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randrange(1, len(data)):]


def _duplicate(data: bytearray, rng: random.Random) -> None:
    n = rng.choice((64, 1024, 16384))
    i = rng.randrange(max(len(data) - n, 1))
    j = rng.randrange(len(data))
    data[j:j] = data[i:i + n]


def _header(data: bytearray, rng: random.Random) -> None:
    """Damage the container's first 4 KiB (box sizes, fourccs, the moov/ftyp headers) and, for MP4/MOV,
    the moov box wherever it lies (sample tables, frame sizes, durations)."""
    spans = [(0, min(4096, len(data)))]
    moov = data.find(b"moov")
    if moov > 0:
        spans.append((moov - 4, min(moov + 4096, len(data))))
    for _ in range(rng.choice((1, 3, 8, 24))):
        lo, hi = rng.choice(spans)
        i = rng.randrange(lo, hi)
        data[i] = rng.choice((0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)))


def _shuffle_chunks(data: bytearray, rng: random.Random) -> None:
    n = 4096
    i, j = sorted(rng.sample(range(0, max(len(data) - n, 2)), 2))
    a, b = bytes(data[i:i + n]), bytes(data[j:j + n])
    data[i:i + n], data[j:j + n] = b, a


def _tail_garbage(data: bytearray, rng: random.Random) -> None:
    data.extend(rng.randbytes(rng.choice((1, 100, 10000))))


_APPLY: dict[str, Callable[[bytearray, random.Random], None]] = {
    "flip": _flip, "zero_run": _zero_run, "truncate": _truncate, "duplicate": _duplicate,
    "header": _header, "shuffle_chunks": _shuffle_chunks, "tail_garbage": _tail_garbage,
}


def make_corpus(sources: Sequence[Path], out: Path, n: int, seed: int = 0) -> list[Mutant]:
    """``n`` mutations of every file in ``sources`` in ``out`` (round-robin over :data:`MUTATIONS`,
    positions and sizes drawn from ``seed``), plus a zero-byte file and a text file with a video name."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    mutants: list[Mutant] = []
    for source in sources:
        original = Path(source).read_bytes()
        for k in range(n):
            kind = MUTATIONS[k % len(MUTATIONS)]
            data = bytearray(original)
            _APPLY[kind](data, rng)
            path = out / f"{Path(source).stem}-{k:03d}-{kind}{Path(source).suffix}"
            path.write_bytes(bytes(data))
            mutants.append(Mutant(path, Path(source).name, kind))
    empty = out / "empty.mp4"
    empty.write_bytes(b"")
    text = out / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    mutants += [Mutant(empty, "-", "empty"), Mutant(text, "-", "text")]
    return mutants
