"""Writing SynthFace to disk (mp4 + CSV + masks) and reading its masks back.

Layout under ``root``::

    synthface.json               config + version, written last (atomic): marks a complete dataset
    train.csv, val.csv, test.csv  "path,label" lines such as "videos/train/000001.mp4,Happy"
    videos/<split>/<index>.mp4   H.264 (libx264, yuv420p) clips
    masks/<split>/<index>.npz    "parts" uint8 (T, H, W) region ids, "occlusion" bool (T, H, W)
    meta/<split>.csv             per-clip label, expression parameters, difficulty, identity
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hi2m.labels import DFER_CLASSES
from hi2m.data.synthface.config import SPLITS, SynthFaceConfig, check_split, synthface_config
from hi2m.data.synthface.face import PART_IDS
from hi2m.data.synthface.render import SynthClip, generate_clip

MARKER = "synthface.json"
_OWNED_DIRS = ("videos", "masks", "meta")
CRF = 18
PRESET = "ultrafast"


def video_relpath(split: str, index: int) -> str:
    """Path of a clip's video relative to the dataset root (POSIX separators)."""
    return f"videos/{split}/{index:06d}.mp4"


def mask_relpath(split: str, index: int) -> str:
    """Path of a clip's region masks relative to the dataset root."""
    return f"masks/{split}/{index:06d}.npz"


def encode_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write RGB frames (T, H, W, 3) uint8 as an H.264 yuv420p mp4 with PyAV."""
    import av

    num_frames, height, width, _ = frames.shape
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": PRESET}
        stream.codec_context.thread_count = 1  # tiny frames; parallelism comes from the pool
        for frame in frames:
            packet_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(packet_frame))
        container.mux(stream.encode(None))


def save_masks(path: Path, clip: SynthClip) -> None:
    """Compressed npz of the region-part map and the occluder mask (no pickle)."""
    np.savez_compressed(path, parts=clip.region_parts, occlusion=clip.occlusion)


def flat_scalars(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    """Numeric entries of a dict, lists expanded as ``key_0, key_1, ...``."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                out[f"{prefix}{key}_{i}"] = round(float(item), 6)
        else:
            out[f"{prefix}{key}"] = round(float(value), 6)
    return out


def meta_row(split: str, index: int, clip: SynthClip) -> dict[str, Any]:
    """One line of ``meta/<split>.csv``."""
    row: dict[str, Any] = {
        "index": index,
        "path": video_relpath(split, index),
        "label": clip.label,
        "label_name": DFER_CLASSES[clip.label],
    }
    row.update(flat_scalars("", clip.params))
    row.update(flat_scalars("", clip.difficulty))
    row.update(flat_scalars("id_", clip.identity))
    return row


def write_one(root: Path, config: SynthFaceConfig, split: str, index: int) -> dict[str, Any]:
    """Generate, encode and save one clip; returns its meta row."""
    clip = generate_clip(config, split, index)
    encode_mp4(root / video_relpath(split, index), clip.frames, config.fps)
    save_masks(root / mask_relpath(split, index), clip)
    return meta_row(split, index, clip)


def _owned_names() -> set[str]:
    return {MARKER, MARKER + ".tmp", *_OWNED_DIRS, *(f"{split}.csv" for split in SPLITS)}


def _check_root(root: Path) -> None:
    """Refuse to write into a non-empty folder that holds nothing of SynthFace's."""
    names = {p.name for p in root.iterdir()}
    if names and not names & _owned_names():
        raise FileExistsError(f"{root} is not empty and does not look like a SynthFace folder")


def _reset_layout(root: Path) -> None:
    """Remove the marker first (so an interrupted run is detectable), then old outputs."""
    _check_root(root)
    (root / MARKER).unlink(missing_ok=True)
    for name in _OWNED_DIRS:
        shutil.rmtree(root / name, ignore_errors=True)
    for split in SPLITS:
        (root / f"{split}.csv").unlink(missing_ok=True)
    for split in SPLITS:
        for name in ("videos", "masks"):
            (root / name / split).mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_split_tables(root: Path, split: str, rows: list[dict[str, Any]]) -> None:
    rows = sorted(rows, key=lambda r: r["index"])
    listing = [{"path": r["path"], "label": r["label_name"]} for r in rows]
    _write_csv(root / f"{split}.csv", listing, ["path", "label"])
    columns = list(rows[0]) if rows else ["index", "path", "label", "label_name"]
    _write_csv(root / "meta" / f"{split}.csv", rows, columns)


def _write_marker(root: Path, config: SynthFaceConfig) -> None:
    """Write ``synthface.json`` atomically (tmp file + os.replace)."""
    payload = {
        "format": "synthface",
        "version": config.version,
        "config": config.to_dict(),
        "classes": list(DFER_CLASSES),
        "counts": {split: config.count(split) for split in SPLITS},
        "parts": PART_IDS,
        "video": {"codec": "libx264", "pix_fmt": "yuv420p", "crf": CRF, "preset": PRESET},
    }
    tmp = root / (MARKER + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / MARKER)


