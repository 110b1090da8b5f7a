"""Probe one clip for ``hi2m data check`` (the command itself: :mod:`hi2m.commands.data`).

:func:`probe_clip` opens a clip (and decodes per mode) inside the per-file boundary and never raises for a
bad clip; it runs in worker processes, so it takes and returns plain data.
"""

from __future__ import annotations

from typing import Any


def probe_clip(task: tuple[str, int, int, str, float]) -> dict[str, Any]:
    """Open (and decode per ``mode``) one clip; never raises for a bad clip.

    ``task`` is (path, num_frames, stride, mode, time limit in seconds); "window" decodes the first window.
    """
    import time

    import numpy as np

    from hi2m.data.boundary import file_boundary
    from hi2m.data.errors import DecodeError
    from hi2m.data.sampling import window_at
    from hi2m.data.video import open_clip_source

    path, num_frames, stride, mode, time_limit = task
    start_time = time.perf_counter()
    try:
        with file_boundary(path, time_limit), open_clip_source(path) as source:
            result: dict[str, Any] = {"path": path, "frames": source.num_frames, "size": source.size, "fps": source.fps}
            if mode == "window":
                source.read(window_at(0, source.num_frames, num_frames, stride))
            elif mode == "full":
                for start in range(0, source.num_frames, 64):
                    source.read(np.arange(start, min(start + 64, source.num_frames)))
    except DecodeError as err:
        result = {"path": path, "error": str(err), "kind": err.kind}
    result["seconds"] = time.perf_counter() - start_time
    return result
