"""Error types raised by :mod:`hi2m.data`.

Every message names the offending file (and the line, for split files) so that a
failure in a long run can be traced back to the data without a debugger.
"""

from __future__ import annotations


class DataError(Exception):
    """Base class of every data error raised by hi2m."""


class DecodeError(DataError):
    """A clip (video file or frame folder) could not be opened or decoded.

    Datasets catch this error per sample and report the file as skipped instead of
    crashing the run (see :mod:`hi2m.data.skipping`).
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LayoutError(DataError):
    """A dataset root, split file or folder is missing or not laid out as expected."""

    def __init__(self, path: object, reason: str, expected: str | None = None) -> None:
        self.path = str(path)
        message = f"{self.path}: {reason}"
        if expected:
            message += f"\nexpected layout:\n{expected}"
        super().__init__(message)


class SplitFileError(DataError):
    """A line of a split/list file is malformed, has an unknown label or a missing clip."""

    def __init__(self, path: object, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}")


class TooManyBadFilesError(DataError):
    """More clips failed to decode in an epoch than the configured share allows."""
