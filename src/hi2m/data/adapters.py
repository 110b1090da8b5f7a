"""Dataset adapters: from a dataset root in its official layout to a :class:`ClipDataset`.

``build_dataset(name, root, split=..., **options)`` with ``name`` one of
``voxceleb2``, ``dfew``, ``ferv39k``, ``csv``, ``synthetic``. Adapter-specific
options are listed in each builder's docstring; every other keyword goes to
:class:`~hi2m.data.dataset.ClipDataset` (``num_frames``, ``stride``, ``transform``,
``train``, ``num_windows``, ``repeats``, ``short``, ``seed``, ``decode_threads``).
``train`` defaults to True for the ``train``/``dev`` splits and False otherwise.

Missing roots and split files raise :class:`LayoutError` at construction, naming the
missing path and the expected layout. Bad lines in split files (malformed, unknown
label, missing clip) raise :class:`SplitFileError` naming file and line, or, with
``on_bad_line="skip"``, are skipped and listed in a summary printed to stderr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from hi2m.data.dataset import ClipDataset
from hi2m.data.records import ClipRecord, RecordTable
from hi2m.data.errors import LayoutError
from hi2m.data.index_cache import load_or_build
from hi2m.labels import DFER_CLASSES, MAFW_CLASSES
from hi2m.data.splits import (
    BadLineLog,
    is_header,
    iter_lines,
    parse_label,
    require_dir,
    require_file,
    split_path_label,
)
from hi2m.data.video import VIDEO_EXTENSIONS

Builder = Callable[..., ClipDataset]
DATASETS: dict[str, Builder] = {}

VOXCELEB2_LAYOUT = "  <root>/{split}/mp4/<speaker id>/<video id>/<n>.mp4   (e.g. dev/mp4/id00012/21Uxsk56VDQ/00001.mp4)"
DFEW_LAYOUT = (
    "  <root>/EmoLabel_DataSplit/{train,test}(single-labeled)/set_<fold>.csv   (header video_name,label; labels 1-7)\n"
    "  <root>/Clip/clip_224x224/<5-digit id>/*.jpg"
)
FERV39K_LAYOUT = (
    "  <root>/4_setups/All_scenes/{train,test}_All.csv   (lines 'Interview/Happy/0118 Happy')\n"
    "  <root>/2_ClipsforFaceCrop/<scene>/<label>/<clip>/*.jpg"
)
MAFW_LAYOUT = (
    "  <root>/Train & Test Set/single/no_caption/set_<fold>/{train,test}.txt   (lines '00019.mp4 anger')\n"
    "  <root>/data/frames/<5-digit id>/*.jpg  or  <root>/data/clips/<5-digit id>.mp4"
)
MAFW_SPLIT_FOLDERS = ("Train & Test Set", "Train_Test_Set")  # the release's name, and the usual rename
CSV_LAYOUT = (
    "  a list file: lines 'path label' or 'path,label' (label name or 0-based index,\n"
    "  path relative to <root>, optional header line), given as list_file= or found at\n"
    "  <root>/<split>.csv or <root>/<split>.txt; or folders <root>[/<split>]/<label>/<clip>\n"
    "  (clip = video file or frame folder)"
)


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding a builder ``f(root, split, **options) -> ClipDataset`` to the registry."""

    def add(builder: Builder) -> Builder:
        DATASETS[name] = builder
        return builder

    return add


