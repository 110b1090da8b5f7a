"""What ``hi2m data prepare`` is asked to do: raw videos and their labels, as a list of clip jobs.

Two kinds of source:

* a folder with one sub-folder per class (``SRC/<label>/<video>``), or one per split and class
  (``SRC/<split>/<label>/<video>``, when every top-level folder is ``train``, ``val``, ``test`` or ``dev``);
* a list file (``.csv`` or ``.txt``) of ``path,label[,start,end[,split]]`` rows (a header row naming the
  columns may give them in any order: ``path``, ``label``, ``start``, ``end``, ``split``), with paths
  relative to the list's folder or ``root`` and start / end in seconds (empty: the whole video).

Every row or file that cannot become a job is named with its reason (a malformed line, a label not in
the class list, a path outside the root, a missing file), never dropped silently.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hi2m.data.video import VIDEO_EXTENSIONS

SPLIT_FOLDERS = ("train", "val", "test", "dev")
COLUMNS = ("path", "label", "start", "end", "split")
ALIASES = {"file": "path", "video": "path", "video_name": "path"}


@dataclass(frozen=True)
class Job:
    """One output clip: a span of a source video with its label and split."""

    source: Path  # the video file
    name: str  # the source as the user gave it (relative to SRC / the list's root): manifests show this
    label: str
    split: str = "train"
    start: float | None = None  # seconds; None: from the start
    end: float | None = None  # seconds; None: to the end
    where: str = ""  # "list.csv:12" for a list row, else ""
    split_given: bool = False  # the source named the split (a split column)

    @property
    def clip_id(self) -> str:
        """A stable, unique output name: the source's stem, its span, and a hash of the whole job."""
        span = "" if self.start is None and self.end is None else f"_{_sec(self.start)}-{_sec(self.end)}"
        key = f"{self.name}|{self.start}|{self.end}|{self.split}|{self.label}"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.name).stem)[:60]
        return f"{stem}{span}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Problem:
    """A source that cannot be used, and why (what the report lists)."""

    where: str  # a file, or "list.csv:12"
    reason: str
    kind: str = "list"  # list (a malformed row), label, outside, missing, not_video, duplicate


def _sec(t: float | None) -> str:
    return "end" if t is None else f"{t:g}".replace(".", "p")


def read_classes(text: str | None) -> list[str] | None:
    """``--classes``: comma-separated names, or a file with one name per line; None stays None."""
    if not text:
        return None
    path = Path(text)
    names = path.read_text().split() if path.is_file() else [n.strip() for n in text.split(",")]
    names = [n for n in names if n]
    if len(set(n.lower() for n in names)) != len(names):
        raise ValueError(f"--classes: a name repeats in {names}")
    return names


def collect(src: str | os.PathLike[str], classes: list[str] | None = None,
            root: str | os.PathLike[str] | None = None, test_fraction: float = 0.0,
            exclude: str | os.PathLike[str] | None = None) -> tuple[list[Job], list[Problem], list[str]]:
    """(jobs, problems, class names) for a source folder or list file. Without ``classes`` the class list
    is the sorted set of the folder names or of the list's labels. ``test_fraction``: a source without
    splits gets a ``test`` split of that share of each class's videos (see :func:`assign_test_split`).
    ``exclude``: a folder not to read (the output, when it lies inside the source folder)."""
    src = Path(src)
    if src.is_dir():
        jobs, problems = _from_folders(src, Path(exclude).resolve() if exclude else None)
        explicit = any(j.split != "train" for j in jobs) or (src / "train").is_dir()
    elif src.is_file():
        jobs, problems = _from_list(src, Path(root) if root else src.parent)
        explicit = any(j.split_given for j in jobs)
    else:
        raise FileNotFoundError(f"{src}: no such folder or list file")
    if test_fraction:
        if explicit:
            raise ValueError(f"--test-fraction: {src} names its splits already")
        jobs = assign_test_split(jobs, test_fraction)
    if classes is None:
        classes = sorted({j.label for j in jobs}, key=str.lower)
    known = {c.lower(): c for c in classes}
    kept = []
    for job in jobs:
        if job.label.lower() not in known:
            problems.append(Problem(job.where or str(job.source), f"label {job.label!r} is not in the class list "
                                                                  f"({', '.join(classes)})", "label"))
        else:
            kept.append(dataclasses.replace(job, label=known[job.label.lower()]))
    return kept, problems, list(classes)


