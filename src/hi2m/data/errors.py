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
    crashing the run (see :mod:`hi2m.data.skipping`). ``kind`` sorts the reasons in reports:
    ``decode`` (FFmpeg or PIL refused the data), ``missing``, ``header`` (impossible sizes or counts),
    ``timeout`` (the per-file time limit), ``transform`` (the frames do not fit the transform) and
    ``unexpected`` (any other exception, caught at :func:`hi2m.data.boundary.file_boundary`; its type
    is in the message).
    """

    def __init__(self, path: object, reason: str, kind: str = "decode") -> None:
        self.path = str(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep ``kind`` across processes (DataLoader workers, multiprocessing pools)
        return (type(self), (self.path, self.reason, self.kind))


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
