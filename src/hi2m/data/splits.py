"""Reading split/list files line by line, with a policy for bad lines.

With ``on_bad_line="error"`` (default) the first malformed line, unknown label or
missing clip raises :class:`SplitFileError` naming the file and line number. With
``on_bad_line="skip"`` such lines are skipped, counted and listed in a summary that
the dataset prints when it is built, so nothing is dropped silently.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from hi2m.data.errors import LayoutError, SplitFileError

BAD_LINE_POLICIES: tuple[str, ...] = ("error", "skip")

# First-field names that mark a header line (compared lower-case).
HEADER_WORDS: frozenset[str] = frozenset({"path", "video", "video_name", "file", "filename", "clip", "name"})


@dataclass(frozen=True)
class BadLine:
    """One skipped line of a split file (or one bad folder of a folder layout)."""

    file: str
    line: int  # 1-based; 0 when not about a line
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


@dataclass
class BadLineLog:
    """Applies the bad-line policy and remembers what was skipped."""

    policy: str = "error"
    skipped: list[BadLine] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.policy not in BAD_LINE_POLICIES:
            raise ValueError(f"on_bad_line must be one of {BAD_LINE_POLICIES}, got {self.policy!r}")

    def bad(self, file: object, line: int, reason: str) -> None:
        """Raise (policy "error") or record (policy "skip") a bad line."""
        if self.policy == "error":
            raise SplitFileError(file, line, reason)
        self.skipped.append(BadLine(str(file), line, reason))

    def summary(self, what: str, limit: int = 20) -> str:
        """A readable report of the skipped lines ('' when none)."""
        if not self.skipped:
            return ""
        lines = [f"hi2m.data: {what}: skipped {len(self.skipped)} bad entr{'y' if len(self.skipped) == 1 else 'ies'}:"]
        lines += [f"  {b}" for b in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more (dataset.bad_lines has them all)")
        return "\n".join(lines)

    def print_summary(self, what: str) -> None:
        text = self.summary(what)
        if text:
            print(text, file=sys.stderr)


def require_file(path: Path, what: str, expected: str) -> Path:
    """Raise :class:`LayoutError` unless ``path`` is an existing file."""
    if not path.is_file():
        raise LayoutError(path, f"{what} not found", expected)
    return path


def require_dir(path: Path, what: str, expected: str) -> Path:
    """Raise :class:`LayoutError` unless ``path`` is an existing folder."""
    if not path.is_dir():
        raise LayoutError(path, f"{what} not found", expected)
    return path


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) for non-blank, non-comment lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise SplitFileError(path, 0, f"not a UTF-8 text file ({err})") from err
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def split_path_label(line: str) -> tuple[str, str] | None:
    """Split ``path,label`` or ``path label`` (label last; the path may hold spaces).

    Returns None when the line does not have exactly two fields.
    """
    if "," in line:
        parts = [p.strip() for p in line.split(",")]
    else:
        parts = line.rsplit(None, 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def parse_label(text: str, classes: Sequence[str], allow_index: bool = True) -> int | None:
    """Class index for a label name (case-insensitive) or, if allowed, a 0-based index."""
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if allow_index and text.isdigit() and int(text) < len(classes):
        return int(text)
    return None


def is_header(first_field: str) -> bool:
    """True for a header line such as ``path,label`` or ``video_name,label``."""
    return first_field.strip().lower() in HEADER_WORDS