def build_dataset(name: str, root: str | os.PathLike[str], split: str | None = None, **options: Any) -> ClipDataset:
    """Build the dataset ``name`` from ``root`` (see the module docstring)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    if split is not None:
        options["split"] = split
    return DATASETS[name](Path(root), **options)


def _finish(
    records: list[ClipRecord] | RecordTable, log: BadLineLog, what: str, split: str | None, options: dict[str, Any], **defaults: Any
) -> ClipDataset:
    """Print the bad-line summary and create the ClipDataset with adapter defaults."""
    log.print_summary(what)
    for key, value in defaults.items():
        options.setdefault(key, value)
    options.setdefault("train", split in ("train", "dev"))
    return ClipDataset(records, name=what, bad_lines=log.skipped, **options)


# --------------------------------------------------------------------------------------
# VoxCeleb2 (unlabelled, pretraining)
# --------------------------------------------------------------------------------------


def _scan_voxceleb2(folder: Path) -> list[str]:
    """Relative paths ``<speaker>/<video>/<n>.mp4``, sorted."""
    found: list[str] = []
    for speaker in sorted(os.scandir(folder), key=lambda e: e.name):
        if not speaker.is_dir():
            continue
        for video in sorted(os.scandir(speaker.path), key=lambda e: e.name):
            if not video.is_dir():
                continue
            for clip in sorted(os.scandir(video.path), key=lambda e: e.name):
                if clip.is_file() and clip.name.lower().endswith(".mp4"):
                    found.append(f"{speaker.name}/{video.name}/{clip.name}")
    return found


@register_dataset("voxceleb2")
def voxceleb2(
    root: Path,
    split: str = "dev",
    cache_dir: str | os.PathLike[str] | None = None,
    rebuild_index: bool = False,
    on_bad_line: str = "error",
    **options: Any,
) -> ClipDataset:
    """VoxCeleb2 ``<root>/<split>/mp4/<id>/<video>/<n>.mp4``, unlabelled (label -1).

    The tree is scanned once and the list cached as JSON (next to the data, else in
    ``cache_dir`` / ``~/.cache/hi2m``); see :mod:`hi2m.data.index_cache` for when the
    cache is refreshed (``rebuild_index=True`` forces it). Default stride 4.
    """
    expected = VOXCELEB2_LAYOUT.format(split=split)
    require_dir(root, "VoxCeleb2 root", expected)
    folder = require_dir(root / split / "mp4", f"VoxCeleb2 {split} folder", expected)
    files, origin = load_or_build(
        folder, f"voxceleb2-{split}", _scan_voxceleb2, Path(cache_dir) if cache_dir else None, rebuild_index
    )
    if not files:
        raise LayoutError(folder, "no .mp4 clips found", expected)
    records = RecordTable(files, prefix=str(folder) + os.sep)  # flat buffers, not 1.09M objects
    dataset = _finish(records, BadLineLog(on_bad_line), f"voxceleb2 {split}", split, options, stride=4)
    dataset.index_origin = origin  # type: ignore[attr-defined]
    return dataset


# --------------------------------------------------------------------------------------
# DFEW
# --------------------------------------------------------------------------------------


@register_dataset("dfew")
def dfew(
    root: Path,
    split: str = "train",
    fold: int = 1,
    frames_dir: str = "Clip/clip_224x224",
    on_bad_line: str = "error",
    **options: Any,
) -> ClipDataset:
    """DFEW, official 5-fold split ``fold`` (1-5), single-labelled clips, labels 1-7
    mapped to :data:`DFER_CLASSES` (index = label - 1). Frames from ``frames_dir``.
    Default stride 4."""
    if split not in ("train", "test"):
        raise ValueError(f"DFEW split must be 'train' or 'test', got {split!r}")
    if fold not in (1, 2, 3, 4, 5):
        raise ValueError(f"DFEW fold must be 1-5, got {fold!r}")
    require_dir(root, "DFEW root", DFEW_LAYOUT)
    split_file = require_file(
        root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv", "DFEW split file", DFEW_LAYOUT
    )
    frames_root = require_dir(root / frames_dir, "DFEW frame folder root", DFEW_LAYOUT)
    log = BadLineLog(on_bad_line)
    records: list[ClipRecord] = []
    for number, line in iter_lines(split_file):
        fields = [f.strip() for f in line.split(",")]
        if number == 1 and is_header(fields[0]):
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            log.bad(split_file, number, f"expected 'video_name,label' with a numeric id, got {line!r}")
            continue
        if not fields[1].isdigit() or not 1 <= int(fields[1]) <= len(DFER_CLASSES):
            log.bad(split_file, number, f"unknown label {fields[1]!r} (DFEW labels are 1-{len(DFER_CLASSES)})")
            continue
        clip = frames_root / fields[0].zfill(5)
        if not clip.is_dir():
            log.bad(split_file, number, f"frame folder {clip} is missing")
            continue
        records.append(ClipRecord(str(clip), int(fields[1]) - 1))
    return _finish(records, log, f"dfew {split} fold {fold}", split, options, stride=4)


# --------------------------------------------------------------------------------------
# MAFW
# --------------------------------------------------------------------------------------


@register_dataset("mafw")
def mafw(
    root: Path,
    split: str = "train",
    fold: int = 1,
    frames_dir: str | None = None,
    on_bad_line: str = "error",
    **options: Any,
) -> ClipDataset:
    """MAFW's single-expression set, official 5-fold split ``fold`` (1-5): 11 classes
    (:data:`hi2m.labels.MAFW_CLASSES`, label names as in the split files). Clips from ``frames_dir``
    (relative to root; a frame folder ``<id>/`` or a video ``<id>.mp4`` per clip); by default the
    release's ``data/frames`` when it is there, else ``data/clips``. Default stride 4."""
    if split not in ("train", "test"):
        raise ValueError(f"MAFW split must be 'train' or 'test', got {split!r}")
    if fold not in (1, 2, 3, 4, 5):
        raise ValueError(f"MAFW fold must be 1-5, got {fold!r}")
    require_dir(root, "MAFW root", MAFW_LAYOUT)
    sets = next((root / name for name in MAFW_SPLIT_FOLDERS if (root / name).is_dir()), root / MAFW_SPLIT_FOLDERS[0])
    split_file = require_file(sets / "single" / "no_caption" / f"set_{fold}" / f"{split}.txt", "MAFW split file",
                              MAFW_LAYOUT)
    if frames_dir is None:
        frames_dir = "data/frames" if (root / "data" / "frames").is_dir() else "data/clips"
    clips_root = require_dir(root / frames_dir, "MAFW clip folder", MAFW_LAYOUT)
    log = BadLineLog(on_bad_line)
    records: list[ClipRecord] = []
    for number, line in iter_lines(split_file):
        fields = line.split()
        if len(fields) != 2:
            log.bad(split_file, number, f"expected '<clip file> <label>', got {line!r}")
            continue
        label = parse_label(fields[1], MAFW_CLASSES, allow_index=False)
        if label is None:
            log.bad(split_file, number, f"unknown label {fields[1]!r} (MAFW's: {', '.join(MAFW_CLASSES)})")
            continue
        stem = Path(fields[0]).stem
        clip = next((c for c in (clips_root / stem, clips_root / fields[0], clips_root / f"{stem}.mp4") if c.exists()),
                    None)
        if clip is None:
            log.bad(split_file, number, f"clip {clips_root / stem} (a frame folder or {stem}.mp4) is missing")
            continue
        records.append(ClipRecord(str(clip), label))
    return _finish(records, log, f"mafw {split} fold {fold}", split, options, stride=4, classes=MAFW_CLASSES)