def assign_test_split(jobs: list[Job], fraction: float, seed: int = 0) -> list[Job]:
    """Move ``fraction`` of each label's source videos (at least one when a label has two or more) to the
    ``test`` split, every span of a video with it -- clips of one video never sit on both sides. Seeded:
    the same sources give the same split."""
    import random

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--test-fraction must be in (0, 1), got {fraction}")
    test: set[str] = set()
    by_label: dict[str, list[str]] = {}
    for job in jobs:
        names = by_label.setdefault(job.label.lower(), [])
        if job.name not in names:
            names.append(job.name)
    for label in sorted(by_label):
        names = sorted(by_label[label])
        random.Random(f"{seed}-{label}").shuffle(names)
        k = 0 if len(names) < 2 else max(1, round(fraction * len(names)))
        test.update(names[:k])
    return [dataclasses.replace(j, split="test") if j.name in test else j for j in jobs]


def _from_folders(src: Path, exclude: Path | None = None) -> tuple[list[Job], list[Problem]]:
    def skipped(path: Path) -> bool:
        return path.name.startswith(".") or (exclude is not None and path.resolve().is_relative_to(exclude))

    top = sorted(p for p in src.iterdir() if p.is_dir() and not skipped(p))
    if top and all(p.name.lower() in SPLIT_FOLDERS for p in top):
        splits = [(p.name.lower(), p) for p in top]
    else:
        splits = [("train", src)]
    jobs: list[Job] = []
    problems: list[Problem] = []
    for split, folder in splits:
        for label_dir in sorted(p for p in folder.iterdir() if not skipped(p)):
            if not label_dir.is_dir():
                problems.append(Problem(str(label_dir), "a file beside the class folders (expected <label>/<video>)",
                                        "not_video"))
                continue
            for path in sorted(label_dir.rglob("*")):
                if path.is_dir() or skipped(path) or any(part.startswith(".") for part in path.relative_to(src).parts):
                    continue
                if path.suffix.lower() not in VIDEO_EXTENSIONS:
                    problems.append(Problem(str(path), f"not a video file name (suffix {path.suffix or 'none'})",
                                            "not_video"))
                    continue
                jobs.append(Job(path, str(path.relative_to(src)), label_dir.name, split))
    return jobs, problems


def _from_list(list_file: Path, root: Path) -> tuple[list[Job], list[Problem]]:
    jobs: list[Job] = []
    problems: list[Problem] = []
    root = root.resolve()
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{list_file}: not a UTF-8 text file ({err})") from err
    rows = list(csv.reader(line for line in text.splitlines()))
    columns = list(COLUMNS)
    for number, row in enumerate(rows, start=1):
        row = [c.strip() for c in row]
        if not any(row) or row[0].startswith("#"):
            continue
        where = f"{list_file}:{number}"
        named = [ALIASES.get(c.lower(), c.lower()) for c in row]
        if number == 1 and "path" in named and "label" in named:  # a header: the columns in its order
            unknown = [c for c, n in zip(row, named) if n not in COLUMNS]
            if unknown:
                raise ValueError(f"{where}: unknown columns {unknown} (expected {', '.join(COLUMNS)})")
            columns = named
            continue
        if len(row) < 2 or len(row) > len(columns):
            problems.append(Problem(where, f"expected {','.join(columns[:2])}[,{','.join(columns[2:])}], got {row}"))
            continue
        fields = dict(zip(columns, row))
        try:
            start = float(fields["start"]) if fields.get("start") else None
            end = float(fields["end"]) if fields.get("end") else None
        except ValueError:
            problems.append(Problem(where, f"start / end must be seconds, got {fields.get('start')!r}, "
                                           f"{fields.get('end')!r}"))
            continue
        if start is not None and end is not None and end <= start:
            problems.append(Problem(where, f"end ({end:g} s) is not after start ({start:g} s)"))
            continue
        if not fields.get("path") or not fields.get("label"):
            problems.append(Problem(where, "empty path or label"))
            continue
        path = (root / fields["path"]).resolve()
        if not path.is_relative_to(root):
            problems.append(Problem(where, f"path {fields['path']!r} lies outside the root {root}", "outside"))
            continue
        if not path.exists():
            problems.append(Problem(where, f"{path} does not exist", "missing"))
            continue
        split = (fields.get("split") or "train").lower()
        jobs.append(Job(path, fields["path"], fields["label"], split, start, end, where, bool(fields.get("split"))))
    return jobs, problems
