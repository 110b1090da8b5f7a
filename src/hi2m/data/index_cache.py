"""A JSON cache of a scanned file tree (used for VoxCeleb2's million clips).

The cache stores the clip paths relative to the scanned folder and a *signature*:
a hash of the folder's mtime plus the name and mtime of every first-level folder
(one per speaker in VoxCeleb2). Adding, removing or renaming a speaker or any of
its video folders changes a first-level mtime, so the cache is rebuilt. Adding a
clip inside an existing *video* folder does not; pass ``rebuild=True`` then.
The cache is JSON (never pickle) and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

CACHE_VERSION = 1


def tree_signature(folder: Path) -> str:
    """Hash of ``folder``'s mtime and its first-level entries' names and mtimes."""
    digest = hashlib.sha1()
    digest.update(str(folder.stat().st_mtime_ns).encode())
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            digest.update(f"\0{entry.name}\0{entry.stat().st_mtime_ns}".encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hi2m`` or ``~/.cache/hi2m``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hi2m"


def cache_candidates(folder: Path, tag: str, cache_dir: Path | None) -> list[Path]:
    """Where the index may live: ``cache_dir`` if given, else next to the data, then ~/.cache."""
    name = f"{tag}-{hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]}.json"
    if cache_dir is not None:
        return [Path(cache_dir) / name]
    return [folder.parent / f".hi2m-index-{tag}.json", default_cache_dir() / name]


def load_or_build(
    folder: Path,
    tag: str,
    scan: Callable[[Path], list[str]],
    cache_dir: Path | None = None,
    rebuild: bool = False,
) -> tuple[list[str], str]:
    """Relative paths under ``folder`` from a valid cache, or from ``scan`` (then cached).

    Returns (paths, origin) with origin ``"cache"`` or ``"scan"``.
    """
    signature = tree_signature(folder)
    candidates = cache_candidates(folder, tag, cache_dir)
    if not rebuild:
        for path in candidates:
            files = _read(path, folder, signature)
            if files is not None:
                return files, "cache"
    files = scan(folder)
    payload = {"version": CACHE_VERSION, "root": str(folder.resolve()), "signature": signature, "files": files}
    for path in candidates:
        if _write(path, payload):
            break
    return files, "scan"


def _read(path: Path, folder: Path, signature: str) -> list[str] | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or unreadable: rebuild
    if (
        not isinstance(payload, dict)
        or payload.get("version") != CACHE_VERSION
        or payload.get("signature") != signature
        or payload.get("root") != str(folder.resolve())
        or not isinstance(payload.get("files"), list)
    ):
        return None
    return [str(f) for f in payload["files"]]


def _write(path: Path, payload: dict) -> bool:
    """Write atomically; False when the location is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, path)
        return True
    except OSError:
        return False