# --------------------------------------------------------------------------------------
# FERV39K
# --------------------------------------------------------------------------------------


@register_dataset("ferv39k")
def ferv39k(
    root: Path,
    split: str = "train",
    scenes: str = "All_scenes",
    frames_dir: str = "2_ClipsforFaceCrop",
    on_bad_line: str = "error",
    **options: Any,
) -> ClipDataset:
    """FERV39K ``4_setups/<scenes>/<split>_All.csv`` lines ``<scene>/<label>/<clip> <label name>``;
    frames under ``<frames_dir>/<scene>/<label>/<clip>/``. Default stride 1."""
    if split not in ("train", "test"):
        raise ValueError(f"FERV39K split must be 'train' or 'test', got {split!r}")
    require_dir(root, "FERV39K root", FERV39K_LAYOUT)
    split_file = require_file(root / "4_setups" / scenes / f"{split}_All.csv", "FERV39K split file", FERV39K_LAYOUT)
    frames_root = require_dir(root / frames_dir, "FERV39K frame folder root", FERV39K_LAYOUT)
    log = BadLineLog(on_bad_line)
    records: list[ClipRecord] = []
    for number, line in iter_lines(split_file):
        fields = split_path_label(line)
        if fields is None:
            log.bad(split_file, number, f"expected '<relative clip folder> <label>', got {line!r}")
            continue
        if number == 1 and is_header(fields[0]):
            continue
        label = parse_label(fields[1], DFER_CLASSES, allow_index=False)
        if label is None:
            log.bad(split_file, number, f"unknown label {fields[1]!r} (expected one of {', '.join(DFER_CLASSES)})")
            continue
        clip = frames_root / fields[0]
        if not clip.is_dir():
            log.bad(split_file, number, f"frame folder {clip} is missing")
            continue
        records.append(ClipRecord(str(clip), label))
    return _finish(records, log, f"ferv39k {split}", split, options, stride=1)