def _shards(config: SynthFaceConfig, workers: int) -> list[list[tuple[str, int]]]:
    """All (split, index) pairs dealt round-robin to ``workers`` shards."""
    pairs = [(split, i) for split in SPLITS for i in range(config.count(split))]
    return [pairs[k::workers] for k in range(workers)]


def run_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Write the clips of a job ``{"root", "config", "clips": [[split, index], ...]}``."""
    root, config = Path(job["root"]), SynthFaceConfig.from_dict(job["config"])
    return [write_one(root, config, split, int(index)) for split, index in job["clips"]]


def _worker_env() -> dict[str, str]:
    """Environment for worker processes, with this copy of hi2m importable."""
    import hi2m

    src = str(Path(hi2m.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def _run_in_workers(root: Path, config: SynthFaceConfig, workers: int) -> list[dict[str, Any]]:
    """Run shards in ``workers`` fresh Python processes talking JSON (no fork, no pickle).

    Fresh interpreters avoid forking a parent that may hold torch threads and do
    not re-import the caller's ``__main__`` (so scripts need no main guard).
    """
    procs = []
    for k, shard in enumerate(_shards(config, workers)):
        job = {"root": str(root), "config": config.to_dict(), "clips": shard}
        out_path = root / "meta" / f".rows-{k}.jsonl"
        out = open(out_path, "w", encoding="utf-8")
        cmd = [sys.executable, "-m", "hi2m.data.synthface.worker"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE, env=_worker_env())
        procs.append((proc, out, out_path, json.dumps(job)))
    rows: list[dict[str, Any]] = []
    failures = []
    for proc, out, out_path, job_text in procs:
        _, err = proc.communicate(job_text.encode("utf-8"))
        out.close()
        if proc.returncode != 0:
            failures.append(err.decode("utf-8", "replace")[-2000:])
            continue
        with open(out_path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f if line.strip()]
        out_path.unlink()
    if failures:
        raise RuntimeError("SynthFace worker failed:\n" + "\n".join(failures))
    return rows


def _run_tasks(root: Path, config: SynthFaceConfig, workers: int) -> dict[str, list[dict[str, Any]]]:
    """Write every clip (inline or in worker processes) and group meta rows by split."""
    total = sum(config.count(split) for split in SPLITS)
    workers = max(1, min(workers, total))
    if workers == 1:
        job = {"root": str(root), "config": config.to_dict(), "clips": _shards(config, 1)[0]}
        flat = run_job(job)
    else:
        flat = _run_in_workers(root, config, workers)
    rows: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for row in flat:
        rows[row["path"].split("/")[1]].append(row)
    return rows


def write_synthface(root: str | os.PathLike, config: SynthFaceConfig | None = None, workers: int = 2) -> Path:
    """Generate the whole dataset under ``root`` and return ``root`` as a Path.

    Existing SynthFace outputs under ``root`` are replaced. ``synthface.json`` is
    removed first and written last, so a dataset without it is incomplete.
    """
    config = config or SynthFaceConfig()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _reset_layout(root)
    rows = _run_tasks(root, config, workers)
    for split in SPLITS:
        _write_split_tables(root, split, rows[split])
    _write_marker(root, config)
    return root


def read_marker(root: str | os.PathLike) -> dict[str, Any] | None:
    """Contents of ``synthface.json`` or None when missing / unreadable."""
    path = Path(root) / MARKER
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_complete(root: str | os.PathLike, config: SynthFaceConfig) -> bool:
    """True when ``root`` holds a finished dataset generated with exactly ``config``."""
    marker = read_marker(root)
    if not marker or marker.get("config") != config.to_dict():
        return False
    return all((Path(root) / f"{split}.csv").is_file() for split in SPLITS)


def ensure_synthface(root: str | os.PathLike, *, workers: int = 2, **config_overrides: Any) -> Path:
    """Return ``root``, generating SynthFace there first if missing, incomplete or different.

    ``config_overrides`` are :class:`SynthFaceConfig` fields (e.g. ``num_train=700``), optionally with
    ``preset`` (``voxceleb2`` or ``dfew``) whose values the other fields override.
    """
    config = synthface_config(**config_overrides)
    if is_complete(root, config):
        return Path(root)
    return write_synthface(root, config, workers=workers)


def load_region_parts(root: str | os.PathLike, split: str, index: int) -> np.ndarray:
    """Region-part ids (see ``PART_IDS``) of one written clip, uint8 (T, H, W)."""
    check_split(split)
    with np.load(Path(root) / mask_relpath(split, index), allow_pickle=False) as data:
        return data["parts"]


def load_region_masks(root: str | os.PathLike, split: str, index: int) -> np.ndarray:
    """Expression-bearing region mask of one written clip, bool (T, H, W)."""
    return load_region_parts(root, split, index) > 0


def load_occlusion(root: str | os.PathLike, split: str, index: int) -> np.ndarray:
    """Occluder mask of one written clip, bool (T, H, W)."""
    check_split(split)
    with np.load(Path(root) / mask_relpath(split, index), allow_pickle=False) as data:
        return data["occlusion"]