# --------------------------------------------------------------------------------------
# Generic: a list file, or <label>/<clip> folders
# --------------------------------------------------------------------------------------


def _is_clip(path: Path) -> bool:
    if path.is_dir():
        return True
    return path.is_file() and (path.suffix.lower() in VIDEO_EXTENSIONS)


def _records_from_list(list_file: Path, root: Path, classes: Sequence[str], log: BadLineLog) -> list[ClipRecord]:
    records: list[ClipRecord] = []
    first = True
    for number, line in iter_lines(list_file):
        fields = split_path_label(line)
        header = first and fields is not None and is_header(fields[0])
        first = False
        if header:
            continue
        if fields is None:
            log.bad(list_file, number, f"expected 'path label' or 'path,label', got {line!r}")
            continue
        label = parse_label(fields[1], classes)
        if label is None:
            log.bad(
                list_file,
                number,
                f"unknown label {fields[1]!r} (expected one of {', '.join(classes)} or an index 0-{len(classes) - 1})",
            )
            continue
        clip = root / fields[0]
        if not clip.exists():
            log.bad(list_file, number, f"clip {clip} is missing")
            continue
        records.append(ClipRecord(str(clip), label))
    return records


def _records_from_folders(folder: Path, classes: Sequence[str], log: BadLineLog) -> list[ClipRecord]:
    records: list[ClipRecord] = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if label_dir.name.startswith("."):
            continue
        label = parse_label(label_dir.name, classes, allow_index=False)
        if label is None:
            log.bad(label_dir, 0, f"folder name is not a known label ({', '.join(classes)})")
            continue
        for clip in sorted(label_dir.iterdir()):
            if clip.name.startswith("."):
                continue
            if _is_clip(clip):
                records.append(ClipRecord(str(clip), label))
            else:
                log.bad(clip, 0, "neither a video file nor a frame folder")
    return records


def read_class_file(path: Path) -> tuple[str, ...] | None:
    """Class names from a file with one per line (blank lines and ``#`` comments skipped); None when absent."""
    if not path.is_file():
        return None
    names = tuple(line for _, line in iter_lines(path))
    if not names:
        raise LayoutError(path, "the class list is empty", CSV_LAYOUT)
    return names


@register_dataset("csv")
def csv_dataset(
    root: Path,
    split: str | None = None,
    list_file: str | os.PathLike[str] | None = None,
    classes: Sequence[str] | None = None,
    on_bad_line: str = "error",
    **options: Any,
) -> ClipDataset:
    """Generic clips with labels, from a list file or a ``<label>/<clip>`` folder tree.

    Sources, first match wins: ``list_file`` (relative to ``root`` or absolute);
    ``<root>/<split>.csv``; ``<root>/<split>.txt``; folders ``<root>/<split>/<label>/``;
    and, when ``split`` is None, folders ``<root>/<label>/``. Default stride 4.
    Classes: ``classes``, else ``<root>/classes.txt`` (one name per line; what ``hi2m data prepare``
    writes), else the seven DFEW classes.
    """
    require_dir(root, "dataset root", CSV_LAYOUT)
    log = BadLineLog(on_bad_line)
    classes = tuple(classes) if classes else read_class_file(root / "classes.txt") or DFER_CLASSES
    source: Path | None = None
    if list_file is not None:
        source = require_file(root / list_file, "list file", CSV_LAYOUT)
    elif split is not None:
        for candidate in (root / f"{split}.csv", root / f"{split}.txt"):
            if candidate.is_file():
                source = candidate
                break
    if source is not None:
        records = _records_from_list(source, root, classes, log)
        what = f"csv {source}"
    else:
        folder = root / split if split is not None else root
        require_dir(folder, f"list file or class folders for split {split!r}", CSV_LAYOUT)
        records = _records_from_folders(folder, classes, log)
        what = f"folders {folder}"
    if not records and not log.skipped:
        raise LayoutError(source or root, "no clips found", CSV_LAYOUT)
    return _finish(records, log, what, split, options, stride=4, classes=classes)


# --------------------------------------------------------------------------------------
# SynthFace (generated on demand)
# --------------------------------------------------------------------------------------


@register_dataset("synthetic")
def synthetic(
    root: Path, split: str = "train", synthface: dict[str, Any] | None = None, **options: Any
) -> ClipDataset:
    """SynthFace: generate the dataset under ``root`` if missing (``synthface`` holds the
    generator's options), then read ``<root>/<split>.csv`` like the ``csv`` adapter."""
    from hi2m.data.synthface import ensure_synthface

    data_root = Path(ensure_synthface(root, **(synthface or {})))
    list_file = f"{split}.csv"  # relative to data_root: joining it to a relative root twice was a bug
    if not (data_root / list_file).is_file():
        raise LayoutError(data_root / list_file, f"SynthFace split file for {split!r} not found",
                          "  <root>/{train,val,test}.csv")
    return csv_dataset(data_root, split=split, list_file=list_file, **options)


@register_dataset("synthface-stream")
def synthface_stream(
    root: Path,
    split: str | None = None,
    synthface: dict[str, Any] | None = None,
    clips_per_epoch: int = 2048,
    pool: int | None = None,
    transform: Any = None,
    repeats: int = 1,
    seed: int = 0,
    prerender: int = 0,
    **options: Any,
):
    """Endless unlabelled SynthFace for pretraining (``SynthFaceStream``): rendered on the fly in the
    DataLoader workers, nothing on disk (``root`` and ``split`` are unused); ``clips_per_epoch`` new clips
    every epoch, or a finite set of ``pool`` clips. ``prerender: N`` (with ``pool``): the pool is rendered
    once, by N processes, before training and read from memory (then ``data.num_workers: 0``).
    ``synthface`` holds the generator's options (``preset: voxceleb2`` ...). The model's ``num_frames``
    must equal ``synthface.num_frames``."""
    from hi2m.data.synthface.dataset import SynthFaceStream

    options.pop("train", None)
    config = _in_memory_synthface("synthface-stream", synthface, options)
    return SynthFaceStream(config, clips_per_epoch, transform, pool=pool, repeats=repeats, seed=seed,
                           prerender=prerender)


def _in_memory_synthface(name: str, synthface: dict[str, Any] | None, options: dict[str, Any]):
    """The SynthFace config of an in-memory dataset: the engine's decoding options do not apply (nothing
    is decoded; every clip is the model's length), ``data.num_frames`` must match, nothing else is known."""
    from hi2m.data.synthface import synthface_config

    opts = dict(synthface or {})
    num_frames = options.pop("num_frames", None)
    for key in ("stride", "time_limit", "num_windows"):
        options.pop(key, None)
    if num_frames is not None:
        opts.setdefault("num_frames", num_frames)
        if opts["num_frames"] != num_frames:
            raise ValueError(f"{name}: data.num_frames={num_frames} but synthface.num_frames="
                             f"{opts['num_frames']}; it renders exactly the frames the model sees")
    if options:
        raise ValueError(f"{name}: unknown option(s) {sorted(options)}")
    return synthface_config(**opts)


@register_dataset("synthface-pool")
def synthface_pool(
    root: Path,
    split: str = "train",
    synthface: dict[str, Any] | None = None,
    count: int | dict[str, int] = 2100,
    per_class: int | dict[str, int] | None = None,
    repeat: int | dict[str, int] = 1,
    transform: Any = None,
    train: bool = True,
    seed: int = 0,
    **options: Any,
):
    """A fixed pool of labelled SynthFace clips rendered once into memory (``SynthFacePool``): the first
    ``count`` clips of ``split``, the first ``per_class`` of each class used (nested budgets), listed
    ``repeat`` times per epoch; nothing on disk (``root`` is unused). ``count``, ``per_class`` and ``repeat``
    take one value or one per split (``{train: 2100, test: 350}``). ``synthface`` holds the generator's
    options (``preset: voxceleb2`` ...)."""
    from hi2m.data.synthface.dataset import SynthFacePool

    def of_split(value: Any, default: Any) -> Any:
        return value.get(split, default) if isinstance(value, dict) else value

    options.pop("repeats", None)  # repeated sampling is a pretraining option
    config = _in_memory_synthface("synthface-pool", synthface, options)
    return SynthFacePool(config, split, of_split(count, 2100), of_split(per_class, None), transform, train=train,
                         seed=seed, repeat=of_split(repeat, 1))
